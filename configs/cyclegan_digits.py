"""CycleGAN on data we ship: real digits (A) <-> the same classes drawn differently (B,
`digit_styles`), from disjoint halves of the training digits so no image of A has a partner in B.

The reference recipe at a small size: ResNet generators with 3 residual blocks at 32x32,
instance norm, PatchGANs with 2 layers, least-squares loss, cycle weight 10, a history pool of
50, Adam 2e-4 (0.5, 0.999) held for half the run then decayed to 0. No identity term: it asks
G_ab to leave B's drawings as they are while inverting A's, and with the reference's 0.5 all 8
runs tried (2 seeds; 1 or 3 blocks, a U-Net, resize upsampling, batch norm) settled on mappings
that keep the cycle but swap digits (0 <-> 1, 6 <-> 9, ...; outputs correlate best with the
input turned 180 degrees): 2.5-5.6% of held-out digits kept. Without it: README, Results.
"""
from gan_jax import config as common


def get_config(arg=None):
  c = common.translation(common.base_config(), "cycle")
  c.name = "cyclegan_digits"
  c.data.source = "digit_styles"
  c.data.resolution = 32
  c.model.name = "resnet_3blocks"
  c.model.norm = "instance"
  c.model.g_width = 16
  c.model.d_width = 16
  c.model.d_layers = 2
  c.loss.adversarial = "least_squares"
  c.loss.identity_weight = 0.0
  c.train.batch_size = 8
  c.train.steps = 2000
  c.train.log_every = 50
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  return common.apply_arg(c, arg)
