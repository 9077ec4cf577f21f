"""WGAN with weight clipping as in Arjovsky et al. 2017: clip 0.01, RMSprop 5e-5, 5 critic updates."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.base_config()
  c.name = "wgan_clip_digits"
  c.model.latent_dim = 64
  c.model.g_width = 32
  c.model.d_width = 32
  c.loss.adversarial = "wasserstein"
  c.loss.weight_clip = 0.01
  for opt in (c.optim.g, c.optim.d):
    opt.optimizer, opt.lr = "rmsprop", 5e-5
  c.train.n_critic = 5
  c.train.steps = 2000
  return common.apply_arg(c, arg)
