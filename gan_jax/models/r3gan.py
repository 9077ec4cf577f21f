"""R3GAN's networks (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN
Baseline"): a modernised StyleGAN2 backbone without normalisation, styles or noise, whose
parameter counts match the authors' code for their presets (tests/test_r3gan_models.py).

G, stages from 4x4 up: stage 0 is a learned 4x4 basis per channel, each channel scaled by a
bias-free linear map of z (with the class embedding beside it when conditional); every later
stage opens with a transition (a 1x1 conv where the width changes, then 2x up-sampling with the
[1, 3, 3, 1] FIR filter). Each stage then runs `blocks` residual blocks: 1x1 conv to width x
`expansion`, bias + leaky ReLU 0.2, a grouped k x k conv (`cardinality` groups), bias + leaky
ReLU, 1x1 conv back to the width, added to the block's input. A 1x1 conv makes the image; it is
linear (no tanh). D mirrors G (its stage lists are G's reversed): a 1x1 conv from the image,
then per stage the blocks and a transition (FIR down-sampling, then a 1x1 conv where the width
changes); the last stage's transition is a depthwise 4x4 VALID conv and a linear map to one logit
or, conditional, to an embedding whose dot product with the class's embedding is the logit.

No conv has a bias: each activation owns one (zero at init). Init (the paper's fix-up scheme):
every weight N(0, gain^2 / fan_in); in a block the first two convs take leaky ReLU's gain
sqrt(2 / (1 + 0.2^2)) times L^(-1/4), L = the blocks of the whole net, and the last conv starts
at zero, so each block is the identity at init; the rest take gain 1 (G's basis N(0, 1); D's
class embedding 1 / sqrt(its width)).

`bf16_stages` (indices, -1 the last) compute those stages in bfloat16, as the authors run their
high-resolution stages in reduced precision; `dtype=bfloat16` runs the whole net so. Parameters
stay float32 and the outputs are float32.

Speed (XLA:CPU, `benchmarks/r3gan_layers.py`): XLA's grouped convolution has a slow weight
gradient on CPU (55-66 s for the CIFAR preset's 3x3 conv at 8x8, batch 64, against 0.13-0.18 s
as matrix products), and D's R1 / R2 penalties differentiate it twice. So on CPU the grouped
conv is three maps with custom VJPs that call each other (`grouped_conv`), as `cpu_conv` does
for DCGAN's layers, and every derivative of every order stays on a fast path.
"""
from functools import partial
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import cpu_conv
from gan_jax.models.layers import _use_gemm, class_vector, pad_same, per_run
from gan_jax.models.stylegan2 import downsample2d, upsample2d

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2 / (1 + LRELU_SLOPE ** 2))  # keeps the 2nd moment through leaky ReLU

_DN = ("NHWC", "HWIO", "NHWC")


def msr_init(gain=1.0):
  """N(0, gain^2 / fan_in), fan_in = every axis but the last (HWIO: k * k * in / groups)."""
  def init(key, shape, dtype=jnp.float32):
    fan_in = math.prod(shape[:-1])
    return jax.random.normal(key, shape, dtype) * (gain / math.sqrt(fan_in))
  return init


def biased_lrelu(x, bias):
  """The authors' BiasedActivation: leaky ReLU 0.2 of x + bias, no gain."""
  x = x + bias.astype(x.dtype)
  return jnp.where(x >= 0, x, x * jnp.asarray(LRELU_SLOPE, x.dtype))


def stage_dtypes(n, bf16_stages, dtype):
  """Each of n stages' compute dtype: bfloat16 for the indices in `bf16_stages` (negative ones
  from the end) or for all when `dtype` is bfloat16; else float32."""
  for i in bf16_stages:
    if not -n <= i < n:
      raise ValueError(f"bf16 stage {i} is out of range for {n} stages")
  wanted = {i % n for i in bf16_stages}
  bf16 = jnp.dtype(dtype) == jnp.bfloat16
  return [jnp.bfloat16 if bf16 or i in wanted else jnp.float32 for i in range(n)]


# --- Grouped k x k convolution ("same" padding, stride 1) ----------------------------------------
# Kernels are HWIO [k, k, C / groups, O]; output channel g * O / groups + o reads input group g
# (lax's feature_group_count layout). Measured on XLA:CPU (benchmarks/r3gan_layers.py: batch 64,
# 16 channels per group as in every preset, 2 shared Zen4 cores): XLA's grouped conv takes 0.19 s
# forward at 1536 channels in 96 groups, 8x8, and 29 s for its weight gradient (the `_col2im` form
# 0.09 s, `_weight_grad` 0.13 s); at 128 channels in 8 groups, 32x32, 0.23 s forward and 4 s,
# where the block-diagonal dense conv takes 0.07 s forward although it does 8 times the products.
# The dense conv wins up to 16 groups (0.14 against 0.23 s for `_col2im` at 12 groups, 192
# channels, 32x32) and ties at 24. Above that, float32 3x3 convs on sides that are multiples of 4
# run as Winograd F(4x4, 3x3) (`cpu_conv.grouped_conv3x3_winograd4`): a block of 1536 channels in
# 96 groups with its R1 pass (batch 16, 2026-12-06) took 58, 241, 1090 and 4708 ms at 4, 8, 16 and
# 32 px against col2im's 118, 404, 1546 and 7725, and the CIFAR-10 preset's step 40.6 s against
# 61 s (compiling in 94 s against 25). In a sweep of runs (vmapped) each run's conv and weight
# gradient run one after another (`layers.per_run`): 4 copies of the 8x8 r3gan_stacked ran at
# 0.93x the copies' separate steps/s, against 0.71x with the dense kernel as batched im2col
# products and 0.46x as col2im (benchmarks/seeds.py).

DENSE_MAX_GROUPS = 16


def _conv_native(x, kernel, groups):
  p = kernel.shape[0] // 2  # built-in padding: XLA:CPU's VALID conv forward is a slow path
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((p, p), (p, p)), dimension_numbers=_DN,
                                      feature_group_count=groups)


def block_diagonal(kernel, groups):
  """[k, k, C / G, O] grouped -> [k, k, C, O] dense, zero between groups: the same conv."""
  k, _, cg, o = kernel.shape
  blocks = kernel.reshape(k, k, cg, groups, o // groups)
  eye = jnp.eye(groups, dtype=kernel.dtype)
  return jnp.einsum("ijcgo,gh->ijgcho", blocks, eye).reshape(k, k, groups * cg, o)


def adjoint_kernel(kernel, groups):
  """The kernel whose grouped conv is the transpose of `kernel`'s (the input gradient): taps
  flipped, each group's inputs and outputs swapped. [k, k, C / G, O] -> [k, k, O / G, C]."""
  k, _, cg, o = kernel.shape
  blocks = kernel[::-1, ::-1].reshape(k, k, cg, groups, o // groups)
  return blocks.transpose(0, 1, 4, 3, 2).reshape(k, k, o // groups, groups * cg)


def conv_col2im(x, kernel, groups):
  """The grouped conv as col2im: every pixel's inputs times all k * k taps of its group's
  kernel (one batched matrix product over the groups), then each tap's products added in at
  its shifted place. Sums in float32."""
  k, _, cg, o = kernel.shape
  b, h, w, _ = x.shape
  og, p = o // groups, k // 2
  xg = x.reshape(b * h * w, groups, cg).transpose(1, 0, 2)  # [G, N, C / G]
  km = kernel.reshape(k * k, cg, groups, og).transpose(2, 1, 0, 3).reshape(groups, cg, k * k * og)
  z = jax.lax.dot_general(xg, km, (((2,), (1,)), ((0,), (0,))),
                          preferred_element_type=jnp.float32)  # [G, N, taps x O / G]
  z = z.reshape(groups, b * h * w, k * k, og).transpose(1, 2, 0, 3).reshape(b, h, w, k * k, o)
  # tap (i, j) of input pixel (r, c) lands on output pixel (r - i + p, c - j + p)
  y = sum(jnp.pad(z[:, :, :, i * k + j], ((0, 0), (k - 1 - i, i), (k - 1 - j, j), (0, 0)))
          for i in range(k) for j in range(k))
  return y[:, p:p + h, p:p + w].astype(x.dtype)


@per_run
def _dense_conv(x, dense):
  return _conv_native(x, dense, 1)


def _conv_form(x, kernel, groups, form):
  if form == "winograd":
    return cpu_conv.grouped_conv3x3_winograd4(pad_same(x, kernel.shape[0]), kernel, groups)
  if form == "col2im":
    return conv_col2im(x, kernel, groups)
  return _dense_conv(x, block_diagonal(kernel, groups) if groups > 1 else kernel)


# `form` is a static argument, so traces of one form are never reused for another
@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _grouped_conv_cpu(x, kernel, groups, form):
  return _conv_form(x, kernel, groups, form)


def _grouped_conv_cpu_fwd(x, kernel, groups, form):
  # the conv itself, not its body: a derivative of this (R1's) then takes the custom VJP again
  return _grouped_conv_cpu(x, kernel, groups, form), (x, kernel)


def _grouped_conv_cpu_bwd(groups, form, res, dy):
  x, kernel = res
  dx = _grouped_conv_cpu(dy, adjoint_kernel(kernel, groups), groups, form)
  return dx, _weight_grad(x, dy, kernel.shape[0], groups, form)


_grouped_conv_cpu.defvjp(_grouped_conv_cpu_fwd, _grouped_conv_cpu_bwd)


def _weight_grad_form(x, dy, size, groups, form):
  """The weight gradient: Winograd's (`form` "winograd"), else `conv_col2im`'s transpose in its
  kernel (dy's k * k shifted views times x, one batched product over the groups, summed over the
  batch and pixels)."""
  def grad(x, dy):
    if form == "winograd":
      return cpu_conv.grouped_conv3x3_winograd4_weight_grad(pad_same(x, size), dy, groups)
    shape = jax.ShapeDtypeStruct((size, size, x.shape[-1] // groups, dy.shape[-1]), dy.dtype)
    return jax.linear_transpose(lambda k: conv_col2im(x, k, groups), shape)(dy)[0]
  return per_run(grad)(x, dy)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _weight_grad(x, dy, size, groups, form):
  return _weight_grad_form(x, dy, size, groups, form)


def _weight_grad_fwd(x, dy, size, groups, form):
  return _weight_grad(x, dy, size, groups, form), (x, dy)


def _weight_grad_bwd(size, groups, form, res, dk):
  # <dk, W(x, dy)> = <dy, conv(x, dk)> = <x, conv(dy, adjoint(dk))>
  x, dy = res
  return (_grouped_conv_cpu(dy, adjoint_kernel(dk, groups), groups, form),
          _grouped_conv_cpu(x, dk, groups, form))


_weight_grad.defvjp(_weight_grad_fwd, _weight_grad_bwd)


def _form(x, kernel, groups):
  """The CPU form of a grouped conv, by the measurements in the comment above."""
  if groups <= DENSE_MAX_GROUPS:
    return "dense"
  winograd = (kernel.shape[0] == 3 and x.shape[1] % 4 == 0 and x.shape[2] % 4 == 0
              and x.dtype == kernel.dtype == jnp.float32)
  return "winograd" if winograd else "col2im"


def grouped_conv(x, kernel, groups, impl="auto"):
  """x [B, H, W, C] conv kernel [k, k, C / groups, O] (k odd), zero padding k // 2 -> [B, H, W,
  O]. Natively XLA's grouped conv (GPUs, TPUs); on CPU the same sums with custom VJPs whose
  every derivative, to any order, is again this conv or `_weight_grad`."""
  k = kernel.shape[0]
  if k % 2 == 0 or kernel.shape[1] != k:
    raise ValueError(f"grouped_conv takes square kernels of odd size, got {kernel.shape[:2]}")
  if x.shape[-1] != kernel.shape[2] * groups or kernel.shape[3] % groups:
    raise ValueError(f"a kernel {kernel.shape} in {groups} groups does not fit {x.shape[-1]} "
                     "input channels")
  if k == 1 and groups == 1:
    return x @ kernel[0, 0]
  if _use_gemm(impl):
    form = _form(x, kernel, groups)
    return _grouped_conv_cpu(x, kernel, groups, form)
  return _conv_native(x, kernel, groups)


# --- Layers -------------------------------------------------------------------------------------

def conv1x1(module, name, x, features, gain=1.0):
  """A bias-free 1x1 conv (a matrix product), kernel HWIO [1, 1, C, features], in x's dtype."""
  kernel = module.param(name, msr_init(gain), (1, 1, x.shape[-1], features), jnp.float32)
  return x @ kernel[0, 0].astype(x.dtype)


def linear(module, name, x, features, gain=1.0):
  """A bias-free linear map, kernel [in, features], in x's dtype."""
  kernel = module.param(name, msr_init(gain), (x.shape[-1], features), jnp.float32)
  return x @ kernel.astype(x.dtype)


class ResidualBlock(nn.Module):
  """x + conv3(act(conv2(act(conv1(x))))): 1x1 up to width x expansion, grouped k x k, 1x1 back
  (zero at init). `total_blocks` is L of the init's L^(-1/4)."""
  expansion: int
  cardinality: int
  kernel: int
  total_blocks: int
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x):
    c, k = x.shape[-1], self.kernel
    e = c * self.expansion
    gain = LRELU_GAIN * self.total_blocks ** (-1 / 4)  # L^(-1 / (2m - 2)), m = 3 convs
    x = x.astype(self.dtype)
    y = conv1x1(self, "conv1", x, e, gain)
    y = biased_lrelu(y, self.param("bias1", nn.initializers.zeros, (e,), jnp.float32))
    kernel = self.param("conv2", msr_init(gain), (k, k, e // self.cardinality, e), jnp.float32)
    y = grouped_conv(y, kernel.astype(self.dtype), self.cardinality, self.impl)
    y = biased_lrelu(y, self.param("bias2", nn.initializers.zeros, (e,), jnp.float32))
    return x + conv1x1(self, "conv3", y, c, 0.0)


def _check(widths, cardinality, blocks, expansion):
  if not len(widths) == len(cardinality) == len(blocks) >= 1:
    raise ValueError(f"widths, cardinality and blocks give one value per stage: got "
                     f"{widths}, {cardinality}, {blocks}")
  for w, g in zip(widths, cardinality):
    if (w * expansion) % g:
      raise ValueError(f"cardinality {g} does not divide the {w * expansion} expanded channels "
                       f"of width {w} x expansion {expansion}")


def _class_input(num_classes, labels, who):
  if labels is None:
    raise ValueError(f"this {who} is conditional (num_classes={num_classes}): pass labels")
  return class_vector(labels, num_classes)


class Generator(nn.Module):
  """z [B, Z] (+ labels: int ids [B] or class weights [B, num_classes]) -> images [B, R, R,
  channels] float32, R = 4 * 2^(stages - 1), linear (no tanh). `class_dim`: the class
  embedding's size beside z (0: z's size, the authors' choice). `train` is unused (nothing
  differs between modes)."""
  widths: tuple
  cardinality: tuple
  blocks: tuple
  expansion: int = 2
  kernel: int = 3
  channels: int = 3
  num_classes: int = 0
  class_dim: int = 0
  bf16_stages: tuple = ()
  dtype: Any = jnp.float32
  impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    del train
    _check(self.widths, self.cardinality, self.blocks, self.expansion)
    dtypes = stage_dtypes(len(self.widths), self.bf16_stages, self.dtype)
    total = sum(self.blocks)
    z = z.astype(jnp.float32)
    if self.num_classes:
      onehot = _class_input(self.num_classes, labels, "generator")
      z = jnp.concatenate([z, linear(self, "embed", onehot, self.class_dim or z.shape[-1])], -1)
    x = None
    for i, (width, groups, n) in enumerate(zip(self.widths, self.cardinality, self.blocks)):
      dt = dtypes[i]
      if i == 0:  # the generative basis
        basis = self.param("basis", nn.initializers.normal(1.0), (4, 4, width), jnp.float32)
        scale = linear(self, "basis_linear", z.astype(dt), width)
        x = basis.astype(dt)[None] * scale[:, None, None, :]
      else:
        x = x.astype(dt)
        if x.shape[-1] != width:
          x = conv1x1(self, f"stage{i}_transition", x, width)
        x = upsample2d(x)
      for j in range(n):
        x = ResidualBlock(self.expansion, groups, self.kernel, total, dt, self.impl,
                          name=f"stage{i}_block{j}")(x)
    return conv1x1(self, "aggregate", x, self.channels).astype(jnp.float32)


class Discriminator(nn.Module):
  """images [B, R, R, C] (+ labels) -> logits [B] float32. `widths`, `cardinality`, `blocks`
  (and `bf16_stages`' indices) are G's, in G's order (4x4 first): D runs them reversed.
  Conditional: the last linear map gives an embedding of `class_dim` (0: D's last width, the
  authors' choice) dotted with a bias-free embedding of the class."""
  widths: tuple
  cardinality: tuple
  blocks: tuple
  expansion: int = 2
  kernel: int = 3
  num_classes: int = 0
  class_dim: int = 0
  bf16_stages: tuple = ()
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    del train
    _check(self.widths, self.cardinality, self.blocks, self.expansion)
    widths, cards, blocks = (tuple(reversed(v)) for v in (self.widths, self.cardinality,
                                                          self.blocks))
    n_stages = len(widths)
    if x.shape[1] != x.shape[2] or x.shape[1] != 4 * 2 ** (n_stages - 1):
      raise ValueError(f"{n_stages} stages take images of {4 * 2 ** (n_stages - 1)} pixels a "
                       f"side, got {x.shape[1:3]}")
    dtypes = stage_dtypes(n_stages, self.bf16_stages, self.dtype)
    total = sum(blocks)
    x = conv1x1(self, "extract", x.astype(dtypes[0]), widths[0])
    for i, (width, groups, n) in enumerate(zip(widths, cards, blocks)):
      x = x.astype(dtypes[i])
      for j in range(n):
        x = ResidualBlock(self.expansion, groups, self.kernel, total, dtypes[i], self.impl,
                          name=f"stage{i}_block{j}")(x)
      if i < n_stages - 1:
        x = downsample2d(x)
        if width != widths[i + 1]:
          x = conv1x1(self, f"stage{i}_transition", x, widths[i + 1])
    # the discriminative basis: a depthwise 4x4 VALID conv (a weighted sum over the 4x4 pixels)
    basis = self.param("basis", msr_init(), (4, 4, widths[-1]), jnp.float32)
    h = jnp.einsum("bhwc,hwc->bc", x, basis.astype(x.dtype))
    out_dim = (self.class_dim or widths[-1]) if self.num_classes else 1
    out = linear(self, "basis_linear", h, out_dim).astype(jnp.float32)
    if not self.num_classes:
      return out[:, 0]
    onehot = _class_input(self.num_classes, labels, "discriminator")
    embed = linear(self, "embed", onehot, out_dim, gain=1 / math.sqrt(out_dim))
    return jnp.sum(out * embed, axis=-1)
