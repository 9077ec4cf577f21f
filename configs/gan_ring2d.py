"""Vanilla GAN (MLP G and D, non-saturating loss) on 8 Gaussians on a ring (radius 1, std 0.01),
the PacGAN/VEEGAN mode-collapse benchmark.

G and D: 3 hidden layers of 128 ReLU units, latent_dim 2. Adam (lr 2e-3, b1 0.5, b2 0.99) for
both, decayed linearly to 0 over the 4000 steps of batch 512, and a small R1 penalty on D
(weight 0.05; Mescheder et al. 2018). Without R1 some seeds drop modes; without the decay G's
clusters stay about twice as wide as the data's 0.01 std and fewer samples are high quality.
No EMA of G: averaging an oscillating G lands between the modes.
"""
from gan_jax import config as common


def get_config(arg=None):
  c = common.vanilla_gan_2d(common.base_config())
  c.name = "gan_ring2d"
  c.data.source = "ring2d"
  c.loss.r1_weight = 0.05
  c.train.batch_size = 512
  c.train.steps = 4000
  return common.apply_arg(c, arg)
