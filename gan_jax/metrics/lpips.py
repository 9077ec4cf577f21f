"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), its VGG variant v0.1, in JAX: the perceptual distance of `gan-jax project`.

    d(x, y) = sum over taps t of mean over positions of sum_c w_tc (u_t(x)_c - u_t(y)_c)^2

The taps are relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 of torchvision's VGG16 `features`
(`vgg.VGG16`); u scales each position's channel vector to unit length (x / (|x| + 1e-10), as
lpips's `normalize_tensor`); w_t is the tap's learned 1x1 "lin" layer, one non-negative weight
per channel and no bias. Inputs in [-1, 1] first pass LPIPS's scaling layer, (x - shift) / scale
with shift (-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450): that is ImageNet's mean
and std written for [-1, 1] inputs (shift = 2 mean - 1, scale = 2 std), which is what
`vgg.features` applies, so the layer is not repeated here. Gray pictures are repeated to RGB.

Weights: one pickle-free .npz holding VGG16's kernels and biases under `vgg`'s names
("conv1_1/kernel", ...) and the lin weights ("lin/relu1_2", ...: [C]), written once by
`gan-jax convert-lpips` (needs torch) from torchvision's `vgg16-397923af.pth` and lpips's
`weights/v0.1/vgg.pth` (shipped inside the `lpips` pip package). By default it lives in the cache,
where `gan-jax project` looks for it.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from gan_jax.cache import cache_dir
from gan_jax.errors import UserError
from gan_jax.metrics import vgg
from gan_jax.metrics.cache import load_npz, read_torch_weights

TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
EPS = 1e-10
MIN_SIDE = 16  # relu5_3 comes after four 2x2 pools: a smaller picture leaves it no pixel
LIN_WEIGHTS = "vgg.pth"
LIN_URL = ("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
           + LIN_WEIGHTS)
_CHANNELS = {name: cout for name, _, _, _, cout in vgg.VGG16.layout if name in TAPS}
# lpips's state dict: lin{i}.model.1.weight, [1, C, 1, 1] (model.0 is a dropout, no weights).
_LIN_TORCH_KEYS = {f"lin{i}.model.1.weight": tap for i, tap in enumerate(TAPS)}


def weight_shapes() -> dict:
  """VGG16's 26 feature arrays and the 5 lin weight vectors, by name."""
  return {**vgg.weight_shapes(vgg.VGG16), **{f"lin/{t}": (c,) for t, c in _CHANNELS.items()}}


# ---------------------------------------------------------------------------------------------
# The distance


def unit_normalize(x):
  """Each position's channel vector (the last axis) scaled to unit length, x / (|x| + EPS) as
  lpips does. The square root is taken where the sum is positive only: at an all-zero vector
  its gradient is infinite, and inf * 0 would make the whole gradient NaN."""
  sq = jnp.sum(jnp.square(x), -1, keepdims=True)
  norm = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
  return x / (norm + EPS)


def check_size(height: int, width: int) -> None:
  if min(height, width) < MIN_SIDE:
    raise UserError(f"LPIPS needs pictures of at least {MIN_SIDE}x{MIN_SIDE} pixels (its deepest "
                    f"VGG16 layer comes after four 2x2 poolings), and these are {height}x{width}: "
                    "use it on a run that draws larger pictures.")


def features(weights: dict, x, impl: str = vgg.DEFAULT_IMPL) -> list:
  """The 5 taps of images x (NHWC in [-1, 1], 1 or 3 channels), unit-normalised, NHWC."""
  check_size(*x.shape[1:3])
  taps = vgg.features(weights, x, TAPS, impl, net=vgg.VGG16)
  return [unit_normalize(taps[t]) for t in TAPS]


def distance_of_features(weights: dict, fx: list, fy: list):
  """LPIPS [N] between two images' `features` (so a fixed target's are computed once)."""
  total = 0.0
  for tap, a, b in zip(TAPS, fx, fy):
    w = jnp.asarray(weights[f"lin/{tap}"], jnp.float32)
    total = total + jnp.mean(jnp.sum(w * jnp.square(a - b), -1), axis=(1, 2))
  return total


def distance(weights: dict, x, y, impl: str = vgg.DEFAULT_IMPL):
  """LPIPS [N] between images x and y (NHWC in [-1, 1], the same shape)."""
  return distance_of_features(weights, features(weights, x, impl), features(weights, y, impl))


# ---------------------------------------------------------------------------------------------
# Weights


def lin_from_torch(state_dict: dict) -> dict:
  """lpips's v0.1 VGG lin state dict (name -> numpy array) -> {"lin/relu1_2": [64], ...}; one
  UserError naming the first tensor that is unexpected, misshapen, negative or missing."""
  out = {}
  for torch_key, value in state_dict.items():
    tap = _LIN_TORCH_KEYS.get(torch_key)
    if tap is None:
      raise UserError(f"The lin weights hold a tensor {torch_key!r} that LPIPS's VGG lin layers "
                      f"do not have: pass lpips's weights/v0.1/{LIN_WEIGHTS} (not alex.pth, "
                      "squeeze.pth or a whole model).")
    value = np.asarray(value, np.float32)
    if value.shape != (1, _CHANNELS[tap], 1, 1):
      raise UserError(f"Tensor {torch_key!r} is {value.shape}, and LPIPS's VGG lin layer for "
                      f"{tap} is (1, {_CHANNELS[tap]}, 1, 1): pass lpips's "
                      f"weights/v0.1/{LIN_WEIGHTS}.")
    if (value < 0).any():
      raise UserError(f"Tensor {torch_key!r} holds negative weights, which LPIPS's lin layers "
                      f"never have (training clamps them at 0): pass lpips's "
                      f"weights/v0.1/{LIN_WEIGHTS}.")
    out[f"lin/{tap}"] = value.reshape(-1)
  missing = [k for k in _LIN_TORCH_KEYS if k not in state_dict]
  if missing:
    raise UserError(f"The lin weights lack {len(missing)} of LPIPS's {len(TAPS)} VGG lin layers "
                    f"(first: {missing[0]}): pass lpips's weights/v0.1/{LIN_WEIGHTS}.")
  return out


def default_weights_path() -> str:
  return os.path.join(cache_dir(), "lpips_vgg16_v0.1.npz")


def missing_weights_message(path: str) -> str:
  return (f"LPIPS needs VGG16's and its own lin weights, and {path} does not exist: download "
          f"{vgg.VGG16.torch_url} and {LIN_URL} (`pip install lpips` also ships the latter, as "
          f"lpips/weights/v0.1/{LIN_WEIGHTS}) and convert them with `gan-jax convert-lpips "
          f"--vgg16={vgg.VGG16.torch_weights} --lin={LIN_WEIGHTS} --out={path}` (needs torch: "
          "pip install 'gan-jax[convert]').")


def load_weights(path: str | None = None) -> dict:
  """{name: float32 array} of a converted .npz (default: the cache's)."""
  path = path or default_weights_path()
  if not os.path.exists(path):
    raise UserError(missing_weights_message(path))
  return load_npz(path, weight_shapes(), "LPIPS's VGG16 and lin weights", "gan-jax convert-lpips")


def random_weights(seed: int = 0) -> dict:
  """Random weights with the real ones' shapes (`vgg.random_weights`' VGG16 and lin weights in
  [0, 0.2), about the real ones' size), for tests and timings without a download."""
  rng = np.random.default_rng(seed + 1)
  lin = {k: rng.uniform(0.0, 0.2, s).astype(np.float32) for k, s in weight_shapes().items()
         if k.startswith("lin/")}
  return {**vgg.random_weights(seed, vgg.VGG16), **lin}


def convert(vgg16_path: str, lin_path: str, out_path: str | None = None) -> str:
  """torchvision's vgg16-397923af.pth and lpips's v0.1 vgg.pth -> one converted .npz (default:
  the cache); returns its path."""
  lin = lin_from_torch(read_torch_weights(lin_path, "LPIPS", LIN_WEIGHTS, LIN_URL))
  trunk = vgg.from_torch(read_torch_weights(vgg16_path, "VGG16", vgg.VGG16.torch_weights,
                                            vgg.VGG16.torch_url), vgg.VGG16)
  return vgg.save_weights({**trunk, **lin}, out_path or default_weights_path())
