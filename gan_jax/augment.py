"""Differentiable augmentations of every image D sees, reals and fakes (G's gradients flow back
through them).

- `diff_augment(images, key, policy)`: DiffAugment (Zhao et al. 2020, "Differentiable
  Augmentation for Data-Efficient GAN Training"): "color" (brightness + U(-0.5, 0.5), saturation
  around each pixel's channel mean x U(0, 2), contrast around the image mean x U(0.5, 1.5)),
  "translation" (an integer shift of up to 1/8 of the side, zero fill), "cutout" (a zeroed square
  of half the side centred anywhere in the frame, clipped by it, as the reference). Every image,
  always; no p. The single ops "brightness", "saturation", "contrast" may be named too.
- `ada(images, key, p)`: ADA's `bgc` pipeline (Karras et al. 2020, "Training Generative
  Adversarial Networks with Limited Data", Appendix B, and stylegan2-ada-pytorch's defaults):
  each transform applied per image with probability p (the two rotations with 1 - sqrt(1 - p),
  so that some rotation happens with probability p; a drawn xflip or luma flip then flips half
  the time and a drawn rotate90 turns by 0-3 quarters, as the reference). p is a traced scalar,
  or one probability per transform in `ADA_TRANSFORMS` order (the reference's per-transform
  multipliers). Geometric transforms compose into one 3x3 matrix per image and resample once
  (bilinear), colour transforms into one 4x4 matrix applied once.
- `update_p`: ADA's rule for p from the sign of D on reals.
- `Augment.from_config(cfg)`: what a game calls; the config fields:
    kind      "none" | "diffaugment" | "ada"
    policy    diffaugment: comma-separated ops ("color,translation,cutout");
              ada: a preset ("bgc" = ADA's default, also when empty; "bg", "blit", "geom",
              "color") or comma-separated transform names (`GEOMETRIC` + `COLOUR`)
    p         ada: the fixed p, or the initial one when adaptive (0)
    target    ada: the r_t target (0.6); 0 keeps p fixed
    ada_kimg  ada: images (in thousands) for p to go from 0 to 1 (500)
    interval  ada: steps between adjustments of p (4)
  p lives in the game's `extras` as an array (`Augment.init_extras`, `Augment.track`), so one
  compiled step serves every p and resume is exact.

Images are float NHWC in [-1, 1], any C for the geometric ops and DiffAugment (whose saturation
is exactly the identity for C = 1). ADA's colour matrix needs C = 3; with C = 1 the image is taken
as gray RGB (r = g = b): brightness, contrast and luma flip act on it as on RGB (the result's
channel mean, as the reference), hue and saturation are skipped (they are the identity on gray).
Other C with colour transforms is an error.

Differences from the ADA reference, on purpose: resampling is bilinear on the original grid (the
reference upsamples 2x with a wavelet filter, samples, and downsamples), and reflection is of the
sample coordinates, so it repeats for any distance (the reference pads by reflection once, up to
the image size, and fills zeros beyond). Contrast scales around 0, mid-gray of [-1, 1], as the
reference does (DiffAugment's contrast scales around the image mean).

Determinism across layouts: every random draw is made for the global batch and sliced to this
device's rows (`Devices.local`), so a step pmapped over N devices reproduces the jitted one. Each
pipeline makes one uniform draw (`diff_draws`; `ada_matrices`) in which every op owns fixed
columns, so enabling a subset of ops leaves the others' draws unchanged.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp

from gan_jax.games.common import Devices

DIFF_OPS = ("brightness", "saturation", "contrast", "translation", "cutout")
DIFF_PRESETS = {"color": ("brightness", "saturation", "contrast")}

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
ADA_TRANSFORMS = GEOMETRIC + COLOUR
ADA_PRESETS = {"bgc": ADA_TRANSFORMS, "bg": GEOMETRIC, "blit": ("xflip", "rotate90", "xint"),
               "geom": ("scale", "rotate", "aniso", "xfrac"), "color": COLOUR}
# The paper's strengths (Appendix B; stylegan2-ada-pytorch's AugmentPipe defaults).
ADA_STRENGTHS = dict(xint_max=0.125, scale_std=0.2, rotate_max=1.0, aniso_std=0.2,
                     xfrac_std=0.125, brightness_std=0.2, contrast_std=0.5, hue_max=1.0,
                     saturation_std=1.0)


def _names(spec, presets, known):
  """A policy (string, comma-separated, presets expanded, or a sequence) -> op names in order."""
  parts = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
  names = []
  for part in filter(None, parts):
    for name in presets.get(part, (part,)):
      if name not in known:
        raise ValueError(f"unknown augmentation {name!r}; choose from "
                         f"{', '.join(sorted(set(known) | set(presets)))}")
      names.append(name)
  return tuple(names)


def _per_image(v, ndim=4):
  return jnp.reshape(v, (-1,) + (1,) * (ndim - 1))


# --- DiffAugment ---------------------------------------------------------------------------------

def diff_augment(images, key, policy="color,translation,cutout", devices=None):
  """DiffAugment's ops in the order `policy` names them; an empty policy is the identity."""
  devices = devices or Devices()
  b, h, w, _ = images.shape
  u = devices.local(diff_draws(key, devices.global_size(b)))
  x = images
  for name in _names(policy, DIFF_PRESETS, DIFF_OPS):
    v = u[:, DIFF_OPS.index(name)]
    if name == "brightness":
      x = x + _per_image(v[:, 0] - 0.5).astype(x.dtype)
    elif name == "saturation":
      mean = _channel_mean(x)
      x = (x - mean) * _per_image(v[:, 0] * 2).astype(x.dtype) + mean
    elif name == "contrast":
      mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
      x = (x - mean) * _per_image(v[:, 0] + 0.5).astype(x.dtype) + mean
    elif name == "translation":
      sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)  # up to 1/8 of the side
      x = _translate_zero(x, _randint(v, [-sy, -sx], [sy + 1, sx + 1]))
    else:  # cutout: the square's centre anywhere in the frame (one more place for even sizes)
      sy, sx = cutout_size(h, w)
      x = _cutout(x, _randint(v, [0, 0], [h + 1 - sy % 2, w + 1 - sx % 2]), (sy, sx))
  return x


def _channel_mean(x):
  """Each pixel's mean over channels, as a sum of slices: 3-5x faster on XLA:CPU, with its
  gradient, than jnp.mean over a last axis of 3."""
  return sum(x[..., i:i + 1] for i in range(x.shape[-1])) / x.shape[-1]


def diff_draws(key, n):
  """All of DiffAugment's randomness for n images: U(0, 1) [n, op, 2], columns per op in
  `DIFF_OPS` order."""
  return _uniform(key, (n, len(DIFF_OPS), 2))


def _uniform(key, shape):
  """U(0, 1) of `shape`, drawn flat: XLA:CPU compiles threefry for a 1-D shape ~4x faster than
  for a 3-D one (0.4 s against 1.7 s here), and each call costs that again, so a pipeline makes
  one."""
  return jax.random.uniform(key, (math.prod(shape),)).reshape(shape)


def _randint(u, low, high):
  """Integers uniform in [low, high) (per column) from U(0, 1) draws u [n, 2]."""
  low, high = jnp.asarray(low), jnp.asarray(high)
  return jnp.minimum(low + jnp.floor(u * (high - low)).astype(jnp.int32), high - 1)


def cutout_size(h, w):
  """DiffAugment's cutout square: half the side, rounded up."""
  return (h + 1) // 2, (w + 1) // 2


def _translate_zero(x, shift):
  """out[i, j] = x[i - dy, j - dx], zero where that falls outside: one gather."""
  b, h, w, c = x.shape
  iy = jnp.arange(h)[None, :, None] - shift[:, 0, None, None]
  ix = jnp.arange(w)[None, None, :] - shift[:, 1, None, None]
  inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
  idx = (jnp.arange(b)[:, None, None] * h + jnp.clip(iy, 0, h - 1)) * w + jnp.clip(ix, 0, w - 1)
  v = x.reshape(b * h * w, c).at[idx.reshape(-1)].get(mode="promise_in_bounds")
  return jnp.where(inside[..., None], v.reshape(x.shape), jnp.zeros((), x.dtype))


def _cutout(x, centre, size):
  """Zero the size[0] x size[1] square with top-left centre - size // 2, clipped by the frame."""
  _, h, w, _ = x.shape
  top = centre[:, 0, None, None] - size[0] // 2
  left = centre[:, 1, None, None] - size[1] // 2
  iy, ix = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
  inside = (iy >= top) & (iy < top + size[0]) & (ix >= left) & (ix < left + size[1])
  return jnp.where(inside[..., None], jnp.zeros((), x.dtype), x)


# --- ADA -----------------------------------------------------------------------------------------

def _matrix(rows):
  """Nested lists of [n] arrays (or numbers) -> [n, r, c]."""
  n = next(jnp.shape(v)[0] for row in rows for v in row if jnp.ndim(v))
  return jnp.stack([jnp.stack([jnp.broadcast_to(jnp.asarray(v, jnp.float32), (n,)) for v in row],
                              -1) for row in rows], -2)


def _mm(a, b):
  """Batched matrix product as multiply-and-sum: exact float32 on every backend (matmul may run
  in reduced precision on TPU/GPU), and these are 3x3 and 4x4."""
  return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def ada_matrices(key, n, p, shape, transforms=ADA_TRANSFORMS, strengths=None):
  """Per-image (g_inv [n, 3, 3], colour [n, 4, 4]) for a batch of n images of `shape` (H, W);
  p as for `ada`.

  g_inv maps output pixel coordinates (centred on the image) to input ones; transforms not drawn
  are exactly the identity (parameters replaced with `where`, and 90-degree rotations built from
  integers, not from cos(pi/2)).
  """
  s = dict(ADA_STRENGTHS, **(strengths or {}))
  h, w = shape
  # one probability per transform; the rotations' makes "some rotation" as likely as the others
  p = jnp.broadcast_to(jnp.asarray(p, jnp.float32), (len(ADA_TRANSFORMS),))
  p = dict(zip(ADA_TRANSFORMS, p))
  p["rotate"] = 1 - jnp.sqrt(jnp.clip(1 - p["rotate"], 0, 1))

  unknown = set(transforms) - set(ADA_TRANSFORMS)
  if unknown:
    raise ValueError(f"unknown ADA transforms {sorted(unknown)}")

  # One draw for the whole pipeline (`_uniform`); each step owns fixed columns, so enabling a
  # subset leaves the others' draws unchanged.
  steps = GEOMETRIC[:4] + (("rotate", 0), "aniso", ("rotate", 1), "xfrac") + COLOUR
  uniforms = _uniform(key, (n, len(steps), 5))
  # N(0, 1) from U(0, 1) as jax.random.normal does (the open interval keeps erfinv finite)
  normals = math.sqrt(2) * jax.scipy.special.erfinv(
      jnp.maximum(uniforms[..., 3:] * 2 - 1, jnp.nextafter(-1.0, 0.0)))
  g = jnp.broadcast_to(jnp.eye(3), (n, 3, 3))
  colour = jnp.broadcast_to(jnp.eye(4), (n, 4, 4))
  for j, step in enumerate(steps):
    name = step[0] if isinstance(step, tuple) else step
    if name not in transforms:
      continue
    on = uniforms[:, j, 0] < p[name]
    u, u2, z, z2 = uniforms[:, j, 1], uniforms[:, j, 1:3], normals[:, j, 0], normals[:, j]
    if name == "xflip":
      f = jnp.where(on, 1 - 2 * jnp.floor(u * 2), 1.0)
      g = _mm(g, _matrix([[f, 0, 0], [0, 1, 0], [0, 0, 1]]))
    elif name == "rotate90":
      i = jnp.where(on, jnp.floor(u * 4).astype(jnp.int32), 0)
      c, sn = jnp.array([1., 0., -1., 0.])[i], jnp.array([0., 1., 0., -1.])[i]
      g = _mm(g, _matrix([[c, sn, 0], [-sn, c, 0], [0, 0, 1]]))
    elif name == "xint":
      t = jnp.where(on[:, None], (u2 * 2 - 1) * s["xint_max"], 0.0)
      g = _mm(g, _matrix([[1, 0, -jnp.round(t[:, 0] * w)], [0, 1, -jnp.round(t[:, 1] * h)],
                          [0, 0, 1]]))
    elif name == "scale":
      z = jnp.where(on, jnp.exp2(-z * s["scale_std"]), 1.0)
      g = _mm(g, _matrix([[z, 0, 0], [0, z, 0], [0, 0, 1]]))
    elif name == "rotate":
      theta = jnp.where(on, (u * 2 - 1) * math.pi * s["rotate_max"], 0.0)
      c, sn = jnp.cos(theta), jnp.sin(theta)
      g = _mm(g, _matrix([[c, sn, 0], [-sn, c, 0], [0, 0, 1]]))
    elif name == "aniso":
      z = jnp.where(on, jnp.exp2(-z * s["aniso_std"]), 1.0)
      g = _mm(g, _matrix([[z, 0, 0], [0, 1 / z, 0], [0, 0, 1]]))
    elif name == "xfrac":
      t = jnp.where(on[:, None], z2 * s["xfrac_std"], 0.0)
      g = _mm(g, _matrix([[1, 0, -t[:, 0] * w], [0, 1, -t[:, 1] * h], [0, 0, 1]]))
    elif name == "brightness":
      b = jnp.where(on, z * s["brightness_std"], 0.0)
      colour = _mm(_matrix([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]]), colour)
    elif name == "contrast":
      c = jnp.where(on, jnp.exp2(z * s["contrast_std"]), 1.0)
      colour = _mm(_matrix([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]]), colour)
    elif name == "lumaflip":
      i = jnp.where(on, jnp.floor(u * 2), 0.0)
      colour = _mm(_eye4(n) - 2 * _luma_outer(n) * i[:, None, None], colour)
    elif name == "hue":
      theta = jnp.where(on, (u * 2 - 1) * math.pi * s["hue_max"], 0.0)
      colour = _mm(_hue_rotation(theta), colour)
    else:  # saturation
      z = jnp.where(on, jnp.exp2(z * s["saturation_std"]), 1.0)
      vv = _luma_outer(n)
      colour = _mm(vv + (_eye4(n) - vv) * z[:, None, None], colour)
  return g, colour


def _eye4(n):
  return jnp.broadcast_to(jnp.eye(4), (n, 4, 4))


def _luma_outer(n):
  """v v^T for the luma axis v = (1, 1, 1, 0) / sqrt(3)."""
  return jnp.broadcast_to(jnp.pad(jnp.full((3, 3), 1 / 3), ((0, 1), (0, 1))), (n, 4, 4))


def _hue_rotation(theta):
  """Rotation by theta about the luma axis (Rodrigues' formula), as a 4x4 colour matrix."""
  c, sn = jnp.cos(theta)[:, None, None], jnp.sin(theta)[:, None, None]
  a = 1 / math.sqrt(3)
  cross = jnp.array([[0, -a, a], [a, 0, -a], [-a, a, 0]])  # [v]_x
  r = c * jnp.eye(3) + sn * cross + (1 - c) * jnp.full((3, 3), 1 / 3)
  return jnp.pad(r, ((0, 0), (0, 1), (0, 1))) + jnp.pad(jnp.ones((1, 1)), ((3, 0), (3, 0)))


def _fold(u, n):
  """Continuous reflection of coordinates u into [0, n - 1] about the edge pixels' centres:
  bilinear interpolation of the reflect-padded image at u equals it at _fold(u)."""
  if n == 1:
    return jnp.zeros_like(u)
  m = jnp.mod(u, 2 * (n - 1))
  return jnp.where(m > n - 1, 2 * (n - 1) - m, m)


def _corners(u, n):
  """(lower index in [0, n - 2], weight of the upper one) of folded coordinates u."""
  if n == 1:
    return jnp.zeros(u.shape, jnp.int32), jnp.zeros_like(u)
  lo = jnp.minimum(jnp.floor(u), n - 2)
  return lo.astype(jnp.int32), u - lo


def resample(images, g_inv):
  """Bilinear resampling of images [B, H, W, C] at g_inv @ (output pixel coordinates), with
  reflection: four gathers, one per neighbour. Their gradient, four scatter-adds, is most of the
  cost on XLA:CPU; one gather of all four neighbours times the same, gathering the image and its
  shifted copies stacked as channels is slower, interpolation matmuls 10-40x slower
  (benchmarks/augment_speed.py). Integer coordinates give exact copies."""
  b, h, w, c = images.shape
  cy, cx = (h - 1) / 2, (w - 1) / 2
  yc = (jnp.arange(h, dtype=jnp.float32) - cy)[None, :, None]
  xc = (jnp.arange(w, dtype=jnp.float32) - cx)[None, None, :]
  g = g_inv[:, :, :, None, None]
  sx = g[:, 0, 0] * xc + g[:, 0, 1] * yc + g[:, 0, 2] + cx
  sy = g[:, 1, 0] * xc + g[:, 1, 1] * yc + g[:, 1, 2] + cy
  x0, fx = _corners(_fold(sx, w), w)
  y0, fy = _corners(_fold(sy, h), h)
  flat = images.reshape(b * h * w, c)
  i00 = (jnp.arange(b)[:, None, None] * h + y0) * w + x0
  dx, dy = int(w > 1), int(h > 1) * w

  def at(offset):
    return flat.at[(i00 + offset).reshape(-1)].get(mode="promise_in_bounds").reshape(b, h, w, c)

  fx, fy = fx[..., None].astype(images.dtype), fy[..., None].astype(images.dtype)
  top = at(0) * (1 - fx) + at(dx) * fx
  bottom = at(dy) * (1 - fx) + at(dy + dx) * fx
  return top * (1 - fy) + bottom * fy


def apply_colour(images, colour):
  """The 4x4 colour matrix per image on RGB images; on C = 1 the gray image r = g = b, returning
  the channel mean (hue and saturation are skipped by `ada` for C = 1)."""
  c = images.shape[-1]
  m = colour[:, None, None].astype(images.dtype)
  if c == 3:  # written out: 10x faster on XLA:CPU than a broadcast-and-sum or an einsum
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    return jnp.stack([r * m[..., i, 0] + g * m[..., i, 1] + b * m[..., i, 2] + m[..., i, 3]
                      for i in range(3)], axis=-1)
  if c == 1:
    return images * jnp.mean(jnp.sum(m[..., :3, :3], -1), -1, keepdims=True) + jnp.mean(
        m[..., :3, 3], -1, keepdims=True)
  raise ValueError(f"ADA's colour transforms need 1 or 3 channels, not {c}")


def ada(images, key, p, transforms=ADA_TRANSFORMS, strengths=None, devices=None):
  """ADA's pipeline on images [B, H, W, C] with probability p (a traced scalar is fine).

  `transforms`: which transforms are compiled in: a preset name, comma-separated names or a
  sequence (applied in ADA's order whatever order is given). p may also be an array of one
  probability per transform in `ADA_TRANSFORMS` order (the reference's per-transform multipliers
  of p), which picks subsets without recompiling. Images whose drawn transforms are all the
  identity come back bitwise unchanged (p = 0: the input).
  """
  devices = devices or Devices()
  names = set(_names(transforms, ADA_PRESETS, ADA_TRANSFORMS))
  c = images.shape[-1]
  if c == 1:
    names -= {"hue", "saturation"}
  elif c != 3 and names & set(COLOUR):
    raise ValueError(f"ADA's colour transforms need 1 or 3 channels, not {c}")
  ordered = tuple(t for t in ADA_TRANSFORMS if t in names)
  n = devices.global_size(images.shape[0])
  g, colour = ada_matrices(key, n, p, images.shape[1:3], ordered, strengths)
  g, colour = devices.local(g), devices.local(colour)
  x = images
  if names & set(GEOMETRIC):
    same = jnp.all(g == jnp.eye(3), axis=(1, 2))
    x = jnp.where(_per_image(same), x, resample(x, g).astype(x.dtype))
  if names & set(COLOUR):
    same = jnp.all(colour == jnp.eye(4), axis=(1, 2))
    x = jnp.where(_per_image(same), x, apply_colour(x, colour).astype(x.dtype))
  return x


def update_p(p, sign_real_mean, num_images, target=0.6, ada_kimg=500):
  """ADA's adjustment: p += sign(r_t - target) * num_images / (ada_kimg * 1000), into [0, 1];
  r_t = E[sign(D(real))] over the images seen since the last adjustment."""
  step = jnp.sign(jnp.asarray(sign_real_mean, jnp.float32) - target)
  return jnp.clip(p + step * jnp.asarray(num_images, jnp.float32) / (ada_kimg * 1000), 0.0, 1.0)


# --- What a game calls ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Augment:
  """Augmentation from config (fields in the module docstring). `__call__` is pure and jit-able;
  p is an argument (from the state's extras), never baked in."""
  kind: str = "none"
  policy: str = ""
  p: float = 0.0
  target: float = 0.6
  ada_kimg: float = 500
  interval: int = 4

  KINDS = ("none", "diffaugment", "ada")

  @classmethod
  def from_config(cls, cfg):
    cfg = dict(cfg or {})
    unknown = set(cfg) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise ValueError(f"unknown augment config keys: {', '.join(sorted(unknown))}")
    aug = cls(**cfg)
    if aug.kind not in cls.KINDS:
      raise ValueError(f"augment.kind must be one of {', '.join(cls.KINDS)}, not {aug.kind!r}")
    if aug.kind == "diffaugment":
      _names(aug.policy, DIFF_PRESETS, DIFF_OPS)
    elif aug.kind == "ada":
      _names(aug.policy or "bgc", ADA_PRESETS, ADA_TRANSFORMS)
      if not 0 <= aug.p <= 1 or aug.interval < 1 or aug.ada_kimg <= 0:
        raise ValueError("augment needs 0 <= p <= 1, interval >= 1 and ada_kimg > 0")
    return aug

  @property
  def adaptive(self):
    return self.kind == "ada" and self.target > 0

  def __call__(self, images, key, p, devices=None):
    if self.kind == "diffaugment":
      return diff_augment(images, key, self.policy, devices)
    if self.kind == "ada":
      return ada(images, key, p, self.policy or "bgc", devices=devices)
    return images

  def init_extras(self):
    """The running values a game keeps in `GANState.extras`: p, and the sum and count of
    sign(D(real)) since p's last adjustment."""
    return {"augment_p": jnp.asarray(self.p, jnp.float32),
            "augment_signs": jnp.zeros((), jnp.float32),
            "augment_seen": jnp.zeros((), jnp.float32)}

  def track(self, extras, real_logits, step, devices=None):
    """extras after one D step on reals with logits `real_logits` (this device's rows) at `step`:
    accumulates sign(D(real)) over the devices, and every `interval` steps moves p and resets."""
    if not self.adaptive:
      return extras
    devices = devices or Devices()
    n = devices.count()
    signs = extras["augment_signs"] + devices.mean(jnp.sum(jnp.sign(real_logits))) * n
    seen = extras["augment_seen"] + real_logits.shape[0] * n
    due = (step + 1) % self.interval == 0
    p = jnp.where(due, update_p(extras["augment_p"], signs / jnp.maximum(seen, 1), seen,
                                self.target, self.ada_kimg), extras["augment_p"])
    zero = jnp.zeros((), jnp.float32)
    return {**extras, "augment_p": p, "augment_signs": jnp.where(due, zero, signs),
            "augment_seen": jnp.where(due, zero, seen)}
