"""MLP G and D for low-dimensional data (the 2D mixtures)."""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import class_vector


class Generator(nn.Module):
  out_dim: int = 2
  hidden: int = 128
  depth: int = 3
  num_classes: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    x = z.astype(self.dtype)
    if self.num_classes:
      x = jnp.concatenate([x, class_vector(labels, self.num_classes, self.dtype)], -1)
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    return nn.Dense(self.out_dim, dtype=self.dtype)(x).astype(jnp.float32)


class Discriminator(nn.Module):
  hidden: int = 128
  depth: int = 3
  num_classes: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    x = x.astype(self.dtype)
    if self.num_classes:
      x = jnp.concatenate([x, jax.nn.one_hot(labels, self.num_classes, dtype=self.dtype)], -1)
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
