"""Scores from features or logits: FID, IS, KID, precision/recall, density/coverage.

Each is a pure numpy function of arrays a feature extractor produced (InceptionV3 pool features
and logits, or the digits classifier's), computed in float64. The pairwise ones work through the
distance matrix a block of rows at a time, so 50k x 50k comparisons fit in a few hundred MB.
"""

from __future__ import annotations

import numpy as np

# Rows of a distance block are chosen so that one block holds at most this many float64 entries.
_BLOCK_ENTRIES = 1 << 24  # 128 MB


def _symmetric(m):
  return (m + m.T) / 2.0


def psd_sqrt(m: np.ndarray) -> np.ndarray:
  """Square root of a symmetric positive semi-definite matrix; round-off negatives become 0."""
  w, v = np.linalg.eigh(_symmetric(np.asarray(m, dtype=np.float64)))
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """Tr sqrtm(S1 S2) for covariances S1, S2.

  S1 S2 has the eigenvalues of sqrt(S1) S2 sqrt(S1), which is symmetric PSD: the trace is the sum
  of the square roots of its eigenvalues. No general (Schur) sqrtm, so no complex round-off, and
  rank-deficient covariances (fewer samples than dimensions) give a finite value.
  """
  root1 = psd_sqrt(sigma1)
  inner = _symmetric(root1 @ np.asarray(sigma2, dtype=np.float64) @ root1)
  return float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)): the Frechet distance of two Gaussians (FID)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  diff = mu1 - mu2
  fid = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
         - 2.0 * trace_sqrt_product(sigma1, sigma2))
  # Identical statistics give round-off around 0 (e.g. -1e-11); the distance itself is never negative.
  return max(float(fid), 0.0)


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
  """(mean, std) over `splits` consecutive chunks of exp(E_x KL(p(y|x) || p(y))) (Salimans et al.)."""
  logits = np.asarray(logits, dtype=np.float64)
  if logits.shape[0] < splits:
    raise ValueError(f"IS over {splits} splits needs at least {splits} samples, got {logits.shape[0]}")
  log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
  scores = []
  for part in np.array_split(log_p, splits):
    p = np.exp(part)
    log_py = np.log(np.maximum(p.mean(axis=0, keepdims=True), 1e-30))
    scores.append(np.exp(np.mean(np.sum(p * (part - log_py), axis=1))))
  return float(np.mean(scores)), float(np.std(scores))


def _cubic_kernel(x, y):
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 of two equal-size samples under k(a, b) = (a.b / dim + 1)^3."""
  s = x.shape[0]
  kxx, kyy, kxy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
  off_diagonal = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (s * (s - 1))
  return float(off_diagonal - 2.0 * kxy.mean())


def kernel_inception_distance(real, fake, num_subsets: int = 100, max_subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
  """(mean, std) of unbiased MMD^2 over random subsets (Binkowski et al. 2018, "KID").

  Each subset draws min(max_subset_size, len(real), len(fake)) rows without replacement from each
  side with numpy's default_rng(seed): first the real indices, then the fake ones.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  size = min(max_subset_size, real.shape[0], fake.shape[0])
  if size < 2:
    raise ValueError(f"KID needs at least 2 real and 2 generated samples, got {real.shape[0]} "
                     f"and {fake.shape[0]}")
  rng = np.random.default_rng(seed)
  values = []
  for _ in range(num_subsets):
    x = real[rng.choice(real.shape[0], size, replace=False)]
    y = fake[rng.choice(fake.shape[0], size, replace=False)]
    values.append(mmd2_unbiased(x, y))
  return float(np.mean(values)), float(np.std(values))


def _distance_blocks(a, b):
  """Yields (row slice of a, Euclidean distances [rows, len(b)]), a block of rows at a time."""
  b_sq = np.einsum("ij,ij->i", b, b)
  rows = max(1, _BLOCK_ENTRIES // max(b.shape[0], 1))
  for start in range(0, a.shape[0], rows):
    x = a[start:start + rows]
    d_sq = np.einsum("ij,ij->i", x, x)[:, None] + b_sq[None, :] - 2.0 * (x @ b.T)
    yield slice(start, start + x.shape[0]), np.sqrt(np.maximum(d_sq, 0.0))


def nearest_neighbour_radii(features, k: int) -> np.ndarray:
  """Distance from each point to its k-th nearest other point (the point itself is neighbour 0)."""
  features = np.asarray(features, np.float64)
  if features.shape[0] <= k:
    raise ValueError(f"k={k} nearest neighbours need more than {k} samples, got {features.shape[0]}")
  radii = np.empty(features.shape[0])
  for rows, d in _distance_blocks(features, features):
    radii[rows] = np.partition(d, k, axis=1)[:, k]
  return radii


def _inside_any_ball(points, centers, radii) -> np.ndarray:
  """For each point: does some ball (center i, radius radii[i]) contain it?"""
  inside = np.empty(points.shape[0], dtype=bool)
  for rows, d in _distance_blocks(points, centers):
    inside[rows] = (d <= radii[None, :]).any(axis=1)
  return inside


def precision_recall(real, fake, k: int = 3) -> dict:
  """Improved precision and recall (Kynkaanniemi et al. 2019).

  Each set's manifold is the union of balls around its points reaching their k-th nearest
  neighbour. Precision: the fraction of generated samples inside the real manifold; recall: the
  fraction of real samples inside the generated one.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  precision = _inside_any_ball(fake, real, nearest_neighbour_radii(real, k)).mean()
  recall = _inside_any_ball(real, fake, nearest_neighbour_radii(fake, k)).mean()
  return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real, fake, k: int = 5) -> dict:
  """Density and coverage (Naeem et al. 2020), on balls around real samples only.

  Density: how many real balls contain a generated sample, on average, divided by k (about 1
  when the two distributions agree). Coverage: the fraction of real balls holding at least one
  generated sample.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  radii = nearest_neighbour_radii(real, k)
  balls_per_sample = 0
  for _, d in _distance_blocks(fake, real):
    balls_per_sample += int((d <= radii[None, :]).sum())
  covered = np.empty(real.shape[0], dtype=bool)
  for rows, d in _distance_blocks(real, fake):
    covered[rows] = d.min(axis=1) <= radii[rows]
  return {"density": balls_per_sample / (k * fake.shape[0]), "coverage": float(covered.mean())}


def mean_pairwise_distance(features) -> float:
  """Mean Euclidean distance between two distinct rows: how spread out a sample set is (the
  health monitor's diversity check compares generated samples' to the real data's)."""
  features = np.asarray(features, np.float64).reshape(len(features), -1)
  n = features.shape[0]
  if n < 2:
    raise ValueError(f"a pairwise distance needs at least 2 samples, got {n}")
  total = sum(float(d.sum()) for _, d in _distance_blocks(features, features))
  return total / (n * (n - 1))  # the diagonal's distances are 0
