"""Text-to-image on your own captioned pictures: DF-GAN (Tao et al. 2022) with the recipe of
`t2i_digits` (`gan_jax.config.text_to_image`) at the paper's 256x256 (six upsampling blocks)
and batch 32. Give it a folder in Hugging Face's imagefolder layout, `PATH/metadata.jsonl` with
rows {"file_name": "img/0001.png", "text": "a caption" or ["one", "another"]}:

  gan-jax train --config=t2i_folder --config.data.source=captions:PATH

or a TFDS dataset with a text feature (`--config.data.source=tfds:coco_captions
--config.data.text_key=captions/text`). `--config.data.resolution=64` is a quicker start.
"""
from gan_jax import config as common


def get_config(arg=None):
  c = common.text_to_image(common.base_config())
  c.name = "t2i_folder"
  c.data.source = "captions:images"
  c.data.resolution = 256
  c.data.random_flip = True
  c.train.steps = 200_000
  c.train.sample_every = 2000
  c.train.checkpoint_every = 2000
  return common.apply_arg(c, arg)
