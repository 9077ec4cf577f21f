"""Object-detection training data (Ultralytics YOLO layout) composed from generated objects.

Each canvas is a background with a few generated samples pasted at random, non-overlapping places
and sizes. A sample is a whole square picture, but its box must hold only the object in it, so the
object is cut out first: the sample's background colour is the per-channel median of its outermost
ring of pixels, and a pixel's alpha is its distance from that colour (the largest channel
difference, over 255) ramped linearly from 0 at LOW to 1 at HIGH. The object is pasted with that
alpha, so its own background never shows on the canvas, and its box is the tight box of alpha >= 0.5
after the alpha is resized with the picture to its pasted size: where the canvas shows the object
at least half opaque (the faint rim below that, about a pixel wide, is left out).
"""
import os

import numpy as np
import yaml
from PIL import Image, ImageColor

from gan_jax.data import images
from gan_jax.data.folder import find_images
from gan_jax.errors import UserError

# Distances from the background colour (fractions of 255) where alpha leaves 0 and reaches 1.
# LOW is above a generator's background speckle (a few levels in sngan digit samples; the tests
# add noise of 0.03 to real digits and see no alpha there, where 0.05 would); HIGH is below ink
# (all of a real digit's strokes reach alpha 1, which 0.6 would not), so a box (alpha >= 0.5, a
# distance of 0.2) holds a stroke's soft edge but not its faint halo.
LOW, HIGH = 0.1, 0.3
# Bilinear never overshoots, so alpha stays in [0, 1] and ringing does not move the 0.5 contour.
RESAMPLE = Image.Resampling.BILINEAR
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601: the weights of pillow's RGB -> L


def object_alpha(image):
  """uint8 [H, W, C] -> float32 [H, W] in [0, 1]: how far each pixel is from the border's colour."""
  image = np.asarray(image, np.float32)
  image = image[..., None] if image.ndim == 2 else image
  ring = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
  distance = np.abs(image - np.median(ring, axis=0)).max(-1) / 255.0
  return np.clip((distance - LOW) / (HIGH - LOW), 0.0, 1.0).astype(np.float32)


def tight_box(mask):
  """bool [H, W] -> (x0, y0, x1, y1) of its True pixels, ends exclusive; None if there are none."""
  rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
  if rows.size == 0:
    return None
  return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def to_channels(image, channels):
  """uint8 [H, W, C] with C in (1, 3) -> [H, W, channels]: gray repeated, RGB to luma."""
  image = np.asarray(image, np.uint8)
  image = image[..., None] if image.ndim == 2 else image
  if image.shape[-1] == channels:
    return image
  if channels == 3:
    return np.repeat(image, 3, axis=-1)
  return np.round(image @ LUMA)[..., None].astype(np.uint8)


class Background:
  """What objects are pasted on: one colour, or random crops of the pictures in a folder."""

  def __init__(self, spec):
    self.colour = None
    if spec.startswith("folder:"):
      self.root = spec[len("folder:"):]
      if not os.path.isdir(self.root):
        raise UserError(f"--background={spec} names no folder ({self.root!r} is not one): pass "
                        "folder:PATH with a folder of pictures.")
      self.paths = find_images(self.root)
      return
    try:
      self.colour = ImageColor.getrgb(spec)[:3]
    except ValueError:
      raise UserError(f"--background={spec} is neither a colour nor folder:PATH: pass a colour "
                      "name or code (black, gray, #808080) or a folder of pictures.") from None

  def draw(self, rng, size, channels):
    """uint8 [size, size, channels]: the colour, or a random square of a random picture, resized
    (its side between half and all of the picture's short side)."""
    if self.colour is not None:
      return to_channels(np.full((size, size, 3), self.colour, np.uint8), channels)
    path = os.path.join(self.root, self.paths[rng.integers(len(self.paths))])
    try:
      picture = images.read(path, channels)
    except Exception as e:  # pillow raises many types for bad files
      raise UserError(f"Background picture {path} cannot be read ({e}): remove it or replace "
                      "it.") from None
    h, w = picture.shape[:2]
    side = int(rng.integers((min(h, w) + 1) // 2, min(h, w) + 1))
    left, top = int(rng.integers(w - side + 1)), int(rng.integers(h - side + 1))
    crop = Image.fromarray(picture[..., 0] if channels == 1 else picture)
    crop = crop.resize((size, size), Image.Resampling.BICUBIC,
                       box=(left, top, left + side, top + side))
    return np.asarray(crop, np.uint8).reshape(size, size, channels)


def resized(image, alpha, width, height):
  """The object and its alpha at the pasted size, resized alike."""
  channels, size = image.shape[-1], (width, height)
  picture = Image.fromarray(image[..., 0] if channels == 1 else image).resize(size, RESAMPLE)
  alpha = Image.fromarray(np.ascontiguousarray(alpha, np.float32)).resize(size, RESAMPLE)
  return (np.asarray(picture, np.uint8).reshape(height, width, channels),
          np.clip(np.asarray(alpha, np.float32), 0.0, 1.0))


def compose(background, objects, labels, rng, min_scale=0.15, max_scale=0.5, tries=50):
  """Pastes `objects` (uint8 [h, w, c]) on a copy of `background` (uint8 [S, S, C]), each at a
  random scale (its long side a fraction of S in [min_scale, max_scale]) and a random place where
  its pasted rectangle overlaps no other; one that finds no place in `tries` draws, or shows
  nothing, is left out. Returns (canvas, [(label, x0, y0, x1, y1)]) in canvas pixels."""
  if not 0 < min_scale <= max_scale <= 1:
    raise UserError(f"Object scales {min_scale}..{max_scale} are not within (0, 1]: pass "
                    "0 < min_scale <= max_scale <= 1.")
  canvas = np.array(background, np.uint8)
  size, channels = canvas.shape[0], canvas.shape[-1]
  placed, boxes = [], []
  for image, label in zip(objects, labels):
    image = to_channels(image, channels)
    alpha = object_alpha(image)
    if not (alpha >= 0.5).any():
      continue
    long_side = max(1, round(rng.uniform(min_scale, max_scale) * size))
    h, w = image.shape[:2]
    width, height = (max(1, round(long_side * s / max(h, w))) for s in (w, h))
    picture, alpha = resized(image, alpha, width, height)
    box = tight_box(alpha >= 0.5)
    if box is None:
      continue
    for _ in range(tries):
      x, y = int(rng.integers(size - width + 1)), int(rng.integers(size - height + 1))
      spot = (x, y, x + width, y + height)
      if not any(overlap(spot, other) for other in placed):
        break
    else:
      continue
    placed.append(spot)
    region = canvas[y:y + height, x:x + width].astype(np.float32)
    a = alpha[..., None]
    canvas[y:y + height, x:x + width] = np.round(a * picture + (1 - a) * region).astype(np.uint8)
    x0, y0, x1, y1 = box
    boxes.append((int(label), x + x0, y + y0, x + x1, y + y1))
  return canvas, boxes


def overlap(a, b):
  """Whether rectangles (x0, y0, x1, y1), ends exclusive, share a pixel."""
  return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def yolo_lines(boxes, size):
  """Ultralytics' label file: `class cx cy w h` per box, normalised by the canvas side."""
  lines = []
  for label, x0, y0, x1, y1 in boxes:
    values = np.clip([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], 0, size) / size
    lines.append(f"{int(label)} " + " ".join(f"{v:.6f}" for v in values))
  return "".join(line + "\n" for line in lines)


def write_data_yaml(path, root, names, train="images/train", val="images/val"):
  """Ultralytics' data.yaml: the dataset root, its train and val image folders (relative to the
  root; labels/ beside images/ is found by Ultralytics itself) and the class names by index."""
  names = dict(names) if isinstance(names, dict) else dict(enumerate(names))
  data = {"path": str(root), "train": train, "val": val,
          "names": {int(i): str(name) for i, name in names.items()}}
  with open(path, "w") as f:
    yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
