"""StyleGAN2's networks (gan_jax/models/stylegan2.py) against definitions written out here: the
modulated conv against the paper's equations per sample, FIR resampling against
scipy.signal.upfirdn, the minibatch-stddev layer against numpy, equalized lr, w_avg and
truncation; parameter counts against NVIDIA's stylegan2-ada-pytorch; shapes, dtypes and finite
gradients of small G and D; and, where a checkout of NVIDIA's code and torch are at hand, the
same outputs as their networks with the same weights."""
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from gan_jax.models import layers
from gan_jax.models import stylegan2 as sg

IMPLS = ["conv", "gemm"]  # XLA's native convolutions (GPU/TPU) and the XLA:CPU matmul forms


def rand(shape, seed, scale=1.0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, jnp.float32)


def filled(model, *args, seed=0, **kw):
  """`model`'s variables with init's shapes, drawn in numpy as init draws them (N(0, 1) weights,
  N(0, 1) / 0.01 in the mappings, styles' biases 1), noise strengths 0.1 so noise has a
  gradient: XLA:CPU compiles a network's random init slowly, and only `test_init_follows_nvidia`
  needs init itself."""
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *args, **kw))
  rng = np.random.default_rng(seed)

  def leaf(path, x):
    name = jax.tree_util.keystr(path)
    if "w_avg" in name:
      v = np.zeros(x.shape)
    elif "noise_strength" in name:
      v = np.full(x.shape, 0.1)
    elif name.endswith("['bias']"):
      v = np.full(x.shape, 1.0 if "affine" in name else 0.0)
    else:
      v = rng.normal(size=x.shape) * (100.0 if "mapping" in name and "['fc" in name else 1.0)
    return jnp.asarray(v, x.dtype)

  return jax.tree_util.tree_map_with_path(leaf, abstract)


# --- Naive references -------------------------------------------------------------------------

def np_conv_same(x, w):
  """Correlation with zero padding k // 2, one output pixel at a time. x [H, W, I], w [k, k, I, O]."""
  k = w.shape[0]
  p = k // 2
  xp = np.pad(x, ((p, p), (p, p), (0, 0)))
  h, wd = x.shape[:2]
  out = np.zeros((h, wd, w.shape[-1]))
  for i in range(h):
    for j in range(wd):
      out[i, j] = np.einsum("abi,abio->o", xp[i:i + k, j:j + k], w)
  return out


FIR2D = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0


def np_fir_valid(y, f2d):
  """True 2D convolution of y [H, W, C] with f2d, valid part."""
  fh = f2d.shape[0]
  ff = f2d[::-1, ::-1]
  h, w = y.shape[0] - fh + 1, y.shape[1] - fh + 1
  out = np.zeros((h, w, y.shape[-1]))
  for i in range(h):
    for j in range(w):
      out[i, j] = np.einsum("abc,ab->c", y[i:i + fh, j:j + fh], ff)
  return out


def np_conv_up(x, w):
  """The paper's up-sampling conv as NVIDIA defines it: transposed conv, stride 2, no padding
  (output 2i + k gets input i times tap k), then pad 1 and the [1, 3, 3, 1] blur with gain 4."""
  h, wd = x.shape[:2]
  k = w.shape[0]
  y = np.zeros((2 * (h - 1) + k, 2 * (wd - 1) + k, w.shape[-1]))
  for i in range(h):
    for j in range(wd):
      for a in range(k):
        for b in range(k):
          y[2 * i + a, 2 * j + b] += x[i, j] @ w[a, b]
  return np_fir_valid(np.pad(y, ((1, 1), (1, 1), (0, 0))), 4 * FIR2D)


def naive_modconv(x, w, s, demodulate, up):
  """The paper's eq. 1-3 per sample: w'_ijk = s_i w_ijk, w''_ijk = w'_ijk / sqrt(sum w'^2 + eps)."""
  x, w, s = (np.asarray(a, np.float64) for a in (x, w, s))
  outs = []
  for b in range(x.shape[0]):
    wb = w * s[b][None, None, :, None]
    if demodulate:
      wb = wb / np.sqrt(np.sum(wb ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
    outs.append(np_conv_up(x[b], wb) if up else np_conv_same(x[b], wb))
  return np.stack(outs)


# --- Modulated conv ---------------------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [False, True])
def test_modulated_conv_fused_and_batched_equal_the_paper(impl, demodulate, up):
  x = rand((3, 4, 4, 5) if up else (3, 6, 6, 5), 0)
  w, s = rand((3, 3, 5, 4), 1), rand((3, 5), 2) + 1.0
  want = naive_modconv(x, w, s, demodulate, up)
  assert want.shape == ((3, 8, 8, 4) if up else (3, 6, 6, 4))
  for fused in (False, True):
    got = jax.jit(lambda *a, f=fused: sg.modulated_conv(*a, demodulate, up, f, impl=impl))(x, w, s)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(),
                               err_msg=f"fused={fused}")


@pytest.mark.parametrize("impl", IMPLS)
def test_modulated_conv_forms_have_equal_gradients(impl):
  x, w, s = rand((2, 4, 4, 6), 3), rand((3, 3, 6, 5), 4), rand((2, 6), 5) + 1.0
  for up in (False, True):
    grads = [jax.jit(jax.grad(lambda *a, f=f: jnp.sum(sg.modulated_conv(*a, True, up, f, impl=impl)
                                                      ** 3), (0, 1, 2)))(x, w, s)
             for f in (False, True)]
    for a, b in zip(*grads):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


def test_torgb_is_a_modulated_1x1_conv():
  x, w, s = rand((2, 3, 3, 4), 6), rand((1, 1, 4, 3), 7), rand((2, 4), 8)
  want = naive_modconv(x, w, s, False, False)
  for impl in IMPLS:
    for fused in (False, True):
      np.testing.assert_allclose(sg.modulated_conv(x, w, s, False, False, fused, impl=impl), want,
                                 rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_down_is_blur_then_strided_conv(impl):
  """D's down-sampling conv: blur (padding 2), then the 3x3 conv at every other pixel."""
  x, w = rand((2, 8, 8, 3), 9), rand((3, 3, 3, 4), 10)
  blurred = np.stack([np_fir_valid(np.pad(np.asarray(xi), ((2, 2), (2, 2), (0, 0))), FIR2D)
                      for xi in x])  # [2, 9, 9, 3]
  full = np.stack([np_conv_same(b, np.asarray(w))[1:-1, 1:-1] for b in blurred])  # valid 7x7
  want = full[:, ::2, ::2]
  np.testing.assert_allclose(sg.conv_down(x, w, impl=impl), want, rtol=1e-5, atol=1e-5)


# --- FIR resampling ---------------------------------------------------------------------------

def scipy_upfirdn2d(x, taps, up, down, pad, gain):
  """NVIDIA's upfirdn2d from scipy: zero-insert, full convolution, then the part NVIDIA's padding
  keeps (output q is the full convolution's sample q * down + F - 1 - pad0), along H then W."""
  f = np.asarray(taps, np.float64)
  f = f / f.sum() * math.sqrt(gain)
  y = np.asarray(x, np.float64)
  for axis in (1, 2):
    n = y.shape[axis]
    full = scipy.signal.upfirdn(f, y, up=up, down=1, axis=axis)
    full = np.concatenate([full, np.zeros_like(full)], axis=axis)  # room for trailing padding
    out_len = (n * up + pad[0] + pad[1] - len(f)) // down + 1
    start = len(f) - 1 - pad[0]
    assert start >= 0
    idx = start + down * np.arange(out_len)
    y = np.take(full, idx, axis=axis)
  return y


@pytest.mark.parametrize("taps", [(1, 3, 3, 1), (1, 2, 5, 3), (1, 4, 1)])
@pytest.mark.parametrize("up,down,pad,gain", [(2, 1, (2, 1), 4.0), (1, 2, (1, 1), 1.0),
                                              (1, 1, (2, 2), 1.0), (2, 1, (1, 2), 4.0),
                                              (1, 2, (0, 3), 1.0)])
def test_upfirdn2d_matches_scipy(taps, up, down, pad, gain):
  x = rand((2, 7, 6, 3), 11)
  want = scipy_upfirdn2d(x, taps, up, down, pad, gain)
  got = sg.upfirdn2d(x, taps, up=up, down=down, padding=pad, gain=gain)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_up_and_down_sampling_keep_a_constant_image():
  """Gain 4 when up-sampling by 2 (a quarter of the inserted samples are nonzero): the interior
  of a constant image stays constant both ways."""
  x = jnp.full((1, 8, 8, 2), 3.0)
  up = sg.upsample2d(x)
  assert up.shape == (1, 16, 16, 2)
  np.testing.assert_allclose(up[:, 2:-2, 2:-2], 3.0, rtol=1e-6)
  np.testing.assert_allclose(sg.downsample2d(x)[:, 1:-1, 1:-1], 3.0, rtol=1e-6)
  np.testing.assert_allclose(sg.upsample2d(x), scipy_upfirdn2d(x, (1, 3, 3, 1), 2, 1, (2, 1), 4),
                             rtol=1e-6)


# --- Equalized learning rate ------------------------------------------------------------------

def test_fully_connected_runtime_weight_and_lr_multiplier():
  fc = sg.FullyConnected(7, lr_mul=0.01, bias_init=0.5, activation="linear")
  x = rand((3, 20), 12)
  params = fc.init(jax.random.key(0), x)["params"]
  k = np.asarray(params["kernel"])
  # Stored N(0, 1 / lr_mul^2), bias at its init; the runtime weight is stored * lr_mul / sqrt(in).
  assert 60 < k.std() < 140
  np.testing.assert_array_equal(params["bias"], 0.5)
  want = np.asarray(x) @ (k * 0.01 / math.sqrt(20)) + 0.5 * 0.01
  np.testing.assert_allclose(fc.apply({"params": params}, x), want, rtol=1e-5, atol=1e-6)
  # The effective lr multiplier: a unit step on the stored kernel moves the runtime weight by
  # lr_mul / sqrt(fan_in), so d out / d stored = that times d out / d runtime weight.
  g = jax.grad(lambda p: jnp.sum(fc.apply({"params": p}, x)))(params)
  np.testing.assert_allclose(g["kernel"], np.asarray(x).sum(0)[:, None] * np.ones((1, 7)) *
                             0.01 / math.sqrt(20), rtol=1e-5)
  np.testing.assert_allclose(g["bias"], 3 * 0.01, rtol=1e-6)


def test_conv_runtime_weight_is_stored_over_sqrt_fan_in():
  conv = sg.Conv(4, 3, activation="linear")
  x = rand((1, 5, 5, 6), 13)
  params = conv.init(jax.random.key(1), x)["params"]
  want = np_conv_same(np.asarray(x[0]), np.asarray(params["kernel"]) / math.sqrt(6 * 9))
  np.testing.assert_allclose(conv.apply({"params": params}, x)[0], want, rtol=1e-5, atol=1e-5)


def test_init_follows_nvidia():
  g = sg.Generator(8, z_dim=16, w_dim=16, mapping_layers=2, channel_base=64)
  v = jax.jit(lambda k: g.init(k, jnp.zeros((2, 16)), noise_mode="none"))(jax.random.key(0))
  m = v["params"]["mapping_network"]
  assert 50 < float(jnp.std(m["fc0"]["kernel"])) < 200  # N(0, 1) / 0.01
  np.testing.assert_array_equal(m["fc1"]["bias"], 0.0)
  s = v["params"]["synthesis_network"]
  np.testing.assert_array_equal(s["b8_conv0"]["affine"]["bias"], 1.0)  # styles start at 1
  np.testing.assert_array_equal(s["b8_torgb"]["affine"]["bias"], 1.0)
  np.testing.assert_array_equal(s["b8_conv0"]["noise_strength"], 0.0)
  np.testing.assert_array_equal(v["w_avg"]["mapping_network"]["w_avg"], 0.0)
  assert v["noise_const"]["synthesis_network"]["b8_conv1"]["noise_const"].shape == (8, 8)
  assert 0.5 < float(jnp.std(s["b8_conv1"]["kernel"])) < 1.5  # N(0, 1), scaled at run time


# --- Mapping: w_avg and truncation ------------------------------------------------------------

def small_generator(**kw):
  kw = {"resolution": 8, "z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_base": 64, **kw}
  return sg.Generator(**kw)


def test_w_avg_updates_only_in_train_mode():
  g = small_generator()
  z = rand((5, 16), 14)
  v = filled(g, z, noise_mode="none")
  v["w_avg"] = {"mapping_network": {"w_avg": rand((16,), 15)}}
  old = np.asarray(v["w_avg"]["mapping_network"]["w_avg"])
  ws, upd = g.apply(v, z, train=True, method="mapping", mutable=["w_avg"])
  mean = np.asarray(ws[:, 0]).mean(0)
  np.testing.assert_allclose(upd["w_avg"]["mapping_network"]["w_avg"],
                             0.995 * old + 0.005 * mean, rtol=1e-5, atol=1e-6)
  # Inference leaves it alone (even when mutable); train mode without a mutable collection too.
  _, same = g.apply(v, z, train=False, method="mapping", mutable=["w_avg"])
  np.testing.assert_array_equal(same["w_avg"]["mapping_network"]["w_avg"], old)
  g.apply(v, z, train=True, method="mapping")


def test_truncation():
  g = small_generator()
  z = rand((4, 16), 16)
  v = filled(g, z, noise_mode="none")
  avg = rand((16,), 17)
  v["w_avg"] = {"mapping_network": {"w_avg": avg}}
  mapping = lambda **kw: np.asarray(g.apply(v, z, train=False, method="mapping", **kw))
  ws = mapping()
  assert ws.shape == (4, g.num_ws, 16) and g.num_ws == 4
  np.testing.assert_array_equal(mapping(truncation_psi=1.0), ws)
  np.testing.assert_allclose(mapping(truncation_psi=0.0), np.broadcast_to(avg, ws.shape), atol=1e-6)
  half = mapping(truncation_psi=0.5, truncation_cutoff=2)
  np.testing.assert_allclose(half[:, :2], avg + 0.5 * (ws[:, :2] - avg), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(half[:, 2:], ws[:, 2:])


def test_conditional_mapping_uses_labels():
  g = small_generator(c_dim=3)
  z = jnp.broadcast_to(rand((1, 16), 18), (3, 16))
  v = filled(g, z, jnp.arange(3), noise_mode="none")
  ws = g.apply(v, z, jnp.arange(3), train=False, method="mapping")
  assert float(jnp.abs(ws[0] - ws[1]).max()) > 1e-3
  one_hot = jax.nn.one_hot(jnp.arange(3), 3)
  np.testing.assert_allclose(g.apply(v, z, one_hot, train=False, method="mapping"), ws, rtol=1e-6)


# --- Minibatch standard deviation -------------------------------------------------------------

def np_mbstd(x, group, f):
  """NVIDIA's MinibatchStdLayer in NCHW numpy, transposed to NHWC at the end."""
  x = np.asarray(x, np.float64).transpose(0, 3, 1, 2)
  n, c, h, w = x.shape
  g = min(group, n)
  y = x.reshape(g, -1, f, c // f, h, w)
  y = y - y.mean(0)
  y = np.sqrt((y ** 2).mean(0) + 1e-8)
  y = y.mean(axis=(2, 3, 4)).reshape(-1, f, 1, 1)
  y = np.tile(y, (g, 1, h, w))
  return np.concatenate([x, y], 1).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("n,group,f", [(8, 4, 1), (3, 4, 1), (8, 4, 2), (2, 4, 1)])
def test_minibatch_std_matches_nvidia(n, group, f):
  """NVIDIA's statistic with our grouping: our group k is samples k*G .. k*G + G - 1, NVIDIA's
  group j every (B/G)-th sample from j, so NVIDIA's layer on the batch reordered that way, put
  back in order, is ours."""
  x = rand((n, 3, 3, 4), 19)
  g = min(group, n)
  order = np.array([k * g + i for i in range(g) for k in range(n // g)])
  expected = np_mbstd(np.asarray(x)[order], group, f)[np.argsort(order)]
  np.testing.assert_allclose(sg.minibatch_std(x, group, f), expected, rtol=1e-5, atol=1e-6)
  stats = np.asarray(sg.minibatch_std(x, group, f))[..., -f:]
  for k in range(n // g):  # one statistic per group of consecutive samples
    assert np.ptp(stats[k * g:(k + 1) * g], axis=0).max() < 1e-6


def test_minibatch_std_rejects_a_batch_the_group_does_not_divide():
  with pytest.raises(ValueError, match="multiple of the group size"):
    sg.minibatch_std(jnp.zeros((6, 2, 2, 3)), 4)


# --- Parameter counts -------------------------------------------------------------------------
# NVIDIA's counts: stylegan2-ada-pytorch (github.com/NVlabs/stylegan2-ada-pytorch, training/
# networks.py), sum(p.numel() for p in net.parameters()) for Generator(z_dim=512, w_dim=512,
# mapping num_layers=8, img_channels=3) and Discriminator(img_channels=3) with channel_max 512,
# run once on CPU (torch 2.13). 1024: config F (channel_base 32768; the paper's 30.0M / 29.0M);
# 256: train.py's `paper256` (fmaps 0.5: channel_base 16384). Buffers (w_avg, noise_const) are
# not parameters there and are other collections here.
NVIDIA_COUNTS = {  # (resolution, channel_base, c_dim): (G, G's mapping, D)
    (1024, 32768, 0): (30370060, 2101248, 29012513),
    (256, 16384, 0): (24767458, 2101248, 24001089),
    (32, 16384, 10): (21791251, 2369024, 23876096),
    (16, 256, 5): (2603582, 2366464, 178256),
}


def count(tree):
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("key", list(NVIDIA_COUNTS), ids=lambda k: f"{k[0]}_cb{k[1]}_c{k[2]}")
def test_parameter_counts_equal_nvidia(key):
  res, cbase, c_dim = key
  labels = jnp.zeros((2,), jnp.int32) if c_dim else None
  g = sg.Generator(res, channel_base=cbase, c_dim=c_dim)
  d = sg.Discriminator(res, channel_base=cbase, c_dim=c_dim)
  gv = jax.eval_shape(lambda k: g.init(k, jnp.zeros((2, 512)), labels), jax.random.key(0))
  dv = jax.eval_shape(lambda k: d.init(k, jnp.zeros((2, res, res, 3)), labels), jax.random.key(0))
  assert (count(gv["params"]), count(gv["params"]["mapping_network"]), count(dv["params"])) == \
      NVIDIA_COUNTS[key]
  assert set(gv) == {"params", "w_avg", "noise_const"} and set(dv) == {"params"}


# --- Whole networks ---------------------------------------------------------------------------

# Every resolution, conditional and not, float32 and bfloat16; gradients where the compile is
# cheap (XLA:CPU compiles the networks' backward passes slowly on 2 shared cores).
CASES = [(8, 0, jnp.float32, True), (8, 3, jnp.bfloat16, True), (16, 3, jnp.float32, False),
         (32, 0, jnp.bfloat16, False)]


@pytest.mark.parametrize("res,c_dim,dtype,grads", CASES,
                         ids=[f"{r}_c{c}_{jnp.dtype(d).name}" for r, c, d, _ in CASES])
def test_networks_shapes_dtypes_and_finite_gradients(res, c_dim, dtype, grads):
  kw = dict(c_dim=c_dim, channel_base=64, channel_max=16, dtype=dtype, conv_clamp=256)
  g = sg.Generator(res, img_channels=3, z_dim=8, w_dim=8, mapping_layers=2, **kw)
  d = sg.Discriminator(res, img_channels=3, mapping_layers=2, **kw)
  z, labels = rand((4, 8), 20), (jnp.arange(4) % c_dim if c_dim else None)
  gv, dv = filled(g, z, labels), filled(d, jnp.zeros((4, res, res, 3)), labels)

  def losses(gp, dp, z, key):
    img, upd = g.apply({**gv, "params": gp}, z, labels, train=True, rngs={"noise": key},
                       mutable=["w_avg"])
    logits = d.apply({"params": dp}, img, labels)
    return jnp.mean(jax.nn.softplus(-logits)), (img, logits, upd)

  args = (gv["params"], dv["params"], z, jax.random.key(3))
  if not grads:
    loss, (img, logits, upd) = jax.jit(losses)(*args)
  else:
    (loss, (img, logits, upd)), (gg, dg) = jax.jit(jax.value_and_grad(losses, (0, 1),
                                                                      has_aux=True))(*args)
    for tree in (gg, dg):
      assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))
    # Gradients reach the mapping (lr-scaled), the styles and the noise strengths.
    s = gg["synthesis_network"]
    assert float(jnp.abs(gg["mapping_network"]["fc0"]["kernel"]).max()) > 0
    assert float(jnp.abs(s[f"b{res}_conv1"]["affine"]["kernel"]).max()) > 0
    assert float(jnp.abs(s[f"b{res}_conv1"]["noise_strength"])) > 0
  assert img.shape == (4, res, res, 3) and img.dtype == jnp.float32
  assert logits.shape == (4,) and logits.dtype == jnp.float32
  assert bool(jnp.isfinite(loss)) and bool(jnp.all(jnp.isfinite(img)))
  assert float(jnp.abs(img).max()) <= 256  # conv_clamp
  assert float(jnp.abs(upd["w_avg"]["mapping_network"]["w_avg"]).max()) > 0


def test_noise_modes_and_path_length_gradient():
  g = small_generator()
  z = rand((2, 16), 21)
  v = filled(g, z)
  run = jax.jit(lambda key, mode: g.apply(v, z, train=False, noise_mode=mode,
                                          rngs={"noise": key}), static_argnums=1)
  const = run(jax.random.key(0), "const")
  np.testing.assert_array_equal(const, run(jax.random.key(1), "const"))  # deterministic
  assert float(jnp.abs(run(jax.random.key(0), "random") - run(jax.random.key(1), "random")).max()) > 1e-4
  assert float(jnp.abs(const - run(jax.random.key(0), "none")).max()) > 1e-4
  with pytest.raises(ValueError, match='"noise" RNG stream'):
    g.apply(v, z, train=False)
  # Fused and batched modulated convs give one network.
  fused = jax.jit(lambda: small_generator(fused_modconv=True).apply(v, z, train=False,
                                                                    noise_mode="const"))()
  np.testing.assert_allclose(fused, const, rtol=1e-4, atol=1e-4)
  # The path-length regularizer's d(image . y) / d ws, and style mixing through `synthesis`.
  ws = g.apply(v, z, train=False, method="mapping")
  y = rand((2, 8, 8, 3), 22)
  synthesis = lambda w: g.apply(v, w, noise_mode="const", method="synthesis")
  grad = jax.jit(jax.grad(lambda w: jnp.sum(synthesis(w) * y)))(ws)
  assert grad.shape == ws.shape and bool(jnp.all(jnp.isfinite(grad)))
  assert float(jnp.abs(grad).min(axis=-1).max()) > 0  # every w row matters
  np.testing.assert_allclose(jax.jit(synthesis)(ws), const, rtol=1e-5, atol=1e-5)


def test_accelerator_lowering_uses_native_and_grouped_convs():
  """Traced for GPUs/TPUs the nets take XLA's convolutions (grouped for the fused form); traced
  for CPU the batched form's convs are matrix products."""
  g = small_generator(resolution=8)
  z = rand((2, 16), 23)
  v = jax.eval_shape(lambda: g.init(jax.random.key(0), z))

  def exported(platform, train):
    with layers.lowering_for(platform):
      fn = jax.jit(lambda v, z: g.apply(v, z, train=train, noise_mode="const"))
      return jax.export.export(fn, platforms=("cuda", "tpu"))(v, z).mlir_module()

  infer = exported("cuda", train=False)
  assert "feature_group_count = 2" in infer
  assert "stablehlo.convolution" in exported("tpu", train=True)
  assert "feature_group_count = 2" not in exported("cuda", train=True)
  assert "stablehlo.convolution" not in exported("cpu", train=True)


# --- The same function as NVIDIA's networks ---------------------------------------------------
# Needs torch and a checkout of github.com/NVlabs/stylegan2-ada-pytorch named by
# $STYLEGAN2_ADA_PYTORCH (nothing is downloaded); their weights are copied into ours.

NV_DIR = os.environ.get("STYLEGAN2_ADA_PYTORCH")


def _port_fc(sd, prefix):
  out = {"kernel": sd[prefix + ".weight"].T}
  if prefix + ".bias" in sd:
    out["bias"] = sd[prefix + ".bias"]
  return out


def _port_conv(sd, prefix, bias=True):
  out = {"kernel": np.transpose(sd[prefix + ".weight"], (2, 3, 1, 0))}  # OIHW -> HWIO
  if bias:
    out["bias"] = sd[prefix + ".bias"]
  return out


@pytest.mark.skipif(not NV_DIR, reason="set STYLEGAN2_ADA_PYTORCH to a checkout of NVIDIA's code")
@pytest.mark.parametrize("c_dim", [0, 4])
def test_same_outputs_as_nvidia(c_dim):
  torch = pytest.importorskip("torch")
  sys.path.insert(0, NV_DIR)
  from training import networks  # noqa: E402  (NVIDIA's, run as-is)
  res, cb, zd, ml = 16, 256, 32, 2
  torch.manual_seed(0)
  tg = networks.Generator(z_dim=zd, c_dim=c_dim, w_dim=zd, img_resolution=res, img_channels=3,
                          mapping_kwargs=dict(num_layers=ml),
                          synthesis_kwargs=dict(channel_base=cb, channel_max=512)).eval()
  td = networks.Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, channel_base=cb,
                              channel_max=512, mapping_kwargs=dict(num_layers=ml)).eval()
  with torch.no_grad():
    for name, p in list(tg.named_parameters()) + list(td.named_parameters()):
      if name.endswith("noise_strength") or name.endswith("bias"):
        p.normal_(0, 0.2)
    tg.mapping.w_avg.normal_()
  gsd = {k: v.numpy().copy() for k, v in tg.state_dict().items()}
  dsd = {k: v.numpy().copy() for k, v in td.state_dict().items()}
  mapping = {f"fc{i}": _port_fc(gsd, f"mapping.fc{i}") for i in range(ml)}
  if c_dim:
    mapping["embed"] = _port_fc(gsd, "mapping.embed")
  syn, noise = {"const": np.transpose(gsd["synthesis.b4.const"], (1, 2, 0))}, {}
  for r in (4, 8, 16):
    for c in ["conv1"] if r == 4 else ["conv0", "conv1"]:
      t = f"synthesis.b{r}.{c}"
      syn[f"b{r}_{c}"] = {"affine": _port_fc(gsd, t + ".affine"), **_port_conv(gsd, t),
                          "noise_strength": gsd[t + ".noise_strength"]}
      noise[f"b{r}_{c}"] = {"noise_const": gsd[t + ".noise_const"]}
    syn[f"b{r}_torgb"] = {"affine": _port_fc(gsd, f"synthesis.b{r}.torgb.affine"),
                          **_port_conv(gsd, f"synthesis.b{r}.torgb")}
  gv = {"params": {"mapping_network": mapping, "synthesis_network": syn},
        "noise_const": {"synthesis_network": noise},
        "w_avg": {"mapping_network": {"w_avg": gsd["mapping.w_avg"]}}}
  dp = {"b16_fromrgb": _port_conv(dsd, "b16.fromrgb"), "b4_conv": _port_conv(dsd, "b4.conv"),
        "b4_out": _port_fc(dsd, "b4.out")}
  for r in (16, 8):
    dp.update({f"b{r}_conv0": _port_conv(dsd, f"b{r}.conv0"),
               f"b{r}_conv1": _port_conv(dsd, f"b{r}.conv1"),
               f"b{r}_skip": _port_conv(dsd, f"b{r}.skip", bias=False)})
  w = dsd["b4.fc.weight"]  # [out, C * 4 * 4] flattened NCHW -> ours flattens NHWC
  dp["b4_fc"] = {"kernel": np.transpose(w.reshape(w.shape[0], -1, 4, 4), (2, 3, 1, 0)).reshape(
      -1, w.shape[0]), "bias": dsd["b4.fc.bias"]}
  if c_dim:
    dp["mapping"] = {"embed": _port_fc(dsd, "mapping.embed"),
                     **{f"fc{i}": _port_fc(dsd, f"mapping.fc{i}") for i in range(ml)}}

  z = torch.randn(4, zd)
  c = torch.nn.functional.one_hot(torch.arange(4) % c_dim, c_dim).float() if c_dim else None
  labels = jnp.arange(4) % c_dim if c_dim else None
  x = torch.randn(4, 3, res, res)
  with torch.no_grad():
    img_t = tg(z, c, truncation_psi=0.7, truncation_cutoff=3, noise_mode="const").numpy()
    logits_t = td(x, c).numpy()[:, 0]
  for impl in IMPLS:
    for fused in (False, True):
      g = sg.Generator(res, z_dim=zd, w_dim=zd, c_dim=c_dim, mapping_layers=ml, channel_base=cb,
                       fused_modconv=fused, impl=impl)
      img = g.apply(gv, jnp.asarray(z.numpy()), labels, train=False, truncation_psi=0.7,
                    truncation_cutoff=3, noise_mode="const")
      np.testing.assert_allclose(img, img_t.transpose(0, 2, 3, 1), rtol=1e-4, atol=2e-5)
    d = sg.Discriminator(res, c_dim=c_dim, channel_base=cb, mapping_layers=ml, impl=impl)
    logits = d.apply({"params": dp}, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)), labels)
    np.testing.assert_allclose(logits, logits_t, rtol=1e-4, atol=1e-5)
