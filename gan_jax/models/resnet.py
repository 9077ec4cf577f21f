"""ResNet GANs: SNGAN (Miyato et al. 2018), its projection discriminator (Miyato & Koyama 2018),
SAGAN's self-attention (Zhang et al. 2019) and BigGAN's shared embedding and hierarchical
latents (Brock et al. 2019).

Layouts, as channel multipliers of `width`:
- 32x32: SNGAN's CIFAR-10 ResNets (Miyato et al. 2018, Table 4): G keeps `width` channels
  (256) through three up-blocks from 4x4; D (`width` 128) is an optimized first block, one down
  block and two blocks without resampling at 8x8.
- 64x64 and 128x128: BigGAN's architectures (Brock et al. 2019, appendix B, Table 4 for 128;
  64 drops its first G block and last D down block). G from 4x4: 16, 16, 8, 4, 2, 1 x width at
  128 (16, 16, 8, 4, 2 at 64; width 96 in the paper); D: 1, 2, 4, 8, 16 x width down to 4x4,
  then one 16 x width block without resampling.

G's blocks: BN, ReLU, nearest 2x, conv3x3, BN, ReLU, conv3x3, plus a 1x1 conv of the upsampled
input. The batch norms are conditional when there is a condition: BN without affine, then
x * (1 + gain) + bias, with (gain, bias) per class from embeddings initialised to zero (de
Vries et al. 2017, as SNGAN's conditional G), or, with `shared_dim`, from a linear map of
(shared class embedding, this block's chunk of z) as BigGAN's. D's blocks are pre-activation
(ReLU, conv3x3, ReLU, conv3x3, 2x2 average pooling) with a 1x1 conv shortcut where the shape
changes. Spectral normalization covers every D layer and, with `spectral_norm`, every G conv and
linear layer (SAGAN, BigGAN); G's class embeddings are not normalized (BigGAN neither).

Init: Glorot uniform (Glorot & Bengio 2010), as SNGAN, with gain sqrt(2) on the residual
branches' 3x3 convs (ReLU's gain, He et al. 2015).

Speed (XLA:CPU; exact rewrites, so every backend computes the same function): the nearest 2x +
3x3 conv is one 4x4 stride-2 transposed conv and the 3x3 conv + average pool one 4x4 stride-2
conv (`layers.upsample_conv3x3`, `layers.conv3x3_avg_pool`: 16 and 4 products per input pixel
instead of 36 and 9); the 1x1 shortcuts run at the lower resolution (a 1x1 conv commutes with
nearest upsampling and with average pooling). Forward + parameter gradient at batch 64 on 2
shared Zen4 cores (benchmarks/resnet_layers.py): SNGAN-32 G 4.4 s fused against 11.7 s
upsample-then-conv, D 0.58 s against 2.0 s pool-after-conv.
"""
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import (SNConv, SNDense, SNEmbed, avg_pool2x, embed_classes,
                                   upsample2x)

# Channel multipliers: G's input (at 4x4) then each up-block's output; D's block outputs and
# whether each block halves the side.
G_CHANNELS = {32: (1, 1, 1, 1), 64: (16, 16, 8, 4, 2), 128: (16, 16, 8, 4, 2, 1)}
D_BLOCKS = {
    32: ((1, True), (1, True), (1, False), (1, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
}

residual_init = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")  # Glorot x sqrt(2)


def _check_resolution(resolution):
  if resolution not in G_CHANNELS:
    raise ValueError(f"ResNet GANs come at resolution 32, 64 or 128, not {resolution}")


def _check_attention(attention_res, sides, who):
  if attention_res and attention_res not in sides:
    raise ValueError(f"attention_res={attention_res}: {who}'s blocks output sides "
                     f"{sorted(set(sides))}")


class SelfAttention(nn.Module):
  """SAGAN's self-attention block (Zhang et al. 2019): 1x1 convs theta, phi to C/8 channels and g
  to C/2, phi and g max-pooled 2x2, softmax over positions, a 1x1 conv back to C, and
  x + gamma * o with gamma initialised to 0 (the block starts as the identity)."""
  spectral_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    b, h, w, c = x.shape
    conv = lambda f, name: SNConv(f, 1, use_bias=False, spectral_norm=self.spectral_norm,
                                  dtype=self.dtype, name=name)
    pool = lambda t: t.reshape(b, h // 2, 2, w // 2, 2, t.shape[-1]).max(axis=(2, 4))
    theta = conv(c // 8, "theta")(x, train).reshape(b, h * w, c // 8)
    phi = pool(conv(c // 8, "phi")(x, train)).reshape(b, h * w // 4, c // 8)
    g = pool(conv(c // 2, "g")(x, train)).reshape(b, h * w // 4, c // 2)
    logits = jnp.einsum("bqc,bkc->bqk", theta, phi).astype(jnp.float32)
    attn = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    o = jnp.einsum("bqk,bkc->bqc", attn, g).reshape(b, h, w, c // 2)
    o = conv(c, "o")(o, train)
    gamma = self.param("gamma", nn.initializers.zeros, (), jnp.float32)
    return x + gamma.astype(self.dtype) * o


class ConditionalBatchNorm(nn.Module):
  """Batch norm without affine parameters, then x * (1 + gain) + bias from the condition:
  class labels (int ids, or float class weights) index embeddings (zero-initialised, so
  training starts at plain BN); with `vector_cond`, a float vector goes through a (spectrally
  normalized, with `spectral_norm`) linear map without bias (BigGAN). None: plain batch norm with
  its own scale and bias."""
  num_classes: int = 0
  spectral_norm: bool = False
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  vector_cond: bool = False

  @nn.compact
  def __call__(self, x, cond, train):
    affine = cond is None
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     use_scale=affine, use_bias=affine, axis_name=self.axis_name,
                     dtype=self.dtype)(x)
    if affine:
      return x
    c = x.shape[-1]
    if not self.vector_cond:
      embed = lambda name: embed_classes(
          nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros, name=name), cond)
      gain, bias = embed("gain"), embed("bias")
    else:
      linear = lambda name: SNDense(c, use_bias=False, spectral_norm=self.spectral_norm,
                                    dtype=self.dtype, name=name)
      gain, bias = linear("gain")(cond, train), linear("bias")(cond, train)
    gain, bias = gain.astype(self.dtype), bias.astype(self.dtype)
    return x * (1 + gain[:, None, None]) + bias[:, None, None]


class GBlock(nn.Module):
  """G's up-block: (C)BN, ReLU, nearest 2x, conv3x3, (C)BN, ReLU, conv3x3; shortcut nearest 2x
  and a 1x1 conv (run before the upsampling: they commute)."""
  features: int
  num_classes: int = 0
  spectral_norm: bool = False
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"
  vector_cond: bool = False  # cond is BigGAN's vector, not class labels

  @nn.compact
  def __call__(self, x, cond, train):
    norm = lambda: ConditionalBatchNorm(self.num_classes, self.spectral_norm, self.axis_name,
                                        self.dtype, self.vector_cond)
    conv = lambda k, **kw: SNConv(self.features, k, spectral_norm=self.spectral_norm,
                                  dtype=self.dtype, impl=self.conv_impl, **kw)
    h = nn.relu(norm()(x, cond, train))
    h = conv(3, resample="up", kernel_init=residual_init)(h, train)
    h = nn.relu(norm()(h, cond, train))
    h = conv(3, kernel_init=residual_init)(h, train)
    return h + upsample2x(conv(1)(x, train))


class DBlock(nn.Module):
  """D's block. `first`: SNGAN's optimized first block (conv3x3, ReLU, conv3x3, average pool;
  shortcut average pool then 1x1 conv). Else pre-activation: ReLU, conv3x3, ReLU, conv3x3,
  average pool if `downsample`; shortcut a 1x1 conv (then the pool) where the shape changes,
  else the identity. The 1x1 conv runs after the pool: they commute."""
  features: int
  downsample: bool = True
  first: bool = False
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train):
    conv = lambda k, **kw: SNConv(self.features, k, dtype=self.dtype, impl=self.conv_impl, **kw)
    down = "down" if self.downsample else "none"
    h = x if self.first else nn.relu(x)
    h = nn.relu(conv(3, kernel_init=residual_init)(h, train))
    h = conv(3, resample=down, kernel_init=residual_init)(h, train)
    skip = avg_pool2x(x) if self.downsample else x
    if self.first or self.downsample or x.shape[-1] != self.features:
      skip = conv(1)(skip, train)
    return h + skip


class Generator(nn.Module):
  """z [B, latent_dim] (+ int labels [B], or class weights [B, classes]) -> images
  [B, res, res, channels] in [-1, 1].

  resolution: 32, 64 or 128. channels: image channels. width: channels of the 32x32 G (256 for
  SNGAN), the multiplier of BigGAN's layouts at 64 and 128. latent_dim: z's size.
  num_classes: 0 = unconditional, else conditional batch norm in every block. spectral_norm:
  SN on G's convs and linear layers (SAGAN, BigGAN). attention_res: 0 = none, else the side of
  the block output a self-attention block follows. shared_dim: BigGAN's shared class embedding
  of this size and hierarchical latents (z split into len(blocks) + 1 equal chunks: the first
  feeds the input layer, each block's batch norms see (shared embedding, its chunk); without
  classes, just the chunk); 0 = off. axis_name: the pmap axis batch norm averages over.
  """
  resolution: int = 32
  channels: int = 3
  width: int = 256
  latent_dim: int = 128
  num_classes: int = 0
  spectral_norm: bool = False
  attention_res: int = 0
  shared_dim: int = 0
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    _check_resolution(self.resolution)
    mults = G_CHANNELS[self.resolution]
    n_blocks = len(mults) - 1
    _check_attention(self.attention_res, g_sides(self.resolution), "G")
    sn = self.spectral_norm
    z = z.astype(self.dtype)
    if self.shared_dim:
      if z.shape[-1] % (n_blocks + 1):
        raise ValueError(f"shared_dim > 0 splits z into {n_blocks + 1} equal chunks: latent_dim "
                         f"{z.shape[-1]} does not divide")
      z, *chunks = jnp.split(z, n_blocks + 1, axis=-1)
      if self.num_classes:
        shared = embed_classes(nn.Embed(self.num_classes, self.shared_dim, name="shared",
                                        embedding_init=nn.initializers.normal(1.0)),
                               labels).astype(self.dtype)
        chunks = [jnp.concatenate([shared, c], -1) for c in chunks]
      conds = chunks
    else:
      conds = [labels if self.num_classes else None] * n_blocks

    ch = self.width * mults[0]
    x = SNDense(4 * 4 * ch, spectral_norm=sn, dtype=self.dtype)(z, train).reshape(-1, 4, 4, ch)
    for i, cond in enumerate(conds):
      x = GBlock(self.width * mults[i + 1], self.num_classes, sn, self.axis_name, self.dtype,
                 self.conv_impl, vector_cond=bool(self.shared_dim))(x, cond, train)
      if x.shape[1] == self.attention_res:
        x = SelfAttention(sn, self.dtype)(x, train)
    x = nn.relu(ConditionalBatchNorm(axis_name=self.axis_name, dtype=self.dtype)(x, None, train))
    x = SNConv(self.channels, 3, spectral_norm=sn, dtype=self.dtype, impl=self.conv_impl)(x, train)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """images [B, res, res, C] (+ int labels [B]) -> logits [B] (float32); spectral norm on
  every layer.

  resolution: 32, 64 or 128. width: channels of the 32x32 D (128 for SNGAN), the multiplier of
  BigGAN's layouts at 64 and 128. num_classes: 0 = unconditional, else the projection
  discriminator (Miyato & Koyama 2018): logit = linear(h) + <embed(y), h> on the ReLU'd,
  sum-pooled features h. attention_res: 0 = none, else the side of the block output a
  self-attention block follows.
  """
  resolution: int = 32
  width: int = 128
  num_classes: int = 0
  attention_res: int = 0
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    _check_resolution(self.resolution)
    blocks = D_BLOCKS[self.resolution]
    _check_attention(self.attention_res, d_sides(self.resolution), "D")
    x = x.astype(self.dtype)
    attended = False
    for i, (mult, down) in enumerate(blocks):
      x = DBlock(self.width * mult, down, i == 0, self.dtype, self.conv_impl)(x, train)
      if x.shape[1] == self.attention_res and not attended:
        x, attended = SelfAttention(True, self.dtype)(x, train), True
    h = jnp.sum(nn.relu(x), axis=(1, 2))
    logits = SNDense(1, dtype=self.dtype)(h, train)[:, 0]
    if self.num_classes:
      embed = SNEmbed(self.num_classes, h.shape[-1], dtype=self.dtype)(labels, train)
      logits = logits + jnp.sum(embed * h, axis=-1)
    return logits.astype(jnp.float32)


def num_blocks(resolution):
  """G's up-blocks at `resolution` (z splits into this + 1 chunks with `shared_dim`)."""
  _check_resolution(resolution)
  return int(math.log2(resolution)) - 2


def g_sides(resolution):
  """The sides of G's block outputs (where self-attention may follow one)."""
  return [8 << i for i in range(num_blocks(resolution))]


def d_sides(resolution):
  """The sides of D's block outputs."""
  blocks = D_BLOCKS[resolution]
  return [resolution >> sum(d for _, d in blocks[:i + 1]) for i in range(len(blocks))]
