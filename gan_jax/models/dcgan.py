"""DCGAN (Radford et al. 2016) at any power-of-two resolution, optionally class-conditional.

G: z -> 4x4 (a dense layer: the same map as PyTorch's 1x1 -> 4x4 transposed conv) -> doubling
blocks -> tanh image. D: stride-2 4x4 convs down to 4x4 -> a 4x4 valid conv (a dense layer) ->
one logit. Conditional: G sees a one-hot label next to z; D adds a projection term
(Miyato & Koyama 2018).
"""
import math
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models.layers import (Conv4x4s2, ConvTranspose4x4s2, class_vector, dcgan_init,
                                   norm_layer)


class Generator(nn.Module):
  resolution: int
  channels: int
  width: int = 64
  norm: str = "batch"
  num_classes: int = 0
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    n_up = int(math.log2(self.resolution)) - 2
    x = z.astype(self.dtype)
    if self.num_classes:
      x = jnp.concatenate([x, class_vector(labels, self.num_classes, self.dtype)], -1)
    ch = self.width * 2 ** (n_up - 1)
    x = nn.Dense(4 * 4 * ch, use_bias=False, kernel_init=dcgan_init, dtype=self.dtype)(x)
    x = x.reshape(x.shape[0], 4, 4, ch)
    for i in range(n_up):
      if i:
        x = ConvTranspose4x4s2(ch, dtype=self.dtype, impl=self.conv_impl)(x)
      x = nn.relu(norm_layer(self.norm, train, self.axis_name, self.dtype)(x))
      ch //= 2
    x = ConvTranspose4x4s2(self.channels, dtype=self.dtype, impl=self.conv_impl)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  resolution: int
  channels: int
  width: int = 64
  norm: str = "batch"
  num_classes: int = 0
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    n_down = int(math.log2(self.resolution)) - 2
    x = x.astype(self.dtype)
    ch = self.width
    for i in range(n_down):
      x = Conv4x4s2(ch, dtype=self.dtype, impl=self.conv_impl)(x)
      if i:  # DCGAN: no normalization on D's first layer
        x = norm_layer(self.norm, train, self.axis_name, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
      ch *= 2
    return projection_logit(x.reshape(x.shape[0], -1), labels, self.num_classes, self.dtype)


def projection_logit(h, labels, num_classes, dtype):
  """One logit per row of features h [B, F] (a D's compact method calls this): a linear map,
  plus <embed(label), h> when conditional (Miyato & Koyama 2018's projection)."""
  logits = nn.Dense(1, use_bias=False, kernel_init=dcgan_init, dtype=dtype)(h)[:, 0]
  if num_classes:
    embed = nn.Embed(num_classes, h.shape[-1], embedding_init=dcgan_init, dtype=dtype)
    logits = logits + jnp.sum(embed(labels) * h, axis=-1)
  return logits.astype(jnp.float32)
