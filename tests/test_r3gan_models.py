"""R3GAN's networks (gan_jax/models/r3gan.py): the authors' parameter counts for their presets,
shapes and label forms, the fix-up init (every block the identity at first), the CPU grouped
conv's custom derivatives against XLA's to the third order, bfloat16 stages, and, where torch is
installed, the same outputs and input gradients as the PyTorch peer
(benchmarks/peers/torch_r3gan.py) with the same weights."""
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.models import r3gan

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(REPO, "benchmarks", "peers", "torch_r3gan.py")

# The authors' train.py presets in G order (widths, cardinality, blocks, classes, G / D class
# embedding) and the (G, D) parameter counts their R3GAN/Networks.py gives for them (noise 64,
# expansion 2, kernel 3).
PRESETS = {
    "CIFAR10": (((768,) * 4, (96,) * 4, (2,) * 4, 10, 64, 768), (20_781_952, 21_280_512)),
    "FFHQ-64": (((768,) * 4 + (384,), (96,) * 4 + (48,), (2,) * 5, 0, 0, 0),
                (22_429_824, 22_381_440)),
    "FFHQ-256": (((768,) * 4 + (384, 192, 96), (96,) * 4 + (48, 24, 12), (2,) * 7, 0, 0, 0),
                 (23_057_952, 23_009_568)),
}

# A tiny net: width changes in both directions of D, groups of 4 and 2, 16x16 images.
TINY = dict(widths=(16, 16, 8), cardinality=(4, 4, 2), blocks=(2, 1, 1))
Z, CLASSES = 8, 10


def nets(num_classes=0):
  return (r3gan.Generator(num_classes=num_classes, class_dim=6 if num_classes else 0, **TINY),
          r3gan.Discriminator(num_classes=num_classes, class_dim=12 if num_classes else 0,
                              **TINY))


def count(model, *args):
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *args))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))


def perturbed(params, seed):
  """params plus N(0, 0.1^2) noise: no zero-init weight or bias hides a wrong wiring."""
  leaves, tree = jax.tree.flatten(params)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(tree, [p + jnp.asarray(rng.normal(size=p.shape) * 0.1, p.dtype)
                                   for p in leaves])


@pytest.fixture(scope="module")
def tiny():
  """Conditional tiny G and D (their jitted apply) with perturbed parameters, a batch of z,
  labels and G's images."""
  G, D = nets(CLASSES)
  z = jax.random.normal(jax.random.key(1), (3, Z))
  labels = jnp.array([1, 4, 9], jnp.int32)
  gp = perturbed(jax.jit(G.init)(jax.random.key(2), z, labels)["params"], 0)
  g, d = jax.jit(G.apply), jax.jit(D.apply)
  images = g({"params": gp}, z, labels)
  dp = perturbed(jax.jit(D.init)(jax.random.key(3), images, labels)["params"], 1)
  return g, d, gp, dp, z, labels, images


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_parameter_counts_match_the_authors(preset):
  (widths, cards, blocks, classes, g_dim, d_dim), expected = PRESETS[preset]
  kw = dict(widths=widths, cardinality=cards, blocks=blocks, num_classes=classes)
  side = 4 * 2 ** (len(widths) - 1)
  labels = jnp.zeros((1,), jnp.int32)
  G = r3gan.Generator(class_dim=g_dim, **kw)
  D = r3gan.Discriminator(class_dim=d_dim, **kw)
  assert (count(G, jnp.zeros((1, 64)), labels),
          count(D, jnp.zeros((1, side, side, 3)), labels)) == expected


def test_shapes_dtypes_and_label_forms(tiny):
  g, d, gp, dp, z, labels, images = tiny
  assert images.shape == (3, 16, 16, 3) and images.dtype == jnp.float32
  logits = d({"params": dp}, images, labels)
  assert logits.shape == (3,) and logits.dtype == jnp.float32
  onehot = jax.nn.one_hot(labels, CLASSES)
  np.testing.assert_allclose(g({"params": gp}, z, onehot), images, atol=1e-6)
  np.testing.assert_allclose(d({"params": dp}, images, onehot), logits, atol=1e-6)
  # A mix of classes goes through the same bias-free embeddings: D's logit, a dot product
  # with the class embedding, is the mix of the classes' logits.
  mix = 0.25 * onehot + 0.75 * jax.nn.one_hot(jnp.zeros(3, jnp.int32), CLASSES)
  np.testing.assert_allclose(
      d({"params": dp}, images, mix),
      0.25 * logits + 0.75 * d({"params": dp}, images, jnp.zeros(3, jnp.int32)),
      rtol=1e-5, atol=1e-6)
  mixed = g({"params": gp}, z, mix)
  assert mixed.shape == images.shape and not np.allclose(mixed, images, atol=1e-3)
  assert gp["embed"].shape == (CLASSES, 6) and dp["embed"].shape == (CLASSES, 12)
  with pytest.raises(ValueError, match="conditional"):
    g({"params": gp}, z)

  G0, D0 = nets()  # unconditional: no embeddings, labels ignored, D's basis maps to one logit
  gp0 = jax.eval_shape(lambda: G0.init(jax.random.key(0), z))["params"]
  out = jax.eval_shape(G0.apply, {"params": gp0}, z, labels)
  assert (out.shape, out.dtype) == ((3, 16, 16, 3), jnp.float32) and "embed" not in gp0
  dp0 = jax.eval_shape(D0.init, jax.random.key(0), out)["params"]
  logits0 = jax.eval_shape(D0.apply, {"params": dp0}, out)
  assert (logits0.shape, logits0.dtype) == ((3,), jnp.float32) and "embed" not in dp0
  assert dp0["basis_linear"].shape == (16, 1)  # D's last stage is G's first: width 16


def test_init_blocks_are_the_identity_with_fixup_gains():
  width, groups, total = 64, 8, 8
  block = r3gan.ResidualBlock(2, groups, 3, total)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, width))
  p = block.init(jax.random.key(1), x)["params"]
  assert not np.any(p["conv3"]) and not np.any(p["bias1"]) and not np.any(p["bias2"])
  np.testing.assert_array_equal(block.apply({"params": p}, x), x)
  gain = math.sqrt(2 / 1.04) * total ** -0.25
  for name, fan_in in (("conv1", width), ("conv2", 9 * 2 * width // groups)):
    assert np.std(p[name]) == pytest.approx(gain / math.sqrt(fan_in), rel=0.05)
  assert p["conv2"].shape == (3, 3, 16, 128)

  # In whole nets: every block's last conv is zero, so G is basis -> resampling -> 1x1 convs.
  G, D = nets()
  z = jax.random.normal(jax.random.key(2), (2, Z))
  gp = jax.jit(G.init)(jax.random.key(3), z)["params"]
  dp = jax.jit(D.init)(jax.random.key(4), jnp.zeros((2, 16, 16, 3)))["params"]
  blocks = [v for params in (gp, dp) for k, v in params.items() if "_block" in k]
  assert len(blocks) == 2 * sum(TINY["blocks"])
  assert all(not np.any(b["conv3"]) for b in blocks)
  assert np.std(gp["basis"]) == pytest.approx(1.0, rel=0.2)
  x = gp["basis"][None] * (z @ gp["basis_linear"])[:, None, None, :]
  for i in (1, 2):
    if f"stage{i}_transition" in gp:
      x = x @ gp[f"stage{i}_transition"][0, 0]
    x = r3gan.upsample2d(x)
  np.testing.assert_allclose(jax.jit(G.apply)({"params": gp}, z), x @ gp["aggregate"][0, 0],
                             atol=1e-5)


def test_runs_vmapped_with_their_own_kernels_run_one_conv_each():
  # a gamma sweep vmaps the step over copies whose kernels differ: batched, a native conv of
  # per-copy kernels would become a grouped conv (XLA:CPU's slow path); each copy runs its own
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 2, 5, 6, 16)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, 3, 4, 16)), jnp.float32)
  conv = jax.vmap(lambda x, k: r3gan.grouped_conv(x, k, 4, "gemm"))
  program = jax.jit(conv).lower(x, k).as_text()
  assert program.count("stablehlo.convolution") == program.count("feature_group_count = 1") == 3
  expected = jax.vmap(lambda x, k: r3gan.grouped_conv(x, k, 4, "conv"))(x, k)
  np.testing.assert_allclose(conv(x, k), expected, rtol=1e-5, atol=1e-5)


# block-diagonal (native; one conv per run in a sweep of runs), and many groups as col2im products
# or, on sides that are multiples of 4, Winograd F(4x4, 3x3)
@pytest.mark.parametrize("channels,groups,in_sweep,sides,form", [
    (16, 4, False, (5, 6), "dense"), (16, 4, True, (5, 6), "dense"),
    (24, 24, False, (5, 6), "col2im"), (40, 20, False, (4, 8), "winograd"),
    (40, 20, True, (4, 8), "winograd")])
def test_cpu_grouped_conv_derivatives_match_xla(channels, groups, in_sweep, sides, form):
  rng = np.random.default_rng(0)
  rand = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  runs = 2 if in_sweep else 1  # a sweep: runs with their own inputs and kernels, vmapped
  xs, w = rand(runs, 2, *sides, channels), rand(2, *sides, channels)
  ks = rand(runs, 3, 3, channels // groups, channels) * 0.3
  assert r3gan._form(xs[0], ks[0], groups) == form

  def penalty(x, k, impl):  # R1's shape: the input gradient's squared norm, plus a nonlinearity
    gx = jax.grad(lambda v: jnp.sum(r3gan.grouped_conv(v, k, groups, impl) * w))(x)
    return jnp.sum(gx ** 2) + jnp.sum(r3gan.grouped_conv(x, k, groups, impl) ** 3)

  def derivatives(x, k, impl):  # second (in x and k) and third order
    third = jax.grad(lambda kk: jnp.sum(jax.grad(penalty, 1)(x, kk, impl) ** 2))(k)
    return jax.grad(penalty, (0, 1))(x, k, impl) + (third,)

  ours = jax.jit(jax.vmap(lambda x, k: derivatives(x, k, "gemm")))(xs, ks)
  for run in range(runs):
    xla = jax.jit(derivatives, static_argnums=2)(xs[run], ks[run], "conv")
    for got, want in zip(ours, xla):
      np.testing.assert_allclose(got[run], want, rtol=1e-5,
                                 atol=1e-5 * float(jnp.max(jnp.abs(want))))


def test_bf16_stages_stay_close_to_float32(tiny):
  _, d, gp, dp, z, labels, images = tiny
  scale = float(jnp.max(jnp.abs(images)))
  for kw in (dict(bf16_stages=(-1,)), dict(dtype=jnp.bfloat16)):  # the last stage; all
    Gb = r3gan.Generator(num_classes=CLASSES, class_dim=6, **TINY, **kw)
    out = jax.jit(Gb.apply)({"params": gp}, z, labels)
    assert out.dtype == jnp.float32
    err = float(jnp.max(jnp.abs(out - images)))
    assert 0 < err < 0.03 * scale  # bf16 did run, and stayed close
  logits = d({"params": dp}, images, labels)
  Db = r3gan.Discriminator(num_classes=CLASSES, class_dim=12, bf16_stages=(0, 1), **TINY)
  out = jax.jit(Db.apply)({"params": dp}, images, labels)
  assert out.dtype == jnp.float32 and 0 < float(jnp.max(jnp.abs(out - logits))) < 0.05 * float(
      jnp.max(jnp.abs(logits)))
  with pytest.raises(ValueError, match="out of range"):
    r3gan.Generator(bf16_stages=(3,), **TINY).init(jax.random.key(0), z)


# --- The PyTorch peer -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def peer():
  pytest.importorskip("torch", reason="the PyTorch peer needs torch (pip install torch)")
  sys.path.insert(0, os.path.dirname(PEER))
  import torch_r3gan  # pylint: disable=import-outside-toplevel
  return torch_r3gan


def test_peer_matches_on_the_same_weights(tiny, peer):
  import torch  # pylint: disable=import-outside-toplevel
  _, d, gp, dp, z, labels, images = tiny
  Gt, Dt = peer.build(**TINY, z_dim=Z, c_dim=CLASSES, g_class_dim=6, d_class_dim=12)
  peer.load_flax(Gt, jax.tree.map(np.asarray, gp))
  peer.load_flax(Dt, jax.tree.map(np.asarray, dp))
  c = torch.nn.functional.one_hot(torch.tensor(np.asarray(labels), dtype=torch.long),
                                  CLASSES).float()
  out = Gt(torch.tensor(np.asarray(z)), c).detach().numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(out, images, atol=1e-5 * float(jnp.max(jnp.abs(images))))

  x = torch.tensor(np.asarray(images).transpose(0, 3, 1, 2)).requires_grad_(True)
  logits_t = Dt(x, c)
  (grad_t,) = torch.autograd.grad(logits_t.sum(), x)
  logits, pull = jax.vjp(lambda v: d({"params": dp}, v, labels), images)
  (grad,) = pull(jnp.ones_like(logits))
  np.testing.assert_allclose(logits_t.detach().numpy(), logits,
                             atol=1e-5 * float(jnp.max(jnp.abs(logits))))
  np.testing.assert_allclose(grad_t.numpy().transpose(0, 2, 3, 1), grad,
                             atol=1e-5 * float(jnp.max(jnp.abs(grad))))


def test_peer_parameter_counts_and_tiny_run(peer):
  for (widths, cards, blocks, classes, g_dim, d_dim), expected in PRESETS.values():
    G, D = peer.build(widths, cards, blocks, c_dim=classes, g_class_dim=g_dim, d_class_dim=d_dim)
    assert (peer.count(G), peer.count(D)) == expected
  out = subprocess.run(
      [sys.executable, PEER, "--batch_size=4", "--steps=1", "--warmup=0", "--threads=1",
       "--widths=8,8", "--cardinality=2,2", "--blocks=1,1", "--c_dim=3"],
      check=True, capture_output=True, text=True, timeout=120).stdout
  r = json.loads(out)
  assert r["config"] == "torch_r3gan" and r["backend"] == "torch cpu" and r["resolution"] == 8
  assert r["imgs_per_sec"] > 0 and r["step_ms"]["median"] > 0
  G, D = peer.build((8, 8), (2, 2), (1, 1), c_dim=3)
  assert (r["g_params"], r["d_params"]) == (peer.count(G), peer.count(D))
