"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), config F:
a mapping network z -> w, a synthesis network of modulated / demodulated 3x3 convs with noise
inputs and skip ToRGB outputs, and a residual discriminator with a minibatch-stddev layer.
Layer list, initialisation, gains and the conditional forms follow NVIDIA's stylegan2-ada-pytorch
(Karras et al. 2020b), whose parameter counts these networks reproduce exactly
(tests/test_stylegan2_models.py).

Images are NHWC. Every weight is stored N(0, 1) (divided by the layer's lr multiplier) and scaled
at run time by lr_mul / sqrt(fan_in) (equalized learning rate, Karras et al. 2018), so Adam's
step size means the same in every layer.

Variables: "params"; "w_avg" (the mapping's running mean of w, for truncation; updated only in
train mode when the collection is mutable); "noise_const" (one fixed noise image per layer, for
noise_mode="const"). RNG streams: "noise" (per-pixel noise in noise_mode="random"; at init
Flax falls back to "params").

Convolutions run natively (XLA's convs, grouped for the fused modulated conv) on GPUs and TPUs
and in matrix-product forms on XLA:CPU (`layers._use_gemm`, `cpu_conv`); the forms were chosen
by `benchmarks/stylegan2_layers.py`.
"""
import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models import cpu_conv
from gan_jax.models.layers import _use_gemm, class_vector, conv_same, target_backend

LRELU_GAIN = math.sqrt(2.0)
FIR_1331 = (1.0, 3.0, 3.0, 1.0)

_DN = ("NHWC", "HWIO", "NHWC")


def channels_at(res, channel_base, channel_max):
  """Channels of the layers at resolution `res`: min(channel_base // res, channel_max)."""
  return min(channel_base // res, channel_max)


def normalize_2nd_moment(x, axis=-1, eps=1e-8):
  """Scale to unit mean square (StyleGAN's pixel norm of z and of the label embedding)."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


def bias_act(x, b=None, act="linear", gain=1.0, clamp=None):
  """NVIDIA's bias_act: x + b, then leaky ReLU (slope 0.2) times `gain` (sqrt 2 for lrelu:
  He et al.'s variance preservation), then clamp to [-clamp, clamp] (reduced precision)."""
  if b is not None:
    x = x + b.astype(x.dtype)
  if act == "lrelu":
    x = jnp.where(x >= 0, x, x * jnp.asarray(0.2, x.dtype))
  elif act != "linear":
    raise ValueError(f"unknown activation {act!r}")
  if gain != 1:
    x = x * jnp.asarray(gain, x.dtype)
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return x


# --- FIR resampling (upfirdn2d) ---------------------------------------------------------------
# NVIDIA's upfirdn2d: zero-insert `up`, pad, convolve with the filter, keep every `down`-th
# sample. Here separable (one 1D pass per axis) and polyphase: each output phase is a sum of
# shifted copies of the input, never a product with inserted zeros, and every slice is stride 1
# (XLA:CPU runs strided slices' adjoints slowly).

def _take(x, axis, start, length):
  """x[start : start + length] along `axis`, zeros where that runs outside x."""
  n = x.shape[axis]
  lo, hi = max(0, -start), max(0, start + length - n)
  x = cpu_conv.pad_axis(x, axis, lo, hi)
  return jax.lax.slice_in_dim(x, start + lo, start + lo + length, axis=axis)


def _upfirdn_axis(x, axis, taps, up, down, p0, p1):
  """1D upfirdn along `axis`: out[q] = sum_t taps[t] u[q * down + F - 1 - t] (a true
  convolution, as NVIDIA's flip_filter=False), u = x zero-inserted by `up`, padded (p0, p1)."""
  n, f = x.shape[axis], len(taps)
  out_len = (n * up + p0 + p1 - f) // down + 1
  g = [float(t) for t in taps[::-1]]  # correlation taps
  terms = lambda arr, offsets, length: sum(
      c * _take(arr, axis, o, length) for c, o in offsets if c != 0)
  if up == 1 and down == 1:
    return terms(x, [(g[t], t - p0) for t in range(f)], out_len)
  if up == 2 and down == 1:
    s = (out_len + 1) // 2
    # Output 2s + r reads u[2s + r + t - p0], which holds x[s + (r + t - p0) / 2] when even.
    phases = [terms(x, [(g[t], (r + t - p0) // 2) for t in range(f) if (r + t - p0) % 2 == 0], s)
              for r in (0, 1)]
    return jax.lax.slice_in_dim(cpu_conv.interleave(phases, axis), 0, out_len, axis=axis)
  if up == 1 and down == 2:
    x = cpu_conv.pad_axis(x, axis, 0, n % 2)
    shape = x.shape[:axis] + (x.shape[axis] // 2, 2) + x.shape[axis + 1:]
    ph = [jnp.take(x.reshape(shape), r, axis=axis + 1) for r in (0, 1)]
    # Output q reads x[2q + t - p0]: phase (t - p0) % 2, index q + (t - p0) // 2.
    return sum(g[t] * _take(ph[(t - p0) % 2], axis, (t - p0) // 2, out_len)
               for t in range(f) if g[t] != 0)
  raise ValueError(f"upfirdn supports up=2 or down=2 (one at a time), got up={up}, down={down}")


def upfirdn2d(x, taps=FIR_1331, up=1, down=1, padding=(0, 0), gain=1.0):
  """NVIDIA's upfirdn2d on NHWC `x` with the separable filter outer(taps, taps) normalised to sum
  1 and times `gain` (4 when up-sampling by 2 keeps the mean), same padding on both axes."""
  t = np.asarray(taps, np.float64)
  t = t / t.sum() * math.sqrt(gain)
  p0, p1 = padding
  x = _upfirdn_axis(x, 1, t, up, down, p0, p1)
  return _upfirdn_axis(x, 2, t, up, down, p0, p1)


def upsample2d(x, taps=FIR_1331):
  """x2 with the FIR filter (gain 4): NVIDIA's upsample2d, for G's skip RGB images."""
  f = len(taps)
  return upfirdn2d(x, taps, up=2, padding=((f + 1) // 2, (f - 2) // 2), gain=4.0)


def downsample2d(x, taps=FIR_1331):
  """/2 with the FIR filter: NVIDIA's downsample2d, for D's residual skips."""
  f = len(taps)
  return upfirdn2d(x, taps, down=2, padding=((f - 1) // 2, (f - 2) // 2))


# --- Convolutions with shared kernels (HWIO), in native and CPU forms --------------------------

def _native(x, k, stride=1, padding="VALID", lhs_dilation=None, groups=1):
  return jax.lax.conv_general_dilated(x, k, (stride, stride), padding, lhs_dilation=lhs_dilation,
                                      dimension_numbers=_DN, feature_group_count=groups)


def _up_kernel4(kernel):
  """3x3 -> 4x4 with a zero last tap: the transposed conv below reads taps 0..2 only."""
  return jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))


def conv_up(x, kernel, taps=FIR_1331, impl="auto"):
  """NVIDIA's up=2 conv (conv2d_resample): a 3x3 transposed conv with stride 2 (no padding; output
  row 2i + k gets input row i times tap k, 2H + 1 rows), padded by 1, blurred by the FIR filter
  with gain 4 -> 2H x 2W. Only the blur's valid rows are computed.

  Natively the transposed conv is a conv on the 2x dilated input with the flipped kernel. On CPU
  it is `cpu_conv.conv_transpose4x4s2` (a 4x4 kernel whose tap 3 is zero, custom VJPs,
  Winograd for wide layers) on the input padded by one: its row n is the padded row n - 1."""
  h, w = x.shape[1:3]
  if _use_gemm(impl):
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = cpu_conv.conv_transpose4x4s2(xp, _up_kernel4(kernel))[:, :2 * h + 3, :2 * w + 3]
  else:
    y = _native(x, kernel[::-1, ::-1], padding=((3, 3), (3, 3)), lhs_dilation=(2, 2))
  return upfirdn2d(y, taps, gain=4.0)


def conv_down(x, kernel, taps=FIR_1331, impl="auto"):
  """NVIDIA's down=2 3x3 conv: blur with padding 2 (H + 1 rows), then a VALID 3x3 conv with
  stride 2 -> H/2.

  On CPU the strided conv is `cpu_conv.conv4x4s2` (custom VJPs; Winograd F(2x2, 2x2) for wide
  float32 layers) with a 4x4 kernel whose tap 0 is zero: its output i reads rows 2i .. 2i + 2
  of the blurred image. It needs an even input, and Winograd an even output, so the blur runs
  1 (or 3) rows further (H + 2 or H + 4 rows) and the extra output rows are dropped: at 64x64 x 128
  channels, batch 16, this took 0.95 s (value and both gradients) against 2.9 s for XLA's
  strided conv and 1.7-1.9 s for im2col forms (benchmarks/stylegan2_layers.py)."""
  f = len(taps)
  p0, p1 = 1 + (f - 1) // 2, 1 + (f - 2) // 2  # 2, 2 for [1, 3, 3, 1]
  h, w = x.shape[1:3]
  if _use_gemm(impl) and h % 2 == 0 and w % 2 == 0:
    k4 = jnp.pad(kernel, ((1, 0), (1, 0), (0, 0), (0, 0)))
    winograd = cpu_conv.form(k4, (x.shape[0], h // 2 + 2, w // 2 + 2)) == "winograd"
    extra = 3 if winograd else 1
    b = upfirdn2d(x, taps, padding=(p0, p1 + extra))
    return cpu_conv.conv4x4s2(b, k4)[:, :h // 2, :w // 2]
  return _native(upfirdn2d(x, taps, padding=(p0, p1)), kernel, stride=2)


def conv_1x1(x, kernel):
  """A 1x1 conv is a matrix product on every backend."""
  return x @ kernel[0, 0]


# --- Modulated convolution --------------------------------------------------------------------

def modulation(kernel, styles, demodulate=True):
  """Per-sample weights of the paper's eq. 1-3: w'_bijk = s_bi w_ijk, and, with demodulation,
  the coefficients d_bj = 1 / sqrt(sum_ik w'_bijk^2 + 1e-8). kernel [k, k, I, O], styles [B, I]
  -> (w' [B, k, k, I, O], d [B, O] or None). float32."""
  w = kernel.astype(jnp.float32)[None] * styles.astype(jnp.float32)[:, None, None, :, None]
  d = jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3)) + 1e-8) if demodulate else None
  return w, d


def _conv_shared(x, kernel, up, taps, impl):
  if up:
    return conv_up(x, kernel, taps, impl)
  if kernel.shape[0] == 1:
    return conv_1x1(x, kernel)
  return conv_same(x, kernel, impl)


def _conv_grouped(x, kernels, up, taps, impl):
  """x [B, H, W, I] with its own kernel each (kernels [B, k, k, I, O]). Natively one grouped
  conv (feature_group_count=B), as NVIDIA's fused modconv; on CPU the shared-kernel forms
  vmapped over the batch (batched matrix products)."""
  b, h, w, c = x.shape
  k, o = kernels.shape[1], kernels.shape[-1]
  if _use_gemm(impl):
    one = lambda xi, ki: _conv_shared(xi[None], ki, up, taps, impl)[0]
    return jax.vmap(one)(x, kernels)
  xg = x.transpose(1, 2, 0, 3).reshape(1, h, w, b * c)
  kg = kernels.transpose(1, 2, 3, 0, 4).reshape(k, k, c, b * o)
  if up:
    y = _native(xg, kg[::-1, ::-1], padding=((3, 3), (3, 3)), lhs_dilation=(2, 2), groups=b)
    y = upfirdn2d(y, taps, gain=4.0)
  else:
    p = k // 2
    y = _native(jnp.pad(xg, ((0, 0), (p, p), (p, p), (0, 0))), kg, groups=b)
  hh, ww = y.shape[1:3]
  return y.reshape(hh, ww, b, o).transpose(2, 0, 1, 3)


def modulated_conv(x, kernel, styles, demodulate=True, up=False, fused=False, taps=FIR_1331,
                   impl="auto"):
  """The paper's modulated convolution (sec. 2.2), in x's dtype.

  fused=True: per-sample weights w' = s w (times d), one grouped conv (NVIDIA's fused_modconv).
  fused=False: x * s, one conv with the shared kernel, output * d: the same sums in the order
  the paper's eq. 3 notes ("batched"), cheaper when B x weights outgrows the activations.
  kernel [k, k, I, O] (already scaled), styles [B, I]."""
  dtype = x.dtype
  if fused:
    w, d = modulation(kernel, styles, demodulate)
    if d is not None:
      w = w * d[:, None, None, None, :]
    return _conv_grouped(x, w.astype(dtype), up, taps, impl)
  d = None
  if demodulate:  # sum_ik (s_i w_ijk)^2 = sum_i s_i^2 sum_k w_ijk^2: no [B, k, k, I, O] array
    w2 = jnp.sum(jnp.square(kernel.astype(jnp.float32)), axis=(0, 1))
    d = jax.lax.rsqrt(jnp.square(styles.astype(jnp.float32)) @ w2 + 1e-8)
  y = _conv_shared(x * styles.astype(dtype)[:, None, None, :], kernel.astype(dtype), up, taps,
                   impl)
  if d is not None:
    y = y * d.astype(dtype)[:, None, None, :]
  return y


def default_fused(train, backend=None):
  """Which modulated-conv form to run when a network is not told: NVIDIA's rule on GPUs and TPUs
  (fused for inference, batched for training); on XLA:CPU always batched. Measured
  (benchmarks/stylegan2_layers.py, 64x64 x 128 channels, batch 16, value and all gradients, 2
  shared cores): the 3x3 modulated conv took 2.2-2.3 s batched against 13-30 s fused as
  vmapped matmuls and 22 s as XLA's grouped conv; the up-sampling one 0.8-1.4 s against
  1.6-2.1 s and 43 s."""
  backend = backend or target_backend()
  if backend == "cpu":
    return False
  return not train


# --- Layers with equalized learning rate ------------------------------------------------------

class FullyConnected(nn.Module):
  """NVIDIA's FullyConnectedLayer: weight stored N(0, 1) / lr_mul, used times lr_mul / sqrt(in);
  bias stored at bias_init, used times lr_mul. Runs in float32."""
  features: int
  lr_mul: float = 1.0
  bias_init: float = 0.0
  activation: str = "linear"
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    init = lambda key, shape, dtype=jnp.float32: jax.random.normal(key, shape, dtype) / self.lr_mul
    kernel = self.param("kernel", init, (fan_in, self.features), jnp.float32)
    y = x.astype(jnp.float32) @ (kernel * (self.lr_mul / math.sqrt(fan_in)))
    b = None
    if self.use_bias:
      b = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,),
                     jnp.float32) * self.lr_mul
    gain = LRELU_GAIN if self.activation == "lrelu" else 1.0
    return bias_act(y, b, self.activation, gain)


class Conv(nn.Module):
  """NVIDIA's Conv2dLayer: k x k conv (k = 1 or 3), optionally down=2 with the FIR filter, weight
  N(0, 1) used times 1 / sqrt(I k k), bias, activation with its gain times `gain`, clamp."""
  features: int
  kernel_size: int = 3
  down: bool = False
  activation: str = "lrelu"
  use_bias: bool = True
  conv_clamp: Optional[float] = None
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, gain=1.0):
    k, c = self.kernel_size, x.shape[-1]
    kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, c, self.features),
                        jnp.float32)
    kernel = (kernel * (1 / math.sqrt(c * k * k))).astype(self.dtype)
    x = x.astype(self.dtype)
    if self.down and k == 1:
      y = conv_1x1(downsample2d(x), kernel)  # down-sample first: the product on 1/4 the pixels
    elif self.down:
      y = conv_down(x, kernel, impl=self.impl)
    else:
      y = _conv_shared(x, kernel, False, FIR_1331, self.impl)
    b = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32) \
        if self.use_bias else None
    act_gain = (LRELU_GAIN if self.activation == "lrelu" else 1.0) * gain
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(y, b, self.activation, act_gain, clamp)


# --- Mapping network --------------------------------------------------------------------------

class MappingNetwork(nn.Module):
  """z (and label) -> w: 2nd-moment normalisation of z and of the label embedding, `num_layers`
  FC layers with lr multiplier 0.01 and leaky ReLU; tracks the running mean of w (beta 0.995)
  for the truncation trick; returns [B, num_ws, w_dim] (or [B, w_dim] when num_ws is None)."""
  z_dim: int
  c_dim: int
  w_dim: int
  num_ws: Optional[int]
  num_layers: int = 8
  embed_features: Optional[int] = None
  layer_features: Optional[int] = None
  lr_mul: float = 0.01
  w_avg_beta: Optional[float] = 0.995
  axis_name: Any = None  # pmap's: w_avg tracks the mean over the global batch

  @nn.compact
  def __call__(self, z, labels=None, train=True, truncation_psi=1.0, truncation_cutoff=None):
    parts = []
    if self.z_dim:
      parts.append(normalize_2nd_moment(z.astype(jnp.float32)))
    if self.c_dim:
      if labels is None:
        raise ValueError(f"this mapping network is conditional (c_dim={self.c_dim}): pass labels")
      embed = FullyConnected(self.embed_features or self.w_dim, name="embed")
      parts.append(normalize_2nd_moment(embed(class_vector(labels, self.c_dim))))
    x = jnp.concatenate(parts, -1) if len(parts) > 1 else parts[0]
    for i in range(self.num_layers):
      width = self.w_dim if i == self.num_layers - 1 else (self.layer_features or self.w_dim)
      x = FullyConnected(width, lr_mul=self.lr_mul, activation="lrelu", name=f"fc{i}")(x)

    track = self.num_ws is not None and self.w_avg_beta is not None
    if track:
      w_avg = self.variable("w_avg", "w_avg", jnp.zeros, (self.w_dim,), jnp.float32)
      if train and not self.is_initializing() and self.is_mutable_collection("w_avg"):
        mean = jnp.mean(jax.lax.stop_gradient(x), axis=0)
        if self.axis_name is not None:
          mean = jax.lax.pmean(mean, self.axis_name)
        w_avg.value = mean + self.w_avg_beta * (w_avg.value - mean)  # lerp(mean, avg, beta)
    if self.num_ws is not None:
      x = jnp.broadcast_to(x[:, None], (x.shape[0], self.num_ws, x.shape[-1]))
    if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
      if not track:
        raise ValueError("truncation needs the tracked w_avg (num_ws and w_avg_beta set)")
      avg = w_avg.value
      trunc = avg + truncation_psi * (x - avg)
      if truncation_cutoff is None:
        x = trunc
      else:
        x = jnp.where((jnp.arange(self.num_ws) < truncation_cutoff)[None, :, None], trunc, x)
    return x


# --- Synthesis network ------------------------------------------------------------------------

def _global_normal(key, shape, axis_name):
  """N(0, 1) of `shape` [B, ...]: under pmap (axis_name) drawn for the global batch and sliced to
  this device's rows, so a pmapped step reproduces the jitted one."""
  if axis_name is None:
    return jax.random.normal(key, shape, jnp.float32)
  n = shape[0]
  noise = jax.random.normal(key, (n * jax.lax.axis_size(axis_name),) + shape[1:], jnp.float32)
  return jax.lax.dynamic_slice_in_dim(noise, jax.lax.axis_index(axis_name) * n, n)


class SynthesisLayer(nn.Module):
  """Modulated 3x3 conv (optionally x2 up) with demodulation, noise input with a learned
  strength, bias, leaky ReLU (gain sqrt 2) and clamp: one row of the paper's Fig. 2d."""
  features: int
  resolution: int
  up: bool = False
  conv_clamp: Optional[float] = None
  dtype: Any = jnp.float32
  impl: str = "auto"
  axis_name: Any = None  # pmap's: noise is drawn for the global batch

  @nn.compact
  def __call__(self, x, w, noise_mode="random", fused=False, gain=1.0):
    c = x.shape[-1]
    styles = FullyConnected(c, bias_init=1.0, name="affine")(w)
    kernel = self.param("kernel", nn.initializers.normal(1.0), (3, 3, c, self.features),
                        jnp.float32)
    x = modulated_conv(x.astype(self.dtype), kernel, styles, demodulate=True, up=self.up,
                       fused=fused, impl=self.impl)
    r = self.resolution
    const = self.variable("noise_const", "noise_const",
                          lambda: jax.random.normal(self.make_rng("params"), (r, r), jnp.float32))
    strength = self.param("noise_strength", nn.initializers.zeros, (), jnp.float32)
    if noise_mode == "random":
      if not (self.has_rng("noise") or self.has_rng("params")):  # init falls back to params
        raise ValueError('noise_mode="random" needs a "noise" RNG stream: apply(..., rngs='
                         '{"noise": key}), or use noise_mode="const" or "none"')
      noise = _global_normal(self.make_rng("noise"), (x.shape[0], r, r, 1), self.axis_name)
      x = x + (noise * strength).astype(x.dtype)
    elif noise_mode == "const":
      x = x + (const.value * strength).astype(x.dtype)[None, :, :, None]
    elif noise_mode != "none":
      raise ValueError(f"noise_mode must be random, const or none, got {noise_mode!r}")
    b = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, b, "lrelu", LRELU_GAIN * gain, clamp)


class ToRGB(nn.Module):
  """1x1 modulated conv without demodulation (styles times 1 / sqrt(I)), bias, clamp."""
  channels: int
  conv_clamp: Optional[float] = None
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, w, fused=False):
    c = x.shape[-1]
    styles = FullyConnected(c, bias_init=1.0, name="affine")(w) * (1 / math.sqrt(c))
    kernel = self.param("kernel", nn.initializers.normal(1.0), (1, 1, c, self.channels),
                        jnp.float32)
    y = modulated_conv(x.astype(self.dtype), kernel, styles, demodulate=False, fused=fused,
                       impl=self.impl)
    b = self.param("bias", nn.initializers.zeros, (self.channels,), jnp.float32)
    return bias_act(y.astype(jnp.float32), b, clamp=self.conv_clamp)


def synthesis_num_ws(resolution):
  """w vectors the synthesis network reads: two per block (one at 4x4) plus the last ToRGB's."""
  return 2 * int(math.log2(resolution)) - 2


class SynthesisNetwork(nn.Module):
  """ws [B, num_ws, w_dim] -> image [B, R, R, C] (float32): learned 4x4 constant, then per
  resolution an up-sampling layer and a layer at that resolution, each ToRGB output added to the
  FIR-up-sampled image so far (the paper's skip generator, Fig. 7)."""
  resolution: int
  img_channels: int = 3
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: Optional[float] = None
  dtype: Any = jnp.float32
  impl: str = "auto"
  axis_name: Any = None

  @nn.compact
  def __call__(self, ws, noise_mode="random", fused=None, train=True):
    log2 = int(math.log2(self.resolution))
    if self.resolution < 4 or 2 ** log2 != self.resolution:
      raise ValueError(f"resolution must be a power of two >= 4, got {self.resolution}")
    if ws.shape[1] != synthesis_num_ws(self.resolution):
      raise ValueError(f"ws must be [B, {synthesis_num_ws(self.resolution)}, w_dim], got "
                       f"{ws.shape}")
    # The fused form's grouped conv needs a known batch: a dynamic one (jax.export's symbolic
    # "b") takes the batched form.
    fused = (default_fused(train) and isinstance(ws.shape[0], int)) if fused is None else fused
    ch = lambda r: channels_at(r, self.channel_base, self.channel_max)
    kw = dict(conv_clamp=self.conv_clamp, dtype=self.dtype, impl=self.impl)
    ws = ws.astype(jnp.float32)
    const = self.param("const", nn.initializers.normal(1.0), (4, 4, ch(4)), jnp.float32)
    x = jnp.broadcast_to(const.astype(self.dtype)[None], (ws.shape[0],) + const.shape)
    layer_kw = dict(kw, axis_name=self.axis_name)  # for the layers' noise; ToRGB has none
    x = SynthesisLayer(ch(4), 4, name="b4_conv1", **layer_kw)(x, ws[:, 0], noise_mode, fused)
    img = ToRGB(self.img_channels, name="b4_torgb", **kw)(x, ws[:, 1], fused)
    i = 1
    for k in range(3, log2 + 1):
      r = 2 ** k
      x = SynthesisLayer(ch(r), r, up=True, name=f"b{r}_conv0", **layer_kw)(
          x, ws[:, i], noise_mode, fused)
      x = SynthesisLayer(ch(r), r, name=f"b{r}_conv1", **layer_kw)(
          x, ws[:, i + 1], noise_mode, fused)
      img = upsample2d(img) + ToRGB(self.img_channels, name=f"b{r}_torgb", **kw)(
          x, ws[:, i + 2], fused)
      i += 2
    return img


class Generator(nn.Module):
  """StyleGAN2's G: `mapping` then `synthesis`, callable separately (style mixing, the
  path-length regularizer's d image / d ws). Images NHWC float32, roughly in [-1, 1].

  c_dim > 0 makes it class-conditional (labels: int ids [B] or one-hot [B, c_dim]).
  fused_modconv: None = `default_fused` (per backend and mode), or force True / False."""
  resolution: int
  img_channels: int = 3
  z_dim: int = 512
  w_dim: int = 512
  c_dim: int = 0
  mapping_layers: int = 8
  mapping_lr_mul: float = 0.01
  w_avg_beta: float = 0.995
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: Optional[float] = None
  fused_modconv: Optional[bool] = None
  dtype: Any = jnp.float32
  impl: str = "auto"  # see layers._use_gemm
  axis_name: Any = None  # pmap's: noise is drawn for the global batch

  @property
  def num_ws(self):
    return synthesis_num_ws(self.resolution)

  def setup(self):
    self.mapping_network = MappingNetwork(
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, num_layers=self.mapping_layers,
        lr_mul=self.mapping_lr_mul, w_avg_beta=self.w_avg_beta, axis_name=self.axis_name)
    self.synthesis_network = SynthesisNetwork(
        self.resolution, self.img_channels, self.channel_base, self.channel_max,
        conv_clamp=self.conv_clamp, dtype=self.dtype, impl=self.impl, axis_name=self.axis_name)

  def mapping(self, z, labels=None, train=True, truncation_psi=1.0, truncation_cutoff=None):
    """z [B, z_dim] (+ labels) -> ws [B, num_ws, w_dim]; updates w_avg in train mode."""
    return self.mapping_network(z, labels, train, truncation_psi, truncation_cutoff)

  def synthesis(self, ws, noise_mode="random", train=True):
    return self.synthesis_network(ws, noise_mode, self.fused_modconv, train)

  def __call__(self, z, labels=None, train=True, truncation_psi=1.0, truncation_cutoff=None,
               noise_mode="random"):
    ws = self.mapping(z, labels, train, truncation_psi, truncation_cutoff)
    return self.synthesis(ws, noise_mode, train)


# --- Discriminator ----------------------------------------------------------------------------

def minibatch_std(x, group_size=4, num_channels=1):
  """Append the minibatch standard deviation (Karras et al. 2018) as `num_channels` feature maps:
  per group of min(group_size, B) consecutive samples, the std over the group averaged over
  channels (split into num_channels sets) and pixels. Statistics in float32.

  Groups are consecutive samples, where NVIDIA's reshape takes every (B / G)-th: the same
  statistic of an i.i.d. batch, and with a batch sharded over devices (jit) or split by pmap
  each group stays on one device, so the layer needs no communication and pmap equals jit."""
  n, h, w, c = x.shape
  g = min(group_size, n) if group_size else n
  if n % g:
    raise ValueError(f"minibatch std: the batch ({n}) must be a multiple of the group size ({g})")
  f = num_channels
  y = x.astype(jnp.float32).reshape(n // g, g, h, w, f, c // f)
  y = y - jnp.mean(y, axis=1, keepdims=True)
  y = jnp.sqrt(jnp.mean(jnp.square(y), axis=1) + 1e-8)  # [n/g, h, w, f, c/f]
  y = jnp.mean(y, axis=(1, 2, 4))  # [n/g, f]
  y = jnp.broadcast_to(jnp.repeat(y, g, axis=0)[:, None, None, :], (n, h, w, f))
  return jnp.concatenate([x, y.astype(x.dtype)], axis=-1)


class Discriminator(nn.Module):
  """StyleGAN2's residual D (the paper's Fig. 7c): FromRGB at the top resolution, then blocks of
  3x3 conv -> 3x3 conv with FIR down-sampling, plus a 1x1 down-sampled skip, summed times
  sqrt(1/2); at 4x4 the minibatch-stddev layer, a 3x3 conv, FC, output FC. Conditional (c_dim >
  0): the output is an embedding projected onto a mapped label (NVIDIA's cmap). Returns logits
  [B] in float32; the 4x4 epilogue runs in float32 as NVIDIA's."""
  resolution: int
  img_channels: int = 3
  c_dim: int = 0
  channel_base: int = 32768
  channel_max: int = 512
  mbstd_group_size: int = 4
  mbstd_num_channels: int = 1
  cmap_dim: Optional[int] = None
  mapping_layers: int = 8
  conv_clamp: Optional[float] = None
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    del train  # D has no mode-dependent layers
    log2 = int(math.log2(self.resolution))
    if self.resolution < 4 or 2 ** log2 != self.resolution:
      raise ValueError(f"resolution must be a power of two >= 4, got {self.resolution}")
    ch = lambda r: channels_at(r, self.channel_base, self.channel_max)
    kw = dict(conv_clamp=self.conv_clamp, dtype=self.dtype, impl=self.impl)
    x = Conv(ch(self.resolution), 1, name=f"b{self.resolution}_fromrgb", **kw)(x)
    for k in range(log2, 2, -1):
      r = 2 ** k
      skip = Conv(ch(r // 2), 1, down=True, activation="linear", use_bias=False,
                  dtype=self.dtype, impl=self.impl, name=f"b{r}_skip")(x, gain=math.sqrt(0.5))
      x = Conv(ch(r), 3, name=f"b{r}_conv0", **kw)(x)
      x = Conv(ch(r // 2), 3, down=True, name=f"b{r}_conv1", **kw)(x, gain=math.sqrt(0.5))
      x = skip + x
    x = x.astype(jnp.float32)
    if self.mbstd_num_channels:
      x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
    c4 = ch(4)
    x = Conv(c4, 3, conv_clamp=self.conv_clamp, impl=self.impl, name="b4_conv")(x)
    x = FullyConnected(c4, activation="lrelu", name="b4_fc")(x.reshape(x.shape[0], -1))
    cmap_dim = (self.cmap_dim or c4) if self.c_dim else 0
    out = FullyConnected(cmap_dim or 1, name="b4_out")(x)
    if not self.c_dim:
      return out[:, 0]
    if labels is None:
      raise ValueError(f"this discriminator is conditional (c_dim={self.c_dim}): pass labels")
    cmap = MappingNetwork(0, self.c_dim, cmap_dim, None, num_layers=self.mapping_layers,
                          w_avg_beta=None, name="mapping")(None, labels, train=False)
    return jnp.sum(out * cmap, axis=-1) * (1 / math.sqrt(cmap_dim))
