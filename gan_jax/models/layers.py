"""Layers shared by the model families."""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import cpu_conv

# DCGAN init (Radford et al. 2016): weights ~ N(0, 0.02).
dcgan_init = nn.initializers.normal(0.02)

# Output phase a (0 or 1) of a 4x4 / stride-2 / pad-1 transposed conv reads two input rows; the
# window's offset d (0 or 1) within the padded input meets kernel tap 3 - a - 2d.
_PHASE_TAPS = jnp.array([[3, 1], [2, 0]])  # [a, d]


def _use_gemm(impl):
  """XLA:CPU runs convolutions' gradients several times slower than the same sums written as
  matrix products (`cpu_conv`); GPUs and TPUs have fast native convolutions."""
  if impl not in ("auto", "gemm", "conv"):
    raise ValueError(f"unknown conv impl {impl!r}")
  return impl == "gemm" or (impl == "auto" and jax.default_backend() == "cpu")


def _conv_valid(x, kernel, stride):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


class Conv4x4s2(nn.Module):
  """nn.Conv(features, (4, 4), strides 2, padding 1, no bias): H x W -> H/2 x W/2.

  Natively it pads explicitly, then convolves VALID: XLA's weight gradient of a conv with
  built-in padding was measured ~9x slower on CPU than on a pre-padded input.
  """
  features: int
  kernel_init: Any = dcgan_init
  dtype: Any = jnp.float32
  impl: str = "auto"  # auto | gemm | conv

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if _use_gemm(self.impl) and x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0:
      return cpu_conv.conv4x4s2(x, kernel)
    return _conv_valid(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), kernel, 2)


class ConvTranspose4x4s2(nn.Module):
  """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1): H x W -> 2H x 2W.

  The kernel is stored as [4, 4, in, out] with PyTorch's meaning (output row 2i - 1 + k gets
  input row i times tap k). Natively it runs as one stride-1 2x2 convolution that yields the
  four output phases as channels, then interleaves them: the same arithmetic as a transposed
  conv, but its weight gradient is an ordinary conv's, which XLA:CPU runs ~16x faster than
  conv_transpose's. The matmul form is `cpu_conv.conv_transpose4x4s2`.
  """
  features: int
  use_bias: bool = False
  kernel_init: Any = dcgan_init
  dtype: Any = jnp.float32
  impl: str = "auto"  # auto | gemm | conv

  @nn.compact
  def __call__(self, x):
    b, h, w, cin = x.shape
    kernel = self.param("kernel", self.kernel_init, (4, 4, cin, self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if _use_gemm(self.impl):
      out = cpu_conv.conv_transpose4x4s2(x, kernel)
    else:
      taps = _PHASE_TAPS.T  # [d, a]
      # k[dh, dw, ah, aw, cin, out] = kernel[taps[dh, ah], taps[dw, aw], cin, out]
      k = kernel[taps[:, None, :, None], taps[None, :, None, :]]
      k = jnp.transpose(k, (0, 1, 4, 2, 3, 5)).reshape(2, 2, cin, 4 * self.features)
      y = _conv_valid(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, 1)
      y = y.reshape(b, h + 1, w + 1, 2, 2, self.features)
      # Phase (a, c) of output pixel (m, n) sits at y[m + a, n + c, a, c].
      rows = [jnp.stack([y[:, a:a + h, c:c + w, a, c] for c in (0, 1)], axis=3) for a in (0, 1)]
      out = jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, self.features)  # [b, h, a, w, c]
    if self.use_bias:
      out = out + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    return out


def norm_layer(kind, train, axis_name=None, dtype=jnp.float32):
  """A normalization by config name; `axis_name` makes batch norm use the global batch under pmap."""
  if kind == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=lambda k, s, d: 1.0 + 0.02 * jax.random.normal(k, s, d),
                        axis_name=axis_name, dtype=dtype)
  if kind == "layer":
    return nn.LayerNorm(epsilon=1e-5, dtype=dtype)
  if kind == "none":
    return lambda x: x
  raise ValueError(f"unknown norm {kind!r}")
