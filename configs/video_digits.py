"""MoCoGAN on the moving digits we ship: 16-frame clips of one real digit moving at 2-4 pixels a
frame and bouncing off the walls of a 64x64 black canvas (`gan_jax/data/video.py`); widths 16
(the paper's 64 / 4) so that it trains on 2 CPU cores. G's Adam runs at 1e-3, D's at the paper's
2e-4: with G at 2e-4 too, both critics won within 100 steps and G's frames were noise at step
1000; slowing D to 5e-5 instead, or raising the critics' instance noise to 0.5, still left grey
noise at step 200. With G at 1e-3, moving digit-like shapes on a black canvas by step 300
(README's Video section has the measures)."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.video(common.base_config())
  c.name = "video_digits"
  c.model.g_width = c.model.d_width = c.model.v_width = 16
  c.optim.g.lr = 1e-3
  c.train.steps = 1000
  c.train.log_every = 100
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  c.sample.num = 16
  return common.apply_arg(c, arg)
