"""R3GAN's FFHQ-64 preset (Huang et al. 2024; the authors' `--preset=FFHQ-64 --batch=256
--mirror=1 --aug=1`): 5 stages of widths 768 x 4 and 384, cardinality 96 x 4 and 48, 2 blocks
each (G 22.4M, D 22.4M parameters), gamma 2 -> 0.2, EMA half-life growing to 500 kimg, ADA p to
0.3, every schedule over 20000 kimg. Point it at your faces with `--config.data.source=folder:PATH`
(or a TFDS name). The authors' reduced-precision stages: `--config.model.g_bf16_stages=-1,-2,-3,-4
--config.model.d_bf16_stages=0,1,2,3`."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.r3gan(common.base_config(), widths=(768,) * 4 + (384,),
                   cardinality=(96,) * 4 + (48,), gamma=2.0, gamma_final=0.2, ema_kimg=500,
                   aug_p=0.3, ramp_kimg=20000)
  c.name = "r3gan_ffhq64"
  c.data.source = "folder:ffhq"
  c.data.random_flip = True
  c.train.batch_size = 256
  c.train.steps = 20_000_000 // 256
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  return common.apply_arg(c, arg)
