"""ADA's pipeline (and DiffAugment) forward plus input gradient, in each resampling form.

  python benchmarks/augment_speed.py [--shapes=32x32:32,64x64:16]
      [--forms=gather,gather1,quad,matmul] [--steps=30] [--json=PATH]

Times jit(value_and_grad(sum(w * ada(x, key, p=0.5)))) with x [B, H, W, 3]: the cost D's
augmentation adds to each of its forward/backward passes. Forms of the bilinear warp:
`gather` (the module's: four gathers, one per neighbour), `gather1` (one gather of all four
neighbours of every pixel), `quad` (one gather of 4C channels: the image and its three shifted
copies stacked as channels), `matmul` (the warp as a one-hot interpolation matmul along rows,
then a weighted sum along columns: no gather or scatter, O(B H W (H + W) C) work).
Prints one JSON object (ms: median; min_ms: the least disturbed call on a shared machine).
"""
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax import augment

import timing

flags.DEFINE_list("shapes", ["32x32:32", "64x64:16"], "HxW:batch")
flags.DEFINE_list("forms", ["gather", "gather1", "quad", "matmul"], "resampling forms to time")
flags.DEFINE_integer("steps", 30, "timed calls per shape and form")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def _coords(images, g_inv):
  b, h, w, c = images.shape
  cy, cx = (h - 1) / 2, (w - 1) / 2
  yc = (jnp.arange(h, dtype=jnp.float32) - cy)[None, :, None]
  xc = (jnp.arange(w, dtype=jnp.float32) - cx)[None, None, :]
  g = g_inv[:, :, :, None, None]
  sx = g[:, 0, 0] * xc + g[:, 0, 1] * yc + g[:, 0, 2] + cx
  sy = g[:, 1, 0] * xc + g[:, 1, 1] * yc + g[:, 1, 2] + cy
  x0, fx = augment._corners(augment._fold(sx, w), w)
  y0, fy = augment._corners(augment._fold(sy, h), h)
  return x0, fx, y0, fy


def resample_gather1(images, g_inv):
  b, h, w, c = images.shape
  x0, fx, y0, fy = _coords(images, g_inv)
  i00 = (jnp.arange(b)[:, None, None] * h + y0) * w + x0
  idx = jnp.stack([i00, i00 + 1, i00 + w, i00 + w + 1]).reshape(-1)
  v = images.reshape(b * h * w, c).at[idx].get(mode="promise_in_bounds").reshape(4, b, h, w, c)
  fx, fy = fx[..., None], fy[..., None]
  top = v[0] * (1 - fx) + v[1] * fx
  bottom = v[2] * (1 - fx) + v[3] * fx
  return top * (1 - fy) + bottom * fy


def resample_quad(images, g_inv):
  b, h, w, c = images.shape
  x0, fx, y0, fy = _coords(images, g_inv)
  right = jnp.roll(images, -1, axis=2)
  quad = jnp.concatenate([images, right, jnp.roll(images, -1, axis=1),
                          jnp.roll(right, -1, axis=1)], axis=-1).reshape(b * h * w, 4 * c)
  idx = ((jnp.arange(b)[:, None, None] * h + y0) * w + x0).reshape(-1)
  v = quad.at[idx].get(mode="promise_in_bounds").reshape(b, h, w, 4, c)
  fx, fy = fx[..., None], fy[..., None]
  top = v[..., 0, :] * (1 - fx) + v[..., 1, :] * fx
  bottom = v[..., 2, :] * (1 - fx) + v[..., 3, :] * fx
  return top * (1 - fy) + bottom * fy


def resample_matmul(images, g_inv):
  b, h, w, c = images.shape
  x0, fx, y0, fy = _coords(images, g_inv)
  rows = jnp.arange(h)
  wy = ((rows == y0[..., None]) * (1 - fy[..., None]) + (rows == y0[..., None] + 1) * fy[..., None])
  cols = jnp.arange(w)
  wx = ((cols == x0[..., None]) * (1 - fx[..., None]) + (cols == x0[..., None] + 1) * fx[..., None])
  t = jnp.einsum("bijy,byxc->bijxc", wy, images, precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum("bijx,bijxc->bijc", wx, t, precision=jax.lax.Precision.HIGHEST)


FORMS = {"gather": augment.resample, "gather1": resample_gather1, "quad": resample_quad,
         "matmul": resample_matmul}


def time_fn(fn, x, steps):
  w = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)
  key, p = jax.random.key(0), jnp.float32(0.5)
  f = jax.jit(jax.value_and_grad(lambda x, key, p: jnp.sum(w * fn(x, key, p))))
  first, times = timing.time_calls(lambda: f(x, key, p), steps, 2, jax.block_until_ready)
  return {"compile_s": round(first, 2), "ms": round(1000 * statistics.median(times), 2),
          "min_ms": round(1000 * min(times), 2)}


def main(argv):
  del argv
  original = augment.resample
  result = {"backend": jax.default_backend(), "p": 0.5}
  for shape in FLAGS.shapes:
    hw, batch = shape.split(":")
    h, w = map(int, hw.split("x"))
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (int(batch), h, w, 3)), jnp.float32)
    row = {}
    for form in FLAGS.forms:
      augment.resample = FORMS[form]
      row[f"ada_{form}"] = time_fn(augment.ada, x, FLAGS.steps)
    augment.resample = original
    row["ada_colour_only"] = time_fn(lambda x, k, p: augment.ada(x, k, p, "color"), x, FLAGS.steps)
    row["diffaugment"] = time_fn(lambda x, k, p: augment.diff_augment(x, k), x, FLAGS.steps)
    result[shape] = row
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
