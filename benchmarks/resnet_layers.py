"""SNGAN-32's G and D (gan_jax/models/resnet.py), forward plus the parameter gradient, with the
resampling convs fused into 4x4 stride-2 layers or run as written (upsample / pool and a 3x3 conv).

  python benchmarks/resnet_layers.py [--batch_size=64] [--steps=5] [--forms=fused,plain]
      [--json=PATH]

Times jit(grad(sum(net(x)^2))) in train mode (batch statistics and power iteration included),
G at width 256 and D at width 128 as in Miyato et al. 2018. Prints one JSON object (ms, median).
Measured on 2 shared Zen4 cores (results/cpu_sngan32_resnet_layers.json): fused G 4.4 s, D 0.58 s;
plain G 11.7 s, D 2.0 s.
"""
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gan_jax.models import layers, resnet

import timing

flags.DEFINE_integer("batch_size", 64, "batch")
flags.DEFINE_integer("steps", 5, "timed calls per network and form")
flags.DEFINE_list("forms", ["fused", "plain"], "forms to time")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def time_net(model, x, steps):
  variables = jax.jit(lambda: model.init(jax.random.key(0), x, train=True))()
  params, cols = variables.pop("params"), variables

  def loss(p):
    out, _ = model.apply({"params": p, **cols}, x, train=True, mutable=list(cols))
    return jnp.sum(jnp.square(out))

  fn = jax.jit(jax.grad(loss))
  first, times = timing.time_calls(lambda: fn(params), steps, 1, jax.block_until_ready)
  return {"ms": 1000 * statistics.median(times), "first_call_s": first}


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  b = FLAGS.batch_size
  z = jnp.asarray(rng.normal(size=(b, 128)), jnp.float32)
  x = jnp.asarray(rng.uniform(-1, 1, size=(b, 32, 32, 3)), jnp.float32)
  result = {}
  fused = layers.upsample_conv3x3, layers.conv3x3_avg_pool
  for form in FLAGS.forms:
    if form == "plain":  # what SNConv(fuse=False) runs
      layers.upsample_conv3x3 = lambda x, k, impl: layers.conv_same(layers.upsample2x(x), k, impl)
      layers.conv3x3_avg_pool = lambda x, k, impl: layers.avg_pool2x(layers.conv_same(x, k, impl))
    result[form] = {"G": time_net(resnet.Generator(32, 3, 256, 128), z, FLAGS.steps),
                    "D": time_net(resnet.Discriminator(32, 128), x, FLAGS.steps)}
    layers.upsample_conv3x3, layers.conv3x3_avg_pool = fused
  timing.emit({"backend": jax.default_backend(), "batch_size": b, "ms": result}, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
