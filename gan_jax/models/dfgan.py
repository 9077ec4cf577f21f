"""DF-GAN (Tao et al. 2022): text-to-image in one stage, G fusing the sentence into every block,
D judging (image, sentence) pairs with one output.

Channels (`width`: the paper's code's ngf / ndf, 32 there): the feature map of side s carries
width x min(2 ** i, 8) channels, i = log2(resolution / s); from 32 pixels up, 8 x width at 4x4.

G(z, e): a linear layer from z to the 4x4 feature map, then per doubling a block
  nearest 2x, then DFBlock -> conv3x3 -> DFBlock -> conv3x3, plus a shortcut (a 1x1 conv where
  the channels change);
then LeakyReLU 0.2, conv3x3 to the image's channels, tanh. Every DFBlock (deep fusion) reads
cond = [z, e] and applies (affine, LeakyReLU 0.2) twice; an affine scales and shifts each channel
by gamma(cond) and beta(cond), two-layer MLPs (linear, ReLU, linear) whose last layer starts at
gamma = 1, beta = 0.

D(x, e): conv3x3 to `width` channels, then per halving a block whose residual branch, conv4x4
stride 2 -> LeakyReLU -> conv3x3 -> LeakyReLU (no biases), is scaled by a learned gamma that
starts at 0, plus a shortcut (a 1x1 conv where the channels change, 2x2 average pooling). At
4x4 the sentence embedding, repeated at every position, joins the features (the paper's
"one-way output"): conv3x3 to 2 x width (`JointConv`), LeakyReLU, a 4x4 valid conv to one
logit (a dense layer). `features` and `judge` are the two halves, so a step scores one image's features
against several sentences (the mismatched pairs) without running the blocks again.

Speed (exact rewrites, every backend computes the same function): affines and LeakyReLUs act per
channel and commute with nearest upsampling, so a G block's first DFBlock and its shortcut run
before the upsampling, at a quarter of the pixels, and the upsampling and the first conv3x3 are
one 4x4 stride-2 transposed conv (`layers.upsample_conv3x3`); D's shortcut pools before its 1x1
conv; the sentence's share of D's joint conv is a product per sentence, not per position
(`JointConv`), which matters most under MA-GP's double backward. Inits are PyTorch's defaults (`layers.torch_init`) as in the paper's code.
"""
import math
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models.layers import (Conv4x4s2, SNConv, avg_pool2x, conv_same, instance_norm,
                                   l2_normalize, torch_init, upsample2x)


def channels(resolution, width):
  """Channels of the feature maps of side 4, 8, ..., resolution."""
  n = int(math.log2(resolution)) - 1
  return [width * min(2 ** i, 8) for i in reversed(range(n))]


def _lrelu(x):
  return nn.leaky_relu(x, 0.2)


def _conv(features, kernel_size, dtype, impl, **kw):
  """A plain conv (no spectral norm) with PyTorch's init."""
  return SNConv(features, kernel_size, spectral_norm=False, kernel_init=torch_init, dtype=dtype,
                impl=impl, **kw)


class Affine(nn.Module):
  """x * gamma(cond) + beta(cond), per channel; gamma and beta start at 1 and 0."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cond):
    ch = x.shape[-1]

    def mlp(bias_init, name):
      h = nn.relu(nn.Dense(ch, kernel_init=torch_init, dtype=self.dtype, name=f"{name}_0")(cond))
      return nn.Dense(ch, kernel_init=nn.initializers.zeros, bias_init=bias_init,
                      dtype=self.dtype, name=f"{name}_1")(h)
    gamma, beta = mlp(nn.initializers.ones, "gamma"), mlp(nn.initializers.zeros, "beta")
    return x * gamma[:, None, None, :] + beta[:, None, None, :]


class DFBlock(nn.Module):
  """Deep text-image fusion: (affine, LeakyReLU 0.2) twice; with norm="instance" the input is
  normalized first, so the affines set each channel's scale (AdaIN, Huang & Belongie 2017)."""
  dtype: Any = jnp.float32
  norm: str = "none"

  @nn.compact
  def __call__(self, x, cond):
    if self.norm == "instance":
      x = instance_norm(x)
    for _ in range(2):
      x = _lrelu(Affine(self.dtype)(x, cond))
    return x


class GBlock(nn.Module):
  features: int
  dtype: Any = jnp.float32
  impl: str = "auto"
  norm: str = "none"

  @nn.compact
  def __call__(self, x, cond, train):
    conv = partial(_conv, dtype=self.dtype, impl=self.impl)
    # DFBlock, nearest 2x and conv3x3, in that order (see the module's docstring)
    h = conv(self.features, 3, resample="up")(DFBlock(self.dtype, self.norm)(x, cond), train)
    h = conv(self.features, 3)(DFBlock(self.dtype, self.norm)(h, cond), train)
    shortcut = conv(self.features, 1)(x, train) if x.shape[-1] != self.features else x
    return upsample2x(shortcut) + h


class Generator(nn.Module):
  resolution: int
  channels: int
  width: int = 32
  dtype: Any = jnp.float32
  impl: str = "auto"  # see layers._use_gemm
  norm: str = "none"  # "instance": normalize each DFBlock's input (see DFBlock)
  text_scale: float = 1.0  # sentence embeddings are read times this (see `text_to_image`)

  @nn.compact
  def __call__(self, z, text, train=True):
    chans = channels(self.resolution, self.width)
    z = z.astype(self.dtype)
    cond = jnp.concatenate([z, (self.text_scale * text).astype(self.dtype)], -1)
    h = nn.Dense(16 * chans[0], kernel_init=torch_init, dtype=self.dtype)(z)
    h = h.reshape(h.shape[0], 4, 4, chans[0])
    for c in chans[1:]:
      h = GBlock(c, self.dtype, self.impl, self.norm)(h, cond, train)
    out = _conv(self.channels, 3, self.dtype, self.impl)(_lrelu(h), train)
    return jnp.tanh(out.astype(jnp.float32))


class DBlock(nn.Module):
  features: int
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, train):
    h = _lrelu(Conv4x4s2(self.features, kernel_init=torch_init, dtype=self.dtype,
                         impl=self.impl)(x))
    h = _lrelu(_conv(self.features, 3, self.dtype, self.impl, use_bias=False)(h, train))
    shortcut = avg_pool2x(x)
    if x.shape[-1] != self.features:
      shortcut = _conv(self.features, 1, self.dtype, self.impl)(shortcut, train)
    gamma = self.param("gamma", nn.initializers.zeros, (), jnp.float32)
    return shortcut + gamma.astype(h.dtype) * h


def _tap_mask(side):
  """[side * side, 9]: which taps of a 3x3 conv with zero padding 1 read inside a side x side
  map, at each output position."""
  inside = lambda i, a: 0 <= i + a - 1 < side
  return jnp.array([[float(inside(i, a) and inside(j, b)) for a in range(3) for b in range(3)]
                    for i in range(side) for j in range(side)])


class JointConv(nn.Module):
  """conv3x3 (zero padding 1, no bias) of the features h [B, s, s, C] concatenated with the
  sentence e [B, D] repeated at every position, kernel [3, 3, C + D, features] as that conv's.
  Computed exactly as conv(h) + e's part: e is the same at every position, so each output
  position gets e times the sum of the kernel's taps that land inside the map, 9 products per
  sentence instead of 9 per position; h's conv runs as im2col on CPU. MA-GP differentiates this
  layer twice: at width 32, batch 32 its second-order gradient took 20 ms against 259 ms for
  the conv of the concatenation in the form `cpu_conv` picks for it ("padded", XLA's own), the
  first-order 11 against 29 (benchmarks/dfgan_layers.py,
  benchmarks/results/cpu_dfgan32_layers.json)."""
  features: int
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, h, e):
    (b, s, _, c), d = h.shape, e.shape[-1]
    kernel = self.param("kernel", torch_init, (3, 3, c + d, self.features), jnp.float32)
    kernel = kernel.astype(self.dtype)
    out = conv_same(h, kernel[:, :, :c], self.impl, form="im2col")
    k_e = jnp.transpose(kernel[:, :, c:], (2, 0, 1, 3)).reshape(d, 9 * self.features)
    taps = (e.astype(self.dtype) @ k_e).reshape(b, 9, self.features)
    sentence = jnp.einsum("pt,bto->bpo", _tap_mask(s).astype(self.dtype), taps)
    return out + sentence.reshape(b, s, s, self.features)


class Discriminator(nn.Module):
  resolution: int
  width: int = 32
  dtype: Any = jnp.float32
  impl: str = "auto"
  text_scale: float = 1.0
  projection: bool = False  # add <pooled 4x4 features, linear(e)> to the logit (see `judge`)

  def setup(self):
    chans = channels(self.resolution, self.width)[::-1]  # from the image down to 4x4
    self.from_image = _conv(chans[0], 3, self.dtype, self.impl)
    self.blocks = [DBlock(c, self.dtype, self.impl) for c in chans[1:]]
    self.joint = JointConv(2 * self.width, self.dtype, self.impl)
    self.logit = nn.Dense(1, use_bias=False, kernel_init=torch_init, dtype=self.dtype)
    if self.projection:  # into the 4x4 features' channels
      self.embed = nn.Dense(chans[-1], use_bias=False, kernel_init=torch_init, dtype=self.dtype)

  def features(self, x, train=True):
    """The 4x4 feature map of images x."""
    h = self.from_image(x.astype(self.dtype), train)
    for block in self.blocks:
      h = block(h, train)
    return h

  def judge(self, h, text, train=True):
    """Logits [B] of 4x4 features h with sentence embeddings text [B, D]; with `projection`
    plus the inner product of the sentence's linear embedding with the features averaged over
    the positions (the projection D of Miyato & Koyama 2018, a sentence in place of a class)."""
    text = self.text_scale * text
    logit = self.logit(_lrelu(self.joint(h, text)).reshape(h.shape[0], -1))[:, 0]
    if self.projection:
      logit += jnp.sum(self._pooled(h) * self.embed(text.astype(self.dtype)), -1)
    return logit.astype(jnp.float32)

  def _pooled(self, h):
    return jnp.mean(_lrelu(h), axis=(1, 2))

  def contrast(self, h, text, train=True):
    """Unit vectors [B, C] of 4x4 features h and of sentence embeddings text in the projection's
    space (needs `projection`): what the contrastive term compares."""
    del train  # the same in both modes, as `judge`
    e = self.embed((self.text_scale * text).astype(self.dtype))
    return (l2_normalize(self._pooled(h).astype(jnp.float32)),
            l2_normalize(e.astype(jnp.float32)))

  def __call__(self, x, text, train=True):
    return self.judge(self.features(x, train), text, train)
