"""VGG19 to conv5_4 (ESRGAN's perceptual-loss layer): forward, and forward plus the gradient
with respect to the input (what a generator step needs; the weights are frozen), per conv form.

  python benchmarks/vgg_loss.py [--batch_size=4] [--resolution=128] [--steps=5]

Random weights with the real shapes (no download). Forms interleave call by call, so load from
other processes hits them alike. `auto` is `layers.conv_same`'s pick (matrix products on CPU),
`conv` XLA's native convolution. Prints seconds per call, median and min.
"""
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.metrics import vgg

flags.DEFINE_integer("batch_size", 4, "images per call")
flags.DEFINE_integer("resolution", 128, "image side")
flags.DEFINE_integer("steps", 5, "timed calls per form")
FLAGS = flags.FLAGS


def main(_):
  weights = {k: jnp.asarray(v) for k, v in vgg.random_weights(0).items()}
  x = jnp.asarray(np.random.default_rng(0).uniform(
      -1, 1, (FLAGS.batch_size, FLAGS.resolution, FLAGS.resolution, 3)).astype(np.float32))
  fns = {}
  for impl in ("auto", "conv"):
    conv5_4 = lambda x, w, impl=impl: vgg.features(w, x, ("conv5_4",), impl)["conv5_4"]
    fns[f"{impl} forward"] = jax.jit(conv5_4)
    fns[f"{impl} forward+grad_x"] = jax.jit(jax.grad(lambda x, w, f=conv5_4: jnp.mean(f(x, w))))
  for f in fns.values():
    jax.block_until_ready(f(x, weights))
  times = {k: [] for k in fns}
  for _ in range(FLAGS.steps):
    for name, f in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(f(x, weights))
      times[name].append(time.perf_counter() - t)
  print(f"VGG19 to conv5_4, batch {FLAGS.batch_size} at {FLAGS.resolution}x{FLAGS.resolution}, "
        f"{jax.default_backend()}:")
  for name, ts in times.items():
    print(f"  {name:20s} median {statistics.median(ts):.3f} s  min {min(ts):.3f} s")


if __name__ == "__main__":
  app.run(main)
