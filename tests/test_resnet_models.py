"""The ResNet GANs (gan_jax/models/resnet.py) and their layers: spectral normalization against
numpy's SVD, the fused resampling convs against their plain compositions, conditional batch norm
and the projection term against numpy, BigGAN's orthogonal penalty against its formula and
finite differences, and SNGAN-32's parameter counts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.losses.regularizers import orthogonal_penalty
from gan_jax.models import layers, resnet


def rand(shape, seed, scale=1.0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, jnp.float32)


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# --- Spectral normalization ---------------------------------------------------------------------

SN_LAYERS = [
    ("dense", layers.SNDense(6), (2, 5)),
    ("conv", layers.SNConv(4, 3), (2, 6, 6, 3)),
    ("embed", layers.SNEmbed(7, 5), None),
]


def _sn_inputs(shape):
  return jnp.array([0, 3], jnp.int32) if shape is None else rand(shape, 1)


@pytest.mark.parametrize("name,layer,shape", SN_LAYERS, ids=[n for n, _, _ in SN_LAYERS])
def test_spectral_norm_converges_to_the_top_singular_value(name, layer, shape):
  x = _sn_inputs(shape)
  variables = layer.init(jax.random.key(0), x, train=True)
  w = next(iter(variables["params"].values()))
  w = variables["params"]["embedding" if name == "embed" else "kernel"]
  top = np.linalg.svd(np.asarray(w).reshape(-1, w.shape[-1]))[1][0]

  @jax.jit
  def train_step(spectral):
    _, upd = layer.apply({"params": variables["params"], "spectral": spectral}, x, train=True,
                         mutable=["spectral"])
    return upd["spectral"]

  spectral = variables["spectral"]
  for _ in range(50):
    spectral = train_step(spectral)
  assert float(spectral["sigma"]) == pytest.approx(top, rel=1e-4)

  # Inference divides by the stored sigma and leaves the collection alone.
  before = jax.tree.map(np.asarray, spectral)
  y, upd = layer.apply({"params": variables["params"], "spectral": spectral}, x, train=False,
                       mutable=["spectral"])
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, upd["spectral"]), before)
  w_bar = np.asarray(w) / before["sigma"]
  assert np.linalg.svd(w_bar.reshape(-1, w.shape[-1]))[1][0] == pytest.approx(1.0, rel=1e-4)
  if name == "dense":
    np.testing.assert_allclose(y, np.asarray(x) @ w_bar + variables["params"]["bias"], rtol=1e-5,
                               atol=1e-6)
  if name == "embed":
    np.testing.assert_allclose(y, w_bar[np.asarray(x)], rtol=1e-6)


def test_spectral_norm_gradient_treats_u_and_v_as_constants():
  """d(sigma)/dW = v u^T when u, v are constants (Miyato et al. 2018, eq. 12's sigma term):
  the normalized weight's gradient is (G - <G, W_bar> v u^T) / sigma for upstream G."""
  layer = layers.SNDense(4, use_bias=False)
  x = rand((3, 5), 2)
  variables = layer.init(jax.random.key(0), x, train=True)
  w = np.asarray(variables["params"]["kernel"], np.float64)  # [in, out] = W^T
  upstream = np.asarray(rand((3, 4), 3), np.float64)
  loss = lambda p: jnp.sum(layer.apply({"params": p, "spectral": variables["spectral"]}, x,
                                       train=True, mutable=["spectral"])[0] * upstream)
  grad = np.asarray(jax.grad(loss)(variables["params"])["kernel"])
  u = np.asarray(variables["spectral"]["u"], np.float64)
  v = w @ u
  v /= np.linalg.norm(v)
  u = w.T @ v
  u /= np.linalg.norm(u)
  sigma = v @ w @ u
  g_bar = np.asarray(x, np.float64).T @ upstream  # dL / dW_bar
  expected = (g_bar - np.sum(g_bar * w / sigma) * np.outer(v, u)) / sigma
  np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_spectral_norm_leaves_an_immutable_collection_alone():
  layer = layers.SNDense(3)
  x = rand((2, 4), 0)
  variables = layer.init(jax.random.key(0), x, train=True)
  y = layer.apply(variables, x, train=True)  # train mode, collection not mutable: no error
  assert y.shape == (2, 3)


# --- Fused resampling convs ---------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["conv", "gemm"])
def test_fused_resampling_convs_equal_their_compositions(impl):
  x, k = rand((2, 6, 8, 5), 0), rand((3, 3, 5, 4), 1, 0.3)
  np.testing.assert_allclose(layers.upsample_conv3x3(x, k, impl),
                             layers.conv_same(layers.upsample2x(x), k, "conv"), rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(layers.conv3x3_avg_pool(x, k, impl),
                             layers.avg_pool2x(layers.conv_same(x, k, "conv")), rtol=1e-4,
                             atol=1e-5)
  x_up = np.repeat(np.repeat(np.asarray(x), 2, 1), 2, 2)
  np.testing.assert_array_equal(layers.upsample2x(x), x_up)
  # and their gradients
  for fused, plain in [(layers.upsample_conv3x3,
                        lambda x, k, i: layers.conv_same(layers.upsample2x(x), k, "conv")),
                       (layers.conv3x3_avg_pool,
                        lambda x, k, i: layers.avg_pool2x(layers.conv_same(x, k, "conv")))]:
    g1 = jax.grad(lambda x, k: jnp.sum(jnp.sin(fused(x, k, impl))), (0, 1))(x, k)
    g2 = jax.grad(lambda x, k: jnp.sum(jnp.sin(plain(x, k, impl))), (0, 1))(x, k)
    for a, b in zip(g1, g2):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# --- Conditional batch norm and the projection term -------------------------------------------

def test_conditional_batch_norm_by_hand():
  x = rand((4, 2, 2, 3), 0)
  labels = jnp.array([0, 2, 1, 2])
  cbn = resnet.ConditionalBatchNorm(num_classes=3)
  variables = cbn.init(jax.random.key(0), x, labels, train=True)
  gain, bias = rand((3, 3), 1), rand((3, 3), 2)
  params = {"gain": {"embedding": gain}, "bias": {"embedding": bias}}
  y, upd = cbn.apply({"params": params, **{k: v for k, v in variables.items() if k != "params"}},
                     x, labels, train=True, mutable=["batch_stats"])
  xn = np.asarray(x, np.float64)
  mean, var = xn.mean((0, 1, 2)), xn.var((0, 1, 2))
  g, b = np.asarray(gain)[labels], np.asarray(bias)[labels]
  expected = (xn - mean) / np.sqrt(var + 1e-5) * (1 + g[:, None, None]) + b[:, None, None]
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(upd["batch_stats"]["BatchNorm_0"]["mean"], 0.1 * mean, rtol=1e-5)

  # BigGAN's form: gain and bias a linear map of a vector condition (no SN here).
  cond = rand((4, 5), 3)
  cbn = resnet.ConditionalBatchNorm(vector_cond=True)
  variables = cbn.init(jax.random.key(0), x, cond, train=True)
  wg, wb = rand((5, 3), 4), rand((5, 3), 5)
  params = {"gain": {"kernel": wg}, "bias": {"kernel": wb}}
  y, _ = cbn.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, cond,
                   train=True, mutable=["batch_stats"])
  g, b = np.asarray(cond) @ np.asarray(wg), np.asarray(cond) @ np.asarray(wb)
  expected = (xn - mean) / np.sqrt(var + 1e-5) * (1 + g[:, None, None]) + b[:, None, None]
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_projection_term_by_hand():
  """logit = linear(h) + <embed(y) / sigma_embed, h>, h = D's last block output ReLU'd and
  sum-pooled."""
  d = resnet.Discriminator(32, 8, num_classes=5)
  x, labels = rand((3, 32, 32, 3), 0), jnp.array([4, 0, 2])
  variables = jax.jit(lambda: d.init(jax.random.key(0), x, labels, train=True))()
  logits, state = d.apply(variables, x, labels, train=False, capture_intermediates=lambda mdl, _:
                          isinstance(mdl, resnet.DBlock))
  features = state["intermediates"]["DBlock_3"]["__call__"][0]
  h = np.maximum(np.asarray(features, np.float64), 0).sum((1, 2))
  p, s = variables["params"], variables["spectral"]
  w = np.asarray(p["SNDense_0"]["kernel"]) / float(s["SNDense_0"]["sigma"])
  e = np.asarray(p["SNEmbed_0"]["embedding"]) / float(s["SNEmbed_0"]["sigma"])
  expected = h @ w[:, 0] + p["SNDense_0"]["bias"][0] + np.sum(e[np.asarray(labels)] * h, -1)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


# --- Orthogonal regularization ----------------------------------------------------------------

def _ortho_params():
  return {"dense": {"kernel": rand((5, 4), 0), "bias": rand((4,), 1)},
          "conv": {"kernel": rand((3, 3, 2, 3), 2, 0.5)},
          "shared": {"embedding": rand((6, 4), 3)}, "gamma": jnp.float32(0.5)}


def test_orthogonal_penalty_formula():
  params = _ortho_params()
  expected = 0.0
  for w in (params["dense"]["kernel"], params["conv"]["kernel"]):
    m = np.asarray(w, np.float64).reshape(-1, w.shape[-1]).T  # [out, -1]
    off = (m @ m.T) * (1 - np.eye(m.shape[0]))
    expected += 0.5 * np.sum(off ** 2)
  assert float(orthogonal_penalty(params)) == pytest.approx(expected, rel=1e-5)
  # gradient: BigGAN's 2 (W W^T * (1 - I)) W per kernel, zero for the skipped leaves
  grads = jax.grad(orthogonal_penalty)(params)
  m = np.asarray(params["dense"]["kernel"], np.float64).T
  np.testing.assert_allclose(grads["dense"]["kernel"].T,
                             2 * ((m @ m.T) * (1 - np.eye(4))) @ m, rtol=1e-4)
  assert not np.any(grads["shared"]["embedding"]) and not np.any(grads["dense"]["bias"])


def test_orthogonal_penalty_gradient_by_finite_differences():
  params = _ortho_params()
  grads = jax.grad(orthogonal_penalty)(params)
  f = jax.jit(orthogonal_penalty)
  rng = np.random.default_rng(0)
  eps = 1e-2  # central differences of a quartic: error ~eps^2, float32 rounding ~1e-4 / eps
  for key in ("dense", "conv"):
    w = np.asarray(params[key]["kernel"])
    for _ in range(4):
      idx = tuple(rng.integers(0, s) for s in w.shape)
      plus, minus = w.copy(), w.copy()
      plus[idx] += eps
      minus[idx] -= eps
      fd = (float(f({**params, key: {**params[key], "kernel": plus}})) -
            float(f({**params, key: {**params[key], "kernel": minus}}))) / (2 * eps)
      assert float(grads[key]["kernel"][idx]) == pytest.approx(fd, rel=2e-3, abs=2e-2)


# --- Whole networks -----------------------------------------------------------------------------

def test_sngan32_parameter_counts():
  """SNGAN's CIFAR-10 ResNets (Miyato et al. 2018, Table 4) at G width 256, D width 128."""
  z, x = jnp.zeros((2, 128)), jnp.zeros((2, 32, 32, 3))
  g = jax.eval_shape(lambda: resnet.Generator(32, 3, 256, 128).init(jax.random.key(0), z,
                                                                    train=True))
  d = jax.eval_shape(lambda: resnet.Discriminator(32, 128).init(jax.random.key(0), x, train=True))
  assert count(g["params"]) == 4_276_739
  assert count(d["params"]) == 1_053_825
  assert "spectral" in d and "spectral" not in g


def test_biggan_layouts_build():
  """The 64 and 128 layouts: parameter shapes only (eval_shape), BigGAN's channel ladder."""
  for res, n in ((64, 4), (128, 5)):
    g = resnet.Generator(res, 3, 8, 20 * (n + 1), num_classes=3, spectral_norm=True,
                         shared_dim=8, attention_res=res // 2)
    z, y, x = jnp.zeros((2, 20 * (n + 1))), jnp.zeros((2,), jnp.int32), jnp.zeros((2, res, res, 3))
    gv = jax.eval_shape(lambda: g.init(jax.random.key(0), z, y, train=True))
    out = jax.eval_shape(lambda v: g.apply(v, z, y, train=False), gv)
    assert out.shape == (2, res, res, 3)
    assert gv["params"]["SNDense_0"]["kernel"].shape == (20, 4 * 4 * 16 * 8)
    d = resnet.Discriminator(res, 8, num_classes=3, attention_res=res // 2)
    dv = jax.eval_shape(lambda: d.init(jax.random.key(0), x, y, train=True))
    assert jax.eval_shape(lambda v: d.apply(v, x, y, train=False), dv).shape == (2,)
    assert dv["params"]["SNDense_0"]["kernel"].shape == (16 * 8, 1)
    assert "SelfAttention_0" in dv["params"] and "SelfAttention_0" in gv["params"]


VARIANTS = {
    "unconditional": dict(),
    "conditional": dict(num_classes=5),
    "biggan": dict(num_classes=5, shared_dim=8, spectral_norm=True, attention_res=16),
    "hierarchical_uncond": dict(shared_dim=8, spectral_norm=True),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_small_networks_run(variant):
  kw = VARIANTS[variant]
  g = resnet.Generator(32, 3, 16, 32, **kw)
  d = resnet.Discriminator(32, 16, num_classes=kw.get("num_classes", 0),
                           attention_res=kw.get("attention_res", 0))
  z, labels = rand((4, 32), 0), jnp.array([0, 1, 4, 2])

  @jax.jit
  def run(key):
    gv = g.init(key, z, labels, train=True)
    cols = [c for c in gv if c != "params"]
    img, gcols = g.apply(gv, z, labels, train=True, mutable=cols)
    dv = d.init(key, img, labels, train=True)
    logits, dcols = d.apply(dv, img, labels, train=True, mutable=["spectral"])
    grads = jax.grad(lambda p: jnp.sum(d.apply({**dv, "params": p}, img, labels, train=True,
                                                mutable=["spectral"])[0]))(dv["params"])
    return gv, img, gcols, dv, logits, dcols, grads

  gv, img, gcols, dv, logits, dcols, grads = run(jax.random.key(0))
  assert img.shape == (4, 32, 32, 3) and img.dtype == jnp.float32
  assert np.all(np.abs(img) <= 1) and np.std(img) > 0
  assert logits.shape == (4,) and logits.dtype == jnp.float32 and np.all(np.isfinite(logits))
  assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(grads))
  assert "spectral" in dv
  assert ("spectral" in gv) == bool(kw.get("spectral_norm"))
  # the train-mode forward moved the power-iteration vectors and the batch statistics
  u = lambda c: c["spectral"]["DBlock_1"]["SNConv_0"]["u"]
  assert not np.allclose(u(dcols), u(dv))
  if kw.get("attention_res"):
    assert "SelfAttention_0" in gv["params"] and "SelfAttention_0" in dv["params"]
  if kw.get("shared_dim") and kw.get("num_classes"):
    assert gv["params"]["shared"]["embedding"].shape == (5, 8)
    assert gv["params"]["GBlock_0"]["ConditionalBatchNorm_0"]["gain"]["kernel"].shape == (16, 16)


def test_bad_settings_say_so():
  z = jnp.zeros((2, 30))
  with pytest.raises(ValueError, match="resolution"):
    resnet.Generator(48).init(jax.random.key(0), z, train=True)
  with pytest.raises(ValueError, match="equal chunks"):
    resnet.Generator(32, latent_dim=30, shared_dim=4, width=8).init(jax.random.key(0), z,
                                                                    train=True)
  with pytest.raises(ValueError, match="attention_res"):
    resnet.Discriminator(32, 8, attention_res=4).init(jax.random.key(0),
                                                      jnp.zeros((2, 32, 32, 3)), train=True)
