"""BigGAN (Brock et al. 2019) at 32x32 on stacked digits: 1000 classes, the three-digit numbers.
As StudioGAN's CIFAR-10 BigGAN: G and D of 384 and 192 channels (96 x 4, 96 x 2), spectral norm
in both, self-attention at 16x16, a shared 128-d class embedding and z of 80 split across G's
input and its three blocks (hierarchical latents), G's EMA (0.9999) from step 1000; plus the
paper's orthogonal regularization of G (1e-4). `gan-jax sample --truncation=T` draws z from a
normal truncated at +-T. `--config.data.source=tfds:cifar10` is the paper's setting."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.resnet_gan(common.base_config())
  c.name = "biggan_cifar32"
  c.data.source = "stacked_digits"
  c.model.latent_dim = 80
  c.model.g_width = 384
  c.model.d_width = 192
  c.model.g_spectral_norm = True
  c.model.attention_res = 16
  c.model.shared_dim = 128
  c.loss.ortho_weight = 1e-4
  c.train.ema_decay = 0.9999
  c.train.ema_start = 1000
  c.train.steps = 2000
  return common.apply_arg(c, arg)
