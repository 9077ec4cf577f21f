"""Text-to-image on captioned digits: DF-GAN (Tao et al. 2022) at 32x32 on t2i_digits, a real
digit drawn in one of five colours on black, captioned "a red seven"; captions embedded once by
MiniLM. DF-GAN's recipe (`gan_jax.config.text_to_image`) with its code's width 32.
`gan-jax sample` takes caption embeddings where class-conditional runs take labels."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.text_to_image(common.base_config())
  c.name = "t2i_digits"
  c.data.source = "t2i_digits"
  c.data.resolution = 32
  c.train.steps = 3000
  return common.apply_arg(c, arg)
