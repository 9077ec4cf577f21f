"""Model registry: config -> (Generator, Discriminator) Linen modules."""
import math

import jax.numpy as jnp

from gan_jax.errors import UserError
from gan_jax.models import dcgan, dfgan, mlp, r3gan, resnet, sr, stylegan2
from gan_jax.models.patchgan import PatchGAN
from gan_jax.models.resnet_gen import ResnetGenerator
from gan_jax.models.unet import UNet


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
  if m.name == "resnet":
    if len(data_spec.shape) != 3:
      raise UserError(f"The ResNet GAN needs image data, but {config.data.source!r} gives examples "
                      f"of shape {data_spec.shape}: use --config.model.name=mlp or an image source.")
    kw = dict(resolution=config.data.resolution, num_classes=num_classes,
              attention_res=m.attention_res, dtype=dtype)
    return (resnet.Generator(channels=config.data.channels, width=m.g_width,
                             latent_dim=m.latent_dim, spectral_norm=m.g_spectral_norm,
                             shared_dim=m.shared_dim, axis_name=axis_name, **kw),
            resnet.Discriminator(width=m.d_width, **kw))
  if m.name == "mlp":
    if len(data_spec.shape) != 1:
      raise UserError(f"The MLP GAN needs vector data, but {config.data.source!r} gives examples "
                      f"of shape {data_spec.shape}: use --config.model.name=dcgan.")
    kw = dict(hidden=m.hidden, depth=m.depth, num_classes=num_classes, dtype=dtype)
    return mlp.Generator(out_dim=data_spec.shape[0], **kw), mlp.Discriminator(**kw)
  if m.name == "stylegan2":
    kw = dict(resolution=config.data.resolution, img_channels=config.data.channels,
              c_dim=num_classes, channel_base=m.channel_base, channel_max=m.channel_max,
              conv_clamp=m.conv_clamp or None, dtype=dtype)
    return (stylegan2.Generator(z_dim=m.latent_dim, w_dim=m.w_dim, axis_name=axis_name,
                                mapping_layers=m.mapping_layers, **kw),
            stylegan2.Discriminator(mbstd_group_size=m.mbstd_group, **kw))
  if m.name == "dfgan":
    if not data_spec.text_dim:
      raise UserError(f"The DF-GAN draws images of captions, and {config.data.source!r} has no "
                      "caption embeddings: use a captioned source such as t2i_digits.")
    # runs saved before g_norm, text_scale and d_projection existed read their defaults
    kw = dict(resolution=config.data.resolution, dtype=dtype, text_scale=m.get("text_scale", 1.0))
    return (dfgan.Generator(channels=config.data.channels, width=m.g_width,
                            norm=m.get("g_norm", "none"), **kw),
            dfgan.Discriminator(width=m.d_width, projection=m.get("d_projection", False), **kw))
  if m.name == "r3gan":
    kw = dict(widths=tuple(m.widths), cardinality=tuple(m.cardinality), blocks=tuple(m.blocks),
              expansion=m.expansion, kernel=m.kernel, num_classes=num_classes, dtype=dtype)
    return (r3gan.Generator(channels=config.data.channels, class_dim=m.g_class_dim,
                            bf16_stages=tuple(m.g_bf16_stages), **kw),
            r3gan.Discriminator(class_dim=m.d_class_dim, bf16_stages=tuple(m.d_bf16_stages),
                                **kw))
  raise UserError(f"Unknown model {m.name!r}: choose dcgan, resnet, mlp, stylegan2, dfgan or "
                  "r3gan.")


def _translation_generator(name):
  """"unet_<R>" -> (UNet, num_downs log2(R)); "resnet_<N>blocks" -> (ResnetGenerator, N);
  None if the name is neither."""
  kind, _, size = name.partition("_")
  if kind == "unet" and size.isdigit() and int(size) >= 8 and int(size) & (int(size) - 1) == 0:
    return UNet, int(math.log2(int(size)))
  if kind == "resnet" and size.endswith("blocks") and size[:-len("blocks")].isdigit():
    return ResnetGenerator, int(size[:-len("blocks")])
  return None


def build_translation(config, in_channels, out_channels, axis_name=None):
  """G (in_channels -> out_channels images) and the PatchGAN D for an image-to-image model:
  `config.model.name` is unet_<R> (pix2pix; R a power of two >= 8, the image side it reduces to
  1x1: unet_256, unet_128) or resnet_<N>blocks (CycleGAN: resnet_9blocks, resnet_6blocks). D's
  input channels are whatever it is given (pix2pix stacks input and output). `in_channels` is
  implied by the data G is applied to; it is named here for the callers' symmetry."""
  del in_channels  # Linen infers input widths on init
  m = config.model
  _check_translator(m)
  dtype = jnp.bfloat16 if config.train.dtype == "bfloat16" else jnp.float32
  kw = dict(norm=m.norm, axis_name=axis_name, dtype=dtype)
  module, depth = _translation_generator(m.name)
  if module is UNet:
    g = UNet(out_channels, num_downs=depth, width=m.g_width, dropout=m.dropout, **kw)
  else:
    g = ResnetGenerator(out_channels, n_blocks=depth, width=m.g_width, upsample=m.upsample, **kw)
  return g, PatchGAN(width=m.d_width, n_layers=m.d_layers, **kw)


def translation_multiple(config):
  """What H and W of a translator's input must be multiples of: 2 ** downsamplings for a U-Net,
  4 (two stride-2 convs) for a ResNet generator."""
  module, depth = _translation_generator(config.model.name) or (None, 0)
  return 2 ** depth if module is UNet else 4


def validate_translation(config):
  """One UserError for a translator setting that cannot be built or cannot take the data."""
  m, r = config.model, config.data.resolution
  _check_translator(m)
  multiple = translation_multiple(config)
  if r % multiple:
    raise UserError(f"--config.model.name={m.name} needs images whose sides are a multiple of "
                    f"{multiple}, and --config.data.resolution={r} is not: use a resolution that "
                    "is, or a smaller net.")
  # The PatchGAN halves its input d_layers times, then two 4x4 convs take a pixel each.
  if m.d_layers and r // 2 ** m.d_layers < 3:
    raise UserError(f"--config.model.d_layers={m.d_layers} gives the PatchGAN no output at "
                    f"--config.data.resolution={r}: use d_layers <= "
                    f"{max(int(math.log2(r / 3)), 0)} or images of at least "
                    f"{3 * 2 ** m.d_layers} pixels.")


def _check_translator(m):
  if _translation_generator(m.name) is None:
    raise UserError(f"Unknown translation model {m.name!r}: choose unet_256, unet_128 (any "
                    "unet_<R>, R a power of two >= 8), resnet_9blocks or resnet_6blocks (any "
                    "resnet_<N>blocks).")
  if m.norm not in ("batch", "instance"):
    raise UserError(f"Unknown --config.model.norm={m.norm!r}: choose batch or instance.")
  if m.upsample not in ("transpose", "resize"):
    raise UserError(f"Unknown --config.model.upsample={m.upsample!r}: choose transpose or resize.")


SR_GENERATORS = {"srresnet": sr.SRResNet, "rrdb": sr.RRDBNet}
# What the HR patch side must be a multiple of for each D: the VGG-style D halves it 5 times,
# the U-Net D 3 times (and adds the encoder's outputs back at each size).
SR_DISCRIMINATORS = {"vgg": 32, "unet": 8}


def build_sr(config, channels, axis_name=None):
  """G (LR images -> HR images of `channels` channels, x `config.data.scale`) and D (HR images
  -> logits: [B] for the VGG-style D, [B, H, W, 1] for the U-Net D) for a super-resolution
  model: `config.model.name` srresnet or rrdb (ESRGAN's), `d_name` vgg or unet (Real-ESRGAN's),
  with `features`, `blocks`, `growth` (rrdb), `upsample` and `d_width`."""
  validate_sr(config)
  m = config.model
  dtype = jnp.bfloat16 if config.train.dtype == "bfloat16" else jnp.float32
  kw = dict(features=m.features, blocks=m.blocks, scale=config.data.scale, out_channels=channels,
            upsample=m.upsample, dtype=dtype)
  if m.name == "rrdb":
    kw.update(growth=m.growth, global_skip=m.get("global_skip", False))
  g = SR_GENERATORS[m.name](**kw)
  if m.d_name == "vgg":
    d = sr.VGGStyleDiscriminator(width=m.d_width, resolution=config.data.resolution,
                                 axis_name=axis_name, dtype=dtype)
  else:
    d = sr.UNetDiscriminatorSN(width=m.d_width, dtype=dtype)
  return g, d


def validate_sr(config):
  """One UserError for a super-resolution setting that cannot be built or cannot take the data
  (`config.data.resolution` is the HR patch side; the LR side is it divided by the scale)."""
  m, r, scale = config.model, config.data.resolution, config.data.scale
  if m.name not in SR_GENERATORS:
    raise UserError(f"Unknown super-resolution model {m.name!r}: choose srresnet or rrdb "
                    "(ESRGAN's).")
  if m.d_name not in SR_DISCRIMINATORS:
    raise UserError(f"Unknown --config.model.d_name={m.d_name!r}: choose vgg (ESRGAN's) or unet "
                    "(Real-ESRGAN's).")
  if m.upsample not in sr.UPSAMPLE:
    raise UserError(f"Unknown --config.model.upsample={m.upsample!r}: choose nearest or "
                    "pixel_shuffle.")
  if scale not in sr.SCALES:
    raise UserError(f"--config.data.scale={scale} is not a factor the SR nets upsample by: use "
                    "2 or 4.")
  if r % scale:
    raise UserError(f"--config.data.resolution={r} (the HR patch side) is not a multiple of "
                    f"--config.data.scale={scale}, so the LR patch would not have whole pixels: "
                    f"use a multiple of {scale}.")
  multiple = SR_DISCRIMINATORS[m.d_name]
  if r % multiple:
    raise UserError(f"--config.model.d_name={m.d_name} needs HR patches whose side is a "
                    f"multiple of {multiple}, and --config.data.resolution={r} is not: use "
                    f"{r + multiple - r % multiple} (or another multiple of {multiple}).")
