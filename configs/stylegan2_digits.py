"""StyleGAN2 with ADA on scikit-learn's real 8x8 digits, upsampled to 32x32: NVIDIA's `auto`
recipe for 32 pixels (batch 32, R1 gamma 0.0002 x 32^2 / 32, EMA half-life 10 kimg with ramp-up
0.05, lr 0.0025, a 2-layer mapping) with networks narrowed to train in about 20 minutes on 2 CPU
cores: z and w of 128, 64 channels up to 16x16 and 32 at 32x32 (G 0.33M, D 0.29M parameters),
2048 steps (65.5 kimg)."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.stylegan2(common.base_config(), resolution=32, batch_size=32, mbstd=4, fmaps=1 / 32,
                       lr=0.0025, gamma=0.0002 * 32 ** 2 / 32, ema_kimg=10, rampup=0.05,
                       mapping=2)
  c.name = "stylegan2_digits"
  c.data.source = "digits"
  c.data.channels = 1
  c.model.latent_dim = c.model.w_dim = 128
  c.model.channel_max = 64
  c.train.steps = 2048
  c.train.log_every = 64  # multiples of 16: steps_per_call=16 divides them
  c.train.sample_every = 512
  c.train.checkpoint_every = 512
  return common.apply_arg(c, arg)
