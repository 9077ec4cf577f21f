"""torchvision's VGG `features` stacks in JAX, frozen: VGG19 for ESRGAN-style perceptual losses,
VGG16 for LPIPS (`lpips.py`).

VGG19's stack is 16 3x3 convolutions (stride 1, zero padding 1) with ReLU and 5 2x2 max pools,
named as BasicSR names them: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ... conv5_4,
relu5_4, pool5; VGG16's is the same with 13 convolutions (three in blocks 3-5, up to conv5_3).
Each is a `Net`; the functions below take `net=VGG19` unless told otherwise. `features` returns
the requested layers' activations and computes nothing past the deepest one. ESRGAN's loss reads
conv5_4 *before* its ReLU (features after ReLU are sparse and weaker, Wang et al. 2018, sec.
3.3); Real-ESRGAN reads conv1_2, conv2_2, conv3_4, conv4_4 and conv5_4, before ReLU, weighted
0.1, 0.1, 1, 1, 1 (`REAL_ESRGAN_LAYERS`).

Inputs are NHWC in [-1, 1] (the generators' range): they are mapped to [0, 1] and normalised
with ImageNet's mean and std, as BasicSR's `VGGFeatureExtractor(use_input_norm=True)` does.

Weights: torchvision's `vgg19-dcabb4bb.pth`, converted once by `gan-jax convert-vgg19` (needs
torch; VGG16's `vgg16-397923af.pth` goes into LPIPS's file, by `gan-jax convert-lpips`) into a
plain `.npz` of HWIO kernels and biases ("conv1_1/kernel", "conv1_1/bias", ...) that this module
reads without torch and without pickle. They are a plain dict of arrays, not Flax parameters:
the network is never trained.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.cache import cache_dir
from gan_jax.errors import UserError
from gan_jax.metrics.cache import load_npz, read_torch_weights, save_npz
from gan_jax.models import cpu_conv, layers as model_layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
REAL_ESRGAN_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                      "conv5_4": 1.0}
ESRGAN_LAYERS = {"conv5_4": 1.0}
TORCH_URL = "https://download.pytorch.org/models/"


@dataclasses.dataclass(frozen=True)
class Net:
  """One of torchvision's VGG `features` stacks: `blocks` holds the output channels of each
  conv, per block (a pool ends a block); `torch_weights` is torchvision's file of its weights.
  `layout` is (name, kind, torch index of the module, cin, cout) for every module."""
  name: str
  blocks: tuple
  torch_weights: str
  layout: tuple = dataclasses.field(init=False, repr=False)

  def __post_init__(self):
    layout, index, cin = [], 0, 3
    for b, block in enumerate(self.blocks, start=1):
      for c, cout in enumerate(block, start=1):
        layout.append((f"conv{b}_{c}", "conv", index, cin, cout))
        layout.append((f"relu{b}_{c}", "relu", index + 1, cout, cout))
        index, cin = index + 2, cout
      layout.append((f"pool{b}", "pool", index, cin, cin))
      index += 1
    object.__setattr__(self, "layout", tuple(layout))

  @property
  def layer_names(self):
    return tuple(name for name, *_ in self.layout)

  @property
  def conv_names(self):
    return tuple(name for name, kind, *_ in self.layout if kind == "conv")

  @property
  def torch_url(self):
    return TORCH_URL + self.torch_weights


# torchvision's configurations "D" and "E".
VGG16 = Net("VGG16", ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3),
            "vgg16-397923af.pth")
VGG19 = Net("VGG19", ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
            "vgg19-dcabb4bb.pth")
# VGG19's, the perceptual loss's network, under the names its callers use.
TORCH_WEIGHTS, TORCH_WEIGHTS_URL = VGG19.torch_weights, VGG19.torch_url
LAYOUT, LAYER_NAMES, CONV_NAMES = VGG19.layout, VGG19.layer_names, VGG19.conv_names


def weight_shapes(net: Net = VGG19) -> dict:
  """{"conv1_1/kernel": (3, 3, 3, 64), "conv1_1/bias": (64,), ...}: VGG19's 32 arrays hold
  20,024,384 values, VGG16's 26 hold 14,714,688."""
  shapes = {}
  for name, kind, _, cin, cout in net.layout:
    if kind == "conv":
      shapes[f"{name}/kernel"] = (3, 3, cin, cout)
      shapes[f"{name}/bias"] = (cout,)
  return shapes


# ---------------------------------------------------------------------------------------------
# The network


def normalize_input(x):
  """[-1, 1] -> [0, 1] -> ImageNet-normalised; gray (1 channel) repeated to RGB."""
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  x = (x.astype(jnp.float32) + 1.0) * 0.5
  return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def max_pool2x(x):
  """torch's MaxPool2d(2): 2x2 windows, stride 2, an odd last row or column dropped. Written as
  a reshape and a max, whose gradient XLA:CPU runs faster than reduce_window's."""
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def frozen(weights: dict) -> dict:
  """`weights` with each kernel a `cpu_conv.FrozenKernel`: for losses that train no VGG weight,
  run with impl "auto" (see DEFAULT_IMPL)."""
  return {key: cpu_conv.FrozenKernel(value) if key.endswith("/kernel") else value
          for key, value in weights.items()}


def check_layers(layers, net: Net = VGG19):
  layers = (layers,) if isinstance(layers, str) else tuple(layers)
  unknown = [name for name in layers if name not in net.layer_names]
  if unknown or not layers:
    what = f"no layer {unknown[0]!r}" if unknown else "nothing to compute for an empty layer list"
    raise UserError(f"{net.name} has {what}: name layers as convX_Y, reluX_Y or poolX (convs: "
                    f"{', '.join(net.conv_names)}).")
  return layers


# XLA's native conv by default, on every backend. conv_same's CPU forms run VGG19 faster since
# its 3x3 convs of 64 channels and more became Winograd (python benchmarks/vgg_loss.py, batch 4
# at 128x128 to conv5_4, 2026-12-05: 0.33 s forward + input gradient against 0.48 s), but where
# the weights are the step's constants XLA folds the Winograd kernel transforms at compile time,
# slowly: the perceptual loss's value and gradient compiled in 167 s against 30 s with the
# weights as arguments, which then ran 0.77 s against 0.46 s, every step transforming the
# kernels again (2026-12-06); ESRGAN's step compiled for ~7 minutes. `frozen` weights, whose
# kernels are transformed once on the host, take the CPU forms with impl "auto" (ESRGAN's
# perceptual loss: `cpu_conv.FrozenKernel`).
DEFAULT_IMPL = "conv"


def features(weights: dict, x, layers=("conv5_4",), impl: str = DEFAULT_IMPL,
             net: Net = VGG19) -> dict:
  """{layer name: NHWC activation} of images x (NHWC, [-1, 1], 1 or 3 channels).

  `convX_Y` is a conv's output before its ReLU, `reluX_Y` after it, `poolX` after the block's
  max pool. Layers past the deepest requested one are not computed. `weights`: `load_weights`'s
  dict (numpy or jax arrays) or `frozen`'s. `impl` is `layers.conv_same`'s ("auto": matrix
  products on CPU).
  """
  layers = check_layers(layers, net)
  last = max(net.layer_names.index(name) for name in layers)
  wanted = set(layers)
  out = {}
  h = normalize_input(x)
  for name, kind, *_ in net.layout[:last + 1]:
    if kind == "conv":
      kernel = weights[f"{name}/kernel"]
      if not isinstance(kernel, cpu_conv.FrozenKernel):
        kernel = jnp.asarray(kernel, jnp.float32)
      h = model_layers.conv_same(h, kernel, impl)
      h = h + jnp.asarray(weights[f"{name}/bias"], jnp.float32)
    elif kind == "relu":
      h = jax.nn.relu(h)
    else:
      h = max_pool2x(h)
    if name in wanted:
      out[name] = h
  return out


def perceptual_loss(weights: dict, x, y, layer_weights: dict = None, criterion: str = "l1",
                    impl: str = DEFAULT_IMPL):
  """sum over layers of w * mean |f(x) - f(y)| ("l1") or mean (f(x) - f(y))^2 ("l2"), a scalar.

  x: the generated images, y: the targets (NHWC in [-1, 1]); y's features are constants
  (stop_gradient), as BasicSR detaches them. `layer_weights` defaults to ESRGAN's {"conv5_4": 1}.
  x and y run as two batches, not one: y needs no backward pass.
  """
  layer_weights = ESRGAN_LAYERS if layer_weights is None else layer_weights
  if criterion not in ("l1", "l2"):
    raise UserError(f"Perceptual loss criterion {criterion!r} is unknown: use 'l1' or 'l2'.")
  names = check_layers(tuple(layer_weights))
  fx = features(weights, x, names, impl)
  fy = jax.lax.stop_gradient(features(weights, jax.lax.stop_gradient(y), names, impl))
  total = jnp.float32(0.0)
  for name in names:
    d = fx[name] - fy[name]
    total = total + layer_weights[name] * jnp.mean(jnp.abs(d) if criterion == "l1" else d * d)
  return total


# ---------------------------------------------------------------------------------------------
# Weights: conversion from torchvision's state dict, npz files


def from_torch(state_dict: dict, net: Net = VGG19) -> dict:
  """torchvision's VGG state dict (name -> numpy array) -> {"convX_Y/kernel" (HWIO), ...}.

  The classifier's tensors are ignored; raises UserError naming the first tensor of `features`
  that is unexpected, misshapen or missing.
  """
  expected = weight_shapes(net)
  conv_at = {index: name for name, kind, index, *_ in net.layout if kind == "conv"}
  out = {}
  for torch_key, value in state_dict.items():
    if torch_key.startswith("classifier."):
      continue
    parts = torch_key.split(".")
    name = None
    if (len(parts) == 3 and parts[0] == "features" and parts[1].isdigit()
        and parts[2] in ("weight", "bias")):
      name = conv_at.get(int(parts[1]))
    if name is None:
      raise UserError(f"The weights hold a tensor {torch_key!r} that torchvision's {net.name} "
                      f"does not have: convert {net.torch_weights} ({net.name.lower()}, not "
                      f"{net.name.lower()}_bn or another network).")
    value = np.asarray(value, dtype=np.float32)
    key = f"{name}/{'kernel' if parts[2] == 'weight' else 'bias'}"
    if value.ndim == 4:
      value = value.transpose(2, 3, 1, 0)  # torch's [out, in, h, w] -> [h, w, in, out]
    if value.shape != expected[key]:
      raise UserError(f"Tensor {torch_key!r} does not have {net.name}'s shape for it "
                      f"({value.shape} after transposing, expected {expected[key]}): convert "
                      f"{net.torch_weights}.")
    out[key] = value
  missing = [k for k in expected if k not in out]
  if missing:
    raise UserError(f"The weights lack {len(missing)} of {net.name}'s {len(expected)} feature "
                    f"tensors (first: {missing[0]}): convert the complete {net.torch_weights}.")
  return out


def default_weights_path() -> str:
  return os.path.join(cache_dir(), "vgg19.npz")


def save_weights(weights: dict, path: str) -> str:
  """Writes {name: array} as a pickle-free .npz; returns the path."""
  save_npz(path, {k: np.asarray(v, np.float32) for k, v in weights.items()})
  return path


def missing_weights_message(path: str) -> str:
  return (f"The VGG19 perceptual loss needs torchvision's VGG19 weights, and {path} does not "
          f"exist: download {TORCH_WEIGHTS_URL} and convert it with `gan-jax convert-vgg19 "
          f"{TORCH_WEIGHTS} {path}` (needs torch: pip install 'gan-jax[convert]').")


def load_weights(path: str | None = None) -> dict:
  """{"conv1_1/kernel": HWIO float32 array, ...} from a converted .npz (default: the cache's)."""
  path = path or default_weights_path()
  if not os.path.exists(path):
    raise UserError(missing_weights_message(path))
  return load_npz(path, weight_shapes(), "VGG19's weights", "gan-jax convert-vgg19")


def random_weights(seed: int = 0, net: Net = VGG19) -> dict:
  """Random weights with the real ones' shapes (He-normal kernels, small biases), for tests and
  timings without a download; activations stay O(1) through all the convs."""
  rng = np.random.default_rng(seed)
  out = {}
  for key, shape in weight_shapes(net).items():
    if key.endswith("kernel"):
      value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
    else:
      value = rng.normal(0.0, 0.1, shape)
    out[key] = value.astype(np.float32)
  return out


def convert(torch_path: str, out_path: str | None = None) -> str:
  """torchvision's vgg19-dcabb4bb.pth -> a converted .npz (default: the cache); returns its path."""
  weights = from_torch(read_torch_weights(torch_path, "VGG19", TORCH_WEIGHTS, TORCH_WEIGHTS_URL))
  return save_weights(weights, out_path or default_weights_path())
