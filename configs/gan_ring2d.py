"""Vanilla GAN (MLP G and D, non-saturating loss) on 8 Gaussians on a ring (radius 1, std 0.01),
the PacGAN/VEEGAN mode-collapse benchmark."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.base_config()
  c.name = "gan_ring2d"
  c.data.source = "ring2d"
  c.model = common.mlp_model()
  c.train.batch_size = 512
  c.train.steps = 3000
  c.train.steps_per_call = 50
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  c.sample.num = 2000
  return common.apply_arg(c, arg)
