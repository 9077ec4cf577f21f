"""The image tower of CLIP (Radford et al. 2021) in Flax, from a Hugging Face CLIP checkpoint
folder (config.json with vision_config, model.safetensors with vision_model.* and
visual_projection.weight, as CLIPModel.save_pretrained writes them), for the CLIP score.

ViT layout (ViT-B/32: width 768, 12 layers, 12 heads, 32x32 patches at 224x224, projection 512):
a bias-free patch convolution, a class token, learned positions, a LayerNorm before the encoder
("pre_layrnorm", transformers' spelling), the text tower's pre-LN layers without a mask, a
LayerNorm of the class token's state and the bias-free visual projection.

Images are NHWC in [-1, 1] (the generators' range), gray repeated to RGB, mapped to [0, 1],
resized so the shorter side is the tower's size (bicubic, jax.image.resize: PIL's bicubic, which
CLIPImageProcessor uses, to 3e-6 on float pictures; the processor also rounds to uint8 first),
centre-cropped and normalised with CLIP's mean and std.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.encoders import clip_text, text
from gan_jax.errors import UserError

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class ClipVisionConfig:
  width: int = 768
  layers: int = 12
  heads: int = 12
  intermediate: int = 3072
  patch: int = 32
  image: int = 224
  projection: int = 512
  act: str = "quick_gelu"
  eps: float = 1e-5

  def layer(self) -> clip_text.ClipTextConfig:
    """The settings ClipLayer reads (the same block as the text tower's)."""
    return clip_text.ClipTextConfig(width=self.width, heads=self.heads,
                                    intermediate=self.intermediate, act=self.act, eps=self.eps)


def hf_config(path: str) -> ClipVisionConfig:
  """The image tower's settings from a CLIPModel's config.json (missing ones: ViT-B/32's)."""
  with open(path) as f:
    c = json.load(f)
  if "vision_config" not in c:
    raise UserError(f"{path} has no vision_config: the CLIP score needs a whole CLIPModel "
                    "checkpoint (both towers), not a text model alone.")
  v, d = c["vision_config"], ClipVisionConfig()
  act = v.get("hidden_act", d.act)
  if act not in text.ACTIVATIONS:
    raise UserError(f"{path} asks for activation {act!r}: this CLIP image tower knows "
                    f"{', '.join(text.ACTIVATIONS)}.")
  return ClipVisionConfig(
      v.get("hidden_size", d.width), v.get("num_hidden_layers", d.layers),
      v.get("num_attention_heads", d.heads), v.get("intermediate_size", d.intermediate),
      v.get("patch_size", d.patch), v.get("image_size", d.image),
      c.get("projection_dim", d.projection), act, v.get("layer_norm_eps", d.eps))


class ClipVisionTower(nn.Module):
  """pixels [B, image, image, 3], CLIP-normalised -> projected class-token state [B, projection]
  (not normalised)."""
  config: ClipVisionConfig

  @nn.compact
  def __call__(self, pixels):
    c = self.config
    x = nn.Conv(c.width, (c.patch, c.patch), strides=(c.patch, c.patch), padding="VALID",
                use_bias=False, name="vision_model.embeddings.patch_embedding")(pixels)
    x = x.reshape(x.shape[0], -1, c.width)  # row-major patches, as torch's flatten(2)
    cls, positions = Embeddings(c, name="vision_model.embeddings")()
    x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, c.width)), x], axis=1)
    x = x + positions[None]
    x = nn.LayerNorm(c.eps, name="vision_model.pre_layrnorm")(x)
    for i in range(c.layers):
      x = clip_text.ClipLayer(c.layer(), name=f"vision_model.encoder.layers.{i}")(x, True)
    pooled = nn.LayerNorm(c.eps, name="vision_model.post_layernorm")(x[:, 0])
    return nn.Dense(c.projection, use_bias=False, name="visual_projection")(pooled)


class Embeddings(nn.Module):
  """The class token and the position table, under transformers' names."""
  config: ClipVisionConfig

  @nn.compact
  def __call__(self):
    c = self.config
    cls = self.param("class_embedding", nn.initializers.normal(0.02), (c.width,))
    positions = nn.Embed((c.image // c.patch) ** 2 + 1, c.width, name="position_embedding")
    return cls, positions.embedding


def preprocess(images, size: int):
  """NHWC images in [-1, 1] (1 or 3 channels, any size) -> CLIP's normalised size x size RGB."""
  x = (jnp.asarray(images, jnp.float32) + 1.0) / 2.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  h, w = x.shape[1:3]
  scale = size / min(h, w)
  rh, rw = max(size, round(h * scale)), max(size, round(w * scale))
  if (rh, rw) != (h, w):
    x = jax.image.resize(x, (x.shape[0], rh, rw, 3), "bicubic")
  top, left = (rh - size) // 2, (rw - size) // 2
  x = x[:, top:top + size, left:left + size]
  return (x - jnp.asarray(MEAN)) / jnp.asarray(STD)


@functools.partial(jax.jit, static_argnums=0)
def _apply(config, params, images):
  pixels = preprocess(images, config.image)
  return text.l2_normalize(ClipVisionTower(config).apply({"params": params}, pixels))


class ClipVision:
  """CLIP image embeddings: `encode(images)` -> float32 [N, projection], rows L2-normalised."""

  def __init__(self, folder: str):
    config, weights = (os.path.join(folder, f) for f in ("config.json", "model.safetensors"))
    if not (os.path.exists(config) and os.path.exists(weights)):
      raise UserError(f"{folder} holds no Hugging Face CLIP checkpoint: pass a folder with "
                      "config.json and model.safetensors of a CLIPModel.")
    self.config = hf_config(config)
    self.dim = self.config.projection
    shapes = jax.eval_shape(lambda: ClipVisionTower(self.config).init(
        jax.random.key(0), jnp.zeros((1, self.config.image, self.config.image, 3))))["params"]
    self.params = jax.device_put(
        text.params_from_torch(text.read_safetensors(weights), shapes, weights))

  def encode(self, images, batch_size: int = 64) -> np.ndarray:
    """Embeddings of NHWC images in [-1, 1]; the last batch padded to the batch shape."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise UserError(f"CLIP embeds NHWC images with 1 or 3 channels, got shape {images.shape}.")
    out = [np.zeros((0, self.dim), np.float32)]
    size = min(batch_size, max(len(images), 1))
    for start in range(0, len(images), size):
      chunk = images[start:start + size]
      padded = np.pad(chunk, ((0, size - len(chunk)),) + ((0, 0),) * 3)
      with jax.default_matmul_precision("float32"):
        out.append(np.asarray(_apply(self.config, self.params, padded))[:len(chunk)])
    return np.concatenate(out)
