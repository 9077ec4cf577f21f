"""WGAN-GP (Gulrajani et al. 2017) on the real digits: Wasserstein loss, gradient penalty 10,
5 critic updates per G update, Adam 1e-4 (0.5, 0.9) and no batch norm in the critic."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.base_config()
  c.name = "wgan_gp_digits"
  c.model.latent_dim = 64
  c.model.g_width = 32
  c.model.d_width = 32
  c.model.d_norm = "layer"
  c.loss.adversarial = "wasserstein"
  c.loss.gp_weight = 10.0
  for opt in (c.optim.g, c.optim.d):
    opt.lr, opt.b1, opt.b2 = 1e-4, 0.5, 0.9
  c.train.n_critic = 5
  c.train.steps = 1000
  return common.apply_arg(c, arg)
