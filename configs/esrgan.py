"""ESRGAN (Wang et al. 2018), x4: the GAN stage, fine-tuned from a `configs/rrdb_psnr.py` run.

  gan-jax train --config=configs/rrdb_psnr.py --workdir=runs/rrdb_psnr
  gan-jax train --config=configs/esrgan.py --workdir=runs/esrgan \\
      --config.train.init_from=runs/rrdb_psnr

By default a narrow RRDBNet (32 features, 4 blocks, growth 16) on 64x64 HR crops of the shipped
photos, sized to train on a CPU; `configs/esrgan.py:paper` is the paper's network (64 features,
23 blocks, growth 32) on 128x128 crops, as BasicSR's train_ESRGAN_x4 (400k steps there). The
perceptual term needs the converted VGG19 weights (`gan-jax convert-vgg19`); without them it is
off and the run says so.
"""
from gan_jax import config as common


def get_config(arg=None):
  paper = arg == "paper"
  c = common.superres(common.base_config(), paper)
  c.name = "esrgan"
  c.train.steps = 400_000 if paper else 2000
  c.train.log_every = 50
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  return common.apply_arg(c, None if paper else arg)
