"""Each conv shape of the translation nets, forward plus both gradients, native vs matmul form.

  python benchmarks/translation_layers.py [--resolution=64] [--width=64] [--batch_size=1]
      [--steps=5] [--json=PATH]

Times jit(value_and_grad(sum(layer(x, k)^2), (x, k))) for the ResNet generator's 7x7 and 3x3
reflect-padded convs, its 3x3 stride-2 conv and transposed conv, and the PatchGAN's 4x4
stride-1 convs, at the shapes those nets give an image of side `resolution` (the U-Net's 4x4
stride-2 layers are DCGAN's: benchmarks/conv_layers.py). `conv` is XLA's native convolution on
a pre-padded input (what GPUs and TPUs run); `gemm` the CPU matmul form (`cpu_conv`: the 4x4
forms for the stride-2 layers, `conv_s1` for the stride-1 ones, whose variants `padded` (XLA's conv
with built-in padding, cropped) and `im2col` or `col2im` are also timed forced). `auto` names what the layer picks on this backend. Prints one
JSON object (ms, median).
"""
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.models import cpu_conv
from gan_jax.models.layers import Conv3x3s2, ConvS1, ConvTranspose3x3s2, _use_gemm

import timing

flags.DEFINE_integer("resolution", 64, "image side")
flags.DEFINE_integer("width", 64, "ngf = ndf")
flags.DEFINE_integer("batch_size", 1, "batch")
flags.DEFINE_integer("steps", 5, "timed calls per layer and form")
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


def time_layer(factory, x, cout, form, steps):
  impl = "conv" if form == "conv" else "gemm"
  real_form = cpu_conv.conv_s1_form
  if form in ("padded", "im2col", "col2im"):
    cpu_conv.conv_s1_form = lambda x, k: form
  try:
    layer = factory(cout, impl)
    params = layer.init(jax.random.PRNGKey(0), x)["params"]
    loss = lambda x, p: jnp.sum(layer.apply({"params": p}, x) ** 2)
    fn = jax.jit(jax.value_and_grad(loss, (0, 1)))
    _, times = timing.time_calls(lambda: fn(x, params), steps, 1, jax.block_until_ready)
  finally:
    cpu_conv.conv_s1_form = real_form
  return 1000 * statistics.median(times)


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  layers = {}
  for name, factory, side, cin, cout in translation_layers(FLAGS.resolution, FLAGS.width):
    x = jnp.asarray(rng.normal(size=(FLAGS.batch_size, side, side, cin)), jnp.float32)
    stride1 = "3x3s2" not in name and "3x3t2" not in name
    # Of the two matmul forms only the one with the narrower wide array (k*k times the smaller
    # side): the other was measured 3-1000x slower.
    matmul = "im2col" if cin <= cout else "col2im"
    forms = ["conv", "gemm"] + (["padded", matmul] if stride1 else [])
    ms = {form: time_layer(factory, x, cout, form, FLAGS.steps) for form in forms}
    auto = "gemm" if _use_gemm("auto") else "conv"
    if auto == "gemm" and stride1:
      k = jnp.zeros((1, 1, cin, cout))
      auto = cpu_conv.conv_s1_form(x, k)
    layers[name] = {"input": [side, side, cin], "out_channels": cout, "auto": auto, "ms": ms}
  totals = {form: sum(v["ms"].get(form, v["ms"]["gemm"]) for v in layers.values())
            for form in ("conv", "gemm")}
  totals["auto"] = sum(v["ms"].get(v["auto"], float("nan")) for v in layers.values())
  timing.emit({"backend": jax.default_backend(), "batch_size": FLAGS.batch_size,
               "resolution": FLAGS.resolution, "width": FLAGS.width, "layers": layers,
               "total_ms": totals}, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
