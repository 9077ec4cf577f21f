"""What a marked image meets after it leaves the library, twice: differentiable stand-ins that the
watermark trains through (`noisy`), and the real operations its robustness is measured on
(`ATTACKS`: pillow's JPEG, resize, crop and blur, on uint8 pictures)."""
import io

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageFilter

from gan_jax.models.watermark import resize

# JPEG's luminance quantization table (ITU-T T.81, Annex K), scaled by quality as libjpeg does.
JPEG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)


def _dct_matrix(n=8):
  k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
  c[0] /= np.sqrt(2)
  return jnp.asarray(c, jnp.float32)


def _round(x):
  """Rounding whose gradient is the identity's (straight-through), so training sees through it."""
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def jpeg_like(x, quality):
  """x [B, H, W, C] in [-1, 1] (H, W multiples of 8) through 8x8 DCTs quantized with the
  luminance table at `quality` [B] (each channel as luma; the mark lives in luma)."""
  b, h, w, c = x.shape
  scale = jnp.where(quality < 50, 5000 / quality, 200 - 2 * quality) / 100
  table = jnp.maximum(jnp.floor(JPEG_LUMA * scale[:, None, None] + 0.5), 1.0)
  table = table[:, None, :, None, :, None]  # [B, 1, 8, 1, 8, 1]
  d = _dct_matrix()
  blocks = (x * 127.5).reshape(b, h // 8, 8, w // 8, 8, c)
  coef = jnp.einsum("ui,bxiyjc,vj->bxuyvc", d, blocks, d)
  coef = _round(coef / table) * table
  back = jnp.einsum("ui,bxuyvc,vj->bxiyjc", d, coef, d)
  return back.reshape(b, h, w, c) / 127.5


def _gaussian_blur(x, sigma):
  """x [B, H, W, C] blurred by a 5x5 Gaussian of `sigma` [B] (edges reflected)."""
  t = jnp.arange(-2, 3, dtype=jnp.float32)
  k = jnp.exp(-t[None] ** 2 / (2 * sigma[:, None] ** 2))
  k = k / jnp.sum(k, axis=1, keepdims=True)  # [B, 5]
  padded = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  h, w = x.shape[1:3]
  rows = sum(k[:, i, None, None, None] * padded[:, i:i + h] for i in range(5))
  return sum(k[:, i, None, None, None] * rows[:, :, i:i + w] for i in range(5))


def _crop(x, key, keep, rows):
  """A random `keep` x `keep` share of each image, brought back to the image's size."""
  _, h, w, _ = x.shape
  ch, cw = int(round(h * keep)), int(round(w * keep))
  top = rows(lambda n: jax.random.randint(key, (n,), 0, h - ch + 1))
  left = rows(lambda n: jax.random.randint(jax.random.fold_in(key, 1), (n,), 0, w - cw + 1))
  crop = jax.vmap(lambda im, t, l: jax.lax.dynamic_slice(im, (t, l, 0), (ch, cw, im.shape[-1])))
  return resize(crop(x, top, left), h, w)


def noisy(x, key, p=0.5, devices=None):
  """x [B, H, W, C] in [-1, 1] after a random mix of attacks, each applied to each image with
  probability `p`, in the order they meet a picture: crop to 80%, downscale to 50-75% and back,
  blur (sigma 0.5-1.5), JPEG (quality 40-95), noise (sigma up to 0.05), brightness and contrast;
  then 8-bit rounding, as a saved file. Differentiable in x (straight-through roundings).
  devices (`games.common.Devices`, under pmap): draws are made for the global batch and each
  device takes its rows, so the step's result does not depend on how the batch is split."""
  b, h, w, _ = x.shape
  if devices is None:
    rows = lambda draw: draw(b)
  else:
    rows = lambda draw: devices.local(draw(devices.global_size(b)))
  keys = iter(jax.random.split(key, 16))
  u = lambda lo=0.0, hi=1.0: rows(
      lambda n, k=next(keys): jax.random.uniform(k, (n,), minval=lo, maxval=hi))
  pick = lambda y: jnp.where((u() < p)[:, None, None, None], y, x)
  x = pick(_crop(x, next(keys), 0.8, rows))
  x = pick(jnp.where((u() < 0.5)[:, None, None, None],
                     resize(resize(x, h // 2, w // 2), h, w),
                     resize(resize(x, 3 * h // 4, 3 * w // 4), h, w)))
  x = pick(_gaussian_blur(x, u(0.5, 1.5)))
  if h % 8 == 0 and w % 8 == 0:
    x = pick(jpeg_like(x, u(40.0, 95.0)))
  noise = rows(lambda n, k=next(keys): jax.random.normal(k, (n,) + x.shape[1:]))
  x = pick(x + u(0.0, 0.05)[:, None, None, None] * noise)
  x = pick(x * u(0.8, 1.2)[:, None, None, None] + u(-0.1, 0.1)[:, None, None, None])
  return _round(jnp.clip(x, -1.0, 1.0) * 127.5) / 127.5


# --- the real operations, on uint8 pictures [H, W, C] ------------------------------------------

def _pil(picture):
  return Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)


def _array(image, channels):
  a = np.asarray(image, np.uint8)
  return a.reshape(a.shape[:2] + (channels,))


def jpeg(picture, quality):
  out = io.BytesIO()
  _pil(picture).save(out, "jpeg", quality=quality)
  return _array(Image.open(out), picture.shape[-1])


def rescale(picture, factor):
  h, w = picture.shape[:2]
  size = (max(1, round(w * factor)), max(1, round(h * factor)))
  return _array(_pil(picture).resize(size, Image.BICUBIC), picture.shape[-1])


def centre_crop(picture, keep):
  h, w = picture.shape[:2]
  ch, cw = round(h * keep), round(w * keep)
  top, left = (h - ch) // 2, (w - cw) // 2
  return picture[top:top + ch, left:left + cw]


def blur(picture, sigma):
  return _array(_pil(picture).filter(ImageFilter.GaussianBlur(sigma)), picture.shape[-1])


def gaussian_noise(picture, sigma, seed=0):
  """sigma in units of the full range (0.02: 2% of 255)."""
  noise = np.random.default_rng(seed).normal(0, sigma * 255, picture.shape)
  return np.clip(np.round(picture + noise), 0, 255).astype(np.uint8)


def random_chain(picture, rng):
  """What a shared picture may meet, drawn by `rng` (a numpy Generator), in that order: a
  downscale to 40-100% (half the time), blur of sigma 0.3-1.5 (30%), JPEG at quality 40-95
  (70%), noise up to sigma 0.03 (30%)."""
  if rng.random() < 0.5:
    picture = rescale(picture, rng.uniform(0.4, 1.0))
  if rng.random() < 0.3:
    picture = blur(picture, rng.uniform(0.3, 1.5))
  if rng.random() < 0.7:
    picture = jpeg(picture, int(rng.integers(40, 96)))
  if rng.random() < 0.3:
    picture = gaussian_noise(picture, rng.uniform(0.0, 0.03), seed=int(rng.integers(2 ** 31)))
  return picture


def combined(picture):
  """All of them, one after another."""
  for attack in (lambda p: centre_crop(p, 0.8), lambda p: rescale(p, 0.5),
                 lambda p: blur(p, 1.0), lambda p: jpeg(p, 75),
                 lambda p: gaussian_noise(p, 0.02)):
    picture = attack(picture)
  return picture


ATTACKS = {
    "none": lambda p: p,
    "jpeg90": lambda p: jpeg(p, 90),
    "jpeg75": lambda p: jpeg(p, 75),
    "jpeg50": lambda p: jpeg(p, 50),
    "resize0.5": lambda p: rescale(p, 0.5),
    "crop0.8": lambda p: centre_crop(p, 0.8),
    "blur1": lambda p: blur(p, 1.0),
    "noise0.02": lambda p: gaussian_noise(p, 0.02),
    "jpeg75+resize0.5": lambda p: jpeg(rescale(p, 0.5), 75),
    "all": combined,
}
