"""The 3x3 convs of one ESRGAN dense block (gan_jax/models/sr.py), forward alone and forward plus
both gradients, in each form a stride-1 "same" conv can run in.

  python benchmarks/sr_layers.py [--batch_size=4] [--side=32] [--features=64] [--growth=32]
      [--steps=5] [--forms=auto,xla_same,winograd,winograd4,padded,im2col,valid] [--json=PATH]

Conv k of the block maps features + k * growth channels to growth (k = 0..3), the fifth
features + 4 * growth back to features. Forms: `auto` is `layers.conv_same(x, kernel)`, what the
model runs on this backend (its CPU form, `cpu_conv.conv_s1_form`'s choice, is printed as
"picks"); `xla_same` a plain `lax.conv_general_dilated(..., "SAME")`; `winograd` (F(2x2, 3x3)),
`winograd4` (F(4x4, 3x3)), `padded` and `im2col` the CPU forms forced (`cpu_conv.conv_s1`); `valid` pad then XLA's VALID conv
(conv_impl="conv"). Gradients: jit(value_and_grad(sum(conv(x, k)^2), (x, k))). Prints one JSON
object (ms, median).

Measured on 2 shared AMD EPYC cores (jax 0.10.2), the five convs summed, forward / forward and
gradients, ranges over 3-4 runs: conv_same picks "padded" for all five (they narrow). Batch 4:
auto 17-27 / 72-88 ms, xla_same 22-23 / 67-72, im2col 117-141 / 192-224. Batch 16: auto 96-115
/ 532-599, xla_same 89-94 / 262-279. So the padded form's forward is as fast as it should be, but
XLA's gradients of the pre-padded VALID conv it differentiates were 1.9-2.3x slower at batch 16
than those of the plain SAME conv (weight gradient with a forward, 128 -> 32 channels: 87 against
29 ms): the opposite of what steered `cpu_conv.conv_valid_padded` to VALID gradients.

Since the 3x3 convs of 64 channels and more became Winograd F(2x2, 3x3), conv_same picks
"winograd" for the fifth conv (192 -> 64) and "padded" for the four that narrow to 32. Batch 4,
2 quiet cores, 2026-12-05, one run: auto 9.5 / 40 ms, xla_same 14 / 45, winograd (all five)
9.2 / 27, padded 11 / 49; the fifth conv alone 8.8 ms Winograd against 18.7-19.6 (padded,
xla_same), value and both gradients. F(4x4, 3x3), the same day and machine, one run
(`--forms=auto,winograd,winograd4`): all five 9.6 / 21 ms against F(2x2)'s 10.9 / 30 and auto's
12.9 / 47; the fifth conv 7.3 against 9.4 ms, value and both gradients. conv_same takes F(4x4)
from 128 channels only (`cpu_conv.WINOGRAD6_MIN_CHANNELS` says why), so not here.

"block_ms" times the whole block (biases, activations), conv by conv in each form and as
`cpu_conv.dense_convs3x3`, the one F(4x4, 3x3) operation sr.DenseBlock runs on CPU, in turns.
2026-12-06, `--forms=auto,winograd4 --steps=21`: 22.8 ms against 24.3 (F(4x4) conv by conv)
and 41.7 (auto); with `--batch_size=16 --side=16 --features=32 --growth=16` (rrdb_psnr's
default) 10.2 against 13.3 and 20.2 (benchmarks/results/cpu_sr_dense_block_*.json).
"""
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.models import cpu_conv, layers, sr

import timing

flags.DEFINE_integer("batch_size", 4, "batch")
flags.DEFINE_integer("side", 32, "LR feature map side")
flags.DEFINE_integer("features", 64, "RRDBNet's features")
flags.DEFINE_integer("growth", 32, "the dense blocks' growth channels")
flags.DEFINE_integer("steps", 5, "timed calls per conv, form and pass")
flags.DEFINE_list("forms", ["auto", "xla_same", "winograd", "padded", "im2col", "valid"],
                  "forms to time")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def _pad1(x):
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


FORMS = {
    "auto": lambda x, k: layers.conv_same(x, k),
    "xla_same": lambda x, k: jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")),
    "winograd": lambda x, k: cpu_conv.conv_s1(_pad1(x), k, "winograd"),
    "winograd4": lambda x, k: cpu_conv.conv_s1(_pad1(x), k, "winograd4"),
    "padded": lambda x, k: cpu_conv.conv_s1(_pad1(x), k, "padded"),
    "im2col": lambda x, k: cpu_conv.conv_s1(_pad1(x), k, "im2col"),
    "valid": lambda x, k: layers.conv_same(x, k, "conv"),
}


def time_form(conv, x, kernel, steps):
  forward = jax.jit(conv)
  both = jax.jit(jax.value_and_grad(lambda x, k: jnp.sum(jnp.square(conv(x, k))), (0, 1)))
  ms = {}
  for name, fn in (("forward", forward), ("forward_and_grads", both)):
    _, times = timing.time_calls(lambda: fn(x, kernel), steps, 1, jax.block_until_ready)
    ms[name] = 1000 * statistics.median(times)
  return ms


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  f, g, b, s = FLAGS.features, FLAGS.growth, FLAGS.batch_size, FLAGS.side
  convs = [(f"conv{k + 1}", f + k * g, g) for k in range(4)] + [("conv5", f + 4 * g, f)]
  result = {}
  for name, cin, cout in convs:
    x = jnp.asarray(rng.normal(size=(b, s, s, cin)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 3, cin, cout)) * 0.02, jnp.float32)
    # the same check layers.conv_same makes: its CPU form, or XLA's conv on other backends
    use_gemm = layers._use_gemm("auto")  # pylint: disable=protected-access
    picks = cpu_conv.conv_s1_form(_pad1(x), kernel) if use_gemm else "valid"
    ms = {form: time_form(FORMS[form], x, kernel, FLAGS.steps) for form in FLAGS.forms}
    result[name] = {"in": cin, "out": cout, "picks": picks, "ms": ms}
  totals = {form: {p: sum(v["ms"][form][p] for v in result.values())
                   for p in ("forward", "forward_and_grads")} for form in FLAGS.forms}
  timing.emit({"backend": jax.default_backend(), "batch_size": b, "side": s, "convs": result,
               "total_ms": totals, "block_ms": time_block(rng)}, FLAGS.json)


def time_block(rng):
  """The whole block, biases and activations included, value and both gradients: conv by conv
  in each form and as the one Winograd operation sr.DenseBlock runs on CPU, timed in turns (one
  call of each, `steps` times) so a slow spell of the machine falls on all of them."""
  f, g, b, s = FLAGS.features, FLAGS.growth, FLAGS.batch_size, FLAGS.side
  x = jnp.asarray(rng.normal(size=(b, s, s, f)), jnp.float32)
  params = [(jnp.asarray(rng.normal(size=(3, 3, f + k * g, out)) * 0.02, jnp.float32),
             jnp.zeros((out,), jnp.float32)) for k, out in enumerate([g] * 4 + [f])]
  blocks = {form: lambda x, params, conv=FORMS[form]: sr.dense_convs(x, params, conv)
            for form in FLAGS.forms}
  blocks["dense_convs3x3"] = lambda x, params: cpu_conv.dense_convs3x3(x, *zip(*params), 0.2)
  fns = {name: jax.jit(jax.value_and_grad(lambda x, p, fn=fn: jnp.sum(jnp.square(fn(x, p))),
                                          (0, 1))) for name, fn in blocks.items()}
  times = {name: [] for name in fns}
  for fn in fns.values():
    jax.block_until_ready(fn(x, params))
  for _ in range(FLAGS.steps):
    for name, fn in fns.items():
      _, (t,) = timing.time_calls(lambda fn=fn: fn(x, params), 1, 0, jax.block_until_ready)
      times[name].append(1000 * t)
  return {name: statistics.median(t) for name, t in times.items()}


if __name__ == "__main__":
  app.run(main)
