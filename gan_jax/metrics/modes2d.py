"""PacGAN's mode metrics for 2D Gaussian-mixture toys (Lin et al. 2018, "PacGAN").

A sample is "high quality" when it lies within 3 standard deviations (Euclidean distance) of its
nearest mode; a mode is "captured" when at least one high-quality sample is nearest to it; reverse KL
compares the histogram of high-quality samples over modes with the uniform distribution.
"""

from __future__ import annotations

import numpy as np

from gan_jax.data.embedded import grid_modes, ring_modes  # noqa: F401  (the datasets' modes)


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
