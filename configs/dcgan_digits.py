"""DCGAN (Radford et al. 2016) on scikit-learn's real 8x8 handwritten digits, upsampled to 32x32."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.base_config()
  c.name = "dcgan_digits"
  c.data.source = "digits"
  c.data.resolution = 32
  c.model.latent_dim = 64
  c.model.g_width = 32
  c.model.d_width = 32
  c.train.steps = 2000
  return common.apply_arg(c, arg)
