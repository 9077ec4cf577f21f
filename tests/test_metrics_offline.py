"""Offline metrics: PacGAN 2D mode metrics and the digits classifier metrics."""

import math
import os
import threading
import time

import numpy as np
import pytest

from gan_jax.metrics import digits
from gan_jax.metrics import modes2d

# ---------------------------------------------------------------------------------------------
# 2D mode metrics


def test_ring_and_grid_modes():
  ring = modes2d.ring_modes(8, radius=2.0)
  assert ring.shape == (8, 2)
  np.testing.assert_allclose(ring[0], [2.0, 0.0], atol=1e-12)
  np.testing.assert_allclose(ring[2], [0.0, 2.0], atol=1e-12)  # mode k at angle 2 pi k / 8
  np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0)
  grid = modes2d.grid_modes()
  assert grid.shape == (25, 2)
  assert len({tuple(p) for p in grid}) == 25
  assert set(grid.ravel()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def _on_modes(modes, counts, std, rng):
  """counts[k] samples around mode k, each within 2 std of it (so all high quality)."""
  pts = []
  for mode, c in zip(modes, counts):
    offsets = rng.uniform(-1.0, 1.0, size=(c, 2)) * std * math.sqrt(2.0)  # |offset| <= 2 std
    pts.append(mode + offsets)
  return np.concatenate(pts)


def test_all_samples_on_modes():
  rng = np.random.RandomState(0)
  modes, std = modes2d.grid_modes(), 0.05
  samples = _on_modes(modes, [40] * 25, std, rng)
  m = modes2d.mode_metrics(samples, modes, std)
  assert m == {"modes_captured": 25, "num_modes": 25, "high_quality": 1.0,
               "reverse_kl": pytest.approx(0.0, abs=1e-12)}


def test_far_samples_are_low_quality_and_ignored():
  rng = np.random.RandomState(1)
  modes, std = modes2d.ring_modes(), 0.01
  good = _on_modes(modes, [10] * 8, std, rng)
  far = np.tile([[5.0, 5.0]], (20, 1))  # nearest mode is far beyond 3 std
  between = modes[:4] * 0.5  # halfway to the centre: also low quality
  samples = np.concatenate([good, far, between])
  m = modes2d.mode_metrics(samples, modes, std)
  assert m["modes_captured"] == 8
  assert m["high_quality"] == pytest.approx(80 / len(samples))
  assert m["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


def test_three_std_boundary():
  modes, std = np.zeros((1, 2)), 0.1
  inside = np.array([[0.29, 0.0], [0.0, -0.29]])
  outside = np.array([[0.31, 0.0], [0.22, 0.22]])  # the second: |.| = 0.311 (Euclidean)
  m = modes2d.mode_metrics(np.concatenate([inside, outside]), modes, std)
  assert m["high_quality"] == pytest.approx(0.5)
  assert m["modes_captured"] == 1


def test_missing_mode_and_reverse_kl_closed_form():
  rng = np.random.RandomState(2)
  modes, std = modes2d.ring_modes(), 0.01
  # Seven modes equally filled, one empty: KL(q || U8) = log(8 / 7).
  m = modes2d.mode_metrics(_on_modes(modes, [5] * 7 + [0], std, rng), modes, std)
  assert m["modes_captured"] == 7
  assert m["reverse_kl"] == pytest.approx(math.log(8 / 7))
  # Histogram (1/2, 1/4, 1/8, 1/8, 0, 0, 0, 0): sum q log(8 q) = 1.25 log 2.
  m = modes2d.mode_metrics(_on_modes(modes, [8, 4, 2, 2, 0, 0, 0, 0], std, rng), modes, std)
  assert m["modes_captured"] == 4
  assert m["reverse_kl"] == pytest.approx(1.25 * math.log(2))
  # Everything in one mode: log M.
  m = modes2d.mode_metrics(_on_modes(modes, [30] + [0] * 7, std, rng), modes, std)
  assert (m["modes_captured"], m["reverse_kl"]) == (1, pytest.approx(math.log(8)))


def test_no_high_quality_samples():
  modes = modes2d.ring_modes()
  m = modes2d.mode_metrics(np.full((10, 2), 3.0), modes, 0.01)
  assert m["modes_captured"] == 0 and m["high_quality"] == 0.0
  assert m["reverse_kl"] == float("inf")


# ---------------------------------------------------------------------------------------------
# Digits classifier and metrics


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("gan_jax_cache"))


@pytest.fixture(scope="module")
def clf(cache):
  """Trained once for the module, into a fresh cache dir (never the user's ~/.cache)."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("GAN_JAX_CACHE", cache)
    assert not os.path.exists(digits.cache_path())
    return digits.DigitsClassifier.load_or_train()


def test_held_out_accuracy(clf):
  images, labels = digits.real_digits(8)
  train_idx, test_idx = digits.digits_split()
  assert len(test_idx) >= 250 and not set(train_idx) & set(test_idx)
  acc = float(np.mean(clf.predict(images[test_idx]) == labels[test_idx]))
  assert acc >= 0.97, acc


def test_recovers_labels_at_32x32_any_channels(clf):
  x1, labels = digits.real_digits(32, channels=1)
  x3, _ = digits.real_digits(32, channels=3)
  assert x1.shape == (1797, 32, 32, 1) and x1.dtype == np.float32
  assert x1.min() >= -1.0 and x1.max() <= 1.0
  pred = clf.predict(x1)
  assert np.mean(pred == labels) >= 0.95
  np.testing.assert_array_equal(clf.predict(x3), pred)  # 3 gray channels average to the same
  assert clf.logits(x1[:5]).shape == (5, 10)
  assert clf.features(x1[:5]).shape[0] == 5


def test_rejects_bad_shapes(clf):
  with pytest.raises(ValueError, match="multiple of 8"):
    clf.predict(np.zeros((2, 12, 12, 1), np.float32))
  with pytest.raises(ValueError, match="multiple of 8"):
    clf.predict(np.zeros((2, 16, 16, 2), np.float32))


def test_digits_metrics_on_real_and_noise(clf):
  images, labels = digits.real_digits(32)
  _, test_idx = digits.digits_split()
  x, y = images[test_idx], labels[test_idx]
  real = digits.digits_metrics(x, y, classifier=clf)
  true_hist = np.bincount(y, minlength=10) / len(y)
  np.testing.assert_allclose(real["class_histogram"], true_hist, atol=0.02)
  assert real["min_class_fraction"] > 0.08
  assert real["label_accuracy"] >= 0.95
  assert min(real["per_class_accuracy"]) >= 0.85
  assert real["digits_is"] > 8.0  # 10 balanced, confidently classified classes: close to 10
  # Measured ~1.1 for these 360 held-out digits (a finite-sample floor); noise scores ~320-350.
  assert real["digits_fid"] < 5.0

  rng = np.random.RandomState(0)
  noise = rng.uniform(-1, 1, size=(360, 32, 32, 1)).astype(np.float32)
  fake = digits.digits_metrics(noise, classifier=clf)
  assert "label_accuracy" not in fake
  assert fake["digits_fid"] > 100.0 and fake["digits_fid"] > 20 * real["digits_fid"]
  assert fake["digits_is"] < 3.0


def test_digits_metrics_mode_collapse_and_absent_labels(clf):
  images, labels = digits.real_digits(16, channels=3)
  threes = images[labels == 3]
  m = digits.digits_metrics(threes, labels[labels == 3], classifier=clf)
  assert m["class_histogram"][3] > 0.95 and m["min_class_fraction"] == 0.0
  assert m["digits_is"] < 1.5
  assert m["digits_fid"] > 50.0
  assert m["per_class_accuracy"][3] > 0.95
  assert all(math.isnan(a) for c, a in enumerate(m["per_class_accuracy"]) if c != 3)


def test_stacked_digit_modes(clf):
  images, labels = digits.real_digits(32)
  rng = np.random.RandomState(0)
  idx = rng.randint(len(labels), size=(3, 3000))
  stacked = np.concatenate([images[i] for i in idx], axis=-1)  # [3000, 32, 32, 3]
  true_ids = 100 * labels[idx[0]] + 10 * labels[idx[1]] + labels[idx[2]]
  ids = digits.stacked_digit_ids(stacked, classifier=clf)
  assert np.mean(ids == true_ids) >= 0.95

  m = digits.stacked_digit_modes(stacked, classifier=clf)
  true_counts = np.bincount(true_ids, minlength=1000)
  assert m["num_modes"] == 1000
  assert abs(m["modes_captured"] - int((true_counts > 0).sum())) <= 10
  q = true_counts[true_counts > 0] / len(true_ids)
  assert m["reverse_kl"] == pytest.approx(float(np.sum(q * np.log(q * 1000))), abs=0.05)
  assert "label_accuracy" not in m

  # Asked for their own numbers, the real stacks are drawn as asked (the classifier's accuracy
  # cubed); asked for the next number, almost never.
  m = digits.stacked_digit_modes(stacked, labels=true_ids, classifier=clf)
  assert m["label_accuracy"] == pytest.approx(np.mean(ids == true_ids))
  assert m["label_accuracy"] >= 0.95
  assert digits.stacked_digit_modes(stacked, (true_ids + 1) % 1000, clf)["label_accuracy"] < 0.05

  # Full collapse onto one stacked digit: one mode, KL = log 1000.
  one = np.repeat(stacked[:1], 50, axis=0)
  m = digits.stacked_digit_modes(one, classifier=clf)
  assert m["modes_captured"] == 1
  assert m["reverse_kl"] == pytest.approx(math.log(1000))


def test_cache_round_trip(clf, cache, monkeypatch):
  monkeypatch.setenv("GAN_JAX_CACHE", cache)
  path = digits.cache_path()
  assert os.path.dirname(path) == cache and digits.CLASSIFIER_VERSION in os.path.basename(path)
  assert path.endswith(".npz") and os.path.exists(path)
  with np.load(path, allow_pickle=False) as z:  # plain arrays, no pickled objects
    assert all("/" in k for k in z.files)

  def no_training(*args, **kwargs):
    raise AssertionError("load_or_train retrained although the cache exists")

  monkeypatch.setattr(digits, "_train", no_training)
  again = digits.DigitsClassifier.load_or_train()
  x, _ = digits.real_digits(8)
  np.testing.assert_array_equal(again.logits(x), clf.logits(x))


def test_a_classifier_two_processes_need_at_once_is_trained_once(tmp_path, monkeypatch):
  """The second to ask waits for the first's file (file locks: each thread's own open file, as
  each process's), rather than training its own."""
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  trained = []

  def slow_training(*args, **kwargs):
    trained.append(1)
    time.sleep(0.5)  # the other caller arrives meanwhile
    return {"w": np.zeros(1, np.float32)}

  monkeypatch.setattr(digits, "_train", slow_training)
  callers = [threading.Thread(target=digits.DigitsClassifier.load_or_train) for _ in range(2)]
  for caller in callers:
    caller.start()
  for caller in callers:
    caller.join()
  assert trained == [1] and os.path.exists(digits.cache_path())


def test_a_cache_that_takes_no_lock_file_is_still_read(clf, cache, monkeypatch):
  """A cache this process may only read (no lock file can be made there) serves as before."""
  monkeypatch.setenv("GAN_JAX_CACHE", cache)
  real_open = open

  def read_only(path, *args, **kwargs):
    if str(path).endswith(".lock"):
      raise PermissionError(13, "Permission denied", path)
    return real_open(path, *args, **kwargs)

  monkeypatch.setattr("builtins.open", read_only)
  x, _ = digits.real_digits(8)
  np.testing.assert_array_equal(digits.DigitsClassifier.load_or_train().logits(x), clf.logits(x))


# A classifier of domain B of the digit_styles translation task

@pytest.fixture(scope="module")
def style_clf(cache):
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("GAN_JAX_CACHE", cache)
    path = digits.cache_path("digit_styles_b")
    assert path != digits.cache_path() and not os.path.exists(path)
    clf = digits.DigitsClassifier.load_or_train(style="digit_styles_b")
    assert os.path.exists(path)
    return clf


def test_style_classifier_reads_domain_b_held_out(style_clf):
  from gan_jax.data import embedded
  _, test_idx = digits.digits_split()
  for resolution, bar in ((32, 0.95), (64, 0.95), (16, 0.93)):
    x, labels = digits.style_digits("digit_styles_b", resolution)
    acc = float(np.mean(style_clf.predict(x[test_idx]) == labels[test_idx]))
    assert acc >= bar, (resolution, acc)
  # The very rendering the digit_styles source uses, brought to [-1, 1].
  drawn = embedded.digit_style_b(embedded.digits(32)[0][:4]).astype(np.float32) / 127.5 - 1
  np.testing.assert_array_equal(digits.style_digits("digit_styles_b", 32, channels=3)[0][:4],
                                np.repeat(drawn, 3, axis=-1))
  real, _ = digits.real_digits(32)
  assert np.mean(style_clf.predict(real[test_idx]) == labels[test_idx]) < 0.5  # a style apart
  m = digits.digits_metrics(x[test_idx], labels[test_idx], classifier=style_clf)
  assert m["label_accuracy"] >= 0.93 and m["digits_fid"] < 5.0  # its FID: against domain B
  with pytest.raises(ValueError, match="unknown digits style"):
    digits.cache_path("cursive")
