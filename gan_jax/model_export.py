"""`gan-jax export-model`: a run's G as a serialized `jax.export` artifact, for programs that have
neither gan_jax nor flax, and a JSON card beside it.

The artifact is StableHLO with the weights embedded as constants (G's EMA by default), lowered
for each of `platforms`. Reading it back needs jax (whose serialization uses the `flatbuffers`
package) and numpy only:

    import jax, numpy as np
    with open("dcgan.jax", "rb") as f:
      generator = jax.export.deserialize(bytearray(f.read()))
    z = np.random.default_rng(0).standard_normal((16, 8), np.float32)  # [N, latent size]
    images = np.asarray(generator.call(z))                             # [N, H, W, C] in [-1, 1]

Inputs, by game: noise runs take z [N, latent size] from a standard normal (and labels int32 [N]
when conditional); translators an image batch [N, H, W, C] at the training resolution (pad to it);
super-resolution G an image batch of any height and width; video runs content codes and motion
noise (and the frames' times, where G renders any time) for clips of any length ("t"), giving
clips [N, T, H, W, C]. N is symbolic ("b": any batch) unless `batch` fixes it. The card
(`card_path`) names them with their shapes, ranges and meanings, and records the run, step,
data, the latest `gan-jax evaluate` result and provenance.

Layers with a CPU-only form (`models/cpu_conv.py`) are traced per platform (`layers.lowering_for`)
and joined by `lax.platform_dependent`, so each backend runs its own form of G; the weights are
stored once.
"""
import datetime
import hashlib
import json
import os

import jax
import jax.numpy as jnp

from gan_jax import api, exporting, provenance
from gan_jax.errors import UserError
from gan_jax.models import layers, video_sparse

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # jax.export's lowering platforms
DEFAULT_PLATFORMS = "cpu,cuda,tpu"


def parse_batch(text):
  """--batch: "dynamic" (None: any batch) or a positive number of images."""
  text = str(text).strip()
  if text == "dynamic":
    return None
  if text.isdigit() and int(text) > 0:
    return int(text)
  raise UserError(f"--batch={text} is not a batch size: give a positive number of images, or "
                  "dynamic for any batch.")


def parse_platforms(text):
  """--platforms: comma-separated lowering platforms, each once."""
  names = [p.strip() for p in str(text).split(",") if p.strip()]
  unknown = [p for p in names if p not in PLATFORMS]
  if not names or unknown or len(set(names)) != len(names):
    what = (f"names {unknown[0]!r}, which is not one" if unknown else
            "names no platform" if not names else "must name each one once")
    raise UserError(f"--platforms={text} {what}: choose from {', '.join(PLATFORMS)} (e.g. "
                    f"--platforms={DEFAULT_PLATFORMS}).")
  return tuple(names)


def card_path(out):
  """The card beside the artifact: its name with .json for the extension."""
  return os.path.splitext(out)[0] + ".json"


def check_out(out, overwrite):
  """One UserError, before anything is built, for an --out that cannot be written as asked."""
  card = card_path(out)
  if out == card:
    raise UserError(f"--out={out} is where its JSON card would go: give the artifact another "
                    "extension, e.g. --out=generator.jax.")
  if os.path.isdir(out):
    raise UserError(f"--out={out} is a folder: give the path of the file to write, e.g. "
                    f"--out={os.path.join(out, 'generator.jax')}.")
  existing = [p for p in (out, card) if os.path.exists(p)]
  if existing and not overwrite:
    raise UserError(f"{existing[0]} exists: pass --overwrite to replace it, or another --out.")


def input_specs(model, batch):
  """(name, jax.ShapeDtypeStruct, card entry) for each input of the artifact."""
  # one scope for every symbol (jax.export rejects shapes that mix scopes); g: a motion grid
  grid = fewest_grid_points(model)
  b, h, w, t, g = jax.export.symbolic_shape(
      "b, h, w, t, g", constraints=(f"g >= {grid}",) if grid else ())
  n = b if batch is None else batch
  config = model.config
  if model.frames:
    specs = clip_input_specs(model, n, t, g)
  elif model.kind == "sample":
    latent = config.model.latent_dim
    specs = [("z", jax.ShapeDtypeStruct((n, latent), jnp.float32),
              {"meaning": "latent codes, each entry drawn from a standard normal"})]
    if model.num_classes:
      specs.append(label_spec(model, n))
  elif model.kind == "translate":
    side = config.data.resolution
    specs = [("images", jax.ShapeDtypeStruct((n, side, side, model.channels), jnp.float32),
              {"meaning": "images to translate, NHWC; pixels p map to p / 127.5 - 1",
               "range": [-1.0, 1.0]})]
  else:  # super-resolution: G is convolutional at any size
    specs = [("images", jax.ShapeDtypeStruct((n, h, w, model.channels), jnp.float32),
              {"meaning": "low-resolution images, NHWC, any height h and width w; pixels p map "
                          "to p / 127.5 - 1", "range": [-1.0, 1.0]})]
  return [(name, spec, {"name": name, "shape": _symbolic(spec.shape), "dtype": str(spec.dtype),
                        **entry}) for name, spec, entry in specs]


def fewest_grid_points(model):
  """The fewest motion noise vectors a G that renders any time takes (0 for other runs)."""
  if "times" not in getattr(model.game, "inputs", ()):
    return 0
  m = model.config.model
  return video_sparse.grid_size(0, m.motion_spacing, m.motion_kernel)


def clip_input_specs(model, n, t, g):
  """input_specs' entries of a video G: clips of any length t (MoCoGAN's G runs a GRU over its
  motion noise; the sparse G renders the frames at t times from noise on a grid of g points)."""
  m = model.config.model
  specs = [("content", jax.ShapeDtypeStruct((n, m.content_dim), jnp.float32),
            {"meaning": "content codes, one a clip, each entry drawn from a standard normal"})]
  if "times" in model.game.inputs:
    specs += [
        ("motion", jax.ShapeDtypeStruct((n, g, m.motion_dim), jnp.float32),
         {"meaning": f"motion noise on a grid of times 0, {m.motion_spacing}, "
                     f"{2 * m.motion_spacing}, ... (frames), each entry drawn from a standard "
                     f"normal; g must be at least floor(latest time / {m.motion_spacing}) + "
                     f"{fewest_grid_points(model)}"}),
        ("times", jax.ShapeDtypeStruct((n, t), jnp.float32),
         {"meaning": "the time of each frame to render, in frames of the training data "
                     "(0, 1, 2, ...: its frame rate; 0, 0.5, 1, ...: twice it)"})]
  else:
    specs.append(("motion", jax.ShapeDtypeStruct((n, t, m.motion_dim), jnp.float32),
                  {"meaning": "motion noise, one vector a frame (the clip has t frames), each "
                              "entry drawn from a standard normal"}))
  if model.num_classes:
    specs.append(label_spec(model, n))
  return specs


def label_spec(model, n):
  """The labels input of a conditional G."""
  names = exporting.class_names(model.workdir, model.num_classes)
  return ("labels", jax.ShapeDtypeStruct((n,), jnp.int32),
          {"meaning": "the class of each sample", "range": [0, model.num_classes - 1],
           "classes": names})


def lower(model, batch=None, platforms=("cpu",), direction=None):
  """(jax.export.Exported, its input specs) of the model's G with its weights embedded."""
  fn, variables = model.generator(direction)
  specs = input_specs(model, batch)

  def for_platform(platform):
    def g(*inputs):
      with layers.lowering_for(platform):
        return fn(variables, *inputs)
    return g

  def artifact(*inputs):
    if len(platforms) == 1:
      return for_platform(platforms[0])(*inputs)
    return jax.lax.platform_dependent(*inputs, **{p: for_platform(p) for p in platforms})

  exported = jax.export.export(jax.jit(artifact), platforms=platforms)(*(s for _, s, _ in specs))
  return exported, specs


def latest_evaluation(workdir):
  """The last record of `gan-jax evaluate` in workdir/eval.jsonl, or None."""
  path = os.path.join(workdir, "eval.jsonl")
  if not os.path.isfile(path):
    return None
  record = None
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except ValueError:  # a line cut short by a killed evaluation
        continue
  return record


def _symbolic(shape):
  """A shape for JSON: sizes, and the symbolic ones by name ("b", "4*h")."""
  return [d if isinstance(d, int) else str(d) for d in shape]


def card(model, exported, specs, blob, out, direction):
  """The JSON card's contents (see the module docstring)."""
  config, spec = model.config, model.exp.spec
  fn_params = model.generator(direction)[1]["params"]
  out_aval = exported.out_avals[0]
  layout = {4: "NTHWC", 3: "NHWC"}.get(len(spec.shape))  # clips, images; else 2D points
  output = {"name": {"NTHWC": "clips", "NHWC": "images"}.get(layout, "points"),
            "shape": _symbolic(out_aval.shape), "dtype": str(out_aval.dtype)}
  if layout:
    output.update(layout=layout, range=[-1.0, 1.0],
                  pixels="clip(round((x + 1) * 127.5), 0, 255) as uint8")
  name = config.get("name") or ""
  return {
      "format": "jax.export (serialized StableHLO, weights embedded)",
      "file": os.path.basename(out), "bytes": len(blob),
      "sha256": hashlib.sha256(blob).hexdigest(),
      "serialization_version": exported.calling_convention_version,
      "jax_version": jax.__version__, "platforms": list(exported.platforms),
      "load": "jax.export.deserialize(bytearray(open(FILE, 'rb').read())).call(*inputs)",
      "inputs": [entry for _, _, entry in specs],
      "output": output,
      "run": {"config": name, "game": config.get("game", "noise"), "model": config.model.name,
              "workdir": os.path.abspath(model.workdir), "step": model.step, "ema": model.ema,
              "seed_index": model.seed_index,
              **({"direction": model.check_direction(direction)}
                 if model.kind == "translate" else {}),
              **({"scale": model.scale} if model.scale else {})},
      "data": {"source": config.data.source, "shape": list(spec.shape),
               "num_classes": spec.num_classes},
      "metrics": latest_evaluation(model.workdir),
      "provenance": {"tool": f"gan_jax {provenance.version()}", "config": name,
                     "run": os.path.abspath(model.workdir), "step": model.step,
                     "weights": provenance.weights_hash(fn_params),
                     "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(
                         timespec="seconds")},
  }


def _write(path, data):
  """Writes `data` whole (through a hidden temporary file beside it) or not at all."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  partial = os.path.join(os.path.dirname(os.path.abspath(path)),
                         "." + os.path.basename(path) + ".partial")
  with open(partial, "wb") as f:
    f.write(data)
  os.replace(partial, path)


def export_model(workdir, out, batch="dynamic", platforms=DEFAULT_PLATFORMS, ema=True,
                 seed_index=0, step=None, direction=None, overwrite=False):
  """Writes `out` (the artifact) and its card (`card_path(out)`); returns the card. Every bad
  argument is one UserError before anything is written."""
  batch, platforms = parse_batch(batch), parse_platforms(platforms)
  check_out(out, overwrite)
  model = api.load(workdir, step=step, ema=ema, seed_index=seed_index)
  exported, specs = lower(model, batch, platforms, direction)
  blob = bytes(exported.serialize())
  record = card(model, exported, specs, blob, out, direction)
  _write(out, blob)
  _write(card_path(out), (json.dumps(record, indent=2) + "\n").encode())
  return record


def summary(record, out):
  """The line `gan-jax export-model` prints."""
  inputs = ", ".join(f"{i['name']} {i['shape']}" for i in record["inputs"])
  return (f"wrote {out} ({record['bytes'] / 1e6:.1f} MB; {', '.join(record['platforms'])}): "
          f"{inputs} -> {record['output']['name']} {record['output']['shape']}; card "
          f"{card_path(out)}")
