"""Moving digits: clips of real handwritten digits sliding and bouncing on a black canvas.

Example i of `MovingDigits` is a pure function of (seed, i), as every source's is: a seeded table
fixes, per clip and digit, which real digit (scikit-learn's 8x8 digits, upsampled bilinearly to
`digit_side(R)`: 28 pixels on the default 64x64 canvas), where it starts (uniform over the
places it fits), its direction (uniform angle) and its speed (uniform in `speed_range(R)`: 2 to
4 pixels per frame at 64x64, scaled with the canvas). The digit's top-left corner moves in a
straight line at that speed and reflects off the walls (the exact bounce of a point in a box,
`bounce`), rounded to whole pixels for each frame; several digits are drawn with max(), as
Moving MNIST does. Its label is the digit (0-9), or 10 x first + second for two digits.

The training clips draw on the 1437 train digits of `metrics.digits.digits_split()`; the held-out
split (`split="test"`, FVD's reference) on the other 360, with a table of its own seed, so no
held-out clip shows a digit or a path of the training clips' table.
"""
import numpy as np

from gan_jax.data import embedded
from gan_jax.data.spec import DataSpec

CANVAS = 64  # the default canvas side, which the sizes below are given for
DIGIT = 28   # a digit's side on it (Moving MNIST's)
SPEED = (2.0, 4.0)  # pixels per frame on it
HELD_OUT_SEED = 1   # of the held-out clips' table (the training table's is 0)


def digit_side(resolution):
  """A digit's side on a canvas of `resolution` pixels: 28 at 64, in proportion elsewhere."""
  return max(int(round(resolution * DIGIT / CANVAS)), 4)


def speed_range(resolution):
  """The (slowest, fastest) speed of a digit in pixels per frame on a `resolution` canvas."""
  return tuple(s * resolution / CANVAS for s in SPEED)


def bounce(x, room):
  """Positions `x` of a point moving freely, folded into [0, room] as walls reflect it."""
  if room <= 0:
    return np.zeros_like(x)
  x = np.mod(x, 2 * room)
  return np.where(x > room, 2 * room - x, x)


class MovingDigits:
  """Clips [frames, R, R, 1] of `num_digits` real digits moving on an R x R black canvas."""

  def __init__(self, resolution=CANVAS, frames=16, num_digits=1, size=1 << 16, seed=0,
               split="train"):
    from gan_jax.metrics.digits import digits_split  # the classifier's split, kept apart from it
    self.resolution, self.frames, self.num_digits = resolution, frames, num_digits
    self.side = digit_side(resolution)
    images, labels = embedded.digits(self.side)
    kept = digits_split()[("train", "test").index(split)]
    self.digits, self.digit_labels = images[kept], labels[kept]
    rng = np.random.default_rng(seed)
    shape = (size, num_digits)
    self.picks = rng.integers(0, len(self.digits), shape)
    self.room = resolution - self.side  # the top-left corner stays in [0, room]^2
    self.starts = rng.random(shape + (2,)) * self.room
    angle = rng.random(shape) * 2 * np.pi
    slow, fast = speed_range(resolution)
    speed = slow + rng.random(shape) * (fast - slow)
    self.velocities = speed[..., None] * np.stack([np.sin(angle), np.cos(angle)], -1)
    self.spec = DataSpec((frames, resolution, resolution, 1), "uint8", 10 ** num_digits)

  def __len__(self):
    return len(self.picks)

  def corners(self, indices):
    """Top-left corners (row, col) of each digit in each frame: int [B, num_digits, frames, 2]."""
    t = np.arange(self.frames)[:, None]
    free = self.starts[indices][..., None, :] + t * self.velocities[indices][..., None, :]
    return np.round(bounce(free, self.room)).astype(np.int64)

  def get(self, indices):
    indices = np.asarray(indices)
    corners, s = self.corners(indices), self.side
    clips = np.zeros((len(indices), self.frames, self.resolution, self.resolution, 1), np.uint8)
    for b, row in enumerate(self.picks[indices]):
      for d, pick in enumerate(row):
        for t, (top, left) in enumerate(corners[b, d]):
          window = clips[b, t, top:top + s, left:left + s]
          np.maximum(window, self.digits[pick], out=window)
    digits = self.digit_labels[self.picks[indices]]  # [B, num_digits]
    labels = digits @ (10 ** np.arange(self.num_digits)[::-1])
    return {"x": clips, "label": labels.astype(np.int32)}
