"""`gan-jax explore`: a local web page to steer a trained model (seed, label or caption,
truncation, a latent direction and its strength) and to run a translator or super-resolution G on an uploaded picture.

A page of our own on the standard library (`http.server.ThreadingHTTPServer` and one HTML file
with inline JS, `explorer.html`) rather than Gradio, because it is simpler and faster: no heavy
dependency to install, nothing to download, one process that keeps the model loaded and compiled,
and a request that costs what rendering one image costs (a few ms for the digits models on 2 CPU
cores; `benchmarks/explore_latency.py` measures control change to new image in a real browser).

The server listens on 127.0.0.1 only. `Explorer` does the work and knows nothing of HTTP, so tests
and the benchmark can call it directly; `open_server` binds the port, loads the run, compiles
what the page will ask for (a warm-up) and returns the server, which the CLI then runs.

Endpoints: GET / (the page), GET /info (JSON: the run, its kind, classes, latent spaces,
directions, truncation), GET /image?seed=&label=&truncation=&direction=&strength=&text= (a PNG,
enlarged with nearest-neighbour to at least `DISPLAY` px), POST /translate?direction= (an
uploaded image through a translator or super-resolution G; a PNG), POST /project (an uploaded
picture projected into a noise model's latent space, `gan-jax project`'s optimisation with
PROJECT_STEPS steps; a PNG of the target beside its projection). Bad requests get HTTP 400 and one
sentence, as the CLI's bad input does.
"""
import errno
import functools
import http.server
import importlib.util
import io
import json
import math
import os
import sys
import threading
import time
import urllib.parse
from importlib import resources

import numpy as np
from PIL import Image

from gan_jax import reporting, translating
from gan_jax.errors import UserError, brief

DISPLAY = 256               # smallest side of a shown image, px (nearest-neighbour enlargement)
MAX_UPLOAD = 20 * 2 ** 20   # bytes of one uploaded file
MAX_PIXELS = 1024 * 1024    # output pixels of one upload: more is a job for the batch verbs
SEED_MAX = 2 ** 31 - 1
STRENGTH_MAX = 100.0        # |strength| of a direction: far beyond what any walk shows
IMAGE_PARAMS = ("seed", "label", "truncation", "direction", "strength", "text")
TEXT_MAX = 500  # characters of a caption (text-to-image runs)
PROJECT_STEPS = 200         # fewer than `gan-jax project`'s default: an answer within seconds


class Explorer:
  """A loaded `gan_jax.api.Model` and what the page asks of it, as Python calls.

  directions: a `gan_jax.directions.Directions` for noise models (None: no direction control).
  Model calls are serialised by a lock: JAX would run them one after the other on the CPU anyway,
  and the page sends one request at a time.
  """

  def __init__(self, model, directions=None, project_steps=PROJECT_STEPS):
    self.model, self.directions = model, directions
    self.project_steps, self._projector = project_steps, None
    self._lock = threading.Lock()
    self._page = resources.files("gan_jax").joinpath("explorer.html").read_bytes()

  # --- what the page shows ---------------------------------------------------------------------

  def page(self):
    return self._page

  def info(self):
    """What the page needs to build its controls, as JSON-able values."""
    model, config = self.model, self.model.config
    shape = model.exp.spec.shape
    info = dict(workdir=os.path.abspath(model.workdir), name=config.get("name") or "run",
                game=config.get("game", "noise"), model=config.model.name, step=model.step,
                ema=model.ema, kind=model.kind, size=list(shape[:2]), channels=model.channels,
                num_classes=model.num_classes, classes=list(range(model.num_classes)),
                spaces=list(model.spaces), truncation=self._truncation_info(),
                directions=self._directions_info(), translate_directions=[], scale=model.scale,
                project=model.kind == "sample", display=DISPLAY,
                max_upload_pixels=self._max_upload(), text=self._default_text())
    if model.kind == "translate":
      info["translate_directions"] = list(model.directions)
    return info

  def _default_text(self):
    """A caption of the data for the page's text box (text-to-image runs), else None."""
    if not self.model.text_dim:
      return None
    captions = getattr(self.model.game, "captions", None)
    return captions[0][0] if captions else ""

  def _max_upload(self):
    """The most pixels an upload may have: its output, `scale` times larger each way for
    super-resolution, stays within MAX_PIXELS (an interactive page; the verbs take any size)."""
    return MAX_PIXELS // max(self.model.scale, 1) ** 2

  def _truncation_info(self):
    """The truncation control, as the model means truncation: psi toward the average w (models
    with a mapping network; 1 = off) or a threshold on z (0.5 to 2 usual)."""
    if self.model.kind != "sample" or not getattr(self.model.game, "can_truncate", False):
      return None
    if "w" in self.model.spaces:
      return dict(kind="psi", min=0.0, max=1.0, step=0.05, default=0.7,
                  meaning="pull w toward the average style by psi (1 = off, 0 = the average)")
    return dict(kind="threshold", min=0.1, max=3.0, step=0.05, default=1.0,
                meaning="draw z from a normal truncated at +-T (fidelity for variety)")

  def _directions_info(self):
    d = self.directions
    if d is None:
      return None
    return dict(method=d.method, space=d.space, count=len(d.vectors),
                sigmas=[float(s) for s in d.sigmas])

  # --- requests --------------------------------------------------------------------------------

  def image(self, seed=0, label=None, truncation=None, direction=None, strength=0.0, text=None):
    """PNG bytes of one sample, enlarged to at least DISPLAY px; one UserError for a request
    this model cannot draw."""
    pixels = self.pixels(seed, label, truncation, direction, strength, text)
    return png(enlarge(pixels, DISPLAY))

  def pixels(self, seed=0, label=None, truncation=None, direction=None, strength=0.0,
             text=None):
    """uint8 [H, W, C] of one sample of `seed` (class `label`; caption `text` for text-to-image
    runs), moved `strength` along `direction` (an index into `directions`)."""
    model = self.model
    model.require("sample")
    labels = None
    if model.text_dim:
      if label is not None or not (text or "").strip():
        raise UserError("This run draws from captions: give text (e.g. text=a red seven) and "
                        "no label.")
      labels = self._embedding(text.strip())
    elif text is not None:
      raise UserError("text= needs a text-to-image run, and this one reads no captions: drop "
                      "it.")
    elif label is not None:
      model.check_labels(label)
      labels = [label]
    elif model.num_classes:
      labels = [0]
    if direction is not None:
      self._check_direction(direction)
    with self._lock:
      if direction is None or not strength:
        return model.sample(1, seed=seed, labels=labels, truncation=truncation, uint8=True)[0]
      return self._moved(seed, labels, truncation, direction, strength)

  @functools.lru_cache(maxsize=256)
  def _embedding(self, text):
    """A caption's embedding [1, D], encoded once (a seed moved under one caption re-encodes
    nothing)."""
    with self._lock:
      return self.model.encode([text])

  def _moved(self, seed, labels, truncation, index, strength):
    """A sample moved along a direction; `gan_jax.directions` says how a move is made."""
    from gan_jax import directions as directions_lib  # pylint: disable=import-outside-toplevel
    space = self.directions.space
    latents = self.model.latents(1, seed=seed, labels=labels, space=space, truncation=truncation)
    moved = directions_lib.move(self.model, latents, self.directions, index, strength)
    return self.model.render(moved, uint8=True)[0]

  def _check_direction(self, index):
    count = 0 if self.directions is None else len(self.directions.vectors)
    if not count:
      raise UserError(f"direction={index} was asked of a model without directions: leave "
                      "direction out, or start the explorer with --directions=dirs.npz.")
    if not 0 <= index < count:
      raise UserError(f"direction={index} is not a direction of this explorer, which has "
                      f"{count} (0..{count - 1}): pick one of those.")

  def transform(self, data, direction=None):
    """PNG bytes of an uploaded image through the run's image G: a translator (`direction`) or
    a super-resolution G; output enlarged to at least DISPLAY px like the samples."""
    model = self.model
    if model.kind == "sample":
      raise UserError(f"{model.workdir} draws from noise rather than translating images: use "
                      "the seed and label controls instead of an upload.")
    if model.kind == "translate":
      model.check_direction(direction)
    elif direction is not None:
      raise UserError("direction is for translators, and this run upscales pictures: leave it "
                      "out.")
    picture = read_upload(data, self._max_upload(), f"gan-jax {model.kind}")
    with self._lock:
      if model.kind == "upscale":
        out = model.upscale(picture, uint8=True)
      else:
        colour = translating.is_colour(io.BytesIO(data))
        translating.check_channels("", ["The uploaded image"], [colour], model.channels)
        pixels = translating.read_pixels(io.BytesIO(data), model.channels)
        out = model.translate(pixels, direction, uint8=True)
    return png(enlarge(out, DISPLAY))

  def project(self, data):
    """PNG bytes of an uploaded picture beside its projection into the model's latent space
    (fitted to the run's size as `gan-jax project` fits it; the projector compiles on the first
    upload)."""
    from gan_jax import projection  # pylint: disable=import-outside-toplevel
    model = self.model
    if model.kind != "sample":
      raise UserError(f"Projection puts a picture into a noise model's latent space, and "
                      f"{model.workdir} {'translates' if model.kind == 'translate' else 'upscales'}"
                      " pictures: use the upload above instead.")
    read_upload(data, MAX_PIXELS, "gan-jax project")
    colour = translating.is_colour(io.BytesIO(data))
    translating.check_channels("", ["The uploaded image"], [colour], model.channels, "draws")
    pixels = projection.fit_picture(translating.read_pixels(io.BytesIO(data), model.channels),
                                    model)
    with self._lock:
      if self._projector is None:
        settings = projection.Settings(steps=self.project_steps)
        space = "w" if "w" in model.spaces else "z"  # `gan-jax project`'s default
        self._projector = projection.Projector(model, space, settings)
      result = self._projector.project(pixels[None])
    pair = np.concatenate([pixels, reporting.to_uint8(result.images)[0]], axis=1)
    return png(enlarge(pair, DISPLAY))

  def warm_up(self):
    """Compiles what the page will ask for, so the first control change is as quick as the rest:
    a sample (with truncation and a direction where the model has them), or one image of the
    training size through the image G. Returns the seconds it took."""
    start = time.perf_counter()
    if self.model.kind == "sample":
      text = self._default_text() or ("a picture" if self.model.text_dim else None)
      self.pixels(0, text=text)
      if self._truncation_info():
        self.pixels(0, truncation=self._truncation_info()["default"], text=text)
      if self.directions is not None and len(self.directions.vectors):
        self.pixels(0, direction=0, strength=1.0, text=text)
    else:
      h, w, c = self.model.exp.spec.shape
      scale = max(self.model.scale, 1)
      blank = Image.new("L" if c == 1 else "RGB", (max(w // scale, 1), max(h // scale, 1)))
      self.transform(png_of(blank), self.model.directions[0] if self.model.directions else None)
    return time.perf_counter() - start


def read_upload(data, max_pixels, verb):
  """The PIL image of an uploaded file; one UserError for an empty, unreadable or huge one (more
  than `max_pixels`: `verb` takes any size)."""
  if not data:
    raise UserError("The upload is empty: choose an image file (png, jpg, webp or bmp).")
  try:
    picture = Image.open(io.BytesIO(data))
    picture.load()
  except Exception:  # pylint: disable=broad-except  (pillow raises many types for bad files)
    raise UserError("The uploaded file is not an image pillow can read: upload a png, jpg, webp "
                    "or bmp image.") from None
  if picture.width * picture.height > max_pixels:
    raise UserError(f"The uploaded image is {picture.width} x {picture.height} pixels, more than "
                    f"the {max_pixels} the explorer takes for this run: shrink it, or use "
                    f"`{verb}`, which takes any size.")
  return picture


def enlarge(pixels, size):
  """uint8 [H, W, C] enlarged by the whole factor that makes its longer side >= `size`
  (nearest-neighbour: a 16 px digit stays sharp rather than blurred)."""
  factor = max(1, math.ceil(size / max(pixels.shape[:2])))
  return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def png(pixels):
  """PNG bytes of uint8 [H, W, 1 or 3] (fast compression: these are small and sent once)."""
  picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
  return png_of(picture)


def png_of(picture):
  out = io.BytesIO()
  picture.save(out, format="PNG", compress_level=1)
  return out.getvalue()


# --- request parameters ---------------------------------------------------------------------

def image_args(query):
  """`Explorer.image`'s keyword arguments from a query string's values; one UserError for an
  unknown or malformed parameter."""
  values = {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
  unknown = sorted(set(values) - set(IMAGE_PARAMS))
  if unknown:
    raise UserError(f"Unknown parameter {unknown[0]!r}: /image takes "
                    f"{', '.join(IMAGE_PARAMS[:-1])} and {IMAGE_PARAMS[-1]}.")
  values = {k: v for k, v in values.items() if v != ""}
  args = {}
  if "seed" in values:
    args["seed"] = _number(values, "seed", int, 0, SEED_MAX)
  if "label" in values:
    args["label"] = _number(values, "label", int, 0, None)
  if "truncation" in values:
    args["truncation"] = _number(values, "truncation", float, 0.0, None)
  if "direction" in values:
    args["direction"] = _number(values, "direction", int, 0, None)
  if "strength" in values:
    args["strength"] = _number(values, "strength", float, -STRENGTH_MAX, STRENGTH_MAX)
  if "text" in values:
    if len(values["text"]) > TEXT_MAX:
      raise UserError(f"text is {len(values['text'])} characters long: give at most {TEXT_MAX}.")
    args["text"] = values["text"]
  return args


def _number(values, name, kind, low, high):
  """values[name] as an int or float within [low, high] (None: unbounded)."""
  text = values[name]
  what = "a whole number" if kind is int else "a number"
  try:
    value = kind(text)
  except ValueError:
    raise UserError(f"{name}={text!r} is not {what}: give {what}"
                    + (f" from {low}" if low is not None else "") + ".") from None
  if not math.isfinite(value) or (low is not None and value < low) or (
      high is not None and value > high):
    bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
    raise UserError(f"{name}={text} is out of range: give {what} {bounds}.")
  return value


# --- HTTP ---------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
  """Routes requests to the server's Explorer; bad requests get 400 and one sentence."""
  server_version = "gan-jax-explore"
  protocol_version = "HTTP/1.1"  # keep-alive: no new connection per image while a slider moves
  # Headers and body go out as two writes: with Nagle's algorithm the body waits for the
  # client's delayed ACK of the headers, 40 ms on Linux, ten times the render itself.
  disable_nagle_algorithm = True

  def do_GET(self):  # noqa: N802  (the standard library's name)
    if not self._local():
      return
    url = urllib.parse.urlsplit(self.path)
    explorer = self.server.explorer
    routes = {
        "/": lambda: ("text/html; charset=utf-8", explorer.page()),
        "/info": lambda: ("application/json", json.dumps(explorer.info()).encode()),
        "/image": lambda: ("image/png", explorer.image(**image_args(url.query))),
    }
    self._answer(routes.get(url.path))

  def do_POST(self):  # noqa: N802
    if not self._local():
      return
    url = urllib.parse.urlsplit(self.path)
    explorer = self.server.explorer
    if url.path == "/translate":
      query = urllib.parse.parse_qs(url.query)
      direction = query.get("direction", [None])[-1] or None
      self._answer(lambda: ("image/png", explorer.transform(self._body(), direction)))
    elif url.path == "/project":
      self._answer(lambda: ("image/png", explorer.project(self._body())))
    else:
      self._answer(None)

  def _local(self):
    """Whether the request names this machine as its host; else answers 403. Listening on
    127.0.0.1 keeps other machines out, and this keeps out web pages that rebind their own name
    to 127.0.0.1 (DNS rebinding) to read the explorer from the user's browser."""
    host = self.headers.get("Host", "").rpartition(":")[0] or self.headers.get("Host", "")
    if host in ("127.0.0.1", "localhost", "[::1]"):
      return True
    self.close_connection = True
    self._send(403, "text/plain; charset=utf-8",
               f"The explorer answers requests for 127.0.0.1 or localhost, not {host!r}: open "
               f"{self.server.url}.".encode())
    return False

  def _body(self):
    """The request's body (an upload), at most MAX_UPLOAD bytes."""
    try:
      length = int(self.headers.get("Content-Length", "0"))
    except ValueError:
      length = -1
    if not 0 <= length <= MAX_UPLOAD:
      self.close_connection = True
      raise UserError(f"The upload is {length} bytes and the explorer takes 1 to {MAX_UPLOAD}: "
                      "upload one image file.")
    return self.rfile.read(length)

  def _answer(self, route):
    """Runs `route` () -> (content type, body) and sends its answer, or the error's sentence."""
    if route is None:
      self._send(404, "text/plain; charset=utf-8",
                 f"Nothing at {urllib.parse.urlsplit(self.path).path}: the explorer serves /, "
                 "/info, /image, /translate and /project.".encode())
      return
    start = time.perf_counter()
    try:
      kind, body = route()
    except UserError as e:
      self._send(400, "text/plain; charset=utf-8", str(e).encode())
      return
    except Exception as e:  # pylint: disable=broad-except  (the server keeps serving)
      print(f"gan-jax explore: {self.path}: {brief(e)}", file=sys.stderr)
      self._send(500, "text/plain; charset=utf-8",
                 f"The explorer failed on this request ({brief(e)}).".encode())
      return
    self._send(200, kind, body, ms=1000 * (time.perf_counter() - start))

  def _send(self, status, kind, body, ms=None):
    self.send_response(status)
    self.send_header("Content-Type", kind)
    self.send_header("Content-Length", str(len(body)))
    self.send_header("Cache-Control", "no-store")
    if ms is not None:
      self.send_header("Server-Timing", f"render;dur={ms:.2f}")
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    """Quiet: a moving slider would print a line per image."""


class ExplorerServer(http.server.ThreadingHTTPServer):
  """The HTTP server of one Explorer, on 127.0.0.1."""
  daemon_threads = True

  def __init__(self, port):
    super().__init__(("127.0.0.1", port), _Handler)
    self.explorer = None

  @property
  def url(self):
    return f"http://127.0.0.1:{self.server_address[1]}/"


def check_workdir(workdir):
  """One UserError for a workdir the explorer cannot read, before the port is taken."""
  if not os.path.exists(workdir):
    raise UserError(f"{workdir} does not exist: pass --workdir=DIR, a trained run's folder.")
  if not os.path.isdir(workdir):
    raise UserError(f"{workdir} is a file, not a run folder: pass --workdir=DIR, a trained "
                    "run's folder.")
  if not os.access(workdir, os.R_OK | os.X_OK):
    raise UserError(f"{workdir} cannot be read (permission denied): run as a user who may read "
                    "it, or copy the run somewhere readable.")


def bind(port):
  """An ExplorerServer listening on 127.0.0.1:port (0: a free port); one UserError when the
  port cannot be taken."""
  if not 0 <= port <= 65535:
    raise UserError(f"--port={port} is not a TCP port: give one from 1 to 65535 (0 picks a free "
                    "one).")
  try:
    return ExplorerServer(port)
  except OSError as e:
    if e.errno == errno.EADDRINUSE:
      raise UserError(f"Port {port} on 127.0.0.1 is in use (another explorer?): stop that "
                      "program, or pick another port with --port=N.") from None
    raise UserError(f"Cannot listen on 127.0.0.1:{port} ({e.strerror}): pick another port with "
                    "--port=N.") from None


def load_directions(model, path=None):
  """The Directions the page offers: those of `path` (an .npz `gan-jax directions` wrote), else
  SeFa's computed now for noise models, GANSpace's where SeFa has no closed form (None for
  others, or without `gan_jax.directions`)."""
  if model.kind != "sample":
    if path:
      raise UserError(f"--directions moves latent codes, and {model.workdir} {model.kind}s "
                      "images: drop --directions.")
    return None
  if importlib.util.find_spec("gan_jax.directions") is None:
    if path:
      raise UserError("--directions needs gan_jax.directions, which this install lacks: drop "
                      "--directions.")
    return None
  from gan_jax import directions as directions_lib  # pylint: disable=import-outside-toplevel
  if path:
    return directions_lib.load(path)
  try:
    return directions_lib.sefa(model)
  except UserError:  # a G whose first layer is not linear in z: GANSpace needs no closed form
    return directions_lib.ganspace(model)


def open_server(workdir, port=7860, directions=None, warm_up=True):
  """An ExplorerServer for `workdir`, bound, loaded and compiled, not yet serving: the caller
  runs `serve_forever()` (and `server_close()` after). One UserError for a workdir it cannot
  read, a port in use or a directions file that does not fit the run."""
  from gan_jax import api  # pylint: disable=import-outside-toplevel  (imports jax)
  workdir = os.fspath(workdir)
  check_workdir(workdir)
  server = bind(port)
  try:
    try:
      model = api.load(workdir)
    except PermissionError as e:
      raise UserError(f"{e.filename or workdir} cannot be read (permission denied): run as a "
                      "user who may read the run, or copy it somewhere readable.") from None
    if len(model.exp.spec.shape) != 3:
      raise UserError(f"The explorer shows images, and {workdir} learned {model.learned}: use "
                      f"`gan-jax sample --workdir={workdir}` to see them.")
    server.explorer = Explorer(model, load_directions(model, directions))
    if warm_up:
      server.warm_up_s = server.explorer.warm_up()
  except BaseException:
    server.server_close()
    raise
  return server
