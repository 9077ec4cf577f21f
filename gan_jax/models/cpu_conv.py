"""DCGAN's 4x4 / stride-2 / pad-1 convolution and its transpose as matrix products, for XLA:CPU.

XLA:CPU runs matrix products near the cores' peak but convolutions' gradients, strided slices
and their adjoints (interior padding) slowly. Here both layers become products of dense,
contiguous arrays:

- Space-to-depth turns the padded input [B, 2H+2, 2W+2, C] into [B, H+1, W+1, 4C]; the 4x4 /
  stride-2 conv is then a 2x2 / stride-1 conv over 4C channels (same sums, no strides).
- That 2x2 conv runs either as im2col (4 contiguous slices) + one matmul, or, for wide layers,
  as Winograd's F(2x2, 2x2) (Lavin & Gray 2016): a 2x2 tile of outputs takes 9 products over
  the channels instead of 16 (4 pixels x 4 taps), 56% of the arithmetic. Its transforms use
  only +-1, so rounding stays at float32's level.
- The transposed conv over few pixels with a large kernel (the U-Net's inner layers) runs tap by
  tap instead, so its kernel is never transposed (`transpose_form`).
- Each layer has a custom VJP built from three maps, the forward, the input gradient and the
  weight gradient, each written directly rather than left to autodiff (whose adjoints of strided
  slices XLA:CPU runs slowly). The transposed conv is the conv's input gradient, so the same
  three maps give it, its input gradient and its weight gradient.

Stride-1 convs (3x3, 4x4, 7x7) get their own forms at the end: Winograd F(2x2, 3x3) or
F(4x4, 3x3) for wide 3x3 ones and F(2x2, 4x4) or F(3x3, 4x4) for wide 4x4 ones, XLA's conv
steered onto its fast CPU path, or im2col / col2im matmuls, chosen per shape. A densely
connected stack of 3x3 convs (ESRGAN's dense block) runs as one F(4x4, 3x3) operation that
transforms each piece of its growing input once (`dense_convs3x3`), and a grouped 3x3 conv
(R3GAN's blocks) as F(4x4, 3x3) with one product a group (`grouped_conv3x3_winograd4`).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

# Below this many channels on either side a layer is mostly data movement: im2col wins.
WINOGRAD_MIN_CHANNELS = 32


def _space_to_depth(x):
  """[B, 2h, 2w, C] -> [B, h, w, 4C], channels ordered (row parity, column parity, C)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def _depth_to_space(x):
  b, h, w, c4 = x.shape
  x = x.reshape(b, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c4 // 4)


def _padded_s2d(x):
  return _space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))


def _unpadded_d2s(s):
  return _depth_to_space(s)[:, 1:-1, 1:-1]


def _s2d_kernel(kernel):
  """[4, 4, C, O] -> [2, 2, 4C, O]: tap 2d + r of the 4x4 kernel is tap d of the 2x2 one at
  parity r."""
  c, o = kernel.shape[2:]
  k = kernel.reshape(2, 2, 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5)
  return k.reshape(2, 2, 4 * c, o)


def _s2d_kernel_adjoint(k2):
  c4, o = k2.shape[2:]
  k = k2.reshape(2, 2, 2, 2, c4 // 4, o).transpose(0, 2, 1, 3, 4, 5)
  return k.reshape(4, 4, c4 // 4, o)


# --- im2col: the 2x2 conv as one matmul over 4 shifted views --------------------------------

_TAPS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _patches(s):
  """[B, h+1, w+1, C] -> [B, h, w, 4C]: the 2x2 window at each output pixel."""
  h, w = s.shape[1] - 1, s.shape[2] - 1
  return jnp.concatenate([s[:, i:i + h, j:j + w] for i, j in _TAPS], -1)


def _patches_adjoint(p):
  c = p.shape[-1] // 4
  return sum(jnp.pad(p[..., t * c:(t + 1) * c], ((0, 0), (i, 1 - i), (j, 1 - j), (0, 0)))
             for t, (i, j) in enumerate(_TAPS))


class _Im2col:

  @staticmethod
  def forward(x, kernel):
    k = _s2d_kernel(kernel)
    return _patches(_padded_s2d(x)) @ k.reshape(-1, k.shape[-1])

  @staticmethod
  def input_grad(dy, kernel):
    k = _s2d_kernel(kernel)
    return _unpadded_d2s(_patches_adjoint(dy @ k.reshape(-1, k.shape[-1]).T))

  @staticmethod
  def weight_grad(x, dy):
    p = _patches(_padded_s2d(x))
    dk = p.reshape(-1, p.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
    return _s2d_kernel_adjoint(dk.reshape(2, 2, -1, dk.shape[-1]))


# --- Winograd: F(m x m, r x r) from its matrices --------------------------------------------
# Along one axis, the m outputs of an r-tap correlation over a tile of m + r - 1 inputs d are
# y = A^T [(G g) * (B^T d)] (Lavin & Gray 2016); tiles overlap by r - 1. In 2D each transform
# runs along H, then W, and an m x m tile of outputs takes (m + r - 1)^2 products over the
# channels instead of r^2 m^2, in the forward pass and in both gradients, which apply the
# transposed matrices.

def _strided(x, axis, start, n, step):
  """n entries along `axis`: start, start + step, ..."""
  return jax.lax.slice_in_dim(x, start, start + step * (n - 1) + 1, step, axis)


def interleave(arrays, axis):
  """[a, b, ...] -> a0 b0 .. a1 b1 .. along `axis`."""
  y = jnp.stack(arrays, axis + 1)
  return y.reshape(y.shape[:axis] + (len(arrays) * arrays[0].shape[axis],) + y.shape[axis + 2:])


def pad_axis(x, axis, lo, hi):
  """x padded by lo and hi zeros along `axis` only."""
  return jnp.pad(x, [(lo, hi) if i == axis else (0, 0) for i in range(x.ndim)])


def _both_axes(transform, x):
  """A 1D transform along H, then along W: an n x n list (n arrays per axis)."""
  return [transform(r, 2) for r in transform(x, 1)]


def _both_axes_adjoint(adjoint, m):
  return adjoint([adjoint(row, 2) for row in m], 1)


def _each(fn, *grids):
  """fn applied at each position of a x a lists of arrays."""
  return [[fn(*cells) for cells in zip(*rows)] for rows in zip(*grids)]


def _combine(coefficients, arrays):
  """sum_k c_k a_k, skipping zeros and multiplying only where c_k is not +-1."""
  out = None
  for c, a in zip(coefficients, arrays):
    if c:
      term = a if c == 1 else -a if c == -1 else a * c
      out = term if out is None else out + term
  return out


class _WinogradS1:
  """F(m x m, r x r) from its matrices: B^T [a, a], G [a, r], A^T [m, a], a = m + r - 1."""

  def __init__(self, bt, g, at):
    self.bt, self.g, self.at, self.m, self.r = bt, g, at, len(at), len(g[0])
    self.bt_t, self.g_t, self.at_t = (list(zip(*a)) for a in (bt, g, at))

  def _input_transform(self, x, axis):
    """m n + r - 1 rows -> m + r - 1 arrays of n tiles (rows m t .. m t + m + r - 2)."""
    n = (x.shape[axis] - self.r + 1) // self.m
    d = [_strided(x, axis, k, n, self.m) for k in range(len(self.bt))]
    return [_combine(row, d) for row in self.bt]

  def _input_transform_adjoint(self, v, axis):
    dd = [_combine(column, v) for column in self.bt_t]  # dd[k][t] goes to row m t + k
    # Rows of residue i mod m: dd[i] from tile t, dd[i + m] from tile t - 1, and so on.
    shifts = (len(dd) - 1) // self.m
    residues = []
    for i in range(self.m):
      rows = None
      for j, k in enumerate(range(i, len(dd), self.m)):
        term = pad_axis(dd[k], axis, j, shifts - j)
        rows = term if rows is None else rows + term
      residues.append(rows)
    y = interleave(residues, axis)
    n = v[0].shape[axis]
    return jax.lax.slice_in_dim(y, 0, self.m * n + self.r - 1, 1, axis)

  def _output_transform(self, m, axis):
    return interleave([_combine(row, m) for row in self.at], axis)

  def _output_transform_adjoint(self, y, axis):
    n = y.shape[axis] // self.m
    rows = [_strided(y, axis, r, n, self.m) for r in range(self.m)]
    return [_combine(column, rows) for column in self.at_t]

  def _kernel_transform(self, kernel):
    """[r, r, C, O] -> (m + r - 1) x (m + r - 1) list of [C, O]."""
    g = lambda taps: [_combine(row, taps) for row in self.g]
    return [g(list(r)) for r in g(list(kernel))]

  def _kernel_transform_adjoint(self, du):
    g = lambda d: jnp.stack([_combine(column, d) for column in self.g_t])
    return g([g(row) for row in du])  # [r (H), r (W), C, O]

  def forward(self, x, kernel):
    return self.forward_transformed(x, self._kernel_transform(kernel))

  def forward_transformed(self, x, u):
    """The conv by the kernel whose transform is u (`_kernel_transform`'s grid of [C, O])."""
    v = _both_axes(self._input_transform, x)
    m = _each(jnp.matmul, v, u)
    return _both_axes_adjoint(self._output_transform, m)

  def input_grad(self, dy, kernel):
    return self.input_grad_transformed(dy, self._kernel_transform(kernel))

  def input_grad_transformed(self, dy, u):
    dm = _both_axes(self._output_transform_adjoint, dy)
    dv = _each(lambda di, ui: di @ ui.T, dm, u)
    return _both_axes_adjoint(self._input_transform_adjoint, dv)

  def weight_grad(self, x, dy):
    v = _both_axes(self._input_transform, x)
    dm = _both_axes(self._output_transform_adjoint, dy)
    flat = lambda a: a.reshape(-1, a.shape[-1])
    du = _each(lambda vi, di: flat(vi).T @ flat(di), v, dm)
    return self._kernel_transform_adjoint(du)


# F(2x2, 2x2) for the 4x4 stride-2 conv's 2x2 conv over space-to-depth channels: 9 products per
# 2x2 tile instead of 16, through transforms of +-1 only (rounding stays at float32's level).
_F2X2_2X2 = _WinogradS1(bt=[[1, -1, 0], [0, 1, 0], [0, -1, 1]], g=[[1, 0], [1, 1], [0, 1]],
                        at=[[1, 1, 0], [0, 1, 1]])


class _OnSpaceToDepth:
  """The 4x4 stride-2 conv's three maps from a 2x2 stride-1 algorithm's, on the space-to-depth
  input and kernel."""

  def __init__(self, algorithm):
    self.algorithm = algorithm

  def forward(self, x, kernel):
    return self.algorithm.forward(_padded_s2d(x), _s2d_kernel(kernel))

  def input_grad(self, dy, kernel):
    return _unpadded_d2s(self.algorithm.input_grad(dy, _s2d_kernel(kernel)))

  def weight_grad(self, x, dy):
    return _s2d_kernel_adjoint(self.algorithm.weight_grad(_padded_s2d(x), dy))


_Winograd = _OnSpaceToDepth(_F2X2_2X2)


# Winograd's transformed kernel is 9/4 the size of im2col's. Once it outgrows the caches
# (these many entries: 4 MB of float32) and the layer has few pixels to reuse it on, reading it
# costs more than the products saved: the U-Net's inner 512-channel layers at batch 1 ran
# 1.4-4x slower under Winograd (benchmarks/translation_layers.py notes the numbers).
WINOGRAD_CACHE_ENTRIES = 2 ** 20


def form(kernel, out_shape):
  """"winograd" for wide float32 layers whose output [B, H, W] tiles into 2 x 2 blocks, unless
  the kernel is large and the output has fewer than max(C, O) / 2 pixels; else "im2col"
  (bfloat16 would lose precision in the transforms' sums)."""
  c, o = kernel.shape[2:]
  b, h, w = out_shape[:3]
  # A dynamic batch (jax.export's symbolic "b") has no size to weigh: take the large-batch form.
  few_pixels = isinstance(b, int) and 2 * b * h * w < max(c, o)
  weight_bound = 16 * c * o >= WINOGRAD_CACHE_ENTRIES and few_pixels
  winograd = (min(c, o) >= WINOGRAD_MIN_CHANNELS and kernel.dtype == jnp.float32
              and h % 2 == 0 and w % 2 == 0 and not weight_bound)
  return "winograd" if winograd else "im2col"


_ENGINES = {"winograd": _Winograd, "im2col": _Im2col}


def _engine(kernel, out_shape):
  return _ENGINES[form(kernel, out_shape)]


@jax.custom_vjp
def conv4x4s2(x, kernel):
  """NHWC x [B, 2H, 2W, C], kernel [4, 4, C, O] -> [B, H, W, O]: conv, stride 2, padding 1."""
  return _engine(kernel, _conv_out_shape(x)).forward(x, kernel)


def _conv_out_shape(x):
  if x.shape[1] % 2 or x.shape[2] % 2:
    raise ValueError(f"conv4x4s2 needs even height and width, got {x.shape[1:3]}")
  return (x.shape[0], x.shape[1] // 2, x.shape[2] // 2)


def _conv_fwd(x, kernel):
  return conv4x4s2(x, kernel), (x, kernel)


def _conv_bwd(res, dy):
  x, kernel = res
  engine = _engine(kernel, dy.shape)
  return engine.input_grad(dy, kernel), engine.weight_grad(x, dy)


conv4x4s2.defvjp(_conv_fwd, _conv_bwd)


# --- The transposed conv over few pixels, tap by tap -----------------------------------------
# As the input gradient of a conv from O to C channels, the transposed conv uses its kernel
# [4, 4, C, O] in [4, 4, O, C] order: a transpose of the two innermost axes, which XLA:CPU runs
# at a few GB/s. The U-Net's inner 1024 -> 512 layers hold 8.4M-entry kernels over 1-64 pixels
# at batch 1: transposing the kernel took 20 ms there, the products 2 (each timed alone). This
# form leaves the kernel in place: each of the 16 taps is a [C, O] matrix, multiplied as one
# product batched over the taps (x broadcast to each, cheap when pixels are few); only
# activations move.

def _taps_to_patches(z, shape):
  """[16 taps (kernel order: dh, rh, dw, rw), B*h*w, O] -> [B, h, w, 16 O] in the im2col
  patches' channel order (dh, dw, rh, rw, O): tap 2d + r of the 4x4 kernel is 2x2 tap d at
  parity r."""
  b, h, w = shape
  z = z.reshape(2, 2, 2, 2, b, h, w, z.shape[-1]).transpose(4, 5, 6, 0, 2, 1, 3, 7)
  return z.reshape(b, h, w, -1)


def _patches_to_taps(p):
  b, h, w, c16 = p.shape
  p = p.reshape(b, h, w, 2, 2, 2, 2, c16 // 16).transpose(3, 5, 4, 6, 0, 1, 2, 7)
  return p.reshape(16, b * h * w, c16 // 16)


def _each_tap(x):
  """x [B, h, w, C] as [16, B*h*w, C]: the same pixels for each tap."""
  x = x.reshape(1, -1, x.shape[-1])
  return jnp.broadcast_to(x, (16,) + x.shape[1:])


class _TransposeTaps:
  """conv_transpose4x4s2's three maps with the kernel as 16 [C, O] taps."""

  @staticmethod
  def forward(x, kernel):
    c, o = kernel.shape[2:]
    z = jnp.einsum("tpc,tco->tpo", _each_tap(x), kernel.reshape(16, c, o))
    return _unpadded_d2s(_patches_adjoint(_taps_to_patches(z, x.shape[:3])))

  @staticmethod
  def input_grad(dout, kernel):
    c, o = kernel.shape[2:]
    p = _patches(_padded_s2d(dout))  # [B, h, w, 16 O]: what each input pixel fed
    dx = jnp.einsum("tpo,tco->tpc", _patches_to_taps(p), kernel.reshape(16, c, o)).sum(0)
    return dx.reshape(p.shape[:3] + (c,))

  @staticmethod
  def weight_grad(x, dout):
    p = _patches_to_taps(_patches(_padded_s2d(dout)))
    dk = jnp.einsum("tpc,tpo->tco", _each_tap(x), p)
    return dk.reshape(4, 4, x.shape[-1], dout.shape[-1])


def transpose_form(kernel, x_shape):
  """"taps" (`_TransposeTaps`) where the kernel is large (WINOGRAD_CACHE_ENTRIES) and one tap
  of it holds at least as many entries as x and a tap's output together (pixels * (C + O) <=
  C * O), else the form of the conv whose input gradient the transposed conv is.

  The U-Net's transposed convs at batch 1 at 256, value and both gradients, taps against the
  best other form (benchmarks/translation_layers.py --resolution=256, 2026-12-05,
  benchmarks/results/cpu_unet_patchgan_layers256_b1.json): 1x1x512 -> 512 1.6 against 15 ms,
  2x2x1024 -> 512 21 against 48, 4x4x1024 -> 512 17 against 46, 8x8x1024 -> 512 35 against 74;
  past the line it loses: 16x16x1024 -> 256 65 against 43, 32x32x512 -> 128 132 against 29
  (Winograd)."""
  c, o = kernel.shape[2:]
  b, h, w = x_shape[:3]
  # A dynamic batch (jax.export's symbolic "b") has no size to weigh: take the large-batch form.
  if (isinstance(b, int) and 16 * c * o >= WINOGRAD_CACHE_ENTRIES
      and b * h * w * (c + o) <= c * o):
    return "taps"
  return form(kernel, x_shape)  # the same for the swapped kernel: `form` weighs C and O alike


class _AsTransposed:
  """The transposed conv's three maps from a conv engine's: it is the input gradient of the
  conv whose kernel has the two channel axes swapped."""

  def __init__(self, engine):
    self.engine = engine

  def forward(self, x, kernel):
    return self.engine.input_grad(x, jnp.swapaxes(kernel, 2, 3))

  def input_grad(self, dout, kernel):
    return self.engine.forward(dout, jnp.swapaxes(kernel, 2, 3))

  def weight_grad(self, x, dout):
    return jnp.swapaxes(self.engine.weight_grad(dout, x), 2, 3)


def _transpose_engine(kernel, x_shape):
  chosen = transpose_form(kernel, x_shape)
  return _TransposeTaps if chosen == "taps" else _AsTransposed(_ENGINES[chosen])


@jax.custom_vjp
def conv_transpose4x4s2(x, kernel):
  """PyTorch's ConvTranspose2d(4, stride 2, padding 1): x [B, H, W, C], kernel [4, 4, C, O]
  (output row 2i - 1 + k gets input row i times tap k) -> [B, 2H, 2W, O]. It is the input
  gradient of the stride-2 conv from O to C channels."""
  return _transpose_engine(kernel, x.shape).forward(x, kernel)


def _conv_transpose_fwd(x, kernel):
  return conv_transpose4x4s2(x, kernel), (x, kernel)


def _conv_transpose_bwd(res, dout):
  x, kernel = res
  engine = _transpose_engine(kernel, x.shape)
  return engine.input_grad(dout, kernel), engine.weight_grad(x, dout)


conv_transpose4x4s2.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


# --- Stride-1 VALID convs of any kernel size (the translation nets' 3x3, 4x4 and 7x7) ---------
# Two matmul forms; each materializes one array k*k times wider than one side of the layer, so
# the form whose wide array is the narrower wins:
# - im2col: the k*k windows of x side by side ([.., k*k*C]) times the kernel as [k*k*C, O].
# - col2im: x times the kernel as [C, k*k*O] first, then the k*k shifted O-channel slices summed:
#   for layers that narrow to few channels.
# A third form is XLA's own conv, steered onto its fast path (`conv_valid_padded`); which form
# a layer takes is `conv_s1_form`'s measured choice.
# Stride-1 slices' adjoints are plain pads, which XLA:CPU runs fast, so autodiff gives both
# gradients as matmuls too.

def _conv_s1_im2col(x, kernel):
  k, _, c, o = kernel.shape
  h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
  patches = jnp.concatenate([x[:, i:i + h, j:j + w] for i in range(k) for j in range(k)], -1)
  return patches @ kernel.reshape(k * k * c, o)


def _conv_s1_col2im(x, kernel):
  k, _, c, o = kernel.shape
  z = x @ jnp.transpose(kernel, (2, 0, 1, 3)).reshape(c, k * k * o)
  h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
  return sum(z[:, i:i + h, j:j + w, (i * k + j) * o:(i * k + j + 1) * o]
             for i in range(k) for j in range(k))


def _xla_conv_valid(x, kernel, stride):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_valid_padded(x, kernel, stride=1):
  """XLA's VALID conv, computed as XLA:CPU runs fastest: its VALID forward (a YNNPACK fusion)
  was measured 4-30x slower than the same conv with built-in padding. So the forward pads by
  one stride above and left (shifting the output by one whole row and column) and crops it;
  the gradients are the VALID conv's, whose XLA:CPU forms are fast."""
  y = jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((stride, 0), (stride, 0)),
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y[:, 1:, 1:]


def _conv_valid_padded_fwd(x, kernel, stride):
  return conv_valid_padded(x, kernel, stride), (x, kernel)


def _conv_valid_padded_bwd(stride, res, dy):
  _, vjp = jax.vjp(lambda x, k: _xla_conv_valid(x, k, stride), *res)
  return vjp(dy)


conv_valid_padded.defvjp(_conv_valid_padded_fwd, _conv_valid_padded_bwd)


# --- Winograd for the stride-1 3x3 and 4x4 convs --------------------------------------------
# F(2x2, 3x3) 16 products instead of 36 (2.25x fewer), F(4x4, 3x3) 36 instead of 144 (4x), both
# Lavin & Gray's matrices; F(2x2, 4x4) 25 instead of 64 (2.56x), F(3x3, 4x4) 36 instead of 144
# (4x), both from Toom-Cook's construction.

_F2X2_3X3 = _WinogradS1(bt=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
                        g=[[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
                        at=[[1, 1, 1, 0], [0, 1, -1, -1]])
# F(4x4, 3x3): 1.8x fewer products than F(2x2) for the same outputs, at the cost of 6 x 6
# transforms with coefficients up to 8 and down to 1/24 (float32 errors ~10x F(2x2)'s, up to
# ~1e-5 of the outputs' scale: tests/test_layers.py) and about twice the compile time a conv.
_F4X4_3X3 = _WinogradS1(
    bt=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
    g=[[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
       [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
    at=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]])

# F(2x2, 4x4), from Toom-Cook's construction at the points 0, 1, -1, 2 and infinity (B^T the
# inverse Vandermonde matrix's transpose, G and A^T Vandermonde matrices), rows of B^T scaled
# to integers and G's by the inverse: coefficients up to 3 and down to 1/6.
_F2X2_4X4 = _WinogradS1(
    bt=[[2, -1, -2, 1, 0], [0, 2, 1, -1, 0], [0, -2, 3, -1, 0], [0, -1, 0, 1, 0],
        [0, 2, -1, -2, 1]],
    g=[[1 / 2, 0, 0, 0], [1 / 2, 1 / 2, 1 / 2, 1 / 2], [1 / 6, -1 / 6, 1 / 6, -1 / 6],
       [1 / 6, 1 / 3, 2 / 3, 4 / 3], [0, 0, 0, 1]],
    at=[[1, 1, 1, 1, 0], [0, 1, -1, 2, 1]])


# F(3x3, 4x4): 36 products per 3x3 tile of outputs, 4 an output against F(2x2, 4x4)'s 6.25.
# Toom-Cook at 0, 1, -1, 2, -1/2 and infinity (rows of B^T scaled to integers): float32 errors
# 2-3x below those of 0, +-1, +-2 (the points of F(4x4, 3x3) above) and of 0, +-1, +-1/2, and
# no larger than F(2x2, 4x4)'s, in value and both gradients (measured against float64 at the
# PatchGAN's shapes).
_F3X3_4X4 = _WinogradS1(
    bt=[[2, 3, -4, -3, 2, 0], [0, 2, 5, 1, -2, 0], [0, 2, 1, -5, 2, 0], [0, -1, -2, 1, 2, 0],
        [0, -2, 1, 2, -1, 0], [0, 2, 3, -4, -3, 2]],
    g=[[1 / 2, 0, 0, 0], [1 / 6, 1 / 6, 1 / 6, 1 / 6], [1 / 6, -1 / 6, 1 / 6, -1 / 6],
       [1 / 30, 1 / 15, 2 / 15, 4 / 15], [16 / 15, -8 / 15, 4 / 15, -2 / 15], [0, 0, 0, 1 / 2]],
    at=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -1 / 2, 0], [0, 1, 1, 4, 1 / 4, 1]])


def _winograd_conv(algorithm):
  """x [B, m n + r - 1, m n' + r - 1, C], kernel [r, r, C, O] -> [B, m n, m n', O] (VALID,
  stride 1) as `algorithm` (a _WinogradS1 of tile m), forward and both gradients."""
  @jax.custom_vjp
  def conv(x, kernel):
    return algorithm.forward(x, kernel)

  def backward(res, dy):
    x, kernel = res
    return algorithm.input_grad(dy, kernel), algorithm.weight_grad(x, dy)

  conv.defvjp(lambda x, kernel: (conv(x, kernel), (x, kernel)), backward)
  return conv


def _any_size(algorithm):
  """`_winograd_conv(algorithm)` at any output size: sides that are no multiple of its tile m
  (the PatchGAN's 4x4 convs shrink a side by one: 31, 15) are computed longer on zero rows and
  columns, then cropped."""
  conv, m = _winograd_conv(algorithm), algorithm.m

  def any_size(x, kernel):
    h, w = x.shape[1] - algorithm.r + 1, x.shape[2] - algorithm.r + 1
    x = jnp.pad(x, ((0, 0), (0, -h % m), (0, -w % m), (0, 0)))
    return conv(x, kernel)[:, :h, :w]
  return any_size


conv3x3_winograd = _winograd_conv(_F2X2_3X3)    # F(2x2, 3x3): even sides
conv3x3_winograd4 = _winograd_conv(_F4X4_3X3)   # F(4x4, 3x3): sides multiples of 4
conv4x4_winograd = _any_size(_F2X2_4X4)         # F(2x2, 4x4)
conv4x4_winograd3 = _any_size(_F3X3_4X4)        # F(3x3, 4x4)


# --- Grouped 3x3 convs (R3GAN's blocks: many groups of few channels) ----------------------------
# Per tile position one product a group, [tiles, C / G] x [C / G, O / G]: a quarter of the
# direct conv's products, through transforms 2.25x the size of x rather than col2im's nine tap
# maps as large as the output. Kernels [3, 3, C / G, O]; output channel g O / G + o reads group g.
# How the products are written matters on XLA:CPU (32x32, batch 16, 1536 channels in 96 groups,
# 2026-12-06): the forward took 3.1 s with jnp.einsum over [pixels, G, C / G] and 0.44 s as a
# dot_general with G as its batch axis and the [G, pixels, O / G] result transposed back; the
# weight gradient 2.0-2.6 s as an einsum or a dot_general over [pixels, G, n] and 0.57 s with
# both operands transposed to [G, pixels, n] first. Each stage alone ran fast in every form.

def _grouped(u, groups):
  """[C / G, O] -> [G, C / G, O / G]: each group's kernel."""
  return u.reshape(u.shape[0], groups, u.shape[1] // groups).transpose(1, 0, 2)


def grouped_conv3x3_winograd4(x, kernel, groups):
  """x [B, 4n + 2, 4n' + 2, C], a grouped kernel [3, 3, C / G, O] -> [B, 4n, 4n', O] (VALID,
  stride 1) as F(4x4, 3x3). Differentiable by autodiff; models/r3gan.py gives it custom VJPs."""
  alg = _F4X4_3X3
  u = _each(lambda t: _grouped(t, groups), alg._kernel_transform(kernel))
  v = _both_axes(alg._input_transform, x)

  def product(vi, ui):
    lead = vi.shape[:-1]
    m = jax.lax.dot_general(vi.reshape(-1, groups, ui.shape[1]), ui,
                            (((2,), (1,)), ((1,), (0,))))  # [G, pixels, O / G]
    return m.transpose(1, 0, 2).reshape(lead + (-1,))
  return _both_axes_adjoint(alg._output_transform, _each(product, v, u))


def grouped_conv3x3_winograd4_weight_grad(x, dy, groups):
  """The kernel gradient [3, 3, C / G, O] of `grouped_conv3x3_winograd4(x, kernel, groups)`
  for the output gradient dy."""
  alg = _F4X4_3X3
  v = _both_axes(alg._input_transform, x)
  dm = _both_axes(alg._output_transform_adjoint, dy)

  def product(vi, di):
    cg, og = vi.shape[-1] // groups, di.shape[-1] // groups
    by_group = lambda a, n: a.reshape(-1, groups, n).transpose(1, 0, 2)  # [G, pixels, n]
    du = jax.lax.dot_general(by_group(vi, cg), by_group(di, og),
                             (((1,), (1,)), ((0,), (0,))))  # [G, C / G, O / G]
    return du.transpose(1, 0, 2).reshape(cg, groups * og)
  return alg._kernel_transform_adjoint(_each(product, v, dm))


# --- A densely connected stack of 3x3 convs (ESRGAN's dense block) ---------------------------
# Conv k reads the stack's input and the activated outputs of convs 0 .. k-1, concatenated. Run
# conv by conv, each conv transforms its whole concatenated input again (64 + 32 k channels in
# ESRGAN) and its kernel gradient transforms it once more. Here every piece (the input, then each
# activated output) is transformed once, F(4x4, 3x3), and the rows of all later kernels that
# read it are one matrix: per tile position one product a piece, forward and in both gradients.
# The sums over pieces stay in the Winograd domain until a conv's output is needed. ESRGAN's
# block, value and both gradients (benchmarks/sr_layers.py, 2026-12-06): batch 4 at 32x32,
# 64 -> 32 x 4 -> 64, 22.8 ms against 24.3 as five F(4x4) convs and 41.7 in the forms
# `conv_s1_form` picks; the CPU-sized default's (batch 16 at 16x16, 32 -> 16 x 4 -> 32) 10.2
# against 13.3 and 20.2.

def _split_grid(grid, sizes):
  """An a x a list of [..., sum(sizes)] -> one a x a list per size (channels split)."""
  cuts = list(np.cumsum(sizes)[:-1])
  parts = _each(lambda t: jnp.split(t, cuts, -1), grid)
  return [_each(lambda p, i=i: p[i], parts) for i in range(len(sizes))]


class _DenseConvs:
  """The stack's pieces and their transforms for an input of sides h, w; outputs are computed
  over sides rounded up to the tile (zero rows and columns beyond), then cropped."""
  alg = _F4X4_3X3

  def __init__(self, x, kernels):
    self.h, self.w = x.shape[1:3]
    m = self.alg.m
    self.sides = (self.h + -self.h % m, self.w + -self.w % m)
    self.outs = [k.shape[-1] for k in kernels]
    starts = np.cumsum([0, x.shape[-1]] + self.outs[:-1])
    for k, kernel in enumerate(kernels):
      if kernel.shape[:3] != (3, 3, starts[k + 1]):
        raise ValueError(f"dense conv {k} reads {starts[k + 1]} channels, its kernel is "
                         f"{kernel.shape}")
    self.rows = list(zip(starts[:-1], starts[1:]))  # piece j's rows in each later kernel

  def weights(self, kernels):
    """Per piece j, the transformed rows of kernels j .. n-1 side by side: a x a [C_j, sum O]."""
    return [self.alg._kernel_transform(jnp.concatenate([k[:, :, lo:hi] for k in kernels[j:]], -1))
            for j, (lo, hi) in enumerate(self.rows)]

  def weights_adjoint(self, dweights):
    """The kernels' gradients from the pieces' transformed-weight gradients."""
    per_piece = [jnp.split(self.alg._kernel_transform_adjoint(dw),
                           list(np.cumsum(self.outs[j:])[:-1]), -1)
                 for j, dw in enumerate(dweights)]
    return tuple(jnp.concatenate([per_piece[j][k - j] for j in range(k + 1)], 2)
                 for k in range(len(self.outs)))

  def tiles(self, piece):
    """Transformed tiles of the piece zero-padded by 1 (the "same" conv) and up to the tile."""
    (sh, sw), (h, w) = self.sides, (self.h, self.w)
    padded = jnp.pad(piece, ((0, 0), (1, 1 + sh - h), (1, 1 + sw - w), (0, 0)))
    return _both_axes(self.alg._input_transform, padded)

  def tiles_adjoint(self, dv):
    y = _both_axes_adjoint(self.alg._input_transform_adjoint, dv)
    return y[:, 1:1 + self.h, 1:1 + self.w]

  def untile(self, mm):
    return _both_axes_adjoint(self.alg._output_transform, mm)[:, :self.h, :self.w]

  def untile_adjoint(self, dy):
    (sh, sw), (h, w) = self.sides, (self.h, self.w)
    dy = jnp.pad(dy, ((0, 0), (0, sh - h), (0, sw - w), (0, 0)))
    return _both_axes(self.alg._output_transform_adjoint, dy)


def _dense_convs_forward(slope, x, kernels, biases):
  stack = _DenseConvs(x, kernels)
  n, outs = len(kernels), stack.outs
  sums, tiles, pre = [None] * n, [], []
  piece = x
  for j, weights in enumerate(stack.weights(kernels)):
    tiles.append(stack.tiles(piece))
    for k, part in zip(range(j, n), _split_grid(_each(jnp.matmul, tiles[j], weights), outs[j:])):
      sums[k] = part if sums[k] is None else _each(jnp.add, sums[k], part)
    y = stack.untile(sums[j]) + biases[j]
    if j < n - 1:
      pre.append(y)
      piece = jax.nn.leaky_relu(y, slope)
  return y, (tiles, pre)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _dense_convs(slope, x, kernels, biases):
  return _dense_convs_forward(slope, x, kernels, biases)[0]


def _dense_convs_fwd(slope, x, kernels, biases):
  y, (tiles, pre) = _dense_convs_forward(slope, x, kernels, biases)
  return y, (x, kernels, tiles, pre)


def _dense_convs_bwd(slope, res, dy):
  x, kernels, tiles, pre = res
  stack, n = _DenseConvs(x, kernels), len(kernels)
  weights = stack.weights(kernels)
  dsums, dbiases, dweights = [None] * n, [None] * n, [None] * n
  dsums[-1], dbiases[-1] = stack.untile_adjoint(dy), jnp.sum(dy, (0, 1, 2))
  flat = lambda a: a.reshape(-1, a.shape[-1])
  for j in reversed(range(n)):
    # Piece j fed convs j .. n-1: their output gradients side by side, in the Winograd domain.
    d = _each(lambda *parts: jnp.concatenate(parts, -1), *dsums[j:])
    dweights[j] = _each(lambda v, dj: flat(v).T @ flat(dj), tiles[j], d)
    dpiece = stack.tiles_adjoint(_each(lambda dj, wj: dj @ wj.T, d, weights[j]))
    if j == 0:
      dx = dpiece
    else:
      dyj = jnp.where(pre[j - 1] >= 0, dpiece, slope * dpiece)  # leaky ReLU's gradient
      dsums[j - 1], dbiases[j - 1] = stack.untile_adjoint(dyj), jnp.sum(dyj, (0, 1, 2))
  return dx, stack.weights_adjoint(dweights), tuple(dbiases)


_dense_convs.defvjp(_dense_convs_fwd, _dense_convs_bwd)


def dense_convs3x3(x, kernels, biases, slope):
  """A densely connected stack of "same" 3x3 convs, as ESRGAN's dense block (without its
  residual): y_k = conv(concat(x, a(y_0), ..., a(y_{k-1})), kernels[k]) + biases[k] with
  a = leaky ReLU(slope); returns the last y_k (not activated). x [B, H, W, C] float32, any sides;
  kernels[k] [3, 3, C + O_0 + ... + O_{k-1}, O_k]. One custom VJP for the whole stack."""
  return _dense_convs(slope, x, tuple(kernels), tuple(biases))


# Each F(2x2) conv compiles into ~120 small kernels (forward and both gradients) where XLA's
# conv is a few: ~0.3 s more compile a layer; F(4x4) ~270, about 1 s more. Narrower layers
# (ESRGAN's 32-channel growth convs) ran 1.3-2x faster alone as F(2x2) (benchmarks/sr_layers.py)
# but gained nothing measurable in ESRGAN's step, whose compile they took from 72 s to 242 s;
# below 32 channels the transforms cost what they save. F(4x4) ran faster than F(2x2) at every
# shape timed (value and both gradients, 2026-12-05): 24 against 47 ms at 64x64, 256 -> 256,
# batch 1 (CycleGAN's blocks; benchmarks/translation_layers.py --resolution=256), 7.3 against
# 9.4 at 32x32, 192 -> 64, batch 4 (ESRGAN's; benchmarks/sr_layers.py), and it took SNGAN's step
# (128 and 256 channels) from 10.1-10.3 to 11.1-11.3 img/s. The algorithms on 6 x 6 tiles
# (F(4x4, 3x3), F(3x3, 4x4)) are taken from 128 channels only: ESRGAN's paper-size step
# (64-channel convs) ran out of 24 GB compiling with F(4x4, 3x3) at 64, its 23 RRDBs then
# unrolled (they are one scanned block since, their dense blocks `dense_convs3x3`).
WINOGRAD_S1_MIN_CHANNELS = 64
WINOGRAD6_MIN_CHANNELS = 128
# 3x3 convs that do not narrow (C <= O) take F(2x2, 3x3) from 32 channels: StyleGAN2's 32 -> 32
# convs at 32x32, batch 32, took 19 ms (value and both gradients) against 43 as im2col and 50
# padded, and its `stylegan2_digits` step ran 107-113 img/s against 95-99 (3 alternating runs
# each of benchmarks/throughput.py, 2026-12-06). ESRGAN's 32-channel growth convs narrow (64-160
# -> 32): those are the ones that gained nothing in its step and tripled its compile (above).
# The narrow default ESRGAN's 32 -> 32 trunk and upsampling convs do take it, for no measured
# change (23.1-24.9 img/s against 23.6-25.2, the same day) and ~6 s more compile.
WINOGRAD3X3_NON_NARROWING_MIN_CHANNELS = 32


def conv_s1_form(x, kernel):
  """"winograd4" (`conv3x3_winograd4`), "winograd" (`conv3x3_winograd`), "winograd3_k4"
  (`conv4x4_winograd3`), "winograd_k4" (`conv4x4_winograd`), "padded" (`conv_valid_padded`),
  "im2col" or "col2im" for a stride-1 VALID conv of x [B, H, W, C] by kernel [k, k, C, O] on
  XLA:CPU.

  3x3 float32 convs with at least WINOGRAD_S1_MIN_CHANNELS on both sides (at least
  WINOGRAD3X3_NON_NARROWING_MIN_CHANNELS where C <= O) and an even output take Winograd
  F(2x2, 3x3), and from WINOGRAD6_MIN_CHANNELS with output sides that are multiples of 4
  F(4x4, 3x3): value and both gradients, F(2x2) ran 2.1x faster than XLA's conv at 32x32,
  192 -> 64, batch 4 (8.8 against 18.7-19.6 ms; benchmarks/sr_layers.py); at 64x64, 256 -> 256,
  batch 1, F(4x4) took 24 ms, F(2x2) 47, im2col 104, the padded form 134 and XLA's conv 179
  (benchmarks/translation_layers.py --resolution=256, 2026-12-05). 4x4 float32 convs from
  WINOGRAD_S1_MIN_CHANNELS take F(2x2, 4x4) at any size, and from WINOGRAD6_MIN_CHANNELS
  F(3x3, 4x4): the PatchGAN's 256 -> 512 at 31x31, batch 1, 34 ms as F(3x3), 44 as F(2x2), 70
  for XLA's conv, 71 padded, 83 im2col; at 15x15, batch 16, 99-117 as F(3x3), 162 as F(2x2),
  302 im2col (benchmarks/translation_layers.py --layers=patchgan_conv3_4x4s1, 2026-12-06).

  For the other convs, measured (benchmarks/translation_layers.py, value and both gradients):
  at batch 16 im2col beat "padded" (1.3x on the ResNet blocks at 32x32, Winograd since; 1.7x
  on the PatchGAN's 4x4); at batch 1 they tie (the 7x7 from RGB at 256: 116 against 110 ms,
  2026-12-06), so the choice does not depend on the batch: under pmap each device's share runs
  the forms one device runs on the whole batch. Narrowing convs (the 7x7 to RGB) stay
  "padded": col2im sums k*k thin slices, 16x slower. A 1x1 conv, or a 4x4 one to a single
  channel (the PatchGAN's last), is a plain matmul or a few cheap slices: 1.5-2x faster so; a
  7x7 to one channel (a gray image) is not: its 49 slices' gradients took 67 ms against 2.4 ms
  "padded" (batch 8 at 32x32 from 16 channels), 416 against 33 (batch 1 at 256 from 64)."""
  k, _, c, o = kernel.shape
  least = WINOGRAD3X3_NON_NARROWING_MIN_CHANNELS if c <= o else WINOGRAD_S1_MIN_CHANNELS
  if k == 3 and min(c, o) >= least and kernel.dtype == jnp.float32:
    sides = (x.shape[1] - 2, x.shape[2] - 2)  # of the output
    if min(c, o) >= WINOGRAD6_MIN_CHANNELS and sides[0] % 4 == 0 and sides[1] % 4 == 0:
      return "winograd4"
    if sides[0] % 2 == 0 and sides[1] % 2 == 0:
      return "winograd"
  if k == 4 and min(c, o) >= WINOGRAD_S1_MIN_CHANNELS and kernel.dtype == jnp.float32:
    return "winograd3_k4" if min(c, o) >= WINOGRAD6_MIN_CHANNELS else "winograd_k4"
  if k == 1 or (o == 1 and k <= 4):
    return "im2col" if c <= o else "col2im"
  return "padded" if c > o else "im2col"


S1_FORMS = {"padded": lambda x, kernel: conv_valid_padded(x, kernel, 1),
            "winograd": conv3x3_winograd, "winograd4": conv3x3_winograd4,
            "winograd_k4": conv4x4_winograd, "winograd3_k4": conv4x4_winograd3,
            "im2col": _conv_s1_im2col, "col2im": _conv_s1_col2im}


def conv_s1(x, kernel, form=None):
  """x [B, H, W, C], kernel [k, k, C, O] -> [B, H - k + 1, W - k + 1, O]: VALID, stride 1,
  in `form` (one of S1_FORMS; default: `conv_s1_form`'s)."""
  return S1_FORMS[form or conv_s1_form(x, kernel)](x, kernel)


class FrozenKernel:
  """A kernel [k, k, C, O] no step trains (VGG's in the perceptual loss), as a host array. A
  stride-1 VALID conv by it (called on x, in the form `conv_s1_form` picks) computes only the
  input's gradient, and in a Winograd form takes the kernel's transform made once here, in
  float64, rather than have XLA fold the transform of a constant kernel while compiling. VGG19
  to conv5_4, forward and input gradient, batch 4 at 128x128: 0.34 s against 0.67 s for XLA's
  conv of the constant kernels, compiled in 27 s against 3.4 s (benchmarks/vgg_loss.py,
  2026-12-07; folding the transforms took 167 s on 12-06). The transformed kernels are the
  program's constants, (m + r - 1)^2 / r^2 times the kernel's size: 4x for F(4x4, 3x3), which
  compiling copies several times (ESRGAN's step peaked at 9.2 GB with compilation against
  5.5 GB on XLA's conv)."""

  def __init__(self, kernel):
    self.array = np.asarray(kernel, np.float32)
    self.shape = self.array.shape
    self._convs = {}  # form -> its conv, built once and shared by every program that traces it

  def __call__(self, x):
    form = conv_s1_form(x, self.array)
    if form not in self._convs:
      self._convs[form] = (_frozen_winograd(_WINOGRAD_3X3[form], self.array)
                           if form in _WINOGRAD_3X3 else
                           lambda x: conv_s1(x, self.array, form))
    return self._convs[form](x)


_WINOGRAD_3X3 = {"winograd": _F2X2_3X3, "winograd4": _F4X4_3X3}


def _frozen_winograd(algorithm, kernel):
  """x -> algorithm's conv of x by the host `kernel`, with the input's gradient only."""
  # in numpy, float64: host arrays each program that traces the conv takes as its constants
  u = [[cell.astype(np.float32) for cell in row]
       for row in algorithm._kernel_transform(kernel.astype(np.float64))]

  @jax.custom_vjp
  def conv(x):
    return algorithm.forward_transformed(x, u)

  conv.defvjp(lambda x: (conv(x), None),
              lambda _, dy: (algorithm.input_grad_transformed(dy, u),))
  return conv
