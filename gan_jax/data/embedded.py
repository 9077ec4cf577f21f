"""Datasets that ship with the package (no download): real digits and the 2D mode benchmarks."""
import functools

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


@functools.lru_cache(maxsize=8)
def digits(resolution):
  """scikit-learn's 1797 real 8x8 digits, upsampled bilinearly: (uint8 [N, R, R, 1], labels)."""
  import jax
  from sklearn.datasets import load_digits
  d = load_digits()
  images = d.images.astype(np.float32) / 16.0  # 0..16 -> 0..1
  if resolution != 8:
    images = np.asarray(jax.image.resize(images, (len(images), resolution, resolution),
                                         "bilinear", antialias=False))
  images = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
  return images[..., None], d.target.astype(np.int32)
