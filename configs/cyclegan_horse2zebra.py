"""CycleGAN (Zhu et al. 2017) as the reference trains horse2zebra at 256x256.

ResNet generators with 9 residual blocks (reflection padding, instance norm, transposed convs),
70x70 PatchGANs, the least-squares GAN loss, cycle weight 10 per direction, identity weight 0.5 x
10, a history pool of 50 fakes per domain, each D's loss halved, Adam 2e-4 (0.5, 0.999) for 100
epochs then decayed linearly to 0 over 100 more, batch 1, jitter (286 -> crop 256) and flips. An
epoch is 1334 steps (the larger domain, zebras). Prepare the data once with
`tfds build cycle_gan/horse2zebra --file_format=array_record`, or pass two folders:
`--config.data.source=unpaired:horses,zebras`.
"""
from gan_jax import config as common

EPOCH = 1334  # images in horse2zebra's larger training domain


def get_config(arg=None):
  c = common.translation(common.base_config(), "cycle")
  c.name = "cyclegan_horse2zebra"
  c.data.source = "unpaired:tfds:cycle_gan/horse2zebra"
  c.data.resolution = 256
  c.data.channels = 3
  c.data.load_size = 286
  c.data.random_flip = True
  c.model.name = "resnet_9blocks"
  c.model.norm = "instance"
  c.loss.adversarial = "least_squares"
  c.train.steps = 200 * EPOCH
  c.train.log_every = 100
  c.train.sample_every = EPOCH
  c.train.checkpoint_every = EPOCH
  return common.apply_arg(c, arg)
