"""DF-GAN's D layers under MA-GP: each conv's first-order and second-order gradients, per form.

  python benchmarks/dfgan_layers.py [--width=32] [--batch_size=32] [--text_dim=384] [--steps=5]
      [--json=PATH]

MA-GP differentiates D's input gradient in D's parameters, so every D layer runs a double
backward. For each conv of `gan_jax/models/dfgan.py`'s D at 32x32 this times
  first:  jit(grad(sum(sin(f(x, k))), (x, k)))                      (D's own update)
  second: jit(grad(sum(grad_x(sum(sin(f(x, k))))^2), (x, k)))      (MA-GP's term)
in the forms it can run in: `conv` (XLA's native), `im2col`, `winograd` and `padded` (XLA's conv
steered onto its fast path, `cpu_conv.conv_valid_padded`); `auto` names the form the layer takes
on this backend. The joint conv at 4x4 reads the features and the sentence (8 x width +
text_dim channels): `concat` is the plain conv of the concatenation, `split` our `JointConv`.
Prints one JSON object (ms, median).
"""
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.models import cpu_conv, layers
from gan_jax.models.dfgan import JointConv

import timing

flags.DEFINE_integer("width", 32, "ndf")
flags.DEFINE_integer("batch_size", 32, "batch")
flags.DEFINE_integer("text_dim", 384, "sentence embedding width")
flags.DEFINE_integer("steps", 5, "timed calls per layer and form")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def first(f):
  return jax.grad(lambda x, k: jnp.sum(jnp.sin(f(x, k))), (0, 1))


def second(f):
  def penalty(x, k):
    return jnp.sum(jax.grad(lambda x: jnp.sum(jnp.sin(f(x, k))))(x) ** 2)
  return jax.grad(penalty, (0, 1))


def ms(fn, *args):
  fn = jax.jit(fn)
  _, times = timing.time_calls(lambda: fn(*args), FLAGS.steps, 1, jax.block_until_ready)
  return 1000 * statistics.median(times)


def pad1(x):
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def strided_forms():
  def winograd(on):
    def f(x, k):
      cpu_conv.WINOGRAD_MIN_CHANNELS = 1 if on else 10**9
      return cpu_conv.conv4x4s2(x, k)
    return f
  return {"conv": lambda x, k: layers.conv4x4s2(x, k, "conv"), "im2col": winograd(False),
          "winograd": winograd(True)}


def same_forms():
  return {"conv": lambda x, k: layers.conv_same(x, k, "conv"),
          "im2col": lambda x, k: cpu_conv.conv_s1(pad1(x), k, "im2col"),
          "padded": lambda x, k: cpu_conv.conv_s1(pad1(x), k, "padded")}


def time_forms(forms, shape, kernel_shape, rng):
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=kernel_shape) * 0.05, jnp.float32)
  return {name: {"first": ms(first(f), x, k), "second": ms(second(f), x, k)}
          for name, f in forms.items()}


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  b, w, gemm = FLAGS.batch_size, FLAGS.width, layers._use_gemm("auto")
  default_threshold = cpu_conv.WINOGRAD_MIN_CHANNELS
  result = {}
  x_shape = (b, 32, 32, 3)
  result["from_image 3x3"] = dict(
      auto=cpu_conv.conv_s1_form(jnp.zeros((b, 34, 34, 3)), jnp.zeros((3, 3, 3, w))) if gemm
      else "conv", ms=time_forms(same_forms(), x_shape, (3, 3, 3, w), rng))
  for i, side in enumerate((32, 16, 8)):
    cin, cout = w << i, w << (i + 1)
    ms_strided = time_forms(strided_forms(), (b, side, side, cin), (4, 4, cin, cout), rng)
    cpu_conv.WINOGRAD_MIN_CHANNELS = default_threshold
    auto = cpu_conv.form(jnp.zeros((4, 4, cin, cout)), (b, side // 2, side // 2))
    result[f"block{i} 4x4/2"] = dict(auto=auto if gemm else "conv", ms=ms_strided)
    s = side // 2
    auto = cpu_conv.conv_s1_form(jnp.zeros((b, s + 2, s + 2, cout)), jnp.zeros((3, 3, cout, cout)))
    result[f"block{i} 3x3"] = dict(auto=auto if gemm else "conv",
                                   ms=time_forms(same_forms(), (b, s, s, cout),
                                                 (3, 3, cout, cout), rng))
  c, d, o = 8 * w, FLAGS.text_dim, 2 * w
  h = jnp.asarray(rng.normal(size=(b, 4, 4, c)), jnp.float32)
  e = jnp.asarray(rng.normal(size=(b, d)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, c + d, o)) * 0.05, jnp.float32)
  joint = JointConv(o)
  concat = lambda h, k: cpu_conv.conv_s1(
      pad1(jnp.concatenate([h, jnp.broadcast_to(e[:, None, None], (b, 4, 4, d))], -1)), k)
  split = lambda h, k: joint.apply({"params": {"kernel": k}}, h, e)
  result["joint 3x3 at 4x4"] = dict(auto="split", ms={
      name: {"first": ms(first(f), h, k), "second": ms(second(f), h, k)}
      for name, f in (("concat", concat), ("split", split))})
  timing.emit({"backend": jax.default_backend(), "batch_size": b, "width": w, "text_dim": d,
               "layers": result}, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
