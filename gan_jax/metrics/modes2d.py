"""PacGAN's mode metrics for 2D Gaussian-mixture toys (Lin et al. 2018, "PacGAN").

A sample is "high quality" when it lies within 3 standard deviations (Euclidean distance) of its
nearest mode; a mode is "captured" when at least one high-quality sample is nearest to it; reverse KL
compares the histogram of high-quality samples over modes with the uniform distribution.
"""

from __future__ import annotations

import numpy as np


def ring_modes(num_modes: int = 8, radius: float = 1.0) -> np.ndarray:
  """Centres of `num_modes` Gaussians on a circle; mode k at angle 2*pi*k/num_modes."""
  angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
  return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_modes(values=(-4, -2, 0, 2, 4)) -> np.ndarray:
  """Centres of a square grid of Gaussians: all pairs (x, y) with x, y in `values`."""
  v = np.asarray(values, dtype=np.float64)
  xs, ys = np.meshgrid(v, v, indexing="ij")
  return np.stack([xs.ravel(), ys.ravel()], axis=1)


def mode_metrics(samples: np.ndarray, modes: np.ndarray, std: float) -> dict:
  """Mode coverage of 2D `samples` [N, 2] against mixture centres `modes` [M, 2] of width `std`."""
  samples = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
  modes = np.asarray(modes, dtype=np.float64).reshape(-1, 2)
  num_modes = modes.shape[0]
  if samples.shape[0] == 0:
    return {"modes_captured": 0, "num_modes": num_modes, "high_quality": 0.0,
            "reverse_kl": float("inf")}
  # [N, M] squared distances; N*M is small for these toys (M <= 25).
  d2 = ((samples[:, None, :] - modes[None, :, :]) ** 2).sum(-1)
  nearest = d2.argmin(axis=1)
  good = d2[np.arange(samples.shape[0]), nearest] <= (3.0 * std) ** 2
  counts = np.bincount(nearest[good], minlength=num_modes)
  n_good = int(good.sum())
  if n_good == 0:
    reverse_kl = float("inf")
  else:
    q = counts[counts > 0] / n_good
    reverse_kl = float(np.sum(q * np.log(q * num_modes)))
  return {
      "modes_captured": int((counts > 0).sum()),
      "num_modes": int(num_modes),
      "high_quality": float(good.mean()),
      "reverse_kl": reverse_kl,
  }
