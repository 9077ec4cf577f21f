"""R3GAN's CIFAR-10 preset (Huang et al. 2024; the authors' `--preset=CIFAR10 --cond=1 --batch=512
--mirror=1 --aug=1`): 4 stages of width 768, cardinality 96, 2 blocks each (G 20.8M, D 21.3M
parameters), class-conditional, gamma 0.05 -> 0.005, EMA half-life growing to 5000 kimg, ADA p to
0.55, every schedule over 20000 kimg, the length this run trains. The authors compute the
lowest-resolution stages in reduced precision: `--config.model.g_bf16_stages=-1,-2,-3
--config.model.d_bf16_stages=0,1,2` does so in bfloat16."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.r3gan(common.base_config(), widths=(768,) * 4, cardinality=(96,) * 4, gamma=0.05,
                   gamma_final=0.005, ema_kimg=5000, aug_p=0.55, ramp_kimg=20000,
                   conditional=True)
  c.name = "r3gan_cifar10"
  c.data.source = "tfds:cifar10"
  c.data.random_flip = True
  c.train.batch_size = 512
  c.train.steps = 20_000_000 // 512
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  return common.apply_arg(c, arg)
