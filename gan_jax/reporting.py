"""What a run shows and writes: progress bar, metrics.jsonl, TensorBoard, PNG samples (animated
GIFs for clips); and how the library writes pictures and clips: labelled with their provenance
(`provenance`), watermarked (`watermark`) and, where a signer is in use, signed (`credentials`)."""
import fractions
import io
import json
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gan_jax import credentials, provenance as provenance_lib, watermark


CAPTION_WIDTH = 320  # pixels: a captioned grid's rows are at least this wide
FPS = 8  # frames a second of clips written as animations


def to_uint8(images):
  """float images in [-1, 1] -> uint8 pixels."""
  return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, cols=None):
  """float NHWC in [-1, 1] -> one uint8 picture, images in rows of `cols`, 1-pixel gaps."""
  n, h, w, c = images.shape
  cols = cols or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  grid = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, c), 255, np.uint8)
  for i, img in enumerate(to_uint8(images)):
    r, q = divmod(i, cols)
    grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = img
  return grid[..., 0] if c == 1 else grid


def captioned_grid(images, captions, cols):
  """`image_grid` in rows of `cols` with each row's caption written under it (none: the plain
  grid). Small images are enlarged (nearest neighbour) until a row is CAPTION_WIDTH pixels wide,
  room for about 50 characters; longer captions are clipped at the right edge."""
  if not captions:
    return image_grid(images, cols)
  images = np.asarray(images)
  zoom = max(1, -(-CAPTION_WIDTH // (cols * images.shape[2])))
  images = images.repeat(zoom, axis=1).repeat(zoom, axis=2)
  grid = image_grid(images, cols)
  h = images.shape[1] + 1  # a row and the gap above it
  font = ImageFont.load_default()
  left, top, _, bottom = font.getbbox("Ag")
  band = bottom - top + 4
  picture = Image.fromarray(grid).convert("RGB")
  out = Image.new("RGB", (picture.width, picture.height + len(captions) * band), "white")
  draw = ImageDraw.Draw(out)
  for r, caption in enumerate(captions):
    y = r * (h + band)
    out.paste(picture.crop((0, r * h, picture.width, (r + 1) * h)), (0, y))
    draw.text((2 - left, y + h + 2 - top), str(caption), fill=(0, 0, 0), font=font)
  out.paste(picture.crop((0, len(captions) * h, picture.width, picture.height)),
            (0, len(captions) * (h + band)))  # the gap under the last row
  return np.asarray(out)


def side_by_side(*columns, per_row=2):
  """Batches of one size shown example by example, each example's images next to each other
  (e.g. input | bicubic | output | target), `per_row` examples a row."""
  groups = np.stack([np.asarray(c) for c in columns], 1)
  return image_grid(groups.reshape((-1,) + groups.shape[2:]), cols=len(columns) * per_row)


def scatter_plot(points, reference=None, size=512):
  """2D samples (blue) over the real data (grey), on a square canvas scaled to fit both."""
  both = points if reference is None else np.concatenate([points, reference])
  both = both[np.isfinite(both).all(axis=1)]
  lo, hi = (both.min(0), both.max(0)) if len(both) else (np.full(2, -1.0), np.full(2, 1.0))
  center, half = (lo + hi) / 2, max(float(np.max(hi - lo)) / 2 * 1.1, 1e-3)
  img = Image.new("RGB", (size, size), "white")
  draw = ImageDraw.Draw(img)

  def dots(pts, color, r):
    pts = pts[np.isfinite(pts).all(axis=1)]
    uv = (pts - center) / half * (size / 2 - 4) + size / 2
    for u, v in uv:
      draw.ellipse([u - r, size - v - r, u + r, size - v + r], fill=color)
  if reference is not None:
    dots(reference, (190, 190, 190), 2)
  dots(points, (30, 90, 200), 1.2)
  return np.asarray(img)


def sample_picture(samples, reference=None):
  """Samples as a picture: an image grid, or for 2D points a scatter plot."""
  samples = np.asarray(samples)
  return scatter_plot(samples, reference) if samples.ndim == 2 else image_grid(samples)


def clip_grid(clips, cols=None):
  """Clips float [N, T, H, W, C] in [-1, 1] -> an animation: T frames of the clips' image grid,
  uint8 [T, H', W', C]."""
  clips = np.asarray(clips)
  frames = [image_grid(clips[:, t], cols) for t in range(clips.shape[1])]
  return np.stack([f[..., None] if f.ndim == 2 else f for f in frames])


def save_animation(path, frames, fps=FPS, provenance=None, durations=None):
  """An animation uint8 [T, H, W, C] as a looping GIF, or an MP4 (H.264, through PyAV) where
  `path` ends in .mp4. provenance: the `provenance.label` fields the file carries as XMP (GIF:
  an XMP application extension, MP4: an XMP uuid box; `provenance.embed`); durations: the ms each
  GIF frame shows (default 1000 / fps each). A labelled file carries the watermark
  (`watermark.use`) and is signed where a signer is in use (`credentials.use`)."""
  frames = written = np.asarray(frames)
  if provenance:  # what the library made carries its watermark too (`watermark.use`)
    written = watermark.apply(frames)
  out = io.BytesIO()
  if path.endswith(".mp4"):
    import av  # pylint: disable=g-import-not-at-top  (only clips need it)
    rgb = np.repeat(written, 3, -1) if written.shape[-1] == 1 else written
    rgb = np.pad(rgb, ((0, 0), (0, rgb.shape[1] % 2), (0, rgb.shape[2] % 2), (0, 0)))  # yuv420p
    with av.open(out, "w", format="mp4") as container:
      rate = fractions.Fraction(fps).limit_denominator(1000)
      stream = container.add_stream("libx264", rate=rate)
      stream.height, stream.width, stream.pix_fmt = rgb.shape[1], rgb.shape[2], "yuv420p"
      for frame in rgb:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
      container.mux(stream.encode())
  else:
    pictures = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in written]
    pictures[0].save(out, "gif", save_all=True, append_images=pictures[1:],
                     duration=durations or int(round(1000 / fps)), loop=0)
  data = out.getvalue()
  if provenance:
    kind = "mp4" if path.endswith(".mp4") else "gif"
    data = credentials.sign(provenance_lib.embed(data, provenance_lib.xmp_packet(provenance), kind),
                            kind, provenance)
  write_file(path, data)
  return frames


def save_picture(path, picture, provenance=None):
  """A picture as an image file; an animation ([T, H, W, C]) as a GIF (`save_animation`).
  provenance: the `provenance.label` fields a PNG or JPEG carries as XMP (other formats are
  written without them)."""
  if np.ndim(picture) == 4:
    return save_animation(path, picture, provenance=provenance)
  kind = os.path.splitext(path)[1].lower()
  if kind in (".png", ".jpg", ".jpeg"):
    write_file(path, encode_picture(picture, provenance, "png" if kind == ".png" else "jpeg"))
  else:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(picture).save(path)
  return picture


def encode_picture(picture, provenance=None, image_format="png", marked=False):
  """The PNG (or JPEG) file bytes of a uint8 picture [H, W], [H, W, 1] or [H, W, 3 or 4],
  carrying the `provenance.label` fields `provenance` (None: none), the watermark
  (`watermark.use`; marked=True: the picture carries it already) and a signature where a signer
  is in use (`credentials.use`); unlabelled pictures, such as charts, are left as they are."""
  picture = np.asarray(picture)
  if provenance and not marked:  # what the library made carries its watermark too
    picture = watermark.apply(picture)
  image = Image.fromarray(picture[..., 0] if picture.ndim == 3 and picture.shape[-1] == 1
                          else picture)
  if not provenance:
    return provenance_lib.encode(image, None, image_format)
  data = provenance_lib.encode(image, provenance_lib.xmp_packet(provenance), image_format)
  return credentials.sign(data, image_format, provenance)


def write_file(path, data, whole=False):
  """Writes the bytes `data` to `path`, its folder made; `whole`: through a hidden temporary file
  beside it (not an image's name), so it is written whole or not at all."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  target = os.path.join(folder, "." + os.path.basename(path) + ".partial") if whole else path
  with open(target, "wb") as f:
    f.write(data)
  if whole:
    os.replace(target, path)


def _summary_writer(logdir):
  """tensorboardX's writer. Where torch is installed but not loaded, tensorboardX imports it
  (1.5 s a process) only to accept torch tensors, which nothing here passes: for that one import
  `import torch` raises the ImportError tensorboardX expects of a machine without it."""
  hide = "torch" not in sys.modules
  if hide:
    sys.modules["torch"] = None
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
  finally:
    if hide:
      del sys.modules["torch"]
  return SummaryWriter(logdir)


class Reporter:
  """Writes one run's outputs; only process 0 writes."""

  def __init__(self, workdir, start_step, total_steps, enabled=True, progress=True):
    self.workdir, self.enabled = workdir, enabled
    self.bar = self.tb = None
    if not enabled:
      return
    self.tb = _summary_writer(os.path.join(workdir, "tensorboard"))
    self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
    if progress:
      from tqdm import tqdm
      self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                      desc=os.path.basename(os.path.normpath(workdir)))

  def advance(self, steps):
    if self.bar is not None:
      self.bar.update(steps)

  def log(self, step, metrics):
    """Scalars as they are; [N] arrays (one value a seed, `train.num_seeds`) as `name/seed_i`
    each and their mean under `name`."""
    if not self.enabled:
      return
    record = {"step": int(step)}
    for k, v in metrics.items():
      v = np.asarray(v, np.float64)
      record[k] = float(v.mean())
      if v.ndim:
        record.update({f"{k}/seed_{i}": float(x) for i, x in enumerate(v)})
    self.jsonl.write(json.dumps(record) + "\n")
    self.jsonl.flush()
    for k, v in record.items():
      if k != "step":
        self.tb.add_scalar(k, v, step)
    if self.bar is not None:
      self.bar.set_postfix({k: f"{record[k]:.3g}" for k in ("d_loss", "g_loss") if k in record})

  def samples(self, step, picture, provenance=None):
    """The sample grid of `step` (a picture: see `sample_picture`), as PNG and in TensorBoard;
    an animation (`clip_grid`) as a GIF, its first frame in TensorBoard. provenance: the
    `provenance.label` fields the file carries."""
    if not self.enabled:
      return
    moving = picture.ndim == 4
    save_picture(os.path.join(self.workdir, "samples",
                              f"step_{step:06d}.{'gif' if moving else 'png'}"), picture,
                 provenance)
    picture = picture[0] if moving else picture
    self.tb.add_image("samples", picture, step, dataformats="HW" if picture.ndim == 2 else "HWC")

  def message(self, text):
    if self.bar is not None:
      self.bar.write(text)
    elif self.enabled:
      print(text)

  def close(self):
    if self.enabled:
      if self.bar is not None:
        self.bar.close()
      self.jsonl.close()
      self.tb.close()
