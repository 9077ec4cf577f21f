"""Each conv shape of the translation nets, forward plus both gradients, native vs matmul form.

  python benchmarks/translation_layers.py [--resolution=64] [--width=64] [--batch_size=1]
      [--steps=5] [--layers=NAME,...] [--json=PATH]

Times jit(value_and_grad(sum(layer(x, k)^2), (x, k))) at the shapes the nets give an image of
side `resolution`: the ResNet generator's 7x7 and 3x3 reflect-padded convs, 3x3 stride-2 conv
and transposed conv; the PatchGAN's 4x4 stride-1 convs; the U-Net's 4x4 stride-2 convs and
transposed convs. Forms: `conv` is XLA's native convolution on a pre-padded input (what GPUs
and TPUs run); `gemm` the CPU form (`cpu_conv`); for the stride-1 convs also `padded` (XLA's
conv with built-in padding, cropped) and the matmul `im2col` or `col2im`, forced, and for the
3x3 ones Winograd F(2x2, 3x3) and F(4x4, 3x3) (`winograd`, `winograd4`), for the widening 4x4
ones F(2x2, 4x4) and F(3x3, 4x4) (`winograd_k4`, `winograd3_k4`); for the 4x4 stride-2
layers `im2col` and `winograd`, forced, and for the transposed ones also `taps`
(`cpu_conv.transpose_form`). `auto` names what the layer picks on this backend.
Prints one JSON object (ms, median).
"""
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.models import cpu_conv
from gan_jax.models.layers import (Conv3x3s2, Conv4x4s2, ConvS1, ConvTranspose3x3s2,
                                   ConvTranspose4x4s2, _use_gemm)

import timing

flags.DEFINE_integer("resolution", 64, "image side")
flags.DEFINE_integer("width", 64, "ngf = ndf")
flags.DEFINE_integer("batch_size", 1, "batch")
flags.DEFINE_integer("steps", 5, "timed calls per layer and form")
flags.DEFINE_list("layers", [], "only these layers (names as in the output); default: all")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def translation_layers(r, w):
  """(name, layer factory, input side, in channels, out channels)."""
  reflect = lambda k: lambda o, impl: ConvS1(o, k, padding=k // 2, pad_mode="reflect", impl=impl)
  patch = lambda o, impl: ConvS1(o, 4, padding=1, impl=impl)
  s2 = lambda o, impl: Conv3x3s2(o, impl=impl)
  t2 = lambda o, impl: ConvTranspose3x3s2(o, impl=impl)
  return [
      ("resnet_in_7x7", reflect(7), r, 3, w), ("resnet_down0_3x3s2", s2, r, w, 2 * w),
      ("resnet_down1_3x3s2", s2, r // 2, 2 * w, 4 * w),
      ("resnet_block_3x3", reflect(3), r // 4, 4 * w, 4 * w),
      ("resnet_up0_3x3t2", t2, r // 4, 4 * w, 2 * w), ("resnet_up1_3x3t2", t2, r // 2, 2 * w, w),
      ("resnet_out_7x7", reflect(7), r, w, 3),
      ("patchgan_conv3_4x4s1", patch, r // 8, 4 * w, 8 * w),
      ("patchgan_out_4x4s1", patch, r // 8 - 1, 8 * w, 1),
  ]


def unet_layers(r, w):
  """The U-Net's 4x4 stride-2 convs and transposed convs (unet_<r>): at batch 1 its inner
  layers hold large kernels over few pixels, unlike DCGAN's."""
  n = r.bit_length() - 1
  widths = [w * min(2 ** i, 8) for i in range(n)]
  down = lambda o, impl: Conv4x4s2(o, impl=impl)
  up = lambda o, impl: ConvTranspose4x4s2(o, impl=impl)
  layers = []
  for i in range(n):
    layers.append((f"unet_down{i}", down, r >> i, widths[i - 1] if i else 3, widths[i]))
    layers.append((f"unet_up{i}", up, r >> (i + 1), widths[i] * (1 if i == n - 1 else 2),
                   widths[i - 1] if i else 3))
  return layers


def form_4x4(name, x, cin, cout):
  """The form the 4x4 layer picks (the transposed conv is the input gradient of a conv whose
  output has x's shape)."""
  if "down" in name:
    b, h, w = x.shape[:3]
    return cpu_conv.form(jnp.zeros((4, 4, cin, cout)), (b, h // 2, w // 2))
  return cpu_conv.transpose_form(jnp.zeros((4, 4, cin, cout)), x.shape)


def time_layer(factory, x, cout, form, steps):
  impl = "conv" if form == "conv" else "gemm"
  real_form, real_transpose_form = cpu_conv.conv_s1_form, cpu_conv.transpose_form
  real_thresholds = cpu_conv.WINOGRAD_MIN_CHANNELS, cpu_conv.WINOGRAD_CACHE_ENTRIES
  if form in cpu_conv.S1_FORMS:
    cpu_conv.conv_s1_form = lambda x, k: form
  if form == "taps":
    cpu_conv.transpose_form = lambda kernel, x_shape: "taps"
  if form in ("winograd", "im2col"):  # the 4x4 layers' forms, forced (never taps)
    cpu_conv.WINOGRAD_MIN_CHANNELS = 1 if form == "winograd" else 10**9
    cpu_conv.WINOGRAD_CACHE_ENTRIES = 10**18
  try:
    layer = factory(cout, impl)
    params = layer.init(jax.random.PRNGKey(0), x)["params"]
    loss = lambda x, p: jnp.sum(layer.apply({"params": p}, x) ** 2)
    fn = jax.jit(jax.value_and_grad(loss, (0, 1)))
    _, times = timing.time_calls(lambda: fn(x, params), steps, 1, jax.block_until_ready)
  finally:
    cpu_conv.conv_s1_form, cpu_conv.transpose_form = real_form, real_transpose_form
    cpu_conv.WINOGRAD_MIN_CHANNELS, cpu_conv.WINOGRAD_CACHE_ENTRIES = real_thresholds
  return 1000 * statistics.median(times)


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  results = {}
  layers = translation_layers(FLAGS.resolution, FLAGS.width)
  layers += unet_layers(FLAGS.resolution, FLAGS.width)
  if FLAGS.layers:
    layers = [layer for layer in layers if layer[0] in FLAGS.layers]
  for name, factory, side, cin, cout in layers:
    x = jnp.asarray(rng.normal(size=(FLAGS.batch_size, side, side, cin)), jnp.float32)
    unet = name.startswith("unet")
    stride1 = not unet and "3x3s2" not in name and "3x3t2" not in name
    # Of the two matmul forms only the one with the narrower wide array (k*k times the smaller
    # side): the other was measured 3-1000x slower.
    matmul = "im2col" if cin <= cout else "col2im"
    forms = (["conv", "im2col", "winograd"] + (["taps"] if "up" in name else []) if unet else
             ["conv", "gemm"] + (["padded", matmul] if stride1 else [])
             + (["winograd", "winograd4"] if stride1 and name.endswith("_3x3") else [])
             + (["winograd_k4", "winograd3_k4"] if stride1 and "4x4s1" in name and cout > 1
                else []))
    ms = {form: time_layer(factory, x, cout, form, FLAGS.steps) for form in forms}
    auto = "gemm" if _use_gemm("auto") else "conv"
    if auto == "gemm" and unet:
      auto = form_4x4(name, x, cin, cout)
    elif auto == "gemm" and stride1:
      size = int(name.split("_")[-1][0])  # ..._7x7, ..._4x4s1
      pad = 1 if size == 4 else size // 2  # what the layer pads x by before its VALID conv
      padded = jnp.zeros((x.shape[0], side + 2 * pad, side + 2 * pad, cin))
      auto = cpu_conv.conv_s1_form(padded, jnp.zeros((size, size, cin, cout)))
    results[name] = {"input": [side, side, cin], "out_channels": cout, "auto": auto, "ms": ms}
  totals = {"conv": sum(v["ms"]["conv"] for v in results.values()),
            "auto": sum(v["ms"].get(v["auto"], float("nan")) for v in results.values())}
  timing.emit({"backend": jax.default_backend(), "batch_size": FLAGS.batch_size,
               "resolution": FLAGS.resolution, "width": FLAGS.width, "layers": results,
               "total_ms": totals}, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
