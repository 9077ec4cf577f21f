"""The super-resolution nets (gan_jax/models/sr.py): pixel shuffle as PyTorch orders it, output
shapes at x2 and x4 with both upsampling kinds, BasicSR's parameter counts at full size, ESRGAN's
init, the same outputs as the PyTorch peer (benchmarks/peers/torch_rrdb.py) with its weights
copied in, spectral norm's vectors moving only in train mode, and the registry's checks."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import REPO
from gan_jax.errors import UserError
from gan_jax.models import build_sr, sr, validate_sr
from gan_jax.models.layers import pixel_shuffle

try:
  import torch
except ImportError:
  torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="the PyTorch peer needs torch")


def load_peer():
  path = os.path.join(REPO, "benchmarks", "peers", "torch_rrdb.py")
  spec = importlib.util.spec_from_file_location("torch_rrdb", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def init_shapes(module, shape):
  return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape)))


def random(shape, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


# --- pixel shuffle ----------------------------------------------------------------------------

@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_is_its_definition(r):
  x = random((2, 3, 4, 2 * r * r))
  y = np.asarray(pixel_shuffle(jnp.asarray(x), r))
  assert y.shape == (2, 3 * r, 4 * r, 2)
  for c in range(2):
    for i in range(r):
      for j in range(r):
        # input channel c r^2 + i r + j lands on channel c at (h r + i, w r + j)
        np.testing.assert_array_equal(y[:, i::r, j::r, c], x[..., c * r * r + i * r + j])


@needs_torch
@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_matches_torch(r):
  x = random((2, 3, 4, 2 * r * r))
  want = torch.nn.functional.pixel_shuffle(torch.from_numpy(x).permute(0, 3, 1, 2), r)
  got = pixel_shuffle(jnp.asarray(x), r)
  np.testing.assert_array_equal(np.asarray(got), want.permute(0, 2, 3, 1).numpy())


def test_pixel_shuffle_rejects_indivisible_channels():
  with pytest.raises(ValueError, match="divisible by 4"):
    pixel_shuffle(jnp.zeros((1, 2, 2, 6)), 2)


@needs_torch
@pytest.mark.parametrize("factor", [2, 4])
def test_bilinear_matches_torch(factor):
  x = random((2, 5, 6, 3))
  want = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2),
                                         scale_factor=factor, mode="bilinear",
                                         align_corners=False)
  np.testing.assert_allclose(np.asarray(sr.bilinear(jnp.asarray(x), factor)),
                             want.permute(0, 2, 3, 1).numpy(), atol=1e-6)


# --- generators -------------------------------------------------------------------------------

TINY = dict(features=8, blocks=1)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("upsample", ["nearest", "pixel_shuffle"])
@pytest.mark.parametrize("net", [sr.SRResNet, sr.RRDBNet])
def test_generator_shapes(net, upsample, scale):
  kw = dict(growth=4) if net is sr.RRDBNet else {}
  out_channels = 2 if net is sr.RRDBNet else 3  # SRResNet's global skip keeps the channels
  g = net(scale=scale, upsample=upsample, out_channels=out_channels, **TINY, **kw)
  x = jnp.asarray(random((2, 6, 8, 3)))
  variables = init_shapes(g, x.shape)
  out = jax.eval_shape(lambda v: g.apply(v, x), variables)
  assert out.shape == (2, 6 * scale, 8 * scale, out_channels) and out.dtype == jnp.float32
  params = variables["params"]
  assert [k for k in params if k.startswith("conv_up")] == [f"conv_up{i + 1}"
                                                            for i in range({2: 1, 4: 2}[scale])]
  # pixel shuffle's conv widens 4x, then the shuffle folds it back
  width = 32 if upsample == "pixel_shuffle" else 8
  assert params["conv_up1"]["kernel"].shape == (3, 3, 8, width)


def test_generators_reject_other_scales_and_upsampling():
  x = jnp.zeros((1, 4, 4, 3))
  with pytest.raises(ValueError, match="2 or 4, not 3"):
    init_shapes(sr.RRDBNet(scale=3, growth=4, **TINY), x.shape)
  with pytest.raises(ValueError, match="unknown upsample 'bicubic'"):
    init_shapes(sr.SRResNet(upsample="bicubic", **TINY), x.shape)
  with pytest.raises(ValueError, match="out_channels 1 must equal the input's 3"):
    init_shapes(sr.SRResNet(out_channels=1, **TINY), x.shape)


def test_full_size_parameter_counts_are_basicsr():
  # BasicSR's RRDBNet(3, 3, 64, 23, 32) for x4: 1,792 (conv_first) + 23 RRDBs of 3 x 239,808
  # + 4 x 36,928 (conv_body, two up convs, conv_hr) + 1,731 (conv_last)
  assert count(init_shapes(sr.RRDBNet(), (1, 32, 32, 3))["params"]) == 16_697_987
  # BasicSR's MSRResNet(3, 3, 64, 16, 4): 1,792 + 16 x 73,856 + 2 x 147,712 (conv to 256
  # channels before each shuffle) + 36,928 + 1,731
  assert count(init_shapes(sr.SRResNet(), (1, 32, 32, 3))["params"]) == 1_517_571
  # Real-ESRGAN's UNetDiscriminatorSN(3, 64): 1,792 (conv0) + 64 x 128 x 16 + 128 x 256 x 16
  # + 256 x 512 x 16 (down) + 9 x (512 x 256 + 256 x 128 + 128 x 64 + 2 x 64 x 64) (up, extra)
  # + 577 (conv9)
  assert count(init_shapes(sr.UNetDiscriminatorSN(), (1, 32, 32, 3))["params"]) == 4_376_897


@needs_torch
def test_parameter_counts_equal_the_torch_peer():
  peer = load_peer()
  assert peer.timing.count(peer.RRDBNet()) == 16_697_987
  for resolution in (128, 256):
    ours = init_shapes(sr.VGGStyleDiscriminator(resolution=resolution),
                       (1, resolution, resolution, 3))["params"]
    assert count(ours) == peer.timing.count(peer.VGGStyleDiscriminator(resolution=resolution))
  assert count(init_shapes(sr.VGGStyleDiscriminator(), (1, 128, 128, 3))["params"]) == 14_499_401


def test_rrdb_convs_start_at_a_tenth_of_kaiming():
  g = sr.RRDBNet(features=16, blocks=2, growth=16)
  params = jax.jit(g.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
  for i in range(2):
    for j in range(1, 4):
      for k in range(1, 6):
        kernel = np.asarray(params["body"][f"rdb{j}"][f"conv{k}"]["kernel"][i])
        fan_in = 9 * kernel.shape[2]
        assert np.std(kernel) == pytest.approx(0.1 * np.sqrt(2 / fan_in), rel=0.15)
  # the trunk's own convs keep PyTorch's default, U(+-1 / sqrt(fan_in)): 10x wider at this size
  body = np.asarray(params["conv_body"]["kernel"])
  assert np.std(body) == pytest.approx(1 / np.sqrt(3 * 9 * 16), rel=0.15)


def test_srresnet_adds_the_bilinear_input():
  """With conv_last zeroed, SRResNet is its global skip: the input upsampled bilinearly."""
  g = sr.SRResNet(scale=4, **TINY)
  x = jnp.asarray(random((1, 5, 6, 3)))
  variables = jax.jit(g.init)(jax.random.key(0), x)
  params = dict(variables["params"])
  params["conv_last"] = jax.tree.map(jnp.zeros_like, params["conv_last"])
  apply = jax.jit(g.apply)
  out = apply({"params": params}, x)
  np.testing.assert_allclose(out, sr.bilinear(x, 4), atol=1e-6)
  # the convs add a residual, small at init (every conv starts at a tenth of Kaiming's scale)
  residual = np.abs(apply(variables, x) - out).max()
  assert 0 < residual < 1e-2


def test_bfloat16_computes_in_bfloat16_and_returns_float32():
  g = sr.RRDBNet(growth=4, dtype=jnp.bfloat16, **TINY)
  x = jnp.asarray(random((1, 4, 4, 3)))
  variables = jax.jit(g.init)(jax.random.key(0), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  out = jax.jit(g.apply)(variables, x)
  assert out.dtype == jnp.float32 and np.isfinite(out).all()
  hlo = jax.jit(g.apply).lower(variables, x).as_text()
  assert "bf16" in hlo


# --- parity with the PyTorch peer --------------------------------------------------------------

def t2j(t):
  return jnp.asarray(t.detach().numpy())


def conv_params(m):
  p = {"kernel": t2j(m.weight.permute(2, 3, 1, 0))}
  return {**p, "bias": t2j(m.bias)} if m.bias is not None else p


def set_path(tree, path, value):
  *parents, leaf = path.split("/")
  for key in parents:
    tree = tree.setdefault(key, {})
  tree[leaf] = value


@needs_torch
@pytest.mark.parametrize("impl", ["winograd", "gemm", "conv"])
@pytest.mark.parametrize("scale", [2, 4])
def test_rrdbnet_matches_the_torch_peer(scale, impl, monkeypatch):
  if impl == "winograd":  # the dense blocks as cpu_conv.dense_convs3x3, as from 32 features
    monkeypatch.setattr("gan_jax.models.cpu_conv.WINOGRAD_MIN_CHANNELS", 1)
    impl = "gemm"
  peer = load_peer()
  torch.manual_seed(0)
  theirs = peer.RRDBNet(nf=8, nb=2, gc=4, scale=scale)
  for m in theirs.modules():  # nonzero biases, so a bias copied to the wrong layer shows
    if isinstance(m, torch.nn.Conv2d):
      torch.nn.init.uniform_(m.bias, -0.1, 0.1)
  names = (["conv_first"] + [f"body_{i}/rdb{j}/conv{k}" for i in range(2) for j in (1, 2, 3)
                             for k in range(1, 6)]
           + ["conv_body"] + [f"conv_up{i + 1}" for i in range({2: 1, 4: 2}[scale])]
           + ["conv_hr", "conv_last"])
  convs = [m for m in theirs.modules() if isinstance(m, torch.nn.Conv2d)]
  assert len(convs) == len(names)
  params = {}
  for name, m in zip(names, convs):
    set_path(params, name, conv_params(m))
  # our RRDBs are one scanned block: their weights stacked on a leading axis
  params["body"] = jax.tree.map(lambda *blocks: jnp.stack(blocks),
                                *(params.pop(f"body_{i}") for i in range(2)))
  ours = sr.RRDBNet(features=8, blocks=2, growth=4, scale=scale, conv_impl=impl)
  x = random((2, 6, 4, 3))
  want = theirs(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
  assert jax.tree.structure(params) == jax.tree.structure(
      init_shapes(ours, x.shape)["params"])
  got = jax.jit(ours.apply)({"params": params}, jnp.asarray(x))
  np.testing.assert_allclose(got, want, atol=2e-5)


@needs_torch
def test_vgg_discriminator_matches_the_torch_peer():
  peer = load_peer()
  torch.manual_seed(0)
  res, w = 64, 4
  theirs = peer.VGGStyleDiscriminator(nf=w, resolution=res).eval()
  convs = [m for m in theirs.modules() if isinstance(m, torch.nn.Conv2d)]
  norms = [m for m in theirs.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  n = len(convs) // 2
  params, stats = {}, {}
  for i in range(n):
    params[f"conv{i}_0"], params[f"conv{i}_1"] = conv_params(convs[2 * i]), conv_params(
        convs[2 * i + 1])
  bn_names = [f"bn{i}_{j}" for i in range(n) for j in (0, 1) if (i, j) != (0, 0)]
  assert len(bn_names) == len(norms)
  for name, m in zip(bn_names, norms):
    torch.nn.init.uniform_(m.running_mean, -0.5, 0.5)  # eval mode reads these
    torch.nn.init.uniform_(m.running_var, 0.5, 1.5)
    torch.nn.init.uniform_(m.bias, -0.5, 0.5)
    params[name] = {"scale": t2j(m.weight), "bias": t2j(m.bias)}
    stats[name] = {"mean": t2j(m.running_mean), "var": t2j(m.running_var)}
  # torch flattens (c, h, w), we flatten (h, w, c)
  c, side = 8 * w, res // 2 ** n
  k = theirs.linear1.weight.reshape(100, c, side, side).permute(2, 3, 1, 0).reshape(-1, 100)
  params["linear1"] = {"kernel": t2j(k), "bias": t2j(theirs.linear1.bias)}
  params["linear2"] = {"kernel": t2j(theirs.linear2.weight.T), "bias": t2j(theirs.linear2.bias)}
  ours = sr.VGGStyleDiscriminator(width=w, resolution=res)
  x = random((3, res, res, 3))
  variables = {"params": params, "batch_stats": stats}
  assert jax.tree.structure(variables) == jax.tree.structure(init_shapes(ours, x.shape))
  want = theirs(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
  np.testing.assert_allclose(jax.jit(ours.apply)(variables, jnp.asarray(x)), want, atol=2e-5)


# --- discriminators ---------------------------------------------------------------------------

@pytest.mark.parametrize("res,stages,side", [(32, 5, 1), (64, 5, 2), (96, 5, 3), (256, 6, 4)])
def test_vgg_discriminator_shapes(res, stages, side):
  d = sr.VGGStyleDiscriminator(width=2, resolution=res)
  variables = init_shapes(d, (3, res, res, 3))
  out = jax.eval_shape(lambda v: d.apply(v, jnp.zeros((3, res, res, 3))), variables)
  assert out.shape == (3,) and out.dtype == jnp.float32
  p = variables["params"]
  assert f"conv{stages - 1}_1" in p and f"conv{stages}_0" not in p
  assert p["linear1"]["kernel"].shape == (side * side * 16, 100)  # ends at side x side x 8w


def test_vgg_discriminator_checks_its_input():
  with pytest.raises(ValueError, match="resolution=64"):
    init_shapes(sr.VGGStyleDiscriminator(width=2, resolution=64), (1, 32, 32, 3))
  with pytest.raises(ValueError, match="multiples of 32, not 48"):
    init_shapes(sr.VGGStyleDiscriminator(width=2, resolution=48), (1, 48, 48, 3))


def test_vgg_discriminator_batch_norm_trains_on_the_batch():
  d = sr.VGGStyleDiscriminator(width=2, resolution=32)
  x = jnp.asarray(random((4, 32, 32, 3)))
  variables = jax.jit(d.init)(jax.random.key(0), x)
  out, updates = jax.jit(lambda v: d.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
  assert out.shape == (4,)
  moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), variables["batch_stats"],
                       updates["batch_stats"])
  assert all(jax.tree.leaves(moved))


@pytest.mark.parametrize("skip", [True, False])
def test_unet_discriminator_shapes(skip):
  d = sr.UNetDiscriminatorSN(width=4, skip=skip)
  x = jnp.asarray(random((2, 16, 24, 3)))
  variables = jax.jit(d.init)(jax.random.key(0), x)
  out = jax.jit(d.apply)(variables, x)
  assert out.shape == (2, 16, 24, 1) and out.dtype == jnp.float32
  with pytest.raises(ValueError, match="multiples of 8"):
    init_shapes(d, (1, 12, 16, 3))


def test_unet_discriminator_skips_change_the_output():
  x = jnp.asarray(random((2, 16, 16, 3)))
  with_skip, without = sr.UNetDiscriminatorSN(width=4), sr.UNetDiscriminatorSN(width=4, skip=False)
  variables = jax.jit(with_skip.init)(jax.random.key(0), x)
  assert not np.allclose(jax.jit(with_skip.apply)(variables, x),
                         jax.jit(without.apply)(variables, x), atol=1e-4)


def test_unet_spectral_vectors_move_in_train_mode_only():
  d = sr.UNetDiscriminatorSN(width=4)
  x = jnp.asarray(random((2, 16, 16, 3)))
  variables = jax.jit(d.init)(jax.random.key(0), x)
  spectral = variables["spectral"]
  # conv0 and conv9 are plain convs; the other eight carry spectral norm
  assert sorted(spectral) == [f"conv{i}" for i in range(1, 9)]
  run = jax.jit(lambda v, train: d.apply(v, x, train=train, mutable=["spectral"])[1],
                static_argnums=1)
  once = run(variables, True)["spectral"]
  # init stored the sigma of one step from u, so the first step moves u; the second, sigma too
  twice = run({**variables, "spectral": once}, True)["spectral"]
  for name in spectral:
    assert not np.allclose(once[name]["u"], spectral[name]["u"]), name
    assert not np.allclose(twice[name]["sigma"], once[name]["sigma"], rtol=0, atol=1e-7), name
  jax.tree.map(np.testing.assert_array_equal, run(variables, False)["spectral"], spectral)


def test_unet_sn_kernels_have_unit_spectral_norm_in_effect():
  """After many train-mode power iterations each SN conv divides by ~ its top singular value:
  the 4x4 stride-2 convs go through `spectral_normalize` like the 3x3 ones."""
  d = sr.UNetDiscriminatorSN(width=4)
  x = jnp.asarray(random((1, 8, 8, 3)))
  variables = jax.jit(d.init)(jax.random.key(0), x)
  step = jax.jit(lambda v: d.apply(v, x, train=True, mutable=["spectral"])[1])
  for _ in range(30):
    variables = {**variables, **step(variables)}
  for name in ("conv1", "conv3", "conv5"):
    kernel = np.asarray(variables["params"][name]["kernel"])
    top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert float(variables["spectral"][name]["sigma"]) == pytest.approx(top, rel=1e-3)


# --- the registry -----------------------------------------------------------------------------

def sr_config(scale=4, resolution=32, **model):
  defaults = dict(name="rrdb", features=8, blocks=1, growth=4, upsample="nearest", d_name="vgg",
                  d_width=4)
  return ml_collections.ConfigDict({
      "model": {**defaults, **model},
      "data": {"scale": scale, "resolution": resolution},
      "train": {"dtype": "float32"}})


@pytest.mark.parametrize("name,d_name", [("rrdb", "vgg"), ("srresnet", "unet")])
def test_build_sr(name, d_name):
  g, d = build_sr(sr_config(2, 64, name=name, d_name=d_name, upsample="pixel_shuffle"), 1,
                  axis_name="batch")
  assert isinstance(g, {"rrdb": sr.RRDBNet, "srresnet": sr.SRResNet}[name])
  assert (g.features, g.blocks, g.scale, g.out_channels, g.upsample) == (
      8, 1, 2, 1, "pixel_shuffle")
  if name == "rrdb":
    assert g.growth == 4
  if d_name == "vgg":
    assert isinstance(d, sr.VGGStyleDiscriminator)
    assert (d.width, d.resolution, d.axis_name) == (4, 64, "batch")
  else:
    assert isinstance(d, sr.UNetDiscriminatorSN) and d.width == 4


def test_build_sr_bfloat16():
  config = sr_config()
  config.train.dtype = "bfloat16"
  g, d = build_sr(config, 3)
  assert g.dtype == d.dtype == jnp.bfloat16


@pytest.mark.parametrize("overrides,message", [
    (dict(name="edsr"), "Unknown super-resolution model 'edsr': choose srresnet or rrdb"),
    (dict(d_name="patchgan"), r"d_name='patchgan'.*choose vgg .* or unet"),
    (dict(upsample="bicubic"), "upsample='bicubic'.*choose nearest or pixel_shuffle"),
    (dict(scale=3, resolution=96), "scale=3 is not a factor.*use 2 or 4"),
    (dict(scale=4, resolution=66, d_name="unet"),
     r"resolution=66 \(the HR patch side\) is not a multiple of --config.data.scale=4.*"
     "use a multiple of 4"),
    (dict(resolution=48), "d_name=vgg needs HR patches whose side is a multiple of 32.*"
     r"resolution=48 is not: use 64 \(or another multiple of 32\)"),
    (dict(resolution=36, d_name="unet"), "d_name=unet needs HR patches whose side is a multiple "
     r"of 8.*resolution=36 is not: use 40"),
])
def test_validate_sr_errors(overrides, message):
  scale, resolution = overrides.pop("scale", 4), overrides.pop("resolution", 32)
  config = sr_config(scale, resolution, **overrides)
  with pytest.raises(UserError, match=message) as info:
    validate_sr(config)
  assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")  # one sentence
  with pytest.raises(UserError, match=message):
    build_sr(config, 3)


@pytest.mark.parametrize("scale,resolution,d_name", [(4, 128, "vgg"), (2, 256, "vgg"),
                                                     (4, 8, "unet"), (2, 24, "unet")])
def test_validate_sr_accepts(scale, resolution, d_name):
  validate_sr(sr_config(scale, resolution, d_name=d_name))
