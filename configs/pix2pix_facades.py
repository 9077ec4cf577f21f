"""pix2pix (Isola et al. 2017) as the reference trains facades: labels -> photos at 256x256.

U-Net 256 (8 downsamplings, dropout 0.5 as the noise), 70x70 PatchGAN seeing (input, output),
batch norm, the vanilla GAN loss + 100 * L1, Adam 2e-4 (0.5, 0.999) for 100 epochs then decayed
linearly to 0 over 100 more, batch 1, random jitter (286 -> crop 256) and flips. The 400 training
pairs of facades make an epoch 400 steps. Point it at any paired data: input folder first,
`--config.data.source=pair:facades/labels,facades/photos` (files paired by relative name).
"""
from gan_jax import config as common

EPOCH = 400  # facades' training pairs


def get_config(arg=None):
  c = common.translation(common.base_config(), "paired")
  c.name = "pix2pix_facades"
  c.data.source = "pair:facades/A,facades/B"
  c.data.resolution = 256
  c.data.channels = 3
  c.data.load_size = 286
  c.data.random_flip = True
  c.model.name = "unet_256"
  c.train.steps = 200 * EPOCH
  c.train.log_every = 100
  c.train.sample_every = EPOCH * 5
  c.train.checkpoint_every = EPOCH * 5
  return common.apply_arg(c, arg)
