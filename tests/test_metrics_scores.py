"""FID, IS, KID, precision/recall, density/coverage and streaming statistics against brute force."""
import itertools
import math

import numpy as np
import pytest
import scipy.linalg

from gan_jax.metrics import scores
from gan_jax.metrics.stats import FeatureStats, feature_stats


def random_covariance(rng, dim):
  """Q diag(eigenvalues in [0.1, 3]) Q^T: a well-conditioned covariance with random axes."""
  q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
  return (q * rng.uniform(0.1, 3.0, dim)) @ q.T


# ---------------------------------------------------------------------------------------------
# Streaming statistics


def test_streaming_stats_equal_numpy_in_any_batches():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((301, 7)) * 0.01 + 1000.0  # a large mean over a tiny spread
  stats = FeatureStats()
  for part in np.array_split(x, [1, 2, 50, 51, 200]):  # sizes 1, 1, 48, 1, 149, 101
    stats.update(part)
  mean, cov = stats.result()
  np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-14)
  np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-14)
  one_go = feature_stats(x)
  np.testing.assert_allclose(one_go[1], cov, rtol=1e-9, atol=1e-14)
  with pytest.raises(ValueError, match="at least 2"):
    FeatureStats().update(x[:1]).result()


# ---------------------------------------------------------------------------------------------
# FID


@pytest.mark.parametrize("dim", [2, 16, 64])
def test_trace_sqrt_product_matches_scipy_sqrtm(dim):
  rng = np.random.default_rng(dim)
  s1, s2 = random_covariance(rng, dim), random_covariance(rng, dim)
  expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
  assert scores.trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-6)
  mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
  brute = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * expected)
  assert scores.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(brute, rel=1e-6)


def test_fid_closed_forms():
  rng = np.random.default_rng(1)
  s = random_covariance(rng, 8)
  mu = rng.standard_normal(8)
  assert scores.frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
  # Shifted means only: ||d||^2. Diagonal covariances: sum (sqrt(a) - sqrt(b))^2.
  assert scores.frechet_distance(mu, s, mu + 0.5, s) == pytest.approx(8 * 0.25, rel=1e-8)
  a, b = rng.uniform(0.1, 2, 8), rng.uniform(0.1, 2, 8)
  expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert scores.frechet_distance(mu, np.diag(a), mu, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_fid_finite_on_rank_deficient_covariances():
  rng = np.random.default_rng(2)
  dim = 64
  x, y = rng.standard_normal((10, dim)), rng.standard_normal((20, dim)) + 0.1  # rank 9 and 19
  (m1, s1), (m2, s2) = feature_stats(x), feature_stats(y)
  assert np.linalg.matrix_rank(s1) < dim
  fid = scores.frechet_distance(m1, s1, m2, s2)
  assert math.isfinite(fid) and fid > 0
  # A covariance of zeros (one repeated sample) too.
  zero = np.zeros((dim, dim))
  assert scores.frechet_distance(m1, zero, m2, s2) == pytest.approx(
      np.sum((m1 - m2) ** 2) + np.trace(s2), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Inception score


def brute_force_is(logits):
  p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  py = p.mean(axis=0)
  kl = [sum(pi[c] * math.log(pi[c] / py[c]) for c in range(len(py))) for pi in p]
  return math.exp(sum(kl) / len(kl))


def test_inception_score_ten_splits():
  rng = np.random.default_rng(3)
  logits = rng.standard_normal((95, 6)) * 3
  mean, std = scores.inception_score(logits, splits=10)
  per_split = [brute_force_is(part) for part in np.array_split(logits, 10)]  # 10 x 9 or 10 rows
  assert mean == pytest.approx(np.mean(per_split), rel=1e-10)
  assert std == pytest.approx(np.std(per_split), rel=1e-8)
  # One-hot, balanced predictions over C classes: IS = C; all alike: IS = 1.
  confident = np.eye(5)[np.arange(100) % 5] * 50.0
  assert scores.inception_score(confident, splits=10)[0] == pytest.approx(5.0, rel=1e-6)
  assert scores.inception_score(np.zeros((20, 5)), splits=10) == (pytest.approx(1.0), 0.0)
  with pytest.raises(ValueError, match="at least 10"):
    scores.inception_score(logits[:9], splits=10)


# ---------------------------------------------------------------------------------------------
# KID


def brute_force_mmd2(x, y):
  k = lambda a, b: (np.dot(a, b) / len(a) + 1.0) ** 3
  s = len(x)
  xx = sum(k(x[i], x[j]) for i in range(s) for j in range(s) if i != j) / (s * (s - 1))
  yy = sum(k(y[i], y[j]) for i in range(s) for j in range(s) if i != j) / (s * (s - 1))
  xy = sum(k(x[i], y[j]) for i in range(s) for j in range(s)) / (s * s)
  return xx + yy - 2 * xy


def test_kid_unbiased_mmd_over_subsets():
  rng = np.random.default_rng(4)
  real, fake = rng.standard_normal((30, 5)), rng.standard_normal((25, 5)) * 1.2 + 0.3
  mean, std = scores.kernel_inception_distance(real, fake, num_subsets=4, max_subset_size=12,
                                               seed=7)
  draws = np.random.default_rng(7)
  values = []
  for _ in range(4):  # the documented draw order: real indices, then fake indices
    x = real[draws.choice(30, 12, replace=False)]
    y = fake[draws.choice(25, 12, replace=False)]
    values.append(brute_force_mmd2(x, y))
  assert mean == pytest.approx(np.mean(values), rel=1e-10)
  assert std == pytest.approx(np.std(values), rel=1e-8)


def test_kid_full_subsets_and_unbiasedness():
  rng = np.random.default_rng(5)
  real, fake = rng.standard_normal((20, 4)), rng.standard_normal((20, 4)) + 1.0
  # Subsets as large as both sets: every subset is a permutation of all samples.
  mean, std = scores.kernel_inception_distance(real, fake, num_subsets=3, max_subset_size=1000)
  assert mean == pytest.approx(brute_force_mmd2(real, fake), rel=1e-10) and std < 1e-12
  # Unbiased: same-distribution samples average to ~0 (a biased estimator stays > 0).
  same = [scores.mmd2_unbiased(rng.standard_normal((50, 4)), rng.standard_normal((50, 4)))
          for _ in range(200)]
  assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))


# ---------------------------------------------------------------------------------------------
# Precision / recall and density / coverage


def kth_neighbour_radius(points, k):
  return np.array([sorted(np.linalg.norm(points - p, axis=1))[k] for p in points])


def brute_force_prdc(real, fake, k):
  r_real, r_fake = kth_neighbour_radius(real, k), kth_neighbour_radius(fake, k)
  dist = lambda a, b: float(np.linalg.norm(a - b))
  precision = np.mean([any(dist(y, x) <= r for x, r in zip(real, r_real)) for y in fake])
  recall = np.mean([any(dist(x, y) <= r for y, r in zip(fake, r_fake)) for x in real])
  density = sum(dist(y, x) <= r for y in fake for x, r in zip(real, r_real)) / (k * len(fake))
  coverage = np.mean([min(dist(x, y) for y in fake) <= r for x, r in zip(real, r_real)])
  return precision, recall, density, coverage


@pytest.fixture
def small_blocks(monkeypatch):
  """Distance blocks of a few rows, so the chunked code paths run on small data."""
  monkeypatch.setattr(scores, "_BLOCK_ENTRIES", 64)


def test_precision_recall_and_density_coverage_vs_brute_force(small_blocks):
  rng = np.random.default_rng(6)
  real = rng.standard_normal((60, 3))
  fake = np.concatenate([rng.standard_normal((30, 3)) * 0.5, rng.standard_normal((20, 3)) + 4])
  precision, recall, density, coverage = brute_force_prdc(real, fake, 3)
  assert scores.precision_recall(real, fake, k=3) == {"precision": pytest.approx(precision),
                                                      "recall": pytest.approx(recall)}
  _, _, density, coverage = brute_force_prdc(real, fake, 5)
  dc = scores.density_coverage(real, fake, k=5)
  assert dc == {"density": pytest.approx(density), "coverage": pytest.approx(coverage)}
  # The off-manifold cluster at +4 lowers precision; the narrow one leaves real tails uncovered.
  assert precision < 0.7 and 0 < recall < 1 and coverage < 1


def test_prdc_extremes():
  rng = np.random.default_rng(8)
  real = rng.standard_normal((200, 4))
  same = scores.precision_recall(real, real, k=3)
  assert same == {"precision": 1.0, "recall": 1.0}
  assert scores.density_coverage(real, real, k=5)["coverage"] == 1.0
  far = scores.precision_recall(real, real + 100.0, k=3)
  assert far == {"precision": 0.0, "recall": 0.0}
  assert scores.density_coverage(real, real + 100.0, k=5) == {"density": 0.0, "coverage": 0.0}
  collapsed = scores.precision_recall(real, np.zeros((50, 4)), k=3)  # one point, repeated
  assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.05
  with pytest.raises(ValueError, match="more than 3"):
    scores.precision_recall(real[:3], real, k=3)


def test_radii_exclude_the_point_itself(small_blocks):
  pts = np.array([[0.0], [1.0], [3.0], [7.0]])
  np.testing.assert_allclose(scores.nearest_neighbour_radii(pts, 1), [1, 1, 2, 4])
  np.testing.assert_allclose(scores.nearest_neighbour_radii(pts, 2), [3, 2, 3, 6])
  for k in (1, 2, 3):
    np.testing.assert_allclose(scores.nearest_neighbour_radii(pts, k), kth_neighbour_radius(pts, k))
