"""Sources: random access to examples by index, vectorized over a batch of indices.

A source has `spec` (shape of one example, dtype, number of classes), `__len__` and
`get(indices) -> {"x": array[B, ...], "label": int32[B]}`. Images are uint8 HWC; 2D points are
float32 [2].
"""
import dataclasses

import numpy as np

from gan_jax.data import embedded
from gan_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class DataSpec:
  shape: tuple
  dtype: str
  num_classes: int


class ArraySource:
  """Examples held in memory."""

  def __init__(self, x, labels, num_classes):
    self.x, self.labels = x, labels
    self.spec = DataSpec(tuple(x.shape[1:]), str(x.dtype), num_classes)

  def __len__(self):
    return len(self.x)

  def get(self, indices):
    return {"x": self.x[indices], "label": self.labels[indices]}


class StackedDigitsSource:
  """Three real digits as the R, G, B channels: 1000 modes (Metz et al. 2017; VEEGAN; PacGAN).

  Example i stacks digits chosen by a fixed seeded table; its label is the 3-digit number.
  """

  def __init__(self, resolution, size=1 << 16, seed=0):
    self.images, self.digit_labels = embedded.digits(resolution)
    self.table = np.random.default_rng(seed).integers(0, len(self.images), (size, 3))
    self.spec = DataSpec((resolution, resolution, 3), "uint8", 1000)

  def __len__(self):
    return len(self.table)

  def get(self, indices):
    picks = self.table[indices]                                # [B, 3]
    x = self.images[picks, ..., 0]                             # [B, 3, R, R]
    labels = self.digit_labels[picks] @ np.array([100, 10, 1])
    return {"x": np.moveaxis(x, 1, -1), "label": labels.astype(np.int32)}


EMBEDDED = ("digits", "stacked_digits", "ring2d", "grid2d")


def build(config):
  """The source named by `config.data.source`."""
  d = config.data
  name = d.source
  if name == "digits":
    images, labels = embedded.digits(d.resolution)
    if d.channels != 1:
      images = np.repeat(images, d.channels, axis=-1)
    return ArraySource(images, labels, 10)
  if name == "stacked_digits":
    if d.channels != 3:
      raise UserError("stacked_digits has 3 channels (one digit each): set --config.data.channels=3.")
    return StackedDigitsSource(d.resolution)
  if name in ("ring2d", "grid2d"):
    modes, std = ((embedded.ring_modes(), embedded.RING_STD) if name == "ring2d"
                  else (embedded.grid_modes(), embedded.GRID_STD))
    points, ids = embedded.mixture(modes, std, seed=config.seed)
    return ArraySource(points, ids, len(modes))
  raise UserError(f"Unknown data source {name!r}: choose one of {', '.join(EMBEDDED)}.")
