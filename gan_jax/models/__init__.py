"""Model registry: config -> (Generator, Discriminator) Linen modules."""
import jax.numpy as jnp

from gan_jax.errors import UserError
from gan_jax.models import dcgan, mlp


def build(config, data_spec, axis_name=None):
  """G and D for `config.model`, shaped by the data (`data_spec`: shape of one example, classes)."""
  m = config.model
  dtype = jnp.bfloat16 if config.train.dtype == "bfloat16" else jnp.float32
  num_classes = data_spec.num_classes if m.conditional else 0
  if m.conditional and not num_classes:
    raise UserError(f"--config.model.conditional=True needs labelled data, and "
                    f"{config.data.source!r} has no labels: use a labelled source or set it False.")
  if m.name == "dcgan":
    if len(data_spec.shape) != 3:
      raise UserError(f"The DCGAN needs image data, but {config.data.source!r} gives examples of "
                      f"shape {data_spec.shape}: use --config.model.name=mlp or an image source.")
    kw = dict(resolution=config.data.resolution, channels=config.data.channels,
              num_classes=num_classes, axis_name=axis_name, dtype=dtype)
    return (dcgan.Generator(width=m.g_width, norm=m.g_norm, **kw),
            dcgan.Discriminator(width=m.d_width, norm=m.d_norm, **kw))
  if m.name == "mlp":
    if len(data_spec.shape) != 1:
      raise UserError(f"The MLP GAN needs vector data, but {config.data.source!r} gives examples "
                      f"of shape {data_spec.shape}: use --config.model.name=dcgan.")
    kw = dict(hidden=m.hidden, depth=m.depth, num_classes=num_classes, dtype=dtype)
    return mlp.Generator(out_dim=data_spec.shape[0], **kw), mlp.Discriminator(**kw)
  raise UserError(f"Unknown model {m.name!r}: choose dcgan or mlp.")


def translation_multiple(config):
  """What H and W of a translator's input must be multiples of: 2 ** downsamplings."""
  name = config.model.name
  return int(name.split("_")[1]) if name.startswith("unet_") else 4


def validate_translation(config):
  """One UserError for a translator setting that cannot be built."""
  name, r = config.model.name, config.data.resolution
  if name.startswith("unet_") and r % translation_multiple(config):
    raise UserError(f"--config.model.name={name} halves its input {name.split('_')[1]} times' "
                    f"worth, so --config.data.resolution={r} must be a multiple of "
                    f"{translation_multiple(config)}: pick unet_{r} or another resolution.")
