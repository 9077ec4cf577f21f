"""Low-resolution inputs for super-resolution, made on the host from high-resolution uint8 images.

Two kinds (`config.data.degrade.kind`), for `config.data.scale` = 2 or 4:
  bicubic     MATLAB's `imresize(hr, 1/scale)` (antialiased bicubic), the classic SR benchmark
              degradation (SRCNN, EDSR, SRGAN, ESRGAN all train and test on it).
  realesrgan  Real-ESRGAN's second-order degradation (Wang et al. 2021, "Real-ESRGAN: Training
              Real-World Blind Super-Resolution with Pure Synthetic Data"): two rounds of blur,
              random resize, noise and JPEG, then a final resize with a sinc filter and JPEG.

Everything here is numpy + scipy + Pillow, run per example by the input pipeline's threads; each
example draws from its own `np.random.Generator`, so the LR is a pure function of that generator.
"""
import functools
import io

import ml_collections
import numpy as np
from PIL import Image

from gan_jax.errors import UserError

KINDS = ("bicubic", "realesrgan")
SCALES = (2, 4)
# Real-ESRGAN's six blur kernels, in the order of `kernel_prob` (its options' kernel_list).
KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")  # drawn uniformly, as Real-ESRGAN does
KERNEL_SIZES = tuple(range(7, 22, 2))  # odd sizes 7..21 (Real-ESRGAN's kernel_range)


# --- MATLAB's imresize -------------------------------------------------------------------------

def cubic(x, a=-0.5):
  """Keys' cubic convolution kernel; a = -0.5 is MATLAB's (and Pillow's), -0.75 PyTorch's."""
  x = np.abs(x)
  x2, x3 = x * x, x * x * x
  near = (a + 2) * x3 - (a + 3) * x2 + 1
  far = a * x3 - 5 * a * x2 + 8 * a * x - 4 * a
  return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _box(x):
  return ((x >= -0.5) & (x < 0.5)).astype(np.float64)


def _triangle(x):
  return np.maximum(1 - np.abs(x), 0.0)


# name -> (kernel, support width in input pixels at scale 1)
_KERNELS = {"cubic": (cubic, 4.0), "cubic_torch": (functools.partial(cubic, a=-0.75), 4.0),
            "box": (_box, 1.0), "triangle": (_triangle, 2.0)}


@functools.lru_cache(maxsize=1024)
def weights(in_size, out_size, scale, kernel="cubic", antialias=True):
  """The [out_size, in_size] float64 matrix of one axis's resize, as MATLAB's `contributions`:
  output pixel x (1-based) reads around u = x / scale + (1 - 1 / scale) / 2; when shrinking with
  antialias the kernel is stretched by 1 / scale; each row is normalised to sum 1; taps past the
  border mirror back in with the edge pixel repeated (MATLAB's symmetric padding)."""
  fn, width = _KERNELS[kernel]
  if scale < 1 and antialias:
    h, width = (lambda t: scale * fn(scale * t)), width / scale
  else:
    h = fn
  u = np.arange(1, out_size + 1) / scale + 0.5 * (1 - 1 / scale)
  left = np.floor(u - width / 2)
  taps = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]  # 1-based input indices
  w = h(u[:, None] - taps)
  w = w / w.sum(axis=1, keepdims=True)
  mirror = np.concatenate([np.arange(in_size), np.arange(in_size)[::-1]])
  cols = mirror[(taps.astype(np.int64) - 1) % (2 * in_size)]
  matrix = np.zeros((out_size, in_size))
  np.add.at(matrix, (np.repeat(np.arange(out_size), taps.shape[1]), cols.ravel()), w.ravel())
  matrix.setflags(write=False)  # shared by every caller through the cache
  return matrix


def _to_uint8(x):
  """MATLAB's cast of a double to uint8: round half away from zero, saturate."""
  return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def resize(x, out_hw, axes=(0, 1), scales=None, kernel="cubic", antialias=True):
  """Resizes the two spatial `axes` of `x` to `out_hw`: one matmul per axis, the more shrunk axis
  first (height first on a tie) as MATLAB orders them. `scales` default to out / in. uint8 is
  rounded back to uint8 after each axis, as MATLAB's imresizemex returns its input's class; float
  stays float (float32 stays float32)."""
  in_hw = tuple(x.shape[a] for a in axes)
  if scales is None:
    scales = tuple(o / i for o, i in zip(out_hw, in_hw))
  is_uint8 = x.dtype == np.uint8
  dtype = np.float32 if x.dtype == np.float32 else np.float64
  for k in sorted(range(2), key=lambda k: scales[k]):  # stable: height first on a tie
    if out_hw[k] == in_hw[k] and scales[k] == 1:
      continue  # the identity: every tap but the centre's is 0
    m = _sparse(in_hw[k], out_hw[k], float(scales[k]), kernel, antialias, np.dtype(dtype).name)
    x = _along(x.astype(dtype, copy=False), m, axes[k])
    if is_uint8:
      x = _to_uint8(x)
  return np.ascontiguousarray(x)


@functools.lru_cache(maxsize=1024)
def _sparse(in_size, out_size, scale, kernel, antialias, dtype):
  """`weights` as a CSR matrix: each row has only the kernel's few taps. scipy's sparse product is
  single-threaded C; it measured 2x faster than a 1-thread BLAS GEMM here and 30x faster than
  OpenBLAS's default threads on a loaded 2-core host (128 -> 32 over 16 RGB images: 0.9 ms)."""
  from scipy import sparse  # pylint: disable=g-import-not-at-top  (config imports this module)
  return sparse.csr_matrix(weights(in_size, out_size, scale, kernel, antialias).astype(dtype))


def _along(x, m, axis):
  """m [out, in] applied along `axis` of x as one product [out, in] @ [in, everything else], the
  axis brought to the front first (a copy; np.tensordot's own layout measured ~10x slower)."""
  front = np.ascontiguousarray(np.moveaxis(x, axis, 0))
  out = m @ front.reshape(len(front), -1)
  return np.moveaxis(out.reshape((m.shape[0],) + front.shape[1:]), 0, axis)


def imresize(image, scale):
  """MATLAB's `imresize(image, scale)` (bicubic, antialiased): HW or HWC, uint8 or float. The
  output is ceil(scale * size) on each side, as MATLAB computes it."""
  image = np.asarray(image)
  if image.ndim not in (2, 3):
    raise ValueError(f"imresize takes an HW or HWC image, got shape {image.shape}")
  out = tuple(int(np.ceil(scale * s)) for s in image.shape[:2])
  return resize(image, out, axes=(0, 1), scales=(scale, scale))


def imresize_batch(images, scale):
  """`imresize` of every image of a [B, H, W, C] batch at once."""
  out = tuple(int(np.ceil(scale * s)) for s in images.shape[1:3])
  return resize(images, out, axes=(1, 2), scales=(scale, scale))


# --- config ------------------------------------------------------------------------------------

def _stage(blur_prob, blur_sigma, resize_prob, resize_range, noise_range, poisson_scale_range):
  return ml_collections.ConfigDict(dict(
      blur_prob=blur_prob,
      kernel_prob=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03),  # over KERNELS
      sinc_prob=0.1,                # a 2D sinc (ringing) kernel instead of those six
      blur_sigma=blur_sigma,        # Gaussian widths (pixels), each axis drawn in this range
      betag_range=(0.5, 4.0),       # shape of the generalized Gaussian kernels
      betap_range=(1.0, 2.0),       # shape of the plateau kernels
      resize_prob=resize_prob,      # up, down, keep
      resize_range=resize_range,    # scale factors drawn in [lo, 1] down or [1, hi] up
      gaussian_noise_prob=0.5,      # else Poisson noise
      noise_range=noise_range,      # Gaussian noise std, in 0..255 levels
      poisson_scale_range=poisson_scale_range,
      gray_noise_prob=0.4,          # the same noise on every channel
      jpeg_range=(30, 95),          # JPEG quality
  ))


def default_config():
  """`config.data.degrade`. The realesrgan numbers are Real-ESRGAN's published training options
  (options/train_realesrnet_x4plus.yml of xinntao/Real-ESRGAN): first round blur always, sigma
  0.2..3, resize up/down/keep 0.2/0.7/0.1 over 0.15..1.5, noise std 1..30 or Poisson scale
  0.05..3; second round blur with probability 0.8, sigma 0.2..1.5, resize 0.3/0.4/0.3 over
  0.3..1.2, noise 1..25 or Poisson 0.05..2.5; gray noise 0.4, Gaussian noise 0.5, JPEG 30..95,
  kernel probabilities 0.45/0.25/0.12/0.03/0.12/0.03, sinc 0.1 and a final sinc 0.8."""
  return ml_collections.ConfigDict(dict(
      kind="bicubic",  # bicubic | realesrgan
      first=_stage(1.0, (0.2, 3.0), (0.2, 0.7, 0.1), (0.15, 1.5), (1.0, 30.0), (0.05, 3.0)),
      second=_stage(0.8, (0.2, 1.5), (0.3, 0.4, 0.3), (0.3, 1.2), (1.0, 25.0), (0.05, 2.5)),
      final_sinc_prob=0.8,
  ))


def _config_of(data_config):
  return data_config.get("degrade", None) or default_config()


def validate(config):
  """Raises UserError for the first impossible SR data setting (config.data.scale, .degrade)."""
  d = config.data
  scale = d.get("scale", 0)
  if not scale:
    return
  if scale not in SCALES:
    raise UserError(f"--config.data.scale={scale} is not supported: use 2 or 4 (0 = no "
                    "super-resolution).")
  if d.resolution % scale:
    raise UserError(f"--config.data.resolution={d.resolution} (the HR size) must be a multiple "
                    f"of data.scale={scale}: use e.g. {d.resolution // scale * scale or scale}.")
  c = _config_of(d)
  if c.kind not in KINDS:
    raise UserError(f"--config.data.degrade.kind={c.kind!r} is not supported: choose one of "
                    f"{', '.join(KINDS)}.")
  if c.kind == "realesrgan":
    _check_probability("final_sinc_prob", c.final_sinc_prob)
    for name in ("first", "second"):
      _validate_stage(name, c[name])


def _check_probability(key, p):
  if not 0.0 <= p <= 1.0:
    raise UserError(f"--config.data.degrade.{key}={p} must be a probability in [0, 1].")


def _check_range(key, r, low, high=np.inf):
  if len(r) != 2 or not low <= r[0] <= r[1] <= high:
    raise UserError(f"--config.data.degrade.{key}={tuple(r)} must be (lo, hi) with "
                    f"{low} <= lo <= hi{'' if high == np.inf else f' <= {high}'}.")


def _check_choice(key, probs, count):
  if len(probs) != count or min(probs) < 0 or sum(probs) <= 0:
    raise UserError(f"--config.data.degrade.{key}={tuple(probs)} must be {count} non-negative "
                    "weights with a positive sum.")


def _validate_stage(name, s):
  for key in ("blur_prob", "sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
    _check_probability(f"{name}.{key}", s[key])
  _check_choice(f"{name}.kernel_prob", s.kernel_prob, len(KERNELS))
  _check_choice(f"{name}.resize_prob", s.resize_prob, 3)
  _check_range(f"{name}.blur_sigma", s.blur_sigma, 1e-3)
  _check_range(f"{name}.betag_range", s.betag_range, 1e-3)
  _check_range(f"{name}.betap_range", s.betap_range, 1e-3)
  _check_range(f"{name}.noise_range", s.noise_range, 0.0)
  _check_range(f"{name}.poisson_scale_range", s.poisson_scale_range, 0.0)
  _check_range(f"{name}.jpeg_range", s.jpeg_range, 1, 100)
  if len(s.resize_range) != 2 or not 0 < s.resize_range[0] <= 1 <= s.resize_range[1]:
    raise UserError(f"--config.data.degrade.{name}.resize_range={tuple(s.resize_range)} must be "
                    "(lo, hi) with 0 < lo <= 1 <= hi: down-scales are drawn in [lo, 1], up in "
                    "[1, hi].")


# --- blur kernels (Real-ESRGAN section 3.1; kernel formulas as in the paper) -------------------

def _grid(size):
  r = np.arange(size) - (size - 1) / 2
  return np.stack(np.meshgrid(r, r), axis=-1)  # [size, size, 2]: (x, y) offsets from the centre


def _mahalanobis(size, sigma_x, sigma_y, theta):
  """x^T Sigma^-1 x on the kernel grid, Sigma = R diag(sx^2, sy^2) R^T rotated by theta."""
  c, s = np.cos(theta), np.sin(theta)
  rot = np.array([[c, -s], [s, c]])
  inv = rot @ np.diag([1 / sigma_x ** 2, 1 / sigma_y ** 2]) @ rot.T
  g = _grid(size)
  return np.einsum("...i,ij,...j->...", g, inv, g)


def shaped_kernel(size, kind, sigma_x, sigma_y=None, theta=0.0, beta=1.0):
  """A normalised blur kernel: gaussian exp(-d/2), generalized exp(-d^beta / 2) or plateau
  1 / (1 + d^beta), d the squared Mahalanobis distance (isotropic when sigma_y is None)."""
  d = _mahalanobis(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
  if kind == "gaussian":
    k = np.exp(-0.5 * d)
  elif kind == "generalized":
    k = np.exp(-0.5 * d ** beta)
  elif kind == "plateau":
    k = 1.0 / (1.0 + d ** beta)
  else:
    raise ValueError(f"unknown kernel kind {kind!r}")
  return k / k.sum()


def sinc_kernel(size, cutoff):
  """The circularly symmetric ideal low-pass filter of `cutoff` radians (pi = Nyquist) cut to
  size x size: cutoff * J1(cutoff r) / (2 pi r), its limit cutoff^2 / (4 pi) at r = 0."""
  from scipy import special  # pylint: disable=g-import-not-at-top  (config imports this module)
  r = np.hypot(*np.moveaxis(_grid(size), -1, 0))
  with np.errstate(divide="ignore", invalid="ignore"):
    k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
  k[r == 0] = cutoff ** 2 / (4 * np.pi)
  return k / k.sum()


def _shape(rng, lo, hi):
  """Real-ESRGAN's draw of a shape parameter beta: half the time below 1, half above."""
  return rng.uniform(lo, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, hi)


def random_kernel(rng, s):
  """One blur kernel of a stage `s`: a size in 7..21, a sinc with probability s.sinc_prob (cutoff
  in [pi/3, pi], [pi/5, pi] from size 13 as Real-ESRGAN keeps small kernels from cutting
  harder than they can express), else one of KERNELS."""
  size = int(rng.choice(KERNEL_SIZES))
  if rng.random() < s.sinc_prob:
    return sinc_kernel(size, rng.uniform(np.pi / 3 if size < 13 else np.pi / 5, np.pi))
  p = np.asarray(s.kernel_prob, np.float64)
  name = KERNELS[rng.choice(len(KERNELS), p=p / p.sum())]
  sigma_x = rng.uniform(*s.blur_sigma)
  sigma_y, theta = None, 0.0
  if name.endswith("aniso"):
    sigma_y, theta = rng.uniform(*s.blur_sigma), rng.uniform(-np.pi, np.pi)
  if name.startswith("generalized"):
    return shaped_kernel(size, "generalized", sigma_x, sigma_y, theta, _shape(rng, *s.betag_range))
  if name.startswith("plateau"):
    return shaped_kernel(size, "plateau", sigma_x, sigma_y, theta, _shape(rng, *s.betap_range))
  return shaped_kernel(size, "gaussian", sigma_x, sigma_y, theta)


# --- the stages, on one float32 HWC image in [0, 1] --------------------------------------------

def blur(x, kernel):
  """Convolution with reflected borders (edge pixel not repeated, as Real-ESRGAN's filter2D
  pads). Every kernel here is point-symmetric, so convolution and correlation agree."""
  from scipy import signal  # pylint: disable=g-import-not-at-top  (config imports this module)
  p = kernel.shape[0] // 2
  padded = np.pad(x, ((p, p), (p, p), (0, 0)), mode="reflect")
  return signal.fftconvolve(padded, kernel[:, :, None].astype(x.dtype), mode="valid",
                            axes=(0, 1)).astype(np.float32)


def resize_mode(x, out_hw, mode):
  """PyTorch's F.interpolate modes as Real-ESRGAN uses them: area averages (and repeats when
  enlarging), bilinear and bicubic (a = -0.75) sample without antialiasing."""
  kernel, antialias = {"area": ("box", True), "bilinear": ("triangle", False),
                       "bicubic": ("cubic_torch", False)}[mode]
  return resize(x, out_hw, kernel=kernel, antialias=antialias).astype(np.float32)


def gaussian_noise(x, rng, sigma, gray):
  """x + N(0, (sigma / 255)^2), the same draw on every channel when `gray`."""
  shape = x.shape[:2] + (1,) if gray else x.shape
  return x + (sigma / 255.0) * rng.standard_normal(shape, dtype=np.float32)


def poisson_noise(x, rng, scale, gray):
  """Shot noise as Real-ESRGAN (after scikit-image) draws it: the image quantised to 8 bits,
  photon counts = value * 2^ceil(log2(distinct levels)), noise = (Poisson(counts) / that - value)
  * scale; from the luma (ITU-R 601) on every channel when `gray`."""
  base = x
  if gray and x.shape[-1] == 3:
    base = x @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
  base = np.clip(np.round(base * 255.0), 0, 255) / 255.0
  vals = 2.0 ** np.ceil(np.log2(len(np.unique(base))))
  noise = rng.poisson(base * vals) / vals - base
  return x + (scale * noise).astype(np.float32)


def jpeg(x, quality):
  """A round trip through Pillow's JPEG at `quality` (1..100, rounded); gray stays gray."""
  pixels = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
  gray = pixels.shape[-1] == 1
  buffer = io.BytesIO()
  Image.fromarray(pixels[..., 0] if gray else pixels).save(buffer, "JPEG",
                                                           quality=int(round(quality)))
  buffer.seek(0)
  with Image.open(buffer) as decoded:
    out = np.asarray(decoded, np.float32) / 255.0
  return out.reshape(x.shape)


def _degrade_stage(x, rng, s, base_hw):
  """Blur, random resize (relative to base_hw), noise, JPEG: one round of Real-ESRGAN's chain."""
  if rng.random() < s.blur_prob:
    x = blur(x, random_kernel(rng, s))
  p = np.asarray(s.resize_prob, np.float64)
  direction = rng.choice(3, p=p / p.sum())  # up, down, keep
  factor = (rng.uniform(1.0, s.resize_range[1]) if direction == 0 else
            rng.uniform(s.resize_range[0], 1.0) if direction == 1 else 1.0)
  mode = RESIZE_MODES[rng.integers(len(RESIZE_MODES))]
  out = tuple(max(1, int(b * factor)) for b in base_hw)  # int(), as Real-ESRGAN sizes them
  if out != x.shape[:2]:
    x = resize_mode(x, out, mode)
  gray = rng.random() < s.gray_noise_prob
  if rng.random() < s.gaussian_noise_prob:
    x = gaussian_noise(x, rng, rng.uniform(*s.noise_range), gray)
  else:
    x = poisson_noise(x, rng, rng.uniform(*s.poisson_scale_range), gray)
  return jpeg(np.clip(x, 0.0, 1.0), rng.uniform(*s.jpeg_range))


def second_order(hr, rng, c, scale):
  """Real-ESRGAN's chain on one uint8 HWC image -> uint8 at 1/scale the size."""
  h, w = hr.shape[:2]
  lr_hw = (h // scale, w // scale)
  x = hr.astype(np.float32) / 255.0
  x = _degrade_stage(x, rng, c.first, (h, w))
  x = _degrade_stage(x, rng, c.second, lr_hw)  # resized about the LR size (Real-ESRGAN)
  # The final sinc (with probability final_sinc_prob) goes with the resize to the LR size; that
  # pair and a JPEG come in random order: both orders occur in real images (Real-ESRGAN 3.2).
  sinc = None
  if rng.random() < c.final_sinc_prob:
    sinc = sinc_kernel(int(rng.choice(KERNEL_SIZES)), rng.uniform(np.pi / 3, np.pi))
  mode = RESIZE_MODES[rng.integers(len(RESIZE_MODES))]
  quality = rng.uniform(*c.second.jpeg_range)
  jpeg_first = rng.random() < 0.5

  def to_lr(x):
    x = resize_mode(x, lr_hw, mode) if x.shape[:2] != lr_hw else x
    return blur(x, sinc) if sinc is not None else x

  x = to_lr(jpeg(x, quality)) if jpeg_first else jpeg(np.clip(to_lr(x), 0.0, 1.0), quality)
  return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


class Degrader:
  """HR uint8 [B, H, W, C] + one np.random.Generator per example -> LR uint8 [B, H/s, W/s, C].

  bicubic ignores the generators (it is deterministic); realesrgan draws every choice of an
  example from that example's generator only, so the same generators give the same LR bytes."""

  def __init__(self, degrade_config, scale):
    self.config, self.scale = degrade_config, int(scale)

  def __call__(self, hr, rngs):
    hr = np.asarray(hr)
    if hr.ndim != 4 or hr.dtype != np.uint8:
      raise ValueError(f"Degrader takes uint8 [B, H, W, C], got {hr.dtype} {hr.shape}")
    if len(rngs) != len(hr):
      raise ValueError(f"one generator per example: {len(rngs)} for {len(hr)} images")
    if self.config.kind == "bicubic":
      return imresize_batch(hr, 1.0 / self.scale)
    return np.stack([second_order(image, rng, self.config, self.scale)
                     for image, rng in zip(hr, rngs)])


def build(data_config):
  """The Degrader of `config.data` (None when data.scale is 0 or absent)."""
  scale = data_config.get("scale", 0)
  return Degrader(_config_of(data_config), scale) if scale else None
