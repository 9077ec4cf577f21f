"""MoCoGAN on the moving digits we ship: 16-frame clips of one real digit moving at 2-4 pixels a
frame and bouncing off the walls of a 64x64 black canvas (`gan_jax/data/video.py`); widths 16
(the paper's 64 / 4) so that it trains on 2 CPU cores."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.video(common.base_config())
  c.name = "video_digits"
  c.model.g_width = c.model.d_width = c.model.v_width = 16
  c.train.steps = 1000
  c.train.log_every = 100
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  c.sample.num = 16
  return common.apply_arg(c, arg)
