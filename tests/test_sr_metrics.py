"""PSNR/SSIM on Y against scikit-image's independent implementations, the Y conversion against
MATLAB's rgb2ycbcr formula on known colours, and the border crop.

skimage's SSIM filters the whole image with reflected borders and then averages the map over the
image less (win_size - 1) // 2 = 5 pixels each side: exactly the centres whose 11x11 window lies
inside the image, i.e. our 'valid' map. The two agree there to float64 rounding (measured: 1.6e-15
on this pair, PSNR identical to the last bit; the tests allow 1e-12).
"""
import numpy as np
import pytest
from skimage import data
from skimage.filters import gaussian
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gan_jax.errors import UserError
from gan_jax.metrics import sr


@pytest.fixture(scope="module")
def pair():
  """A 96x120 crop of astronaut() and a blurred, noisy, re-quantised copy."""
  hr = data.astronaut()[100:196, 180:300]
  rng = np.random.default_rng(0)
  blurred = gaussian(hr.astype(np.float64), sigma=1.0, channel_axis=-1, preserve_range=True)
  noisy = blurred + rng.normal(0, 4, hr.shape)
  return np.clip(np.round(noisy), 0, 255).astype(np.uint8), hr


def skimage_ssim(ya, yb):
  return structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, data_range=255)


def test_y_of_known_colours_is_matlabs_rgb2ycbcr():
  colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                      [[255, 255, 255], [0, 0, 0], [128, 64, 32]]], np.uint8)
  expected = np.array([[16 + 65.481, 16 + 128.553, 16 + 24.966],
                       [235.0, 16.0, 16 + (65.481 * 128 + 128.553 * 64 + 24.966 * 32) / 255]])
  np.testing.assert_allclose(sr.rgb_to_y(colours), expected, rtol=0, atol=1e-12)
  np.testing.assert_allclose(sr.rgb_to_y(colours)[0], [81.481, 144.553, 40.966], atol=1e-12)
  gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
  np.testing.assert_array_equal(sr.rgb_to_y(gray), gray.astype(np.float64))  # as BasicSR: as is
  np.testing.assert_array_equal(sr.rgb_to_y(gray[..., None]), gray.astype(np.float64))


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_equals_skimage_on_y(pair, crop):
  out, hr = pair
  ya, yb = sr.rgb_to_y(out), sr.rgb_to_y(hr)
  if crop:
    ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
  ref = peak_signal_noise_ratio(yb, ya, data_range=255)
  value = sr.psnr_y(out, hr, crop)
  assert 20 < value < 40  # a real, finite comparison
  np.testing.assert_allclose(value, ref, rtol=1e-12)


def test_psnr_of_a_known_error():
  a = np.full((20, 20), 100, np.uint8)
  b = a + np.uint8(1)  # MSE 1: 10 log10(255^2)
  np.testing.assert_allclose(sr.psnr_y(a, b, 0), 10 * np.log10(255.0 ** 2), rtol=1e-12)
  c = a.copy()
  c[::2] += 2  # half the pixels off by 2: MSE 2
  np.testing.assert_allclose(sr.psnr_y(a, c, 0), 10 * np.log10(255.0 ** 2 / 2), rtol=1e-12)


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_equals_skimage_on_y(pair, crop):
  out, hr = pair
  ya, yb = sr.rgb_to_y(out), sr.rgb_to_y(hr)
  if crop:
    ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
  value = sr.ssim_y(out, hr, crop)
  assert 0.3 < value < 0.95
  np.testing.assert_allclose(value, skimage_ssim(ya, yb), rtol=0, atol=1e-12)


def test_ssim_is_averaged_over_the_valid_region_only(pair):
  # skimage's full map is defined everywhere (reflected borders); ours is its interior.
  out, hr = pair
  ya, yb = sr.rgb_to_y(out), sr.rgb_to_y(hr)
  _, full_map = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=255, full=True)
  np.testing.assert_allclose(sr.ssim_y(out, hr, 0), full_map[5:-5, 5:-5].mean(), atol=1e-12)
  assert abs(sr.ssim_y(out, hr, 0) - full_map.mean()) > 1e-4  # the region matters


def test_gray_images_are_scored_as_they_are(pair):
  out, hr = pair
  ga, gb = out[..., 1], hr[..., 1]
  np.testing.assert_allclose(sr.psnr_y(ga, gb, 2),
                             peak_signal_noise_ratio(gb[2:-2, 2:-2].astype(float),
                                                     ga[2:-2, 2:-2].astype(float), data_range=255),
                             rtol=1e-12)
  np.testing.assert_allclose(sr.ssim_y(ga[..., None], gb[..., None], 2),
                             skimage_ssim(ga[2:-2, 2:-2].astype(float), gb[2:-2, 2:-2].astype(float)),
                             atol=1e-12)


def test_identical_images_give_inf_psnr_and_ssim_one(pair):
  _, hr = pair
  assert sr.psnr_y(hr, hr.copy(), 4) == float("inf")
  np.testing.assert_allclose(sr.ssim_y(hr, hr.copy(), 4), 1.0, rtol=0, atol=1e-12)


def test_crop_removes_the_border(pair):
  out, hr = pair
  crop = 4
  spoiled = out.copy()
  spoiled[:crop] = 255 - spoiled[:crop]
  spoiled[:, -crop:] = 0
  assert sr.psnr_y(spoiled, hr, crop) == sr.psnr_y(out, hr, crop)
  assert sr.ssim_y(spoiled, hr, crop) == sr.ssim_y(out, hr, crop)
  assert sr.psnr_y(spoiled, hr, crop - 1) < sr.psnr_y(out, hr, crop - 1) - 1
  assert sr.ssim_y(spoiled, hr, crop - 1) < sr.ssim_y(out, hr, crop - 1)
  # crop k == scoring the images cut by k with no crop.
  inner = (slice(crop, -crop), slice(crop, -crop))
  assert sr.psnr_y(out, hr, crop) == sr.psnr_y(out[inner], hr[inner], 0)
  assert sr.ssim_y(out, hr, crop) == sr.ssim_y(out[inner], hr[inner], 0)


def test_score_pairs_averages_pairs_of_any_size(pair):
  out, hr = pair
  outputs = [out, out[:40, :64], out[10:70, 5:35]]
  targets = [hr, hr[:40, :64], hr[10:70, 5:35]]
  scores = sr.score_pairs(outputs, targets, crop=2)
  assert set(scores) == {"psnr_y", "ssim_y"}
  np.testing.assert_allclose(scores["psnr_y"],
                             np.mean([sr.psnr_y(a, b, 2) for a, b in zip(outputs, targets)]))
  np.testing.assert_allclose(scores["ssim_y"],
                             np.mean([sr.ssim_y(a, b, 2) for a, b in zip(outputs, targets)]))
  # Per-image means, not one pooled MSE: the pairs' PSNRs differ.
  assert np.ptp([sr.psnr_y(a, b, 2) for a, b in zip(outputs, targets)]) > 0.01


def test_bad_inputs_are_user_errors(pair):
  out, hr = pair
  with pytest.raises(UserError, match="uint8.*float32.*astype"):
    sr.psnr_y(out.astype(np.float32) / 255, hr, 4)
  with pytest.raises(UserError, match="differs from the target's"):
    sr.ssim_y(out[:-1], hr, 4)
  with pytest.raises(UserError, match="leaves less than 11x11"):
    sr.ssim_y(out[:20, :20], hr[:20, :20], 5)
  with pytest.raises(UserError, match="crop must be"):
    sr.psnr_y(out, hr, -1)
  with pytest.raises(UserError, match="shape"):
    sr.psnr_y(np.stack([out, out]), np.stack([hr, hr]), 4)
  with pytest.raises(UserError, match="one target per output"):
    sr.score_pairs([out, out], [hr], 4)
