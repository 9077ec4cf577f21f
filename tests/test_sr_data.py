"""Super-resolution data: MATLAB's bicubic imresize, Real-ESRGAN's degradations, LR/HR batches in
the pipeline, the bundled photographs and SR pairs of folders."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from gan_jax import config as config_lib
from gan_jax.data import degrade, pipeline
from gan_jax.errors import UserError


# --- imresize against a slow reference ---------------------------------------------------------

def reference_cubic(x):
  x = abs(x)
  if x <= 1:
    return 1.5 * x ** 3 - 2.5 * x ** 2 + 1
  if x < 2:
    return -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2
  return 0.0


def reference_axis(values, scale, out_len):
  """MATLAB's formula, one output pixel at a time, on a 1D signal padded symmetrically."""
  n = len(values)
  pad = 4 * n + 32  # past the widest kernel (16 taps at 1/4)
  padded = np.pad(values, pad, mode="symmetric")  # ... b a | a b c ... c b | a ...
  out = []
  for x in range(1, out_len + 1):
    u = x / scale + 0.5 * (1 - 1 / scale)  # the centre, in 1-based input coordinates
    shrink = min(scale, 1.0)
    width = 4 / shrink
    taps = range(math.floor(u - width / 2), math.floor(u - width / 2) + math.ceil(width) + 2)
    w = [shrink * reference_cubic(shrink * (u - j)) for j in taps]
    total = sum(w)
    out.append(sum(wi / total * padded[j - 1 + pad] for wi, j in zip(w, taps)))
  return np.array(out)


def reference_imresize(image, scale, uint8=False):
  """Rows (height) first, then columns; uint8 rounded half up and clipped after each."""
  out_h, out_w = (math.ceil(scale * s) for s in image.shape[:2])
  x = image.astype(np.float64)
  cast = (lambda v: np.clip(np.floor(v + 0.5), 0, 255)) if uint8 else (lambda v: v)
  x = cast(np.stack([reference_axis(x[:, j], scale, out_h) for j in range(x.shape[1])], 1))
  x = cast(np.stack([reference_axis(x[i], scale, out_w) for i in range(out_h)], 0))
  return x


@pytest.mark.parametrize("shape, scale", [
    ((16, 24), 1 / 4), ((16, 24), 1 / 2), ((6, 5), 2), ((5, 7), 4),
    ((37, 50), 1 / 4),   # sizes not divisible: ceil(9.25) x ceil(12.5) = 10 x 13
    ((13, 11), 1 / 3), ((3, 2), 1 / 4)])  # taps mirrored more than once
def test_imresize_matches_matlab_formula_pixel_by_pixel(shape, scale):
  image = np.random.default_rng(0).random(shape) * 255
  want = reference_imresize(image, scale)
  got = degrade.imresize(image, scale)
  assert got.shape == want.shape == tuple(math.ceil(scale * s) for s in shape)
  np.testing.assert_allclose(got, want, atol=1e-9)


def test_imresize_of_rgb_and_uint8_as_matlab():
  rgb = np.random.default_rng(1).integers(0, 256, (20, 28, 3), dtype=np.uint8)
  got = degrade.imresize(rgb, 1 / 4)
  assert got.dtype == np.uint8 and got.shape == (5, 7, 3)
  for c in range(3):  # uint8 rounded after each axis, as imresizemex returns uint8
    np.testing.assert_array_equal(got[..., c], reference_imresize(rgb[..., c], 1 / 4, True))
  # The float32 path keeps float32 and differs from the rounded uint8 one by under a level.
  f = degrade.imresize(rgb.astype(np.float32), 1 / 4)
  assert f.dtype == np.float32 and np.abs(f - got).max() < 1.0
  batch = np.stack([rgb, rgb[::-1]])
  np.testing.assert_array_equal(degrade.imresize_batch(batch, 1 / 4)[1],
                                degrade.imresize(rgb[::-1], 1 / 4))


@pytest.mark.parametrize("scale", [1 / 4, 1 / 2, 2, 4])
def test_imresize_agrees_with_pillow_bicubic_inside_the_borders(scale):
  """Pillow's BICUBIC is the same a = -0.5 kernel, widened when reducing, but it renormalises
  truncated taps at the borders instead of mirroring: interiors agree to Pillow's float32
  arithmetic (measured: max |diff| 1e-5 .. 3e-5 on 0..255 values), borders do not."""
  image = np.random.default_rng(2).random((48, 40)) * 255
  got = degrade.imresize(image, scale)
  h, w = got.shape
  pil = np.asarray(Image.fromarray(image.astype(np.float32), "F").resize(
      (w, h), Image.Resampling.BICUBIC))
  m = math.ceil(2 * scale) if scale > 1 else 2  # output pixels whose taps reach the border
  np.testing.assert_allclose(got[m:-m, m:-m], pil[m:-m, m:-m], atol=1e-4)
  assert np.abs(got - pil).max() > 0.01  # the borders do differ: the test can tell them apart


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 4])
def test_a_constant_image_stays_constant(scale):
  image = np.full((19, 12, 3), 77, np.uint8)
  out = degrade.imresize(image, scale)
  assert out.shape[:2] == (math.ceil(19 * scale), math.ceil(12 * scale))
  assert (out == 77).all()
  np.testing.assert_allclose(degrade.imresize(image.astype(np.float64) / 3, scale), 77 / 3)


def test_weights_are_built_once_per_size():
  degrade.weights.cache_clear()
  degrade._sparse.cache_clear()  # pylint: disable=protected-access
  degrade.imresize_batch(np.zeros((2, 16, 16, 1), np.uint8), 1 / 4)
  degrade.imresize_batch(np.zeros((3, 16, 16, 1), np.uint8), 1 / 4)
  assert degrade.weights.cache_info().misses == 1
  info = degrade._sparse.cache_info()  # pylint: disable=protected-access
  assert info.misses == 1 and info.hits == 3  # height and width share one (16 -> 4) matrix
  m = degrade.weights(16, 4, 0.25)
  assert m.shape == (4, 16) and (np.count_nonzero(m, axis=1) <= 18).all()
  np.testing.assert_allclose(m.sum(axis=1), 1)


# --- the Real-ESRGAN stages, one at a time ---------------------------------------------------

def smooth_image(size=64, channels=3, seed=0):
  """A smooth picture (gradients and a blob) in [0, 1], float32 HWC."""
  r = np.linspace(0, 1, size, dtype=np.float32)
  yy, xx = np.meshgrid(r, r, indexing="ij")
  blob = np.exp(-((xx - .5) ** 2 + (yy - .5) ** 2) * 8)
  planes = [0.2 + 0.6 * xx, 0.2 + 0.6 * yy, 0.5 + 0.3 * blob]
  return np.stack(planes[:channels], -1)


def test_jpeg_at_quality_100_is_close_and_at_10_is_not():
  x = smooth_image()
  for channels in (1, 3):
    image = x[..., :channels]
    high, low = degrade.jpeg(image, 100), degrade.jpeg(image, 10)
    assert high.shape == image.shape and high.dtype == np.float32
    assert np.abs(high - image).mean() * 255 < 1.0
    assert np.abs(low - image).mean() * 255 > 2 * np.abs(high - image).mean() * 255


def test_gaussian_noise_has_the_requested_std_and_gray_noise_is_shared():
  x = np.full((128, 128, 3), 0.5, np.float32)
  rng = np.random.default_rng(0)
  color = (degrade.gaussian_noise(x, rng, 20.0, gray=False) - x) * 255
  assert abs(color.std() - 20) < 0.5 and abs(color.mean()) < 0.3
  assert not np.allclose(color[..., 0], color[..., 1])
  gray = (degrade.gaussian_noise(x, rng, 10.0, gray=True) - x) * 255
  assert abs(gray.std() - 10) < 0.3
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_poisson_noise_follows_the_counts():
  """At value v with L levels counted, Poisson(v L) / L has std sqrt(v / L); scaled by `scale`."""
  x = np.zeros((128, 128, 3), np.float32)
  x[:64] = 64 / 255
  x[64:] = 192 / 255  # two distinct values: L = 2
  rng = np.random.default_rng(0)
  noise = degrade.poisson_noise(x, rng, 0.5, gray=False) - x
  for rows, v in ((slice(0, 64), 64 / 255), (slice(64, None), 192 / 255)):
    assert abs(noise[rows].std() - 0.5 * math.sqrt(v / 2)) < 0.02
    assert abs(noise[rows].mean()) < 0.02
  gray = degrade.poisson_noise(x, rng, 1.0, gray=True) - x
  np.testing.assert_array_equal(gray[..., 0], gray[..., 1])


def test_kernels_are_normalised_and_shaped_as_defined():
  g = degrade.shaped_kernel(21, "gaussian", 2.0)
  assert g.shape == (21, 21) and abs(g.sum() - 1) < 1e-12 and g.argmax() == 21 * 10 + 10
  r = np.arange(21) - 10
  np.testing.assert_allclose(g[10] / g[10, 10], np.exp(-r ** 2 / 8))  # sigma 2
  np.testing.assert_allclose(degrade.shaped_kernel(21, "generalized", 2.0, beta=1.0), g)
  # Anisotropic: turning the long axis by 90 degrees transposes the kernel.
  a = degrade.shaped_kernel(15, "gaussian", 3.0, 1.0, 0.0)
  np.testing.assert_allclose(degrade.shaped_kernel(15, "gaussian", 3.0, 1.0, np.pi / 2), a.T,
                             atol=1e-12)
  assert a[7, 0] > a[0, 7]  # long along x (columns)
  # Plateau: flatter top than a Gaussian of the same sigma; beta larger -> flatter still.
  p1, p2 = (degrade.shaped_kernel(21, "plateau", 2.0, beta=b) for b in (1.0, 2.0))
  assert p2[10, 11] / p2[10, 10] > p1[10, 11] / p1[10, 10]
  s = degrade.sinc_kernel(21, np.pi / 3)
  assert abs(s.sum() - 1) < 1e-12 and (s < 0).any()  # ringing lobes
  np.testing.assert_allclose(s, s.T)
  np.testing.assert_allclose(s, s[::-1])


def test_random_kernels_cover_the_sizes_and_blur_keeps_constants():
  stage = degrade.default_config().first
  rng = np.random.default_rng(0)
  sizes = {degrade.random_kernel(rng, stage).shape[0] for _ in range(200)}
  assert sizes == set(range(7, 22, 2))
  flat = np.full((20, 24, 3), 0.3, np.float32)
  k = degrade.random_kernel(rng, stage)
  np.testing.assert_allclose(degrade.blur(flat, k), flat, atol=1e-5)
  noise = np.random.default_rng(1).random((40, 40, 1)).astype(np.float32)
  assert degrade.blur(noise, degrade.shaped_kernel(9, "gaussian", 1.5)).std() < noise.std() / 2


# --- the Degrader ---------------------------------------------------------------------------

def realesrgan(**changes):
  c = degrade.default_config()
  c.kind = "realesrgan"
  c.update(changes)
  return c


def hr_batch(count=4, size=32, channels=3, seed=0, grain=20):
  pictures = [smooth_image(size, 3) * 255 for _ in range(count)]
  noise = np.random.default_rng(seed).integers(-grain, grain + 1, (count, size, size, 3))
  return np.clip(np.stack(pictures) + noise, 0, 255).astype(np.uint8)[..., :channels]


def rngs(*seeds):
  return [np.random.default_rng(s) for s in seeds]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scale", [2, 4])
def test_degrader_shapes_and_bicubic_is_imresize(channels, scale):
  hr = hr_batch(channels=channels)
  bicubic = degrade.Degrader(degrade.default_config(), scale)(hr, rngs(0, 1, 2, 3))
  assert bicubic.shape == (4, 32 // scale, 32 // scale, channels) and bicubic.dtype == np.uint8
  np.testing.assert_array_equal(bicubic[2], degrade.imresize(hr[2], 1 / scale))
  lr = degrade.Degrader(realesrgan(), scale)(hr, rngs(0, 1, 2, 3))
  assert lr.shape == bicubic.shape and lr.dtype == np.uint8
  # Degraded, yet still the picture: near its bicubic downscale on average.
  assert 0 < np.abs(lr.astype(int) - bicubic).mean() < 40


def test_realesrgan_is_a_function_of_the_generators():
  hr = hr_batch(count=6)
  d = degrade.Degrader(realesrgan(), 4)
  a = d(hr, rngs(*range(6)))
  np.testing.assert_array_equal(a, d(hr, rngs(*range(6))))
  b = d(hr, rngs(*range(10, 16)))
  assert all((a[i] != b[i]).any() for i in range(6))
  # Each example reads its own generator only: swapping two swaps their outputs.
  c = d(hr[[1, 0]], rngs(1, 0))
  np.testing.assert_array_equal(c, a[[1, 0]])


def test_realesrgan_without_degradations_is_a_plain_resize():
  """All probabilities off, ranges pinned, JPEG at 100: the chain reduces to area resizes."""
  c = realesrgan(final_sinc_prob=0.0)
  for s in (c.first, c.second):
    s.update(dict(blur_prob=0.0, resize_prob=(0, 0, 1), gaussian_noise_prob=1.0,
                  noise_range=(0.0, 0.0), jpeg_range=(100, 100)))
  hr = hr_batch(count=3, grain=0)  # smooth: unaliased whichever resize mode is drawn
  lr = degrade.Degrader(c, 2)(hr, rngs(0, 1, 2))
  want = degrade.imresize_batch(hr, 1 / 2)
  # Three JPEG round trips (4:2:0 chroma even at q100, ~0.6 levels each) and the resize modes.
  assert np.abs(lr.astype(int) - want).mean() < 3
  c.first.noise_range = (25.0, 25.0)  # and noise alone shows
  noisy = degrade.Degrader(c, 2)(hr, rngs(0, 1, 2))
  assert np.abs(noisy.astype(int) - want).mean() > 8  # ~25 / 2 after the 2x2 averaging


# --- validation --------------------------------------------------------------------------------

def sr_config(scale=4, resolution=32, kind="bicubic", source="photos", **degrade_changes):
  c = config_lib.base_config()
  c.data.update(dict(source=source, resolution=resolution, channels=3, workers=2))
  c.train.batch_size = 4
  c.data.scale = scale
  c.data.degrade = degrade.default_config()
  c.data.degrade.kind = kind
  for key, value in degrade_changes.items():
    stage, _, name = key.partition("__")
    if name:
      c.data.degrade[stage][name] = value
    else:
      c.data.degrade[key] = value
  return c


@pytest.mark.parametrize("settings, expected", [
    (dict(scale=3), "data.scale=3 is not supported"),
    (dict(resolution=30), "must be a multiple of data.scale=4"),
    (dict(kind="nearest"), "degrade.kind='nearest' is not supported"),
    (dict(kind="realesrgan", final_sinc_prob=1.5), "final_sinc_prob=1.5 must be a probability"),
    (dict(kind="realesrgan", second__blur_prob=-0.1), "second.blur_prob=-0.1 must be"),
    (dict(kind="realesrgan", first__kernel_prob=(1, 0)), "first.kernel_prob=(1, 0) must be 6"),
    (dict(kind="realesrgan", first__resize_range=(1.2, 1.5)), "first.resize_range"),
    (dict(kind="realesrgan", second__jpeg_range=(30, 120)), "second.jpeg_range=(30, 120)"),
    (dict(kind="realesrgan", first__noise_range=(5, 1)), "first.noise_range=(5, 1)"),
])
def test_validation_says_what_is_wrong(settings, expected):
  with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
    degrade.validate(sr_config(**settings))


def test_valid_settings_pass_validation():
  degrade.validate(sr_config())
  degrade.validate(sr_config(scale=2, kind="realesrgan"))
  plain = config_lib.base_config()
  degrade.validate(plain)  # no data.scale: no SR
  assert degrade.build(plain.data) is None


# --- the bundled photographs -------------------------------------------------------------------

def test_photo_crops_are_pure_functions_of_the_index():
  from gan_jax.data import embedded, sources
  config = sr_config(resolution=48)
  source = sources.build(config)
  assert len(source) == 1 << 16 and source.spec.shape == (48, 48, 3)
  assert source.class_names == embedded.PHOTOS_TRAIN
  idx = np.array([5, 70000 % len(source), 5, 123])
  a = source.get(idx)
  assert a["x"].shape == (4, 48, 48, 3) and a["x"].dtype == np.uint8
  np.testing.assert_array_equal(a["x"][0], a["x"][2])
  np.testing.assert_array_equal(sources.build(config).get(idx)["x"], a["x"])  # rebuilt: same
  # Each crop is where the table says, in the photo its label names.
  names, photos = embedded.photos("train", 3)
  for x, label, (p, t, l) in zip(a["x"], a["label"], source.table[idx]):
    assert label == p
    np.testing.assert_array_equal(x, photos[p][t:t + 48, l:l + 48])
  # Many photos and places; not the same patch twice in a batch of 64.
  many = source.get(np.arange(64))
  assert len(set(many["label"].tolist())) >= 10
  assert len({x.tobytes() for x in many["x"]}) == 64
  config.data.channels = 1
  gray = sources.build(config).get(idx)["x"]
  assert gray.shape == (4, 48, 48, 1)
  luma = a["x"].astype(np.float64) @ [0.299, 0.587, 0.114]
  assert np.abs(gray[..., 0] - luma).max() <= 1  # the same crops, in luma


def test_photos_hold_out_four_whole_photographs():
  from gan_jax.data import embedded, sources
  held = sources.build(sr_config(), split="test")
  assert held.names == ("astronaut", "chelsea", "coffee", "rocket") and len(held) == 4
  shapes = [image.shape for image in held.images()]
  assert shapes == [(512, 512, 3), (300, 451, 3), (400, 600, 3), (427, 640, 3)]
  assert all(image.dtype == np.uint8 and image.std() > 20 for image in held.images())
  assert not set(held.names) & set(embedded.PHOTOS_TRAIN)
  _, train = embedded.photos("train", 3)
  gray = dict(zip(embedded.PHOTOS_TRAIN, train))["camera"]  # a gray photo, copied to RGB
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  assert all(p.shape[-1] == 3 and min(p.shape[:2]) >= 300 for p in train)


def test_photos_errors():
  from gan_jax.data import sources
  assert sources.kind("photos") == "photos"
  with pytest.raises(UserError, match="larger than the smallest photo"):
    sources.build(sr_config(resolution=512))
  config = sr_config()
  config.data.channels = 2
  with pytest.raises(UserError, match="photos are RGB"):
    sources.build(config)


# --- SR batches in the pipeline ---------------------------------------------------------------

def take(iterator, count):
  return [next(iterator) for _ in range(count)]


def assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.parametrize("kind", ["bicubic", "realesrgan"])
def test_pipeline_makes_lr_hr_pairs_and_resumes_exactly(kind):
  config = sr_config(scale=4, resolution=32, kind=kind)
  config.data.random_flip = True
  config.train.batch_size, config.train.n_critic = 4, 2
  from gan_jax.data import sources
  source = sources.build(config)
  whole = take(pipeline.make_iterator(source, config), 5)
  b = whole[0]
  assert set(b) == {"x", "y", "label", "y_label"}
  assert b["x"].shape == (2, 4, 8, 8, 3) and b["y"].shape == (2, 4, 32, 32, 3)
  assert b["x"].dtype == b["y"].dtype == np.uint8
  np.testing.assert_array_equal(b["label"], b["y_label"])
  if kind == "bicubic":  # x is exactly the flipped HR's imresize
    np.testing.assert_array_equal(b["x"][1], degrade.imresize_batch(b["y"][1], 1 / 4))
  cut = pipeline.make_iterator(source, config)
  take(cut, 2)
  resumed = pipeline.make_iterator(source, config)
  resumed.set_state(json.loads(json.dumps(cut.get_state())))
  assert_same_batches(take(resumed, 3), whole[2:])


def test_process_halves_of_degraded_batches_make_the_global_batch():
  from gan_jax.data import sources
  config = sr_config(scale=2, resolution=16, kind="realesrgan")
  source = sources.build(config)
  d = degrade.build(config.data)
  steps = lambda index, count: pipeline.StepBatches(source, 8, 2, 0, index, count, True,
                                                    degrade=d)
  single, halves = steps(0, 1), (steps(0, 2), steps(1, 2))
  for step in range(2):
    joined = {k: np.concatenate([h[step][k] for h in halves], axis=1) for k in single[step]}
    assert_same_batches([joined], [single[step]])
    assert halves[0][step]["x"].shape == (2, 4, 8, 8, 3)
  # Every step draws new degradations for the same place in the batch.
  assert (single[0]["x"] != single[1]["x"]).any()


def test_pairs_of_folders_load_lr_at_resolution_over_scale(tmp_path):
  from gan_jax.data import sources
  for i in range(5):
    for side, size, value in (("lr", 8, 10 * i + 1), ("hr", 32, 10 * i)):
      path = tmp_path / side / f"{i}.png"
      path.parent.mkdir(exist_ok=True)
      Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
  config = sr_config(scale=4, resolution=32, source=f"pair:{tmp_path / 'lr'},{tmp_path / 'hr'}")
  config_lib.validate_data(config)
  source = sources.build(config)
  assert source.spec.shape == (32, 32, 3)
  batch = take(pipeline.make_iterator(source, config), 1)[0]
  assert batch["x"].shape == (1, 4, 8, 8, 3) and batch["y"].shape == (1, 4, 32, 32, 3)
  # Passed through, not degraded: each LR is its own file (one level above its HR partner; a
  # downscale of the flat HR would equal the HR).
  np.testing.assert_array_equal(batch["x"][0], batch["y"][0, :, :8, :8] + 1)
  config.data.scale = 0  # translation pairs: both sides at the resolution, as before
  assert sources.build(config).get(np.arange(2))["x"].shape == (2, 32, 32, 3)


def test_scale_needs_image_data():
  for source in ("ring2d", "digit_styles", "unpaired:a,b"):
    with pytest.raises(UserError, match="makes super-resolution pairs from images"):
      config_lib.validate_data(sr_config(source=source))
  config_lib.validate_data(sr_config(source="digits"))


def test_resize_modes_of_the_chain():
  """area averages blocks; bilinear and bicubic sample without antialiasing, as F.interpolate."""
  x = np.random.default_rng(0).random((16, 16, 1)).astype(np.float32)
  blocks = x.reshape(4, 4, 4, 4, 1)
  np.testing.assert_allclose(degrade.resize_mode(x, (4, 4), "area"), blocks.mean(axis=(1, 3)),
                             atol=1e-6)
  # Bilinear at 1/4 reads the two middle pixels of each block, per axis.
  np.testing.assert_allclose(degrade.resize_mode(x, (4, 4), "bilinear"),
                             blocks[:, 1:3, :, 1:3].mean(axis=(1, 3)), atol=1e-6)
  np.testing.assert_array_equal(degrade.resize_mode(x[:4, :4], (8, 8), "area"),
                                x[:4, :4].repeat(2, 0).repeat(2, 1))  # enlarging repeats
  bicubic = degrade.resize_mode(x, (4, 4), "bicubic")
  t = np.array([1.5, 0.5, 0.5, 1.5])  # distances of the 4 taps; PyTorch's a = -0.75
  w = degrade.cubic(t, -0.75) / degrade.cubic(t, -0.75).sum()
  np.testing.assert_allclose(bicubic[1, 1, 0], w @ x[4:8, 4:8, 0] @ w, atol=1e-6)


# --- random crops of pictures (data.resize=random_crop) ---------------------------------------

def test_random_crop_is_a_fixed_unscaled_square_per_example(tmp_path):
  from gan_jax.data import images, sources
  picture = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
  for i in range(4):
    Image.fromarray(picture).save(tmp_path / f"{i}.png")
  Image.fromarray(picture[:10, :20]).save(tmp_path / "small.png")
  config = sr_config(scale=0, resolution=32, source=f"folder:{tmp_path}")
  config.data.resize = "random_crop"
  config_lib.validate_data(config)
  source = sources.build(config)
  x = source.get(np.arange(4))["x"]
  assert x.shape == (4, 32, 32, 3)
  assert len({c.tobytes() for c in x}) == 4  # each file its own place
  np.testing.assert_array_equal(source.get(np.arange(4))["x"], x)  # the same every time
  for crop in x:  # the picture's own pixels, not resampled
    found = [(t, l) for t in range(29) for l in range(59)
             if (picture[t:t + 32, l:l + 32] == crop).all()]
    assert len(found) == 1
  small = source.get(np.array([4]))["x"][0]  # 10 x 20, enlarged to 32 x 64 then cropped
  assert small.shape == (32, 32, 3) and small.std() > 10
  np.testing.assert_array_equal(images.fit_array(picture, 32, 3, "random_crop", key=2), x[2])


def test_random_crop_refuses_sr_pairs():
  config = sr_config(source="pair:a,b")
  config.data.resize = "random_crop"
  with pytest.raises(UserError, match="LR and HR images .* at unrelated places"):
    config_lib.validate_data(config)
