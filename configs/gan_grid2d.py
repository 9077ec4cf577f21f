"""Vanilla GAN (MLP G and D, non-saturating loss) on the 25-Gaussian grid: means
{-4,-2,0,2,4}^2, std 0.05 (PacGAN/VEEGAN).

G and D: 3 hidden layers of 128 ReLU units, latent_dim 2. Adam (lr 2e-3, b1 0.5, b2 0.99) for
both, decayed linearly to 0 over 10000 steps of batch 256, and an R1 penalty on D (weight 0.5;
Mescheder et al. 2018; larger than the ring's 0.05 as the grid spans 4x the distance). No EMA
of G: averaging an oscillating G lands between the modes.
"""
from gan_jax import config as common


def get_config(arg=None):
  c = common.vanilla_gan_2d(common.base_config())
  c.name = "gan_grid2d"
  c.data.source = "grid2d"
  c.loss.r1_weight = 0.5
  c.train.batch_size = 256
  c.train.steps = 10000
  return common.apply_arg(c, arg)
