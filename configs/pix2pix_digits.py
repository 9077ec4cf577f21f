"""pix2pix on data we ship: edge maps of real digits -> the digits (`digit_edges`), 32x32.

The reference recipe at a small size: a U-Net with 5 downsamplings (32 -> 1), the 70x70 PatchGAN
design with 2 layers, batch norm, vanilla GAN loss + 100 * L1, Adam 2e-4 (0.5, 0.999) held for
half the run then decayed to 0. Trained on the 1437 training digits; the 360 held-out ones are the
sample grids' and `gan-jax evaluate`'s.
"""
from gan_jax import config as common


def get_config(arg=None):
  c = common.translation(common.base_config(), "paired")
  c.name = "pix2pix_digits"
  c.data.source = "digit_edges"
  c.data.resolution = 32
  c.model.name = "unet_32"
  c.model.g_width = 32
  c.model.d_width = 32
  c.model.d_layers = 2
  c.train.batch_size = 16
  c.train.steps = 2000
  c.train.log_every = 50
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  return common.apply_arg(c, arg)
