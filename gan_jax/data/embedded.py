"""Datasets that ship with the package (no download): real digits and the 2D mode benchmarks, the
renderings behind the offline translation tasks (digit edges, domain B's digit style), and the
photographs bundled with scikit-image (super-resolution)."""
import functools
import importlib.util
import os

import numpy as np

RING_STD = 0.01
GRID_STD = 0.05


def ring_modes(num_modes=8, radius=1.0):
  angles = 2 * np.pi * np.arange(num_modes) / num_modes
  return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_modes(values=(-4, -2, 0, 2, 4)):
  return np.array([(x, y) for x in values for y in values], dtype=np.float64)


def mixture(modes, std, size=1 << 16, seed=0):
  """A fixed sample of a Gaussian mixture with equal weights: (points float32 [N, 2], mode ids)."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(0, len(modes), size)
  points = modes[ids] + std * rng.standard_normal((size, 2))
  return points.astype(np.float32), ids.astype(np.int32)


def package_data(package, *parts):
  """A path inside an installed package, found without importing it (importing scikit-learn
  takes ~1 s, paid by every process that only reads its digits)."""
  return os.path.join(importlib.util.find_spec(package).submodule_search_locations[0], *parts)


@functools.lru_cache(maxsize=1)
def digits_8x8():
  """scikit-learn's 1797 real 8x8 digits as its `load_digits` reads them: (float64 [N, 8, 8] in
  0..16, int32 labels)."""
  rows = np.loadtxt(package_data("sklearn", "datasets", "data", "digits.csv.gz"), delimiter=",")
  return rows[:, :-1].reshape(-1, 8, 8), rows[:, -1].astype(np.int32)


@functools.lru_cache(maxsize=8)
def digits(resolution):
  """scikit-learn's 1797 real 8x8 digits, upsampled bilinearly: (uint8 [N, R, R, 1], labels)."""
  import jax
  images, labels = digits_8x8()
  images = images.astype(np.float32) / 16.0  # 0..16 -> 0..1
  if resolution != 8:
    images = np.asarray(jax.image.resize(images, (len(images), resolution, resolution),
                                         "bilinear", antialias=False))
  images = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
  return images[..., None], labels


# --- offline image-translation tasks built from the digits -------------------------------------

def _morph(images, radius, reduce):
  """Gray dilation (reduce=np.maximum) or erosion (np.minimum) of uint8 [N, R, R, C] by a disk of
  `radius` pixels; the border reads as background (0)."""
  r = radius
  padded = np.pad(images, ((0, 0), (r, r), (r, r), (0, 0)))
  h, w = images.shape[1:3]
  out = None
  for dy in range(-r, r + 1):
    for dx in range(-r, r + 1):
      if dy * dy + dx * dx > r * r + r:  # a disk (r=1: the 3x3 square)
        continue
      shifted = padded[:, r + dy:r + dy + h, r + dx:r + dx + w]
      out = shifted if out is None else reduce(out, shifted)
  return out


def _scale(resolution):
  """Stroke-sized lengths in pixels: one 8x8 digit pixel is resolution / 8 of them."""
  return max(1, resolution // 32)


def digit_edges(images):
  """Edge maps ("sketches") of uint8 digits [N, R, R, C]: the morphological gradient (dilation
  minus erosion) of the digit thresholded at half intensity, white on black.

  An outline rather than a one-pixel skeleton: at 32x32 the gradient draws a closed line about
  two pixels wide round every stroke, which reads clearly and keeps the loops of 0, 6, 8 and 9
  open, where a skeleton of the blurry upsampled strokes breaks into spurs. Below 32 pixels the
  strokes are too thin for that and the edge is the inner rim alone (mask minus its erosion). Like edges2shoes, the
  edges give the shape and leave the stroke's fill and shading for the model to paint.
  """
  mask = (images >= 128).astype(np.uint8) * 255
  if images.shape[1] < 32:  # strokes two or three pixels wide: only their inner rim
    return mask - _morph(mask, 1, np.minimum)
  r = _scale(images.shape[1])
  return _morph(mask, r, np.maximum) - _morph(mask, r, np.minimum)


STYLE_INK, STYLE_PAPER, STYLE_TEXTURE = 24, 208, 40


def digit_style_b(images):
  """Digits [N, R, R, C] uint8 redrawn in domain B's style: strokes thickened (gray dilation by
  R/32 pixels, at least one), boldened and inverted to dark ink on light paper that carries fixed
  diagonal stripes.

  The stripes' period is R/8 pixels, so each 8x8-pooled cell holds whole periods and the pooling
  that the digits classifier does averages them to flat paper: what it sees is a thick, inverted
  digit. The one rendering of domain B: the digit_styles source and the classifier trained on
  domain B (`metrics.digits`, style "digit_styles_b") both call it.
  """
  n, h, w, c = images.shape
  period = max(1, h // 8)
  rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
  stripes = ((rows + cols) % period < period / 2).astype(np.float32)  # [R, R]
  paper = STYLE_PAPER + STYLE_TEXTURE * (stripes - 0.5)
  # Gray levels scaled by 1.5 (clipped): the faint rims of the upsampled strokes ink solidly too.
  ink = np.minimum(_morph(images, _scale(h), np.maximum).astype(np.float32) * (1.5 / 255.0), 1.0)
  out = paper[None, :, :, None] * (1.0 - ink) + STYLE_INK * ink
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


# Named renderings of the digits as a second domain, for `metrics.digits` classifiers of a style.
STYLES = {"digit_styles_b": digit_style_b}


# --- photographs for super-resolution ----------------------------------------------------------

# Real photographs in scikit-image's wheel (skimage/data; the rest of its gallery is fetched on
# demand, or is drawings and synthetic data) and scikit-learn's two sample photos (china,
# flower). Held out: the four that SR papers' test images most resemble (a portrait, an animal,
# food, a scene).
PHOTOS_TRAIN = ("hubble_deep_field", "ihc", "motorcycle_left", "motorcycle_right", "retina",
                "camera", "coins", "moon", "grass", "gravel", "brick", "clock_motion", "china",
                "flower")
PHOTOS_TEST = ("astronaut", "chelsea", "coffee", "rocket")
PHOTO_SPLITS = {"train": PHOTOS_TRAIN, "test": PHOTOS_TEST}


def photo_folders():
  """scikit-image's and scikit-learn's folders of bundled pictures."""
  return package_data("skimage", "data"), package_data("sklearn", "datasets", "images")


@functools.lru_cache(maxsize=4)
def photos(split, channels):
  """The `split` ("train" or "test") photos, whole: (names, [uint8 [H, W, channels], ...]).

  Gray ones are copied to 3 channels and colour ones reduced to luma for 1, as every image file
  is (`images._to_channels`: ITU-R 601, alpha over white)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from gan_jax.data import images  # pylint: disable=g-import-not-at-top  (images imports pillow)
  names = PHOTO_SPLITS[split]
  files = {os.path.splitext(f)[0]: os.path.join(folder, f)
           for folder in photo_folders() for f in os.listdir(folder)}
  out = []
  for name in names:
    with Image.open(files[name]) as image:
      fitted = images._to_channels(image, channels)  # pylint: disable=protected-access
      array = np.asarray(fitted, np.uint8)
    array = array.reshape(array.shape[:2] + (channels,))
    array.setflags(write=False)  # shared through the cache
    out.append(array)
  return names, out


def photo_crops(split, side, num, seed=0):
  """`num` random side x side crops of the `split` photos in turn, uint8 [num, side, side, 3]
  (the watermark's robustness pictures)."""
  return crops(photos(split, 3)[1], side, num, seed)


def crops(pictures, side, num, seed=0):
  """`num` random side x side crops of `pictures` (arrays [H, W, C]) in turn, stacked."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(num):
    p = pictures[i % len(pictures)]
    top, left = rng.integers(0, p.shape[0] - side + 1), rng.integers(0, p.shape[1] - side + 1)
    out.append(p[top:top + side, left:left + side])
  return np.stack(out)
