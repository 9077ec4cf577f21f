"""Layers shared by the model families: DCGAN's 4x4 convs, the translation nets' 3x3, 7x7 and
stride-1 convs, the normalizations by config name, and spectral normalization with the ResNet
GANs' dense, conv (fused with 2x resampling) and embedding layers; pixel shuffle (the SR nets)."""
import contextlib
from typing import Any

import flax.linen as nn
import jax
from jax import custom_batching
import jax.numpy as jnp

from gan_jax.models import cpu_conv

# DCGAN init (Radford et al. 2016): weights ~ N(0, 0.02).
dcgan_init = nn.initializers.normal(0.02)

# PyTorch's default conv and linear init (kaiming uniform, a = sqrt(5)): U(+-1 / sqrt(fan_in)).
# Biases start at zero here.
torch_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")

# Output phase a (0 or 1) of a 4x4 / stride-2 / pad-1 transposed conv reads two input rows; the
# window's offset d (0 or 1) within the padded input meets kernel tap 3 - a - 2d.
_PHASE_TAPS = jnp.array([[3, 1], [2, 0]])  # [a, d]


_target = []  # the backend `lowering_for` traces for, innermost last


@contextlib.contextmanager
def lowering_for(platform):
  """Trace the models as they would run on `platform` ("cpu", "cuda", "rocm", "gpu" or "tpu"),
  not on this process's default backend: for `jax.export` to another backend, whose layers
  take their own paths (`_use_gemm`)."""
  _target.append("gpu" if platform in ("cuda", "rocm") else platform)
  try:
    yield
  finally:
    _target.pop()


_batched_runs = []  # `batched_runs` contexts entered


@contextlib.contextmanager
def batched_runs():
  """Trace the models for a step vmapped over runs whose weights differ (`games/seeds.py`).
  There a convolution with per-run kernels becomes a grouped convolution, one of XLA:CPU's slow
  paths, so CPU layers that would run a native convolution of their weights take a matrix-product
  form instead (`runs_batched`)."""
  _batched_runs.append(True)
  try:
    yield
  finally:
    _batched_runs.pop()


def runs_batched():
  return bool(_batched_runs)


def per_run(f):
  """f, but vmapped (over a sweep's runs, each with its own weights) it runs once per run inside
  the one program rather than as one batched op: the other answer to `batched_runs`' problem,
  for ops whose batched forms all lose to the separate runs' native op (R3GAN's grouped conv:
  `r3gan.py`)."""
  f = custom_batching.custom_vmap(f)

  @f.def_vmap
  def _each(axis_size, in_batched, *args):
    runs = [[a[i] if batched else a for a, batched in zip(args, in_batched)]
            for i in range(axis_size)]
    return jnp.stack([f(*run) for run in runs]), True

  return f


def target_backend():
  """The backend the models are traced for: `lowering_for`'s, else JAX's default."""
  return _target[-1] if _target else jax.default_backend()


def _use_gemm(impl):
  """XLA:CPU runs convolutions' gradients several times slower than the same sums written as
  matrix products (`cpu_conv`); GPUs and TPUs have fast native convolutions."""
  if impl not in ("auto", "gemm", "conv"):
    raise ValueError(f"unknown conv impl {impl!r}")
  return impl == "gemm" or (impl == "auto" and target_backend() == "cpu")


def _conv_valid(x, kernel, stride):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _add_bias(module, out, use_bias):
  if not use_bias:
    return out
  bias = module.param("bias", nn.initializers.zeros, (out.shape[-1],), jnp.float32)
  return out + bias.astype(out.dtype)


def conv4x4s2(x, kernel, impl):
  """The 4x4 / stride-2 / pad-1 conv of `Conv4x4s2` as a function, so other layers reuse it."""
  if _use_gemm(impl) and x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0:
    return cpu_conv.conv4x4s2(x, kernel)
  return _conv_valid(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), kernel, 2)


class Conv4x4s2(nn.Module):
  """nn.Conv(features, (4, 4), strides 2, padding 1): H x W -> H/2 x W/2.

  Natively it pads explicitly, then convolves VALID: XLA's weight gradient of a conv with
  built-in padding was measured ~9x slower on CPU than on a pre-padded input.
  """
  features: int
  use_bias: bool = False
  kernel_init: Any = dcgan_init
  dtype: Any = jnp.float32
  impl: str = "auto"  # auto | gemm | conv

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return _add_bias(self, conv4x4s2(x, kernel, self.impl), self.use_bias)


def conv_transpose4x4s2(x, kernel, impl):
  """The transposed conv of `ConvTranspose4x4s2` as a function, so other layers reuse it."""
  if _use_gemm(impl):
    return cpu_conv.conv_transpose4x4s2(x, kernel)
  b, h, w, cin = x.shape
  features = kernel.shape[-1]
  taps = _PHASE_TAPS.T  # [d, a]
  # k[dh, dw, ah, aw, cin, out] = kernel[taps[dh, ah], taps[dw, aw], cin, out]
  k = kernel[taps[:, None, :, None], taps[None, :, None, :]]
  k = jnp.transpose(k, (0, 1, 4, 2, 3, 5)).reshape(2, 2, cin, 4 * features)
  y = _conv_valid(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, 1)
  y = y.reshape(b, h + 1, w + 1, 2, 2, features)
  # Phase (a, c) of output pixel (m, n) sits at y[m + a, n + c, a, c].
  rows = [jnp.stack([y[:, a:a + h, c:c + w, a, c] for c in (0, 1)], axis=3) for a in (0, 1)]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, features)  # [b, h, a, w, c]


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
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return _add_bias(self, conv_transpose4x4s2(x, kernel, self.impl), self.use_bias)


# A 3x3 kernel with a zero 4th tap on each axis: in both stride-2 layers below, tap 3 is the only
# difference from the 4x4 layers, so the 3x3 ones reuse their fast forms.
def _as_4x4(kernel):
  return jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))


class Conv3x3s2(nn.Module):
  """PyTorch's Conv2d(kernel 3, stride 2, padding 1) on even sizes: H x W -> H/2 x W/2.

  Output row i reads input rows 2i - 1 .. 2i + 1, which are taps 0..2 of the 4x4 / stride-2 /
  pad-1 window (rows 2i - 1 .. 2i + 2).
  """
  features: int
  use_bias: bool = False
  kernel_init: Any = dcgan_init
  dtype: Any = jnp.float32
  impl: str = "auto"  # auto | gemm | conv

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if _use_gemm(self.impl) and x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0:
      out = cpu_conv.conv4x4s2(x, _as_4x4(kernel))
    else:
      out = _conv_valid(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), kernel, 2)
    return _add_bias(self, out, self.use_bias)


class ConvTranspose3x3s2(nn.Module):
  """PyTorch's ConvTranspose2d(kernel 3, stride 2, padding 1, output_padding 1): exactly 2x.

  Kernel [3, 3, in, out] with PyTorch's meaning; output row 2i - 1 + k gets input row i times
  tap k, as in the 4x4 layer with tap 3 zero, so it runs as `ConvTranspose4x4s2` does.
  """
  features: int
  use_bias: bool = False
  kernel_init: Any = dcgan_init
  dtype: Any = jnp.float32
  impl: str = "auto"  # auto | gemm | conv

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    return _add_bias(self, conv_transpose4x4s2(x, _as_4x4(kernel), self.impl), self.use_bias)


class ConvS1(nn.Module):
  """A stride-1 k x k conv after explicit padding (zeros or reflect): PyTorch's Conv2d(k,
  padding=p) or ReflectionPad2d(p) + Conv2d(k). Padding first keeps XLA's weight gradient on
  its fast VALID path; on CPU the conv runs in the form `cpu_conv.conv_s1_form` measured fastest
  for its shape (XLA's conv on its fast path, or matmuls)."""
  features: int
  kernel_size: int
  padding: int = 0
  pad_mode: str = "zeros"  # zeros | reflect
  use_bias: bool = False
  kernel_init: Any = dcgan_init
  dtype: Any = jnp.float32
  impl: str = "auto"  # auto | gemm | conv

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    p = self.padding
    if p:
      mode = {"zeros": "constant", "reflect": "reflect"}[self.pad_mode]
      x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)
    if _use_gemm(self.impl):
      out = cpu_conv.conv_s1(x, kernel)
    else:
      out = _conv_valid(x, kernel, 1)
    return _add_bias(self, out, self.use_bias)


def class_vector(labels, num_classes, dtype=jnp.float32):
  """One-hot rows [B, num_classes] of integer class ids [B]; float class weights [B, num_classes]
  (a mix of classes, as label walks draw) pass as they are."""
  labels = jnp.asarray(labels)
  if jnp.issubdtype(labels.dtype, jnp.integer):
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)
  return labels.astype(dtype)


def embed_classes(embed, labels):
  """An nn.Embed's rows for integer class ids [B], or their mix for float class weights
  [B, num_classes]: the same row for a one-hot weight."""
  if jnp.issubdtype(jnp.asarray(labels).dtype, jnp.integer):
    return embed(labels)
  return jnp.asarray(labels, embed.embedding.dtype) @ embed.embedding


def instance_norm(x, epsilon=1e-5):
  """PyTorch's InstanceNorm2d(affine=False): each image's channels to zero mean, unit variance
  over H x W (biased variance), statistics in float32; no parameters, no running averages."""
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + epsilon)).astype(x.dtype)


def norm_layer(kind, train, axis_name=None, dtype=jnp.float32, name=None):
  """A normalization by config name; `axis_name` makes batch norm use the global batch under pmap."""
  if kind == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=lambda k, s, d: 1.0 + 0.02 * jax.random.normal(k, s, d),
                        axis_name=axis_name, dtype=dtype, name=name)
  if kind == "instance":
    return instance_norm
  if kind == "layer":
    return nn.LayerNorm(epsilon=1e-5, dtype=dtype, name=name)
  if kind == "none":
    return lambda x: x
  raise ValueError(f"unknown norm {kind!r}")


class Dropout(nn.Module):
  """nn.Dropout (the same mask under jit) whose mask is drawn for the global batch and sliced to
  this device's rows under pmap, so pmap reproduces jit: with one key per step, every device
  would otherwise drop the same units of its own examples."""
  rate: float
  axis_name: Any = None

  @nn.compact
  def __call__(self, x, deterministic):
    if deterministic or self.rate == 0:
      return x
    key, keep_prob = self.make_rng("dropout"), 1.0 - self.rate
    if self.axis_name is None:
      keep = jax.random.bernoulli(key, keep_prob, x.shape)
    else:
      n = x.shape[0]
      global_shape = (n * jax.lax.axis_size(self.axis_name),) + x.shape[1:]
      keep = jax.random.bernoulli(key, keep_prob, global_shape)
      keep = jax.lax.dynamic_slice_in_dim(keep, jax.lax.axis_index(self.axis_name) * n, n)
    return jax.lax.select(keep, x / keep_prob, jnp.zeros_like(x))


# --- Spectral normalization (Miyato et al. 2018) ------------------------------------------------

def l2_normalize(v, eps=1e-12):
  """v scaled to unit length along its last axis."""
  return v * jax.lax.rsqrt(jnp.sum(jnp.square(v), -1, keepdims=True) + eps)


def spectral_normalize(module, w, train, eps=1e-12):
  """`w` divided by its largest singular value sigma, W seen as a matrix [out, -1] (out = the last
  axis: a Dense's or HWIO conv's outputs, an embedding's features).

  sigma comes from power iteration (Miyato et al. 2018, Algorithm 1): in train mode one step per
  forward from the stored left vector u, with u and v constants for the gradient, so
  sigma = v^T W u differentiates as the paper's. u and the sigma it gave are stored in `module`'s
  "spectral" collection, updated only in train mode and only where the caller made the
  collection mutable. At inference the stored sigma divides, with no iteration: the same weights
  every call, and sampling costs nothing extra. Initialisation draws u ~ N(0, I) and stores the
  sigma of one step from it."""
  m = w.astype(jnp.float32).reshape(-1, w.shape[-1])  # W^T: [rest, out]

  def step(u):
    v = jax.lax.stop_gradient(l2_normalize(m @ u, eps))
    u = jax.lax.stop_gradient(l2_normalize(v @ m, eps))
    return u, v @ (m @ u)

  u_var = module.variable(
      "spectral", "u",
      lambda: l2_normalize(jax.random.normal(module.make_rng("params"), (m.shape[1],)), eps))
  sigma_var = module.variable("spectral", "sigma",
                              lambda: jax.lax.stop_gradient(step(u_var.value)[1]))
  if train:
    u, sigma = step(u_var.value)
    if module.is_mutable_collection("spectral") and not module.is_initializing():
      u_var.value, sigma_var.value = u, jax.lax.stop_gradient(sigma)
  else:
    sigma = sigma_var.value
  return (w / sigma).astype(w.dtype)


def pad_same(x, k):
  """NHWC x zero-padded by k // 2 on both sides of H and W: a k x k VALID conv's input for a
  "same" output."""
  p = k // 2
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))


def conv_same(x, kernel, impl="auto", form=None):
  """Stride-1 k x k conv, zero padding k // 2. A 1x1 conv is a matrix product; larger kernels
  pad first and run as `ConvS1` does (`cpu_conv.conv_s1` on CPU, in `form` if given, else the
  one it picks; XLA's VALID conv elsewhere). A `cpu_conv.FrozenKernel` runs its own forms on
  CPU."""
  frozen = isinstance(kernel, cpu_conv.FrozenKernel)
  k = kernel.shape[0]
  if k == 1:
    return x @ (kernel.array if frozen else kernel)[0, 0]
  x = pad_same(x, k)
  if frozen:
    return kernel(x) if _use_gemm(impl) else _conv_valid(x, kernel.array, 1)
  return cpu_conv.conv_s1(x, kernel, form) if _use_gemm(impl) else _conv_valid(x, kernel, 1)


# Nearest 2x upsampling then a 3x3 "same" conv, per output phase a: row 2i + a of the upsampled
# image repeats input row i, so phase 0 reads input rows i - 1 (tap 0) and i (taps 1 + 2), phase
# 1 rows i (taps 0 + 1) and i + 1 (tap 2). In the 4x4 transposed conv's indexing (output row
# 2i - 1 + t gets input row i times tap t) those are taps 3, 1, 2, 0: the kernel [k2, k1 + k2,
# k0 + k1, k0] along each axis. 16 products per input pixel instead of 36.
_UP_TAPS = jnp.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], jnp.float32)  # [4 taps, 3]

# A 3x3 "same" conv then 2x2 average pooling: output i averages conv rows 2i, 2i + 1, which read
# input rows 2i - 1 .. 2i + 2 — the 4x4 / stride-2 / pad-1 window, kernel [k0, k0 + k1, k1 + k2,
# k2] / 2 along each axis. 4 products per input pixel instead of 9.
_POOL_TAPS = jnp.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], jnp.float32) / 2


def _taps4x4(matrix, kernel):
  return jnp.einsum("pi,qj,ijco->pqco", matrix.astype(kernel.dtype), matrix.astype(kernel.dtype),
                    kernel)


def upsample2x(x):
  """Nearest-neighbour 2x: a broadcast and a reshape, whose gradient is a plain sum."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


def pixel_shuffle(x, r):
  """[B, H, W, C * r * r] -> [B, H * r, W * r, C] in PyTorch's PixelShuffle order: input channel
  c * r * r + i * r + j goes to channel c of pixel (h * r + i, w * r + j), so weights trained
  with torch's layer keep their meaning. A reshape and a transpose: no arithmetic."""
  b, h, w, crr = x.shape
  if crr % (r * r):
    raise ValueError(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got {crr}")
  c = crr // (r * r)
  x = x.reshape(b, h, w, c, r, r).transpose(0, 1, 4, 2, 5, 3)  # [b, h, i, w, j, c]
  return x.reshape(b, h * r, w * r, c)


def avg_pool2x(x):
  """2x2 average pooling, stride 2, as a reshape and a mean."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def upsample_conv3x3(x, kernel, impl="auto"):
  """conv_same(upsample2x(x), kernel) for a 3x3 kernel, exactly, as one 4x4 / stride-2
  transposed conv (`conv_transpose4x4s2`: Winograd or im2col on CPU)."""
  return conv_transpose4x4s2(x, _taps4x4(_UP_TAPS, kernel), impl)


def conv3x3_avg_pool(x, kernel, impl="auto"):
  """avg_pool2x(conv_same(x, kernel)) for a 3x3 kernel on even sizes, exactly, as one 4x4 /
  stride-2 conv (`conv4x4s2`)."""
  return conv4x4s2(x, _taps4x4(_POOL_TAPS, kernel), impl)


xavier_init = nn.initializers.xavier_uniform()


class SNDense(nn.Module):
  """nn.Dense whose kernel is spectrally normalized (`spectral_normalize`) when `spectral_norm`."""
  features: int
  use_bias: bool = True
  spectral_norm: bool = True
  kernel_init: Any = xavier_init
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
    if self.spectral_norm:
      kernel = spectral_normalize(self, kernel, train)
    out = x.astype(self.dtype) @ kernel.astype(self.dtype)
    return _add_bias(self, out, self.use_bias)


class SNConv(nn.Module):
  """Stride-1 k x k conv with zero padding k // 2, kernel spectrally normalized when
  `spectral_norm`. `resample`: "up" = nearest 2x before the conv, "down" = 2x2 average pooling
  after it, each fused with a 3x3 conv into one 4x4 stride-2 layer where `fuse` (same values)."""
  features: int
  kernel_size: int = 3
  resample: str = "none"  # none | up | down
  use_bias: bool = True
  spectral_norm: bool = True
  fuse: bool = True
  kernel_init: Any = xavier_init
  dtype: Any = jnp.float32
  impl: str = "auto"  # auto | gemm | conv

  @nn.compact
  def __call__(self, x, train):
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
    if self.spectral_norm:
      kernel = spectral_normalize(self, kernel, train)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    fused = self.fuse and k == 3
    if self.resample == "up":
      out = upsample_conv3x3(x, kernel, self.impl) if fused else conv_same(upsample2x(x), kernel,
                                                                          self.impl)
    elif self.resample == "down":
      out = conv3x3_avg_pool(x, kernel, self.impl) if fused else avg_pool2x(
          conv_same(x, kernel, self.impl))
    elif self.resample == "none":
      out = conv_same(x, kernel, self.impl)
    else:
      raise ValueError(f"unknown resample {self.resample!r}")
    return _add_bias(self, out, self.use_bias)


class SNEmbed(nn.Module):
  """An embedding table [num, features] looked up by integer ids, spectrally normalized when
  `spectral_norm` (the projection discriminator's class embedding)."""
  num_embeddings: int
  features: int
  spectral_norm: bool = True
  embedding_init: Any = xavier_init
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ids, train):
    table = self.param("embedding", self.embedding_init, (self.num_embeddings, self.features),
                       jnp.float32)
    if self.spectral_norm:
      table = spectral_normalize(self, table, train)
    return jnp.take(table, ids, axis=0).astype(self.dtype)
