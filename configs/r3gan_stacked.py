"""R3GAN on the stacked digits we ship (three digits as the R, G and B channels: 1000 modes, the
paper's Stacked MNIST test of mode coverage), sized for 2 CPU cores: 16x16, 3 stages of width
64, cardinality 8, 1 block each; the paper's schedules shortened to this run's length, no
augmentation (colour transforms would mix the three digits)."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.r3gan(common.base_config(), widths=(64, 64, 64), cardinality=(8, 8, 8), gamma=0.05,
                   gamma_final=0.005, ema_kimg=50, aug_p=0.0, ramp_kimg=128, blocks=1)
  c.name = "r3gan_stacked"
  c.data.source = "stacked_digits"
  c.train.batch_size = 64
  c.train.steps = 2000
  c.train.log_every = 100
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  return common.apply_arg(c, arg)
