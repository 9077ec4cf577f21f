"""Moving-digit measures: the data's own clips pass the bar, each kind of broken clip fails the
measure meant to catch it; FVD against the closed form of two Gaussians."""
import numpy as np
import pytest

from gan_jax.data.video import MovingDigits
from gan_jax.errors import UserError
from gan_jax.metrics import digits, video
from gan_jax.metrics.scores import frechet_distance
from gan_jax.metrics.stats import feature_stats

NUM_CLIPS = 500


@pytest.fixture(scope="module")
def classifier():
  return digits.DigitsClassifier.load_or_train()


@pytest.fixture(scope="module")
def data():
  return MovingDigits(64)


@pytest.fixture(scope="module")
def real(data):
  """(uint8 clips [500, 16, 64, 64, 1], labels) of the data itself."""
  batch = data.get(np.arange(NUM_CLIPS))
  return batch["x"], batch["label"]


def to_float(clips):
  return clips.astype(np.float32) / 127.5 - 1.0


def paint(data, picks, corners):
  """uint8 clips with digit picks[b, t] (an index into data.digits) at top-left corners[b, t]."""
  n, t = picks.shape
  r, s = data.resolution, data.side
  clips = np.zeros((n, t, r, r, 1), np.uint8)
  for b in range(n):
    for f in range(t):
      top, left = corners[b, f]
      clips[b, f, top:top + s, left:left + s] = data.digits[picks[b, f]]
  return clips


def measure(clips, classifier):
  return video.moving_digit_measures(to_float(clips), classifier)


def test_the_data_passes_the_bar(real, classifier):
  clips, labels = real
  m = measure(clips, classifier)
  assert m["passes"] and all(m["bar"].values()), m
  assert m["identity"] >= 0.98 and m["frame_agreement"] >= 0.99, m
  assert m["speed_data"] == 3.0 and abs(m["speed_ratio"] - 1.0) < 0.05, m
  assert m["frozen"] == 0.0 and m["teleports"] == 0.0 and m["empty"] == 0.0, m
  assert m["classes_present"] == 10 and m["min_class_fraction"] >= 0.06, m
  # The majority classes are the clips' labels: the histogram is the labels'.
  np.testing.assert_allclose(m["class_histogram"], np.bincount(labels, minlength=10) / len(labels),
                             atol=0.01)


def test_uint8_and_rgb_clips_read_the_same(real, classifier):
  clips = real[0][:100]
  gray = measure(clips, classifier)
  assert video.moving_digit_measures(clips, classifier) == gray
  rgb = measure(np.repeat(clips, 3, axis=-1), classifier)
  assert rgb.keys() == gray.keys()
  for key, value in gray.items():  # the mean of 3 equal float32 channels may round
    assert rgb[key] == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), key


def test_faint_speckle_is_no_ink(real, classifier):
  """Background noise under the ink threshold moves no centre and fills no frame."""
  clips = to_float(real[0][:100])
  noise = np.random.default_rng(0).uniform(0.0, 0.15, clips.shape).astype(np.float32)
  noisy = np.maximum(clips, -1.0 + noise)  # ink up to 0.075 where the canvas is black
  clean = video.moving_digit_measures(clips, classifier)
  m = video.moving_digit_measures(noisy, classifier)
  assert m["teleports"] == m["frozen"] == 0.0 and m["identity"] >= 0.98, m
  assert abs(m["speed_mean"] - clean["speed_mean"]) < 0.01, (m, clean)
  blank = video.moving_digit_measures(np.full_like(noisy, -1.0) + noise, classifier)
  assert blank["empty"] == 1.0, blank


def test_a_still_digit_is_frozen(real, classifier):
  still = np.repeat(real[0][:, :1], 16, axis=1)
  m = measure(still, classifier)
  assert m["frozen"] == 1.0 and m["teleports"] == 0.0, m
  assert not m["bar"]["motion"] and not m["bar"]["speed"] and not m["passes"], m
  assert np.isnan(m["speed_mean"]) and m["identity"] >= 0.98 and m["bar"]["coverage"], m


def test_a_digit_jumping_about_teleports(data, real, classifier):
  rng = np.random.default_rng(0)
  picks = np.repeat(data.picks[:200, :1], 16, axis=1)  # each clip keeps its digit
  jumping = paint(data, picks, rng.integers(0, data.room + 1, (200, 16, 2)))
  m = measure(jumping, classifier)
  assert m["teleports"] >= 0.95 and m["frozen"] == 0.0 and m["identity"] >= 0.95, m
  assert not m["bar"]["motion"] and not m["passes"], m
  # Frames of a real clip shuffled in time: the steps no longer add up to a path.
  shuffled = np.stack([c[rng.permutation(16)] for c in real[0][:200]])
  m = measure(shuffled, classifier)
  assert m["teleports"] >= 0.9 and not m["bar"]["motion"], m


def test_a_digit_changing_every_frame_has_no_identity(data, classifier):
  """The motion of the data, but each frame draws a different real digit."""
  n = 200
  rng = np.random.default_rng(1)
  corners = data.corners(np.arange(n))[:, 0]  # [n, 16, 2]
  picks = rng.integers(0, len(data.digits), (n, 16))
  m = measure(paint(data, picks, corners), classifier)
  assert m["identity"] <= 0.05 and m["frame_agreement"] <= 0.5, m
  assert not m["bar"]["identity"] and not m["passes"], m
  # Each digit sits a little differently in its box, but no step comes near a teleport.
  assert m["teleports"] == 0.0 and m["bar"]["motion"], m


def test_one_digit_only_fails_coverage(data, classifier):
  batch = data.get(np.arange(2000))
  threes = batch["x"][batch["label"] == 3][:100]
  m = measure(threes, classifier)
  assert m["classes_present"] <= 2 and m["class_histogram"][3] >= 0.95, m
  assert not m["bar"]["coverage"] and not m["passes"], m
  assert m["bar"]["identity"] and m["bar"]["motion"] and m["bar"]["speed"], m


def test_blank_clips_fail_everything(classifier):
  m = video.moving_digit_measures(np.full((20, 16, 64, 64, 1), -1.0, np.float32), classifier)
  assert m["empty"] == m["teleports"] == 1.0 and m["frozen"] == 0.0, m
  assert m["identity"] == 0.0 and m["classes_present"] == 0 and sum(m["class_histogram"]) == 0, m
  assert np.isnan(m["speed_ratio"]) and not any(m["bar"].values()) and not m["passes"], m


def test_bad_clips_are_user_errors(classifier):
  good = np.zeros((2, 4, 64, 64, 1), np.float32)
  for bad, match in [(good[0], r"\[N, T, R, R"), (good[..., :32, :], r"\[N, T, R, R"),
                     (np.repeat(good, 2, axis=-1), r"\[N, T, R, R"),
                     (good[:, :1], "at least 2 frames"),
                     (np.where(good == 0, np.nan, good), "NaN")]:
    with pytest.raises(UserError, match=match):
      video.moving_digit_measures(bad, classifier)
  with pytest.raises(UserError, match="resolution=32"):
    video.moving_digit_measures(good, classifier, resolution=32)


def commuting_covariances(rng, dim):
  """S1 = Q diag(a) Q^T and S2 = Q diag(b) Q^T: sqrt(S1 S2) = Q diag(sqrt(a b)) Q^T exactly."""
  q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
  a, b = rng.uniform(0.2, 3.0, dim), rng.uniform(0.2, 3.0, dim)
  return (q * a) @ q.T, (q * b) @ q.T, float(np.sum(a + b - 2.0 * np.sqrt(a * b)))


def fvd(real_features, fake_features):
  """FVD's distance as evaluate computes it: Gaussians fitted to the two feature sets."""
  return frechet_distance(*feature_stats(real_features), *feature_stats(fake_features))


def test_fvd_approaches_the_closed_form_of_two_gaussians():
  rng = np.random.default_rng(0)
  dim, n = 6, 200_000
  s1, s2, trace_term = commuting_covariances(rng, dim)
  mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
  exact = float(np.sum((mu1 - mu2) ** 2)) + trace_term
  real = rng.multivariate_normal(mu1, s1, n)
  fake = rng.multivariate_normal(mu2, s2, n)
  assert fvd(real, fake) == pytest.approx(exact, rel=0.02, abs=0.02)
  # Diagonal covariances, equal means: only the trace term, elementwise.
  v1, v2 = rng.uniform(0.2, 3.0, dim), rng.uniform(0.2, 3.0, dim)
  exact = float(np.sum(v1 + v2 - 2.0 * np.sqrt(v1 * v2)))
  real = rng.standard_normal((n, dim)) * np.sqrt(v1)
  fake = rng.standard_normal((n, dim)) * np.sqrt(v2)
  assert fvd(real, fake) == pytest.approx(exact, rel=0.05, abs=0.02)
  assert fvd(real, real.copy()) == pytest.approx(0.0, abs=1e-9)
