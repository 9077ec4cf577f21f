"""Each 4x4 layer of a DCGAN, forward plus both gradients, in each of the forms it can run in.

  python benchmarks/conv_layers.py [--resolution=64] [--width=64] [--batch_size=64] [--steps=5]
      [--forms=conv,im2col,winograd] [--json=PATH]

Times jit(value_and_grad(sum(layer(x, k)^2), (x, k))) for D's stride-2 convs and G's
transposed convs at the DCGAN shapes (`configs/dcgan64.py` by default): `conv` is XLA's native
convolution (what GPUs and TPUs run), `im2col` and `winograd` the matmul forms of
`gan_jax/models/cpu_conv.py`, forced for every layer. `auto` in the output names the form
`Conv4x4s2` / `ConvTranspose4x4s2` pick on this backend. Prints one JSON object (ms, median).
"""
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.models import cpu_conv
from gan_jax.models.layers import Conv4x4s2, ConvTranspose4x4s2, _use_gemm

import timing

flags.DEFINE_integer("resolution", 64, "image side")
flags.DEFINE_integer("width", 64, "ngf = ndf")
flags.DEFINE_integer("batch_size", 64, "batch")
flags.DEFINE_integer("steps", 5, "timed calls per layer and form")
flags.DEFINE_list("forms", ["conv", "im2col", "winograd"], "forms to time")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def dcgan_layers(resolution, width):
  """(name, module class, input side, in channels, out channels) as models/dcgan.py builds them."""
  n = int(np.log2(resolution)) - 2
  d = [(f"D{i}", Conv4x4s2, resolution >> i, 3 if i == 0 else width << (i - 1), width << i)
       for i in range(n)]
  g = [(f"G{i}", ConvTranspose4x4s2, 4 << i, width << (n - 1 - i), 3 if i == n - 1 else
        width << (n - 2 - i)) for i in range(n)]
  return d + g


def time_layer(module, x, kernel, form, steps):
  impl = "conv" if form == "conv" else "gemm"
  cpu_conv.WINOGRAD_MIN_CHANNELS = 1 if form == "winograd" else 10**9
  layer = module(kernel.shape[-1], impl=impl)
  loss = lambda x, k: jnp.sum(layer.apply({"params": {"kernel": k}}, x) ** 2)
  fn = jax.jit(jax.value_and_grad(loss, (0, 1)))
  _, times = timing.time_calls(lambda: fn(x, kernel), steps, 1, jax.block_until_ready)
  return 1000 * statistics.median(times)


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  default_threshold = cpu_conv.WINOGRAD_MIN_CHANNELS
  layers = {}
  for name, module, side, cin, cout in dcgan_layers(FLAGS.resolution, FLAGS.width):
    x = jnp.asarray(rng.normal(size=(FLAGS.batch_size, side, side, cin)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(4, 4, cin, cout)) * 0.02, jnp.float32)
    ms = {form: time_layer(module, x, kernel, form, FLAGS.steps) for form in FLAGS.forms}
    cpu_conv.WINOGRAD_MIN_CHANNELS = default_threshold
    # The transposed conv is the input gradient of a conv whose output has x's shape.
    auto = (cpu_conv.form(kernel, (FLAGS.batch_size, side // 2, side // 2))
            if module is Conv4x4s2 else cpu_conv.form(jnp.swapaxes(kernel, 2, 3), x.shape))
    auto = auto if _use_gemm("auto") else "conv"
    layers[name] = {"input": [side, side, cin], "out_channels": cout, "auto": auto,
                    "ms": ms}
  totals = {form: sum(v["ms"][form] for v in layers.values()) for form in FLAGS.forms}
  totals["auto"] = sum(v["ms"].get(v["auto"], float("nan")) for v in layers.values())
  timing.emit({"backend": jax.default_backend(), "batch_size": FLAGS.batch_size,
               "resolution": FLAGS.resolution, "width": FLAGS.width, "layers": layers,
               "total_ms": totals}, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
