"""gan_jax.augment: DiffAugment's ops against their formulas, ADA's transforms one at a time
against exact numpy references, p = 0 bitwise, gradients, ADA's p rule, one compile for every p,
pmap == jit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import augment
from gan_jax.games.common import Devices

KEY = jax.random.key(3)
# Compiled once per transform subset and shape; `only(...)` picks transforms through p instead,
# so one compiled pipeline serves every single-transform test.
ada = jax.jit(augment.ada, static_argnames=("transforms",))
diff_augment = jax.jit(augment.diff_augment, static_argnames=("policy",))
N = len(augment.ADA_TRANSFORMS)
DIFF = "color,translation,cutout"


def only(*names):
  """p = 1 for `names`, 0 for every other transform."""
  assert set(names) <= set(augment.ADA_TRANSFORMS)
  return jnp.asarray([float(t in names) for t in augment.ADA_TRANSFORMS])


def images(b=8, h=16, w=16, c=3, low=-1.0, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(low, 1, (b, h, w, c)), jnp.float32)


def per_image_constant(v):
  """The one value each image of v [B, ...] holds, asserting there is one."""
  v = np.asarray(v).reshape(len(v), -1)
  np.testing.assert_allclose(v, v[:, :1] * np.ones_like(v), atol=2e-6)
  return v[:, 0]


# --- identities ----------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [1, 3])
def test_ada_at_p0_returns_the_input_bitwise(c):
  x = images(c=c)
  assert np.array_equal(ada(x, KEY, 0.0, transforms="bgc"), x)  # jitted, p traced
  assert not np.array_equal(ada(x, KEY, 1.0, transforms="bgc"), x)  # it does something at p = 1


def test_diffaugment_empty_policy_is_the_identity():
  x = images()
  assert np.array_equal(diff_augment(x, KEY, policy=""), x)
  assert not np.array_equal(diff_augment(x, KEY, policy="translation"), x)


def test_a_compiled_subset_equals_picking_it_through_p():
  x = images()
  blit = only("xflip", "rotate90", "xint")
  assert np.array_equal(ada(x, KEY, 1.0, transforms="blit"), ada(x, KEY, blit))


# --- ADA, one transform at a time at p = 1 -------------------------------------------------------

def test_xflip_is_np_flip_exactly():
  x = images()
  y, xn = np.asarray(ada(x, KEY, only("xflip"))), np.asarray(x)
  flipped = [np.array_equal(y[i], xn[i, :, ::-1]) for i in range(8)]
  kept = [np.array_equal(y[i], xn[i]) for i in range(8)]
  assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_rotate90_is_one_of_np_rot90s_exactly():
  x = np.asarray(images())
  y = np.asarray(ada(jnp.asarray(x), KEY, only("rotate90")))
  turns = [[k for k in range(4) if np.array_equal(y[i], np.rot90(x[i], k))] for i in range(8)]
  assert all(len(t) == 1 for t in turns), turns
  assert len({t[0] for t in turns}) >= 3


@pytest.mark.parametrize("h,w", [(16, 16), (12, 20)])
def test_integer_translation_is_a_reflect_padded_shift_exactly(h, w):
  # Resampling at integer positions: exact copies.
  x = np.asarray(images(h=h, w=w))
  y = np.asarray(ada(jnp.asarray(x), KEY, only("xint")))
  my, mx = round(0.125 * h), round(0.125 * w)
  padded = np.pad(x, ((0, 0), (my, my), (mx, mx), (0, 0)), mode="reflect")
  shifts = []
  for i in range(len(x)):
    # content moved by (dy, dx): out[r, c] = x[reflect(r - dy), reflect(c - dx)]
    found = [(dy, dx) for dy in range(-my, my + 1) for dx in range(-mx, mx + 1)
             if np.array_equal(y[i], padded[i, my - dy:my - dy + h, mx - dx:mx - dx + w])]
    assert len(found) == 1, (i, found)
    shifts.append(found[0])
  assert sum(s != (0, 0) for s in shifts) >= 5


@pytest.mark.parametrize("names", [(t,) for t in augment.GEOMETRIC] + [augment.GEOMETRIC],
                         ids=list(augment.GEOMETRIC) + ["all"])
def test_geometric_transforms_keep_a_constant_image_constant(names):
  # Scaling down, rotating and fractional shifts sample outside the frame: reflection keeps the
  # content there (zero fill would darken the borders).
  x = jnp.full((8, 16, 16, 3), 0.3, jnp.float32)
  np.testing.assert_allclose(ada(x, KEY, only(*names)), 0.3, atol=1e-6)
  changed = np.any(np.asarray(ada(images(), KEY, only(*names))) != np.asarray(images()),
                   axis=(1, 2, 3))
  assert changed.sum() >= 3  # while moving content


def test_brightness_adds_one_constant_per_image():
  x = images()
  b = per_image_constant(ada(x, KEY, only("brightness")) - x)
  assert np.all(b != 0) and np.all(np.abs(b) < 5 * 0.2)


def test_contrast_scales_around_mid_gray():
  # ADA's contrast scales around 0, mid-gray of [-1, 1] (the reference's scale3d); DiffAugment's
  # scales around the image mean.
  x = images(low=0.1)
  c = per_image_constant(ada(x, KEY, only("contrast")) / x)
  assert np.all(c > 0) and np.all(c != 1)


def gray_rgb():
  return jnp.repeat(images(c=1), 3, axis=-1)


def chroma(x):
  return x - jnp.mean(x, -1, keepdims=True)


@pytest.mark.parametrize("t", ["hue", "saturation"])
def test_hue_and_saturation_keep_gray_gray_and_luma_unchanged(t):
  g = gray_rgb()
  np.testing.assert_allclose(ada(g, KEY, only(t)), g, atol=2e-6)
  x = images()
  y = ada(x, KEY, only(t))
  np.testing.assert_allclose(jnp.mean(y, -1), jnp.mean(x, -1), atol=2e-6)
  assert np.all(np.max(np.abs(np.asarray(y - x)), axis=(1, 2, 3)) > 1e-3)
  cx, cy = chroma(x), chroma(y)
  if t == "hue":  # a rotation about the gray axis: each pixel's chroma keeps its length
    np.testing.assert_allclose(jnp.linalg.norm(cy, axis=-1), jnp.linalg.norm(cx, axis=-1),
                               atol=1e-5)
  else:  # chroma scaled by one factor per image
    s = np.sum(np.asarray(cy * cx), axis=(1, 2, 3)) / np.sum(np.asarray(cx * cx), axis=(1, 2, 3))
    np.testing.assert_allclose(cy, s[:, None, None, None] * cx, atol=1e-5)
    assert np.all(s > 0)


def test_each_transform_is_drawn_with_probability_p():
  # The rotation too: it is drawn twice with 1 - sqrt(1 - p), so some rotation happens with p.
  x = images(512, 4, 4)
  for t in ["xflip", "brightness", "rotate"]:
    changed = np.any(np.asarray(ada(x, KEY, 0.5 * only(t))) != np.asarray(x), axis=(1, 2, 3))
    expected = 0.25 if t == "xflip" else 0.5  # xflip: drawn with p, then a flip half the time
    assert abs(changed.mean() - expected) < 0.08, (t, changed.mean())


def test_luma_flip_negates_luma_and_keeps_chroma():
  x = images()
  y = ada(x, KEY, only("lumaflip"))
  luma_x, luma_y = jnp.mean(x, -1, keepdims=True), jnp.mean(y, -1, keepdims=True)
  np.testing.assert_allclose(y - luma_y, x - luma_x, atol=2e-6)
  sign = np.sign(np.sum(np.asarray(luma_y * luma_x), axis=(1, 2, 3)))
  np.testing.assert_allclose(luma_y, sign[:, None, None, None] * luma_x, atol=2e-6)
  assert np.any(sign < 0) and np.any(sign > 0)
  g = gray_rgb()
  gy = np.asarray(ada(g, KEY, only("lumaflip")))
  for i in range(8):  # gray stays gray, negated or not
    assert (np.allclose(gy[i], g[i], atol=2e-6) or np.allclose(gy[i], -g[i], atol=2e-6))


def test_one_channel_is_gray_rgb():
  x = images(c=1)
  assert np.array_equal(ada(x, KEY, 1.0, transforms="hue,saturation"), x)  # skipped on gray
  y1 = ada(x, KEY, 1.0, transforms="bgc")
  y3 = ada(jnp.repeat(x, 3, -1), KEY, 1.0, transforms="bgc")
  np.testing.assert_allclose(y1[..., 0], jnp.mean(y3, -1), atol=1e-5)


def test_colour_transforms_need_one_or_three_channels():
  x = images(c=4)
  assert ada(x, KEY, 1.0, transforms="bg").shape == x.shape
  with pytest.raises(ValueError, match="1 or 3 channels"):
    ada(x, KEY, 1.0)
  with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
    ada(images(), KEY, 1.0, transforms="xint,flip")


# --- DiffAugment ---------------------------------------------------------------------------------

def draws(name, n=8):
  """This op's U(0, 1) columns [n, 2], as documented: one draw, columns in DIFF_OPS order."""
  return np.asarray(augment.diff_draws(KEY, n))[:, augment.DIFF_OPS.index(name)]


def test_diffaugment_translation_is_an_integer_shift_with_zero_fill():
  x = np.asarray(images(h=16, w=12))
  y = np.asarray(diff_augment(jnp.asarray(x), KEY, policy="translation"))
  # up to 1/8 of the side: 2 pixels both ways; uniform over the 5 integers in [-2, 2]
  shifts = np.floor(draws("translation") * 5).astype(int) - 2
  assert np.sum(np.any(shifts != 0, axis=1)) >= 5
  for i, (dy, dx) in enumerate(shifts):
    expected = np.zeros_like(x[i])
    src = x[i, max(0, -dy):16 - max(0, dy), max(0, -dx):12 - max(0, dx)]
    expected[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    assert np.array_equal(y[i], expected), (i, dy, dx)


def test_diffaugment_cutout_zeroes_one_square():
  x = np.asarray(images(low=0.1))  # no zeros of its own
  y = np.asarray(diff_augment(jnp.asarray(x), KEY, policy="cutout"))
  # an 8x8 square (half the side) centred at (cy, cx), uniform in {0..16}^2, clipped by the frame
  centres = np.floor(draws("cutout") * 17).astype(int)
  full = 0
  for i, (cy, cx) in enumerate(centres):
    mask = np.zeros((16, 16), bool)
    mask[max(0, cy - 4):cy + 4, max(0, cx - 4):cx + 4] = True
    assert np.array_equal(y[i] == 0, np.broadcast_to(mask[..., None], y[i].shape)), i
    assert np.array_equal(y[i][~mask], x[i][~mask])
    full += mask.sum() == 64
  assert full >= 1  # some squares lie wholly inside the frame (others are clipped by it)


def test_diffaugment_color_matches_its_formulas():
  x = np.asarray(images(), np.float64)
  y = diff_augment(jnp.asarray(x, jnp.float32), KEY, policy="color")
  u = {n: draws(n)[:, 0, None, None, None] for n in ("brightness", "saturation", "contrast")}
  e = x + (u["brightness"] - 0.5)
  m = e.mean(-1, keepdims=True)
  e = (e - m) * (2 * u["saturation"]) + m
  m = e.mean((1, 2, 3), keepdims=True)
  e = (e - m) * (u["contrast"] + 0.5) + m
  np.testing.assert_allclose(y, e, atol=2e-6)


# --- gradients -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [lambda x: ada(x, KEY, jnp.ones(N)),
                                lambda x: diff_augment(x, KEY, policy=DIFF)], ids=["ada", "diff"])
def test_gradients_reach_the_images(fn):
  # Both pipelines are affine in the images for a fixed key, so <grad, v> must equal
  # sum(w * (f(x + v) - f(x))): a finite-difference check with no step-size error.
  x, w, v = images(seed=0), images(seed=1), images(seed=2) * 0.1
  grad = jax.grad(lambda x: jnp.sum(w * fn(x)))(x)
  assert np.all(np.isfinite(grad)) and np.count_nonzero(grad) > grad.size // 2
  np.testing.assert_allclose(jnp.vdot(grad, v), jnp.sum(w * (fn(x + v) - fn(x))), rtol=1e-3)


# --- ADA's p -------------------------------------------------------------------------------------

def test_update_p_follows_the_sign_of_r_t_minus_target():
  up = augment.update_p(jnp.float32(0.3), 0.8, 64, target=0.6, ada_kimg=500)
  down = augment.update_p(jnp.float32(0.3), 0.1, 64, target=0.6, ada_kimg=500)
  np.testing.assert_allclose([up, down], [0.3 + 64 / 500e3, 0.3 - 64 / 500e3], rtol=1e-6)
  assert augment.update_p(jnp.float32(0.3), 0.6, 64) == jnp.float32(0.3)
  assert augment.update_p(jnp.float32(1e-5), -1.0, 64) == 0.0
  assert augment.update_p(jnp.float32(1.0), 1.0, 64) == 1.0


def test_track_moves_p_every_interval_steps():
  aug = augment.Augment.from_config(dict(kind="ada", p=0.0, target=0.6, ada_kimg=1, interval=2))
  extras = aug.init_extras()
  real = jnp.ones((8,))  # D is sure of every real: r_t = 1 > 0.6
  extras = aug.track(extras, real, jnp.int32(0))
  assert extras["augment_p"] == 0 and extras["augment_seen"] == 8
  extras = aug.track(extras, real, jnp.int32(1))
  np.testing.assert_allclose(extras["augment_p"], 16 / 1000, rtol=1e-6)
  assert extras["augment_seen"] == 0 and extras["augment_signs"] == 0
  fixed = augment.Augment.from_config(dict(kind="ada", p=0.2, target=0))
  assert fixed.track(fixed.init_extras(), real, jnp.int32(1))["augment_p"] == jnp.float32(0.2)


def test_one_compile_serves_every_p():
  traces = []

  def step(x, key, p):
    traces.append(1)
    return augment.ada(x, key, p)

  fn, x = jax.jit(step), images(2, 4, 4)
  a, b = fn(x, KEY, jnp.float32(0.2)), fn(x, KEY, jnp.float32(0.7))
  assert len(traces) == 1 and not np.array_equal(a, b)


def test_config_errors_are_one_sentence():
  with pytest.raises(ValueError, match="augment.kind must be one of"):
    augment.Augment.from_config({"kind": "mixup"})
  with pytest.raises(ValueError, match="unknown augment config keys: prob"):
    augment.Augment.from_config({"kind": "ada", "prob": 0.5})
  with pytest.raises(ValueError, match="unknown augmentation 'colour'"):
    augment.Augment.from_config({"kind": "diffaugment", "policy": "colour"})
  none = augment.Augment.from_config(None)
  assert none(images(), KEY, jnp.float32(1)) is not None and not none.adaptive


# --- pmap == jit ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ada", "diffaugment"])
def test_pmap_over_8_devices_equals_jit_on_the_global_batch(kind):
  aug = augment.Augment.from_config(dict(kind=kind, policy="bgc" if kind == "ada" else DIFF))
  x, p = images(), 0.5
  # the jitted global batch as Augment calls it (compiled by earlier tests)
  whole = ada(x, KEY, p, transforms="bgc") if kind == "ada" else diff_augment(x, KEY, policy=DIFF)
  per_device = jax.pmap(lambda x, key, p: aug(x, key, p, Devices("data")), axis_name="data",
                        in_axes=(0, None, None))(x.reshape(8, 1, 16, 16, 3), KEY, p)
  np.testing.assert_allclose(per_device.reshape(x.shape), whole, atol=1e-6)
  assert not np.allclose(whole, x)


def test_track_under_pmap_counts_the_global_batch():
  aug = augment.Augment.from_config(dict(kind="ada", target=0.6, ada_kimg=1, interval=1))
  logits = jnp.asarray(np.random.default_rng(0).normal(2.0, 1, 16), jnp.float32)
  whole = aug.track(aug.init_extras(), logits, jnp.int32(0))
  per_device = jax.pmap(lambda e, l: aug.track(e, l, jnp.int32(0), Devices("data")),
                        axis_name="data", in_axes=(None, 0))(aug.init_extras(),
                                                             logits.reshape(8, 2))
  r_t = np.mean(np.sign(logits))
  assert r_t > 0.6
  np.testing.assert_allclose(whole["augment_p"], np.clip(np.sign(r_t - 0.6) * 16 / 1000, 0, 1))
  np.testing.assert_allclose(per_device["augment_p"], whole["augment_p"])



@pytest.mark.parametrize("flags", [
    ("--config.augment.kind=diffaugment", "--config.augment.policy=color,translation,cutout"),
    ("--config.augment.kind=ada", "--config.augment.p=0.5", "--config.augment.interval=1",
     "--config.augment.ada_kimg=0.1"),
])
def test_the_noise_game_augments_what_d_sees(tmp_path, flags):
  """DiffAugment and ADA work with every image game, the DCGAN's too; ADA's p adapts in it."""
  import json

  from test_train import train
  assert train("dcgan_digits", tmp_path, "--config.train.log_every=1", *flags) == 0
  records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in records)
  if "ada" in flags[0]:
    assert len({r["augment_p"] for r in records}) > 1


@pytest.mark.parametrize("name,flags,expected", [
    ("gan_ring2d", ("--config.augment.kind=diffaugment",), "learns points"),
    ("dcgan_digits", ("--config.augment.kind=ada", "--config.augment.p=2"),
     "augment.p must be in [0, 1]"),
    ("dcgan_digits", ("--config.augment.kind=diffaugment", "--config.augment.policy=blur"),
     "--config.augment"),
])
def test_bad_augment_settings_are_one_sentence(tmp_path, capsys, name, flags, expected):
  from test_cli import assert_one_clear_error
  from test_train import train
  assert train(name, tmp_path, *flags) == 2
  assert_one_clear_error(capsys, expected)
