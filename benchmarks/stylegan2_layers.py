"""StyleGAN2's layers, forward plus all gradients, in each form they can run in.

  PYTHONPATH=. python benchmarks/stylegan2_layers.py [--resolution=64] [--channels=128]
      [--batch_size=16] [--steps=5] [--json=PATH]

Times jit(value_and_grad(sum(layer(...)^2))) with respect to every input (activations, kernel,
styles) at one resolution of G and D (`gan_jax/models/stylegan2.py`):
- modconv: G's modulated 3x3 conv at R x R (C -> C), demodulated;
- modconv_up: G's up-sampling modulated conv, R/2 -> R (transposed 3x3 stride 2 + FIR blur);
- torgb: the 1x1 modulated conv without demodulation, C -> 3;
- upsample_rgb: the skip image's FIR up-sampling, 3 channels, R/2 -> R;
- conv_down: D's 3x3 conv with FIR down-sampling, R -> R/2; conv3x3: D's stride-1 conv;
- skip_down: D's FIR down-sampling + 1x1 skip conv.
Forms: "batched" / "fused" modulated conv (x * s, shared conv, * d; or per-sample weights in a
grouped conv), each with "conv" (XLA's native convolutions: what GPUs and TPUs run) or "gemm"
(the matrix-product forms XLA:CPU takes under impl="auto"). Prints one JSON object (ms, median).
"""
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.models import stylegan2 as sg
from gan_jax.models.layers import target_backend

import timing

flags.DEFINE_integer("resolution", 64, "the layers' output side (G) / input side (D)")
flags.DEFINE_integer("channels", 128, "channels on both sides of the wide layers")
flags.DEFINE_integer("batch_size", 16, "batch")
flags.DEFINE_integer("steps", 5, "timed calls per layer and form")
flags.DEFINE_list("forms", ["batched_conv", "batched_gemm", "fused_conv", "fused_gemm"],
                  "modulated-conv forms to time (fused_conv, XLA:CPU's grouped conv, takes minutes)")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def time_fn(fn, args, steps):
  loss = lambda *a: jnp.sum(jnp.square(fn(*a).astype(jnp.float32)))
  g = jax.jit(jax.value_and_grad(loss, tuple(range(len(args)))))
  _, times = timing.time_calls(lambda: g(*args), steps, 1, jax.block_until_ready)
  return 1000 * statistics.median(times)


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  b, r, c = FLAGS.batch_size, FLAGS.resolution, FLAGS.channels
  arr = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  x, x_half = arr(b, r, r, c), arr(b, r // 2, r // 2, c)
  k3, k1, s = arr(3, 3, c, c), arr(1, 1, c, 3), arr(b, c) + 1
  rgb_half = arr(b, r // 2, r // 2, 3)
  layers = {}

  def modconv_forms(name, inp, kernel, demod, up):
    ms = {}
    for fused in (False, True):
      for impl in ("conv", "gemm"):
        form = f"{'fused' if fused else 'batched'}_{impl}"
        if form not in FLAGS.forms:
          continue
        fn = lambda xx, kk, ss, f=fused, i=impl: sg.modulated_conv(xx, kk, ss, demod, up, f,
                                                                   impl=i)
        ms[form] = time_fn(fn, (inp, kernel, s), FLAGS.steps)
    layers[name] = {"input": list(inp.shape), "out_channels": kernel.shape[-1], "ms": ms}

  modconv_forms("modconv", x, k3, True, False)
  modconv_forms("modconv_up", x_half, k3, True, True)
  modconv_forms("torgb", x, k1, False, False)
  layers["upsample_rgb"] = {"input": list(rgb_half.shape), "ms": {
      "fir": time_fn(sg.upsample2d, (rgb_half,), FLAGS.steps)}}
  layers["conv_down"] = {"input": list(x.shape), "ms": {
      impl: time_fn(lambda xx, kk, i=impl: sg.conv_down(xx, kk, impl=i), (x, k3), FLAGS.steps)
      for impl in ("conv", "gemm")}}
  layers["conv3x3"] = {"input": list(x.shape), "ms": {
      impl: time_fn(lambda xx, kk, i=impl: sg.conv_same(xx, kk, impl=i), (x, k3), FLAGS.steps)
      for impl in ("conv", "gemm")}}
  layers["skip_down"] = {"input": list(x.shape), "ms": {
      "fir_then_1x1": time_fn(lambda xx, kk: sg.conv_1x1(sg.downsample2d(xx), kk),
                              (x, arr(1, 1, c, c)), FLAGS.steps)}}
  fused = sg.default_fused(train=True)
  timing.emit({"backend": jax.default_backend(), "target": target_backend(), "batch_size": b,
               "resolution": r, "channels": c, "auto_fused_train": fused,
               "auto_fused_infer": sg.default_fused(train=False), "layers": layers}, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
