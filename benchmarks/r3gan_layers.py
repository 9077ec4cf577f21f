"""R3GAN's grouped 3x3 convolution, forward and each gradient, in each form it can run in.

  PYTHONPATH=. python benchmarks/r3gan_layers.py [--layers=1536/96,128/8] [--sides=4,8,16,32]
      [--batch_size=64] [--steps=3] [--forms=conv,dense,im2col,col2im,shifted,auto]
      [--block_forms=conv,col2im,auto] [--budget_s=10] [--json=PATH]

A layer is CHANNELS/GROUPS: the residual blocks' grouped conv on width x expansion channels
(1536/96: the CIFAR-10 preset's, 768 x 2 in 96 groups; 128/8: width 64, cardinality 8, as
configs/r3gan_stacked.py), "same" padding, at each side in `sides`. Per form, jitted and timed
apart (ms, median):
- fwd: the conv; dx, dk: its input and weight gradient (a VJP with respect to one argument);
- r1: the gradient with respect to the kernel of |d<conv(x, k), w>/dx|^2, the second-order
  derivative D's R1 / R2 penalties take;
- block_ms: a whole residual block (`models.r3gan.ResidualBlock`, 1x1 convs included) with
  its grouped conv in each of --block_forms (the CPU path's conv replaced by the form, which
  JAX then differentiates; "conv" runs the native path): "grad", value and gradient with
  respect to its parameters and input; "r1", the parameter gradient of softplus(-logit) + R1
  with the block's output summed as the logit, D's loss, which differentiates it twice.
Forms: "conv", XLA's grouped convolution differentiated by JAX (what GPUs and TPUs run);
"dense", XLA's convolution of the block-diagonal dense kernel (groups times the products);
"im2col", one batched matrix product over the groups of the k x k windows; "col2im", each
pixel times all taps in one batched product, the taps' products added in at their shifted
places (`models.r3gan.conv_col2im`); "shifted", one product per tap on shifted views; these
three differentiated by JAX. "auto": `models.r3gan.grouped_conv` on this backend (on CPU its
custom VJPs: dense up to `DENSE_MAX_GROUPS` groups, else Winograd F(4x4, 3x3) on float32 3x3
convs whose sides are multiples of 4, col2im otherwise). A measurement that took
over --budget_s at one side is not repeated at the larger ones (null). Prints one JSON object.
"""
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.models import r3gan
from gan_jax.models.layers import _use_gemm, target_backend

import timing

flags.DEFINE_list("layers", ["1536/96", "128/8"], "CHANNELS/GROUPS of each grouped conv")
flags.DEFINE_list("sides", ["4", "8", "16", "32"], "image sides, ascending")
flags.DEFINE_integer("batch_size", 64, "batch")
flags.DEFINE_integer("kernel", 3, "kernel side")
flags.DEFINE_integer("steps", 3, "timed calls per measurement")
flags.DEFINE_list("forms", ["conv", "dense", "im2col", "col2im", "shifted", "auto"],
                  "forms to time")
flags.DEFINE_list("block_forms", ["conv", "col2im", "auto"],
                  "forms to time a whole residual block in")
flags.DEFINE_float("budget_s", 10.0, "skip a measurement at larger sides once it took longer")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def _windows(x, k):
  """[B, H, W, C] -> k * k shifted views of x zero-padded by k // 2, each [B, H, W, C]."""
  h, w, p = x.shape[1], x.shape[2], k // 2
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  return [xp[:, i:i + h, j:j + w] for i in range(k) for j in range(k)]


def conv_im2col(x, kernel, groups):
  k, _, cg, o = kernel.shape
  b, h, w, _ = x.shape
  patches = jnp.stack([v.reshape(b, h, w, groups, cg) for v in _windows(x, k)], 4)
  patches = patches.reshape(b * h * w, groups, k * k * cg)  # [N, G, taps x C / G]
  km = kernel.reshape(k * k, cg, groups, o // groups).transpose(2, 0, 1, 3)
  y = jnp.einsum("ngk,gko->ngo", patches, km.reshape(groups, k * k * cg, o // groups))
  return y.reshape(b, h, w, o)


def conv_shifted(x, kernel, groups):
  k, _, cg, o = kernel.shape
  b, h, w, _ = x.shape
  km = kernel.reshape(k * k, cg, groups, o // groups)
  y = sum(jnp.einsum("bhwgc,cgo->bhwgo", v.reshape(b, h, w, groups, cg), km[t])
          for t, v in enumerate(_windows(x, k)))
  return y.reshape(b, h, w, o)


FORMS = {
    "conv": lambda x, k, g: r3gan.grouped_conv(x, k, g, impl="conv"),
    "dense": lambda x, k, g: r3gan.grouped_conv(x, r3gan.block_diagonal(k, g), 1, impl="conv"),
    "im2col": conv_im2col,
    "col2im": r3gan.conv_col2im,
    "shifted": conv_shifted,
    "auto": r3gan.grouped_conv,
}


def measures(conv):
  """name -> fn(x, k, w) for one form; w is the cotangent (an argument, not a constant that
  XLA would fold into the program)."""
  def r1(x, k, w):
    gx = jax.grad(lambda v: jnp.sum(conv(v, k) * w))(x)
    return jnp.sum(jnp.square(gx))
  return {
      "fwd": lambda x, k, w: conv(x, k),
      "dx": lambda x, k, w: jax.vjp(lambda v: conv(v, k), x)[1](w)[0],
      "dk": lambda x, k, w: jax.vjp(lambda kk: conv(x, kk), k)[1](w)[0],
      "r1": jax.grad(r1, 1),
  }


def time_ms(fn, args, steps):
  jitted = jax.jit(fn)
  _, times = timing.time_calls(lambda: jitted(*args), steps, 1, jax.block_until_ready)
  return 1000 * statistics.median(times)


def block_measures(x, channels, groups, form):
  """name -> (fn, args) for a residual block whose grouped conv runs in `form`: "grad", its
  value and gradient in its parameters and input (G's step, D's adversarial term); "r1", the
  parameter gradient of a D loss on it, softplus(-logit) + R1 (logit: the block's output
  summed per sample), which differentiates the block twice."""
  block = r3gan.ResidualBlock(2, groups, FLAGS.kernel, 8, impl="conv" if form == "conv" else
                              "gemm")
  xin = x[..., :channels // 2]
  params = block.init(jax.random.key(0), xin)["params"]
  params = jax.tree.map(lambda p: p + 0.01, params)  # conv3 starts at zero: give it a gradient
  logits = lambda p, v: jnp.sum(block.apply({"params": p}, v), axis=(1, 2, 3))

  def d_loss(p, v):
    out, pull = jax.vjp(lambda u: logits(p, u), v)
    (gx,) = pull(jnp.ones_like(out))
    return jnp.mean(jax.nn.softplus(-out) + jnp.sum(jnp.square(gx), axis=(1, 2, 3)))

  square = lambda p, v: jnp.sum(jnp.square(block.apply({"params": p}, v)))
  return {"grad": (jax.value_and_grad(square, (0, 1)), (params, xin)),
          "r1": (jax.grad(d_loss), (params, xin))}


def substituted(form):
  """Run the CPU path's grouped conv in `form` (for "auto" and "conv": as it is)."""
  if form in ("auto", "conv"):
    return CPU_CONV
  return lambda x, k, g: FORMS[form](x, k, g)


CPU_CONV = r3gan._grouped_conv_cpu


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  b, k = FLAGS.batch_size, FLAGS.kernel
  results = []
  for spec in FLAGS.layers:
    channels, groups = (int(v) for v in spec.split("/"))
    over = set()  # (form, measure) pairs past the budget
    for side in (int(s) for s in FLAGS.sides):
      arr = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
      x, w = arr(b, side, side, channels), arr(b, side, side, channels)
      kernel = arr(k, k, channels // groups, channels) / np.sqrt(k * k * channels / groups)
      ms = {}
      for form in FLAGS.forms:
        ms[form] = {}
        for name, fn in measures(lambda xx, kk, f=FORMS[form]: f(xx, kk, groups)).items():
          if (form, name) in over:
            ms[form][name] = None
            continue
          ms[form][name] = time_ms(fn, (x, kernel, w), FLAGS.steps)
          if ms[form][name] > 1000 * FLAGS.budget_s:
            over.add((form, name))
      block = {}
      for form in FLAGS.block_forms:
        block[form] = {}
        r3gan._grouped_conv_cpu = substituted(form)
        for name, (fn, args) in block_measures(x, channels, groups, form).items():
          if ("block_" + form, name) in over:
            block[form][name] = None
            continue
          block[form][name] = time_ms(fn, args, FLAGS.steps)
          if block[form][name] > 1000 * FLAGS.budget_s:
            over.add(("block_" + form, name))
      r3gan._grouped_conv_cpu = CPU_CONV
      ref = FORMS["conv"](x, kernel, groups)
      err = {form: float(jnp.max(jnp.abs(FORMS[form](x, kernel, groups) - ref)))
             for form in FLAGS.forms}
      auto = "dense" if 1 < groups <= r3gan.DENSE_MAX_GROUPS else "grouped"
      results.append({"channels": channels, "groups": groups, "input": [b, side, side, channels],
                      "auto_conv": auto, "ms": ms, "block_ms": block,
                      "max_abs_diff_vs_conv": err})
      print(results[-1], file=sys.stderr, flush=True)
  timing.emit({"backend": jax.default_backend(), "target": target_backend(),
               "auto_uses_custom_vjp": _use_gemm("auto"), "dense_max_groups":
               r3gan.DENSE_MAX_GROUPS, "batch_size": b, "kernel": k, "steps": FLAGS.steps,
               "budget_s": FLAGS.budget_s, "layers": results}, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
