"""VGG19 to conv5_4 (ESRGAN's perceptual-loss layer): forward, and forward plus the gradient
with respect to the input (what a generator step needs; the weights are frozen), per conv form.

  python benchmarks/vgg_loss.py [--batch_size=4] [--resolution=128] [--steps=5]

Random weights with the real shapes (no download). Forms interleave call by call, so load from
other processes hits them alike. `auto` is `layers.conv_same`'s pick (matrix products on CPU),
`conv` XLA's native convolution, both with the weights as the program's arguments; `constant
conv` closes over them, and `frozen auto` over `vgg.frozen`'s (as ESRGAN's step does). Prints
seconds per call, median and min, and each program's compile time.
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
  host = vgg.random_weights(0)
  weights = {k: jnp.asarray(v) for k, v in host.items()}
  x = jnp.asarray(np.random.default_rng(0).uniform(
      -1, 1, (FLAGS.batch_size, FLAGS.resolution, FLAGS.resolution, 3)).astype(np.float32))
  # The weights as arguments, or closed over as constants of the program as a training step
  # holds them: XLA's conv of the constant kernels, or `vgg.frozen`'s on the CPU forms (ESRGAN's
  # perceptual loss).
  variants = {"auto": (None, "auto"), "conv": (None, "conv"),
              "constant conv": (host, "conv"), "frozen auto": (vgg.frozen(host), "auto")}
  fns, compile_s = {}, {}
  for variant, (closed, impl) in variants.items():
    def conv5_4(x, w, closed=closed, impl=impl):
      return vgg.features(w if closed is None else closed, x, ("conv5_4",), impl)["conv5_4"]
    # a loss whose gradient depends on x, as a training loss's does: the gradient of a mean is
    # a constant, and XLA folds its first transposed conv with constant kernels at compile time
    grad_x = jax.grad(lambda x, w, f=conv5_4: jnp.mean(jnp.square(f(x, w))))
    for name, f in ((f"{variant} forward", conv5_4), (f"{variant} forward+grad_x", grad_x)):
      t = time.perf_counter()
      fns[name] = jax.jit(f).lower(x, weights).compile()
      compile_s[name] = time.perf_counter() - t
  times = {k: [] for k in fns}
  for _ in range(FLAGS.steps):
    for name, f in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(f(x, weights))
      times[name].append(time.perf_counter() - t)
  print(f"VGG19 to conv5_4, batch {FLAGS.batch_size} at {FLAGS.resolution}x{FLAGS.resolution}, "
        f"{jax.default_backend()}:")
  for name, ts in times.items():
    print(f"  {name:30s} median {statistics.median(ts):.3f} s  min {min(ts):.3f} s  "
          f"compile {compile_s[name]:.1f} s")


if __name__ == "__main__":
  app.run(main)
