"""`gan-jax upscale`'s throughput: output megapixels per second for one picture, as the verb runs
it (tiles with context, uint8 in and out), on a config's G with freshly initialised weights (the
speed does not depend on their values).

  python benchmarks/upscale_speed.py --config=configs/rrdb_psnr.py [--out_side=1024] [--tile=512]
      [--tile_pad=16] [--steps=3] [--warmup=1] [--json=PATH] [--config.KEY=VALUE ...]

The input is a random out_side / scale square picture; `first_call_s` includes compiling G for
its tile shape. Prints one JSON object.
"""
import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from gan_jax import upscaling
from gan_jax.data.spec import DataSpec
from gan_jax.experiment import Experiment

import timing

config_flags.DEFINE_config_file("config", None, "a super-resolution config", lock_config=True)
flags.DEFINE_integer("out_side", 1024, "side of the upscaled picture")
flags.DEFINE_integer("tile", 512, "largest tile side, in input pixels")
flags.DEFINE_integer("tile_pad", 16, "input pixels of context around each tile")
flags.DEFINE_integer("steps", 3, "timed pictures")
flags.DEFINE_integer("warmup", 1, "untimed pictures after the first")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def main(_):
  config = FLAGS.config
  d = config.data
  exp = Experiment.build(config, DataSpec((d.resolution, d.resolution, d.channels), "uint8", 0))
  state = exp.init_state()
  scale = exp.game.scale
  side = FLAGS.out_side // scale
  picture = np.random.default_rng(0).integers(0, 256, (side, side, d.channels), np.uint8)
  fn = lambda x: exp.game.upscale(state, x)
  first, times = timing.time_calls(
      lambda: upscaling.upscale_array(picture, fn, scale, FLAGS.tile, FLAGS.tile_pad),
      FLAGS.steps, FLAGS.warmup)
  median = sorted(times)[len(times) // 2]
  megapixels = (side * scale) ** 2 / 1e6
  timing.emit({
      "config": config.name, "backend": jax.default_backend(),
      "device_kind": jax.devices()[0].device_kind, "model": config.model.name,
      "features": config.model.features, "blocks": config.model.blocks, "scale": scale,
      "out_side": side * scale, "tile": FLAGS.tile, "tile_pad": FLAGS.tile_pad,
      "seconds_per_picture": median, "megapixels_per_sec": megapixels / median,
      **timing.first_call(first, times)}, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
