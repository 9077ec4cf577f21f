"""The pytorch/examples DCGAN: 64x64x3, nz 100, ngf = ndf = 64, batch norm, Adam 2e-4 (0.5, 0.999),
BCE. Trains on any image source (`--config.data.source=...`); the benchmarks time its step."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.base_config()
  c.name = "dcgan64"
  c.data.source = "stacked_digits"
  c.data.resolution = 64
  c.data.channels = 3
  c.model.latent_dim = 100
  c.model.g_width = 64
  c.model.d_width = 64
  c.train.ema_decay = 0.0
  c.train.steps = 5000
  return common.apply_arg(c, arg)
