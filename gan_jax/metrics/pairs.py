"""Paired image-translation metrics: L1, PSNR and SSIM between outputs and their targets.

For pix2pix-style tasks where every input has one right answer (digit_edges: edges -> digit), the
output is compared with its target pixel by pixel. Pure numpy in float64 on the host: evaluation
scores a few hundred small images, so there is nothing for an accelerator to win, and the numbers
do not depend on the backend.

Images are float NHWC in [-1, 1], as the models produce them. L1 is measured in those units;
PSNR and SSIM first map pixels to [0, 1] (data range 1), the scale papers report them on. Each
metric is computed per image and then averaged (`per_image=True` returns the [N] values).
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# SSIM constants of Wang et al. 2004 (and their reference code): an 11-tap Gaussian window of
# sigma 1.5, K1 = 0.01, K2 = 0.03, data range L = 1.
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
# An exact copy has MSE 0: the MSE is floored here so PSNR stays finite (100 dB) and averages.
MIN_MSE = 1e-10


def _pair(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 4:
    raise ValueError(f"pair metrics want two NHWC batches of one shape, got {a.shape} and "
                     f"{b.shape}")
  return a, b


def _reduce(values, per_image):
  return values if per_image else float(values.mean())


def l1(a, b, per_image=False):
  """Mean absolute difference in [-1, 1] units (0 = identical, 2 = black vs white)."""
  a, b = _pair(a, b)
  return _reduce(np.abs(a - b).mean(axis=(1, 2, 3)), per_image)


def psnr(a, b, per_image=False):
  """Peak signal-to-noise ratio in dB on the [0, 1] pixel scale: 10 log10(1 / MSE) per image."""
  a, b = _pair(a, b)
  mse = (((a - b) / 2.0) ** 2).mean(axis=(1, 2, 3))  # [-1, 1] -> [0, 1] halves differences
  return _reduce(10.0 * np.log10(1.0 / np.maximum(mse, MIN_MSE)), per_image)


def _gaussian():
  r = np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2
  g = np.exp(-(r ** 2) / (2.0 * SSIM_SIGMA ** 2))
  return g / g.sum()


def _blur(x, g):
  """Separable 'valid' filtering of [N, H, W, C] by the window g along H and W: statistics of
  the windows that lie inside the image, as in Wang et al.'s code (no padding)."""
  x = sliding_window_view(x, len(g), axis=1) @ g
  return sliding_window_view(x, len(g), axis=2) @ g


def ssim(a, b, per_image=False):
  """Structural similarity (Wang et al. 2004) on [0, 1]: Gaussian-weighted local means, variances
  and covariance over every 11x11 window inside the image; the map's mean per channel, channels
  averaged. Images need sides of at least 11 pixels."""
  a, b = _pair(a, b)
  if min(a.shape[1:3]) < SSIM_WINDOW:
    raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got "
                     f"{a.shape[1]}x{a.shape[2]}")
  a, b = (a + 1.0) / 2.0, (b + 1.0) / 2.0
  g = _gaussian()
  mu_a, mu_b = _blur(a, g), _blur(b, g)
  var_a = _blur(a * a, g) - mu_a ** 2
  var_b = _blur(b * b, g) - mu_b ** 2
  cov = _blur(a * b, g) - mu_a * mu_b
  c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
       / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
  return _reduce(s.mean(axis=(1, 2, 3)), per_image)


def pair_metrics(outputs, targets):
  """{"l1", "psnr", "ssim"} of translated outputs against their targets, each a mean over images."""
  return {"l1": l1(outputs, targets), "psnr": psnr(outputs, targets),
          "ssim": ssim(outputs, targets)}
