"""Paired translation metrics: closed forms that always run, and scikit-image where installed."""
import numpy as np
import pytest

from gan_jax.metrics import pairs


def images(n=3, size=24, channels=3, seed=0):
  """Smooth random pictures in [-1, 1] (blurred noise, so SSIM sees structure)."""
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, (n, size, size, channels))
  x = (x + np.roll(x, 1, 1) + np.roll(x, 1, 2) + np.roll(x, (1, 1), (1, 2))) / 4
  return np.clip(x * 1.5, -1, 1)


def test_l1_and_psnr_closed_forms():
  a = np.zeros((2, 12, 12, 1))
  assert pairs.l1(a, a + 0.5) == pytest.approx(0.5)
  assert pairs.l1(-np.ones_like(a), np.ones_like(a)) == pytest.approx(2.0)
  # 0.2 in [-1, 1] units is 0.1 on [0, 1]: MSE 0.01, 20 dB, whatever the sign of each pixel.
  signs = np.where(np.random.default_rng(0).random(a.shape) < 0.5, -1.0, 1.0)
  assert pairs.psnr(a, a + 0.2 * signs) == pytest.approx(20.0)
  # Gaussian noise of std s on [0, 1]: PSNR ~ -20 log10(s).
  noise = np.random.default_rng(1).normal(0, 2 * 0.05, (4, 64, 64, 3))
  assert pairs.psnr(np.zeros_like(noise), noise) == pytest.approx(-20 * np.log10(0.05), abs=0.05)
  assert pairs.psnr(a, a) == pytest.approx(100.0)  # exact copies: the MSE floor, not inf
  per = pairs.psnr(np.zeros((2, 4, 4, 1)), np.stack([np.full((4, 4, 1), 0.2),
                                                     np.full((4, 4, 1), 0.02)]), per_image=True)
  np.testing.assert_allclose(per, [20.0, 40.0])  # per image, then the mean
  assert pairs.psnr(np.zeros((2, 4, 4, 1)), np.stack([np.full((4, 4, 1), 0.2),
                                                      np.full((4, 4, 1), 0.02)])) == 30.0


def test_ssim_closed_forms():
  a = images()
  assert pairs.ssim(a, a) == pytest.approx(1.0)
  # Flat images m and m + c: no variance, so SSIM is the luminance term alone.
  m, c = 0.3, 0.2  # on [0, 1]
  flat = np.full((1, 16, 16, 1), 2 * m - 1)
  c1 = (0.01) ** 2
  expected = (2 * m * (m + c) + c1) / (m ** 2 + (m + c) ** 2 + c1)
  assert pairs.ssim(flat, flat + 2 * c) == pytest.approx(expected)
  # A constant shift keeps the structure: SSIM drops only by the luminance term, below 1.
  shifted = pairs.ssim(a * 0.5, a * 0.5 + 0.2)
  assert 0.9 < shifted < 1.0
  # Inverting a picture's contrast about its mean makes the structure term negative.
  assert pairs.ssim(a, -a) < 0
  assert pairs.ssim(a, a, per_image=True).shape == (3,)
  with pytest.raises(ValueError, match="at least 11x11"):
    pairs.ssim(np.zeros((1, 8, 8, 1)), np.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match="one shape"):
    pairs.l1(np.zeros((1, 8, 8, 1)), np.zeros((1, 8, 8, 3)))
  m = pairs.pair_metrics(a, a)
  assert m == {"l1": 0.0, "psnr": pytest.approx(100.0), "ssim": pytest.approx(1.0)}


@pytest.mark.parametrize("channels", [1, 3])
def test_matches_scikit_image(channels):
  metrics = pytest.importorskip("skimage.metrics")
  a, b = images(channels=channels), images(channels=channels, seed=1)
  b = np.clip(0.7 * a + 0.3 * b, -1, 1)
  a01, b01 = (a + 1) / 2, (b + 1) / 2
  want_ssim = [metrics.structural_similarity(x, y, data_range=1.0, gaussian_weights=True,
                                             sigma=1.5, use_sample_covariance=False,
                                             channel_axis=-1) for x, y in zip(a01, b01)]
  want_psnr = [metrics.peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(a01, b01)]
  np.testing.assert_allclose(pairs.ssim(a, b, per_image=True), want_ssim, rtol=1e-9)
  np.testing.assert_allclose(pairs.psnr(a, b, per_image=True), want_psnr, rtol=1e-9)
