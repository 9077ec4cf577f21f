"""PSNR and SSIM on the Y channel, as super-resolution papers report them.

The protocol is BasicSR's `calculate_psnr` / `calculate_ssim` with `test_y_channel=True` (the
one ESRGAN and Real-ESRGAN are scored with, itself the MATLAB scripts' of the earlier papers):

  - RGB uint8 images -> the Y of ITU-R BT.601 YCbCr as MATLAB's rgb2ycbcr defines it,
    Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1], so Y is in [16, 235].
    Y is kept in float64, not rounded (BasicSR's choice; MATLAB's uint8 rgb2ycbcr rounds, which
    moves PSNR by about 0.01 dB). One-channel images are used as they are, as BasicSR does.
  - `crop` pixels (the scale factor, by convention) removed from each side.
  - PSNR = 10 log10(255^2 / MSE); identical images give inf (BasicSR's answer; no cap, so a mean
    over pairs that holds one is inf too).
  - SSIM of Wang et al. 2004 as their MATLAB ssim.m computes it: an 11x11 Gaussian window with
    sigma 1.5, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, 'valid' filtering (only windows wholly
    inside the cropped image), the map's mean.

Everything is numpy in float64: the metrics are computed once per test image, not in a step.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gan_jax.errors import UserError

# MATLAB rgb2ycbcr's Y row for R, G, B in [0, 1], and its offset.
Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
Y_OFFSET = 16.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def _check_image(img, what):
  img = np.asarray(img)
  if img.dtype != np.uint8:
    raise UserError(f"SR metrics take uint8 images in [0, 255], and the {what} is {img.dtype}: "
                    "quantise it first, e.g. np.clip(np.round(x), 0, 255).astype(np.uint8).")
  if img.ndim == 3 and img.shape[-1] == 1:
    img = img[..., 0]
  if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 3)):
    raise UserError(f"SR metrics take HWC images with 3 (RGB) or 1 (gray) channels, or HW gray "
                    f"ones, and the {what} has shape {img.shape}: pass one image, not a batch.")
  return img


def rgb_to_y(img) -> np.ndarray:
  """uint8 RGB HWC -> float64 [H, W] Y in [16, 235] (MATLAB's rgb2ycbcr, unrounded); gray images
  (HW or HW1) come back as float64 unchanged."""
  img = _check_image(img, "image")
  if img.ndim == 2:
    return img.astype(np.float64)
  return Y_OFFSET + (img.astype(np.float64) / 255.0) @ Y_WEIGHTS


def _y_pair(a, b, crop, min_size=1):
  a, b = _check_image(a, "output"), _check_image(b, "target")
  if a.shape != b.shape:
    raise UserError(f"The output's shape {a.shape} differs from the target's {b.shape}: crop the "
                    "target to a multiple of the scale before upscaling, so both match.")
  if not isinstance(crop, (int, np.integer)) or crop < 0:
    raise UserError(f"crop must be a whole number of pixels >= 0 (the scale), not {crop!r}.")
  h, w = a.shape[:2]
  if min(h, w) - 2 * crop < min_size:
    raise UserError(f"A {h}x{w} image cropped by {crop} on each side leaves less than "
                    f"{min_size}x{min_size} pixels: use a smaller crop or larger images.")
  ya, yb = rgb_to_y(a), rgb_to_y(b)
  if crop:
    ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
  return ya, yb


def psnr_y(a, b, crop: int) -> float:
  """PSNR in dB of uint8 images a (output) and b (target) on Y, `crop` border pixels removed."""
  ya, yb = _y_pair(a, b, crop)
  mse = np.mean((ya - yb) ** 2)
  if mse == 0:
    return float("inf")
  return float(10.0 * np.log10(255.0 ** 2 / mse))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """The 1-D normalised Gaussian the 2-D window is the outer product of (MATLAB's fspecial)."""
  t = np.arange(size) - (size - 1) / 2
  g = np.exp(-t ** 2 / (2 * sigma ** 2))
  return g / g.sum()


def _filter_valid(img, g):
  """Correlation with the separable window g x g, 'valid': [H, W] -> [H - k + 1, W - k + 1]."""
  rows = sliding_window_view(img, len(g), axis=0) @ g
  return sliding_window_view(rows, len(g), axis=1) @ g


def ssim_y(a, b, crop: int) -> float:
  """SSIM of uint8 images a (output) and b (target) on Y, `crop` border pixels removed."""
  ya, yb = _y_pair(a, b, crop, min_size=SSIM_WINDOW)
  g = gaussian_window()
  mu_a, mu_b = _filter_valid(ya, g), _filter_valid(yb, g)
  var_a = _filter_valid(ya * ya, g) - mu_a ** 2
  var_b = _filter_valid(yb * yb, g) - mu_b ** 2
  cov = _filter_valid(ya * yb, g) - mu_a * mu_b
  ssim_map = (((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2))
              / ((mu_a ** 2 + mu_b ** 2 + SSIM_C1) * (var_a + var_b + SSIM_C2)))
  return float(ssim_map.mean())


def score_pairs(outputs, targets, crop: int) -> dict:
  """{"psnr_y": mean PSNR, "ssim_y": mean SSIM} over pairs of uint8 images (any sizes, each
  output the size of its target), each pair scored on its own as the papers average them."""
  outputs, targets = list(outputs), list(targets)
  if len(outputs) != len(targets) or not outputs:
    raise UserError(f"score_pairs needs one target per output and at least one pair, got "
                    f"{len(outputs)} outputs and {len(targets)} targets: pass matching lists.")
  psnrs = [psnr_y(a, b, crop) for a, b in zip(outputs, targets)]
  ssims = [ssim_y(a, b, crop) for a, b in zip(outputs, targets)]
  return {"psnr_y": float(np.mean(psnrs)), "ssim_y": float(np.mean(ssims))}
