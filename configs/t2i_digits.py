"""Text-to-image on captioned digits: DF-GAN (Tao et al. 2022) at 32x32 on t2i_digits, a real
digit drawn in one of five colours on black, captioned "a red seven"; captions embedded once by
MiniLM. DF-GAN's recipe as `gan_jax.config.text_to_image` sets it (the paper's code's width 32,
an instance-normalized G, captions read at 10x, a projection term in D, XMC-GAN's contrastive
term), 2000 steps (about 11 minutes on 2 cores). `gan-jax sample --text="a blue four"` draws
a caption."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.text_to_image(common.base_config())
  c.name = "t2i_digits"
  c.data.source = "t2i_digits"
  c.data.resolution = 32
  c.train.steps = 2000
  return common.apply_arg(c, arg)
