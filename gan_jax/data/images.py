"""Bringing any picture to the config's resolution and channels (folders and TFDS alike).

Every image source goes through `fit`, so a picture ends up the same whichever source it came
from: uint8 [resolution, resolution, channels].
"""
import numpy as np
from PIL import Image, ImageOps

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
RESIZE_MODES = ("center_crop", "pad", "stretch", "random_crop")
CROP_SEED = 0  # random_crop: the crop of example i is drawn from (CROP_SEED, i)
# Transparent pixels are composited over white: icons and sprites are drawn for a light page.
BACKGROUND = (255, 255, 255, 255)


def load(path, resolution, channels, resize, key=0):
  """Decodes an image file and fits it; raises whatever pillow raises on a bad file."""
  with Image.open(path) as image:
    # JPEG only: let libjpeg decode at 1/2, 1/4 or 1/8 scale when the file is at least that much
    # larger than needed (each side stays >= resolution); a big speed-up for photos. Not for
    # random_crop, whose crops keep the file's own pixels (super-resolution's HR patches).
    if resize != "random_crop":
      image.draft("L" if channels == 1 else "RGB", (resolution, resolution))
    return fit(image, resolution, channels, resize, key)


def fit_array(array, resolution, channels, resize, key=0):
  """An HWC (or HW) uint8 array, e.g. decoded by TFDS, fitted like a file would be."""
  array = np.asarray(array)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.shape[:2] == (resolution, resolution) and _channels(array) == channels:
    return array.reshape(resolution, resolution, channels)  # already fits: skip pillow
  return fit(Image.fromarray(array), resolution, channels, resize, key)


def _channels(array):
  return 1 if array.ndim == 2 else array.shape[-1]


def fit(image, resolution, channels, resize, key=0):
  """A PIL image -> uint8 [resolution, resolution, channels].

  Geometry (`resize`): center_crop takes the largest centered square; pad scales the long side to
  `resolution` and centers the picture on black; stretch ignores the aspect ratio. Shrinking uses
  Lanczos (antialiased, as StyleGAN's dataset tool does), enlarging bicubic (less ringing).
  random_crop cuts a resolution square at a place drawn from (CROP_SEED, key), unscaled, so the
  same example (key = its index) always gives the same crop; a picture smaller than that is first
  enlarged (bicubic) until its short side fits.
  """
  image = _to_channels(image, channels)
  w, h = image.size
  r = resolution
  if resize == "center_crop":
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) != (r, r):
      image = image.resize((r, r), _filter(side, r), box=(left, top, left + side, top + side))
  elif resize == "pad":
    scale = r / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    canvas = Image.new(image.mode, (r, r), 0)
    canvas.paste(image.resize(size, _filter(max(w, h), r)), ((r - size[0]) // 2, (r - size[1]) // 2))
    image = canvas
  elif resize == "stretch":
    if (w, h) != (r, r):
      image = image.resize((r, r), _filter(max(w, h), r))
  elif resize == "random_crop":
    if min(w, h) < r:
      scale = r / min(w, h)
      w, h = max(r, round(w * scale)), max(r, round(h * scale))
      image = image.resize((w, h), Image.Resampling.BICUBIC)
    rng = np.random.default_rng([CROP_SEED, key])
    left, top = int(rng.integers(w - r + 1)), int(rng.integers(h - r + 1))
    image = image.crop((left, top, left + r, top + r))
  else:
    raise ValueError(f"unknown resize mode {resize!r}")
  array = np.asarray(image, dtype=np.uint8)
  return array.reshape(r, r, channels)


def _filter(source_side, target_side):
  return Image.Resampling.LANCZOS if source_side > target_side else Image.Resampling.BICUBIC


def _to_channels(image, channels):
  """Any pillow mode -> "L" or "RGB": palettes expanded, alpha composited over white, 16-bit
  gray scaled to 8 bits (pillow's own conversion would clip it), gray <-> RGB by ITU-R 601 luma."""
  if image.mode == "P":
    image = image.convert("RGBA")
  if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
    rgba = image.convert("RGBA")
    image = Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND), rgba)
  elif image.mode.startswith("I") or image.mode == "F":
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I"):
      values = values / 257.0  # 0..65535 -> 0..255
    image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))
  target = "L" if channels == 1 else "RGB"
  return image if image.mode == target else image.convert(target)


def read(path, channels):
  """Decodes an image file at its own size, oriented as viewers show it: uint8 [H, W, channels]
  (pictures scored whole, as super-resolution's held-out ones)."""
  with Image.open(path) as image:
    array = np.asarray(_to_channels(ImageOps.exif_transpose(image), channels), np.uint8)
  return array.reshape(array.shape[0], array.shape[1], channels)
