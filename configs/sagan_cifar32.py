"""SAGAN (Zhang et al. 2019) at 32x32: SNGAN's conditional ResNet with spectral norm in G too and
a self-attention block at 16x16 in G (after its second block) and in D (after its first), as
StudioGAN's CIFAR-10 SAGAN. Trains on the real digits by default; `--config.data.source=
tfds:cifar10` is the paper's setting."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.resnet_gan(common.base_config())
  c.name = "sagan_cifar32"
  c.data.source = "digits"
  c.model.g_spectral_norm = True
  c.model.attention_res = 16
  c.train.steps = 2000
  return common.apply_arg(c, arg)
