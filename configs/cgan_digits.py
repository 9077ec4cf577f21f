"""Class-conditional DCGAN on the real digits: G sees a one-hot label, D is a projection D
(Miyato & Koyama 2018). `gan-jax sample --label=K` draws digit K."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.base_config()
  c.name = "cgan_digits"
  c.data.source = "digits"
  c.model.latent_dim = 64
  c.model.g_width = 32
  c.model.d_width = 32
  c.model.conditional = True
  c.train.steps = 2000
  return common.apply_arg(c, arg)
