"""The learned watermark every picture gan_jax writes carries (`gan_jax/games/watermark.py`):
32 bits hidden in brightness, trained through JPEG, downscaling, cropping, blur, noise and colour
changes on 64x64 crops of the photographs we ship.

  gan-jax train --config=configs/watermark.py --workdir=runs/watermark
  gan-jax watermark-weights --workdir=runs/watermark --strength=0.024  # -> gan_jax/weights/...

The second command writes the networks with the encoder marking at RMS 0.024 in the written
picture (38.5-38.9 dB at 32-256 px) and tunes the decoder on pillow's own resize, blur, JPEG and
noise (`watermark.tune_decoder`, 12 minutes on 2 cores).
"""
import ml_collections

from gan_jax import config as common


def get_config(arg=None):
  c = common.base_config()
  c.name = "watermark"
  c.game = "watermark"
  c.data.source = "photos"
  c.data.resolution = 64
  c.data.channels = 3
  c.data.random_flip = True
  c.model = ml_collections.ConfigDict(dict(
      name="watermark",
      bits=32,          # the message: 32 bits, from the key (`gan_jax.watermark`)
      side=32,          # the side both networks work at, whatever the image's size
      width=32,
      strength=0.025,   # RMS of the residual in [-1, 1] units at the picture's size, training
  ))
  c.loss.critic_weight = 0.01
  c.loss.clean_weight = 1.0
  c.loss.attack_p = 0.5     # each attack meets each image with this probability
  c.loss.ramp_steps = 4000  # over which the attacks and the clean term grow from nothing
  c.loss.strength_start = 0.3  # and the residual's RMS falls from this to model.strength
  for side in (c.optim.g, c.optim.d):
    side.lr, side.b1 = 1e-3, 0.9
  c.train.steps = 8000
  c.train.batch_size = 32
  c.train.ema_decay = 0.0
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  return common.apply_arg(c, arg)
