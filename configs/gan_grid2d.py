"""Vanilla GAN on the 25-Gaussian grid: means {-4,-2,0,2,4}^2, std 0.05 (PacGAN/VEEGAN)."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.base_config()
  c.name = "gan_grid2d"
  c.data.source = "grid2d"
  c.model = common.mlp_model()
  c.train.batch_size = 512
  c.train.steps = 5000
  c.train.steps_per_call = 50
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  c.sample.num = 2000
  return common.apply_arg(c, arg)
