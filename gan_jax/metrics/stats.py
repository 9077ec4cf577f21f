"""Streaming feature statistics: mean and covariance accumulated batch by batch, in float64."""

from __future__ import annotations

import numpy as np


class FeatureStats:
  """Mean and covariance of every feature vector passed to `update`, in any batch sizes.

  Batches are merged with Chan et al.'s pairwise update (per-batch centered scatter plus a
  correction for the shift of the mean), so features with a large mean and a small spread lose no
  precision, and memory stays [dim, dim] however many samples stream through.
  """

  def __init__(self):
    self.count = 0
    self.mean = None
    self.scatter = None  # sum over samples of (x - mean)(x - mean)^T

  def update(self, features) -> "FeatureStats":
    batch = np.asarray(features, dtype=np.float64)
    batch = batch.reshape(batch.shape[0], -1)
    m = batch.shape[0]
    if m == 0:
      return self
    batch_mean = batch.mean(axis=0)
    centered = batch - batch_mean
    batch_scatter = centered.T @ centered
    if self.count == 0:
      self.count, self.mean, self.scatter = m, batch_mean, batch_scatter
      return self
    total = self.count + m
    delta = batch_mean - self.mean
    self.scatter = self.scatter + batch_scatter + np.outer(delta, delta) * (self.count * m / total)
    self.mean = self.mean + delta * (m / total)
    self.count = total
    return self

  def result(self) -> tuple[np.ndarray, np.ndarray]:
    """(mean [dim], unbiased covariance [dim, dim]), as np.mean and np.cov give them."""
    if self.count < 2:
      raise ValueError(f"a covariance needs at least 2 samples, got {self.count}")
    return self.mean.copy(), self.scatter / (self.count - 1)


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of features [N, dim] in one go."""
  return FeatureStats().update(features).result()
