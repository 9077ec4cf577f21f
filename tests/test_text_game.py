"""The text game (DF-GAN): MA-GP against finite differences, what one step changes, jit == pmap,
bitwise resume, G reading the sentence, captioned sample grids, the PyTorch peer's networks, and
its bad input. Data: a captioned stand-in source (random images, a random unit embedding each)."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, config_path
from runs import assert_resumed_as, stopped_copy
from test_games import assert_close_to_scale
from test_step import load_config, under_jit_and_pmap
from gan_jax import cli, config as config_lib, reporting, train as train_lib
from gan_jax.errors import UserError
from gan_jax.data import sources
from gan_jax.data.spec import DataSpec
from gan_jax.experiment import Experiment
from gan_jax.losses import regularizers
from gan_jax.models import dfgan

TEXT_DIM = 12


class CaptionedSource:
  """`size` random 16x16 RGB images with a random unit caption embedding each, and words for
  them (`captions`, `embeddings`, as captioned sources have them)."""

  def __init__(self, size=48, resolution=16, text_dim=TEXT_DIM, seed=0):
    rng = np.random.default_rng(seed)
    self.x = rng.integers(0, 256, (size, resolution, resolution, 3), np.uint8)
    self.labels = rng.integers(0, 50, size).astype(np.int32)
    e = rng.standard_normal((size, text_dim)).astype(np.float32)
    self.embeddings = e / np.linalg.norm(e, axis=1, keepdims=True)
    self.captions = [f"caption {i}" for i in range(size)]
    self.spec = DataSpec((resolution, resolution, 3), "uint8", 50, text_dim)

  def __len__(self):
    return len(self.x)

  def get(self, indices, caption_draws=None):
    """As captioned sources: with draws, "caption" (an id into `captions`; one each here)."""
    part = {"x": self.x[indices], "label": self.labels[indices]}
    if caption_draws is None:
      return {**part, "text": self.embeddings[indices]}
    return {**part, "caption": np.asarray(indices)}


@pytest.fixture
def captioned(monkeypatch):
  """Every config's training data is the captioned stand-in (the configs name `digits`, which
  validates as an RGB image source)."""
  source = CaptionedSource()
  monkeypatch.setattr(sources, "build", lambda config, split="train": (
      source if split == "train" else None))
  return source


def smoke(**overrides):
  return load_config("t2i_digits", **{"data.source": "digits", "train.health": "off",
                                      **overrides})


# --- MA-GP -------------------------------------------------------------------------------------

def critic(x, e, scale=1.0):
  """A per-sample D(x, e) whose gradient mixes image and sentence: sum(w x^2) + sum(x) (v . e)
  + |e|^2."""
  w = jnp.linspace(0.5, 1.5, x[0].size).reshape(x.shape[1:])
  v = jnp.linspace(-1.0, 1.0, e.shape[-1])
  axes = tuple(range(1, x.ndim))
  return scale * (jnp.sum(w * x ** 2, axes) + jnp.sum(x, axes) * (e @ v) + jnp.sum(e ** 2, -1))


def finite_difference_grad(fn, x, h=1e-4):
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    step = np.zeros_like(x)
    step[idx] = h
    g[idx] = (fn(x + step) - fn(x - step)) / (2 * h)
  return g


def test_magp_matches_finite_differences():
  with jax.enable_x64(True):  # central differences of float64 sums: tight tolerances
    rng = np.random.default_rng(0)
    x, e = rng.normal(size=(3, 2, 2, 1)), rng.normal(size=(3, 4))
    total = lambda x, e: float(jnp.sum(critic(jnp.asarray(x), jnp.asarray(e))))
    gx = finite_difference_grad(lambda v: total(v, e), x).reshape(3, -1)
    ge = finite_difference_grad(lambda v: total(x, v), e)
    norms = np.sqrt(np.sum(gx ** 2, 1) + np.sum(ge ** 2, 1))
    penalty, logits = regularizers.matching_aware_gp(critic, x, e, k=2.0, p=6.0)
    np.testing.assert_allclose(penalty, 2.0 * np.mean(norms ** 6), rtol=1e-6)
    np.testing.assert_allclose(logits, critic(x, e))
    # k and p as given; the logits come back with an aux output when asked for
    penalty, _, aux = regularizers.matching_aware_gp(lambda x, e: (critic(x, e), e.sum()), x, e,
                                                     k=0.5, p=2.0, has_aux=True)
    np.testing.assert_allclose(penalty, 0.5 * np.mean(norms ** 2), rtol=1e-6)
    np.testing.assert_allclose(aux, e.sum())
    # D's update differentiates the penalty in D's parameters (here one scale s): a double
    # backward. The gradient scales with s, so the penalty with s^6: d/ds at 1 is 6 x penalty.
    of_scale = lambda s: regularizers.matching_aware_gp(lambda x, e: critic(x, e, s), x, e)[0]
    np.testing.assert_allclose(jax.grad(of_scale)(1.0), 6 * of_scale(1.0), rtol=1e-5)


# --- the step ----------------------------------------------------------------------------------

def one_step(config, source):
  exp = Experiment.build(config, source.spec)
  state = exp.init_state()
  t = config.train
  batch = {k: v.reshape((1, t.batch_size) + v.shape[1:])
           for k, v in source.get(np.arange(t.batch_size)).items()}
  new, metrics = jax.jit(exp.game.train_step)(state, batch)
  return exp, state, new, metrics


def test_one_step_trains_both_sides(captioned):
  config = smoke()
  exp, before, after, metrics = one_step(config, captioned)
  assert int(after.step) == 1
  for key in ("d_loss", "g_loss", "magp", "d_real", "d_fake", "d_mismatched"):
    assert np.isfinite(metrics[key]), key
  assert metrics["magp"] > 0
  changed = lambda a, b: not np.array_equal(np.asarray(a), np.asarray(b))
  # The affines' MLPs start with zero last layers (gamma 1, beta 0): their first layers get no
  # gradient at the first step; everything else in G takes one.
  for path, old in jax.tree_util.tree_leaves_with_path(before.g.params):
    name = jax.tree_util.keystr(path)
    assert changed(old, _at(after.g.params, path)) != ("a_0']" in name), name
  # D's residual branches are scaled by a gamma that starts at 0: their kernels get no gradient
  # until gamma has moved; everything else (gamma too) takes a step.
  for path, old in jax.tree_util.tree_leaves_with_path(before.d.params):
    name = jax.tree_util.keystr(path)
    residual = "blocks_" in name and ("Conv4x4s2" in name or "SNConv_0" in name)
    assert changed(old, _at(after.d.params, path)) != residual, name
  # the EMA moved towards G
  assert changed(before.g_ema["Dense_0"]["kernel"], after.g_ema["Dense_0"]["kernel"])


def _at(tree, path):
  for key in path:
    tree = tree[key.key]
  return tree


def test_generator_reads_the_sentence(captioned):
  # At init every affine gives gamma 1, beta 0 whatever the sentence; one step in, it matters.
  exp, before, after, _ = one_step(smoke(), captioned)
  e = captioned.embeddings[:2]
  for state, differ in ((before, False), (after, True)):
    a, _ = exp.game.generate(state, 4, seed=3, labels=e[0])
    b, _ = exp.game.generate(state, 4, seed=3, labels=e[1])
    again, _ = exp.game.generate(state, 4, seed=3, labels=np.stack([e[0]] * 4))
    np.testing.assert_array_equal(a, again)  # one [D] embedding is every sample's
    assert (not np.array_equal(a, b)) == differ
  # D scores pairs: the same images with other sentences get other logits
  images, _ = exp.game.generate(after, 4, seed=3, labels=e[0])
  assert not np.allclose(exp.game.discriminate(after, images, np.stack([e[0]] * 4)),
                         exp.game.discriminate(after, images, np.stack([e[1]] * 4)))


def test_instance_norm_makes_fusion_blind_to_its_input_scale():
  # g_norm=instance normalizes each fusion block's input: its features x and 10 x fuse alike;
  # without it the scale goes through.
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 8))
  cond = jax.random.normal(jax.random.key(1), (2, 12))
  for norm, invariant in (("instance", True), ("none", False)):
    block = dfgan.DFBlock(norm=norm)
    params = block.init(jax.random.key(2), x, cond)
    a, b = block.apply(params, x, cond), block.apply(params, 10 * x, cond)
    assert np.allclose(a, b, atol=1e-4) == invariant
  with pytest.raises(UserError, match="not a norm of the DF-GAN"):
    config_lib.validate(smoke(**{"model.g_norm": "batch"}))


def test_text_scale_and_projection():
  z, e = jax.random.normal(jax.random.key(0), (2, 8)), jax.random.normal(jax.random.key(1), (2, 6))
  x = jax.random.normal(jax.random.key(2), (2, 16, 16, 3))
  # text_scale s reads e as the unscaled networks read s e, in G and in D
  for scaled, plain, inputs in (
      (dfgan.Generator(16, 3, 4, text_scale=3.0), dfgan.Generator(16, 3, 4), (z,)),
      (dfgan.Discriminator(16, 4, text_scale=3.0, projection=True),
       dfgan.Discriminator(16, 4, projection=True), (x,))):
    params = plain.init(jax.random.key(3), *inputs, e)
    np.testing.assert_allclose(scaled.apply(params, *inputs, e), plain.apply(params, *inputs, 3 * e),
                               rtol=1e-5, atol=1e-6)
  # the projection term: mean over positions of LeakyReLU(features), dotted with linear(e)
  d = dfgan.Discriminator(16, 4, projection=True)
  params = d.init(jax.random.key(3), x, e)
  h = d.apply(params, x, method="features")
  w = params["params"]["embed"]["kernel"]
  without = jax.tree_util.tree_map_with_path(
      lambda path, a: 0 * a if path[1].key == "embed" else a, params)
  term = jnp.sum(jnp.mean(jax.nn.leaky_relu(h, 0.2), axis=(1, 2)) * (e @ w), -1)
  np.testing.assert_allclose(d.apply(params, x, e) - d.apply(without, x, e), term,
                             rtol=1e-4, atol=1e-5)
  assert np.abs(term).min() > 0


def test_sentence_contrastive_is_the_cross_entropy_of_scaled_cosines():
  rng = np.random.default_rng(0)
  unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)
  sentences = unit(rng.normal(size=(6, 5)))
  images = unit(rng.normal(size=(2, 5)))  # rows 2 and 3 of the global batch
  logits = images @ sentences.T / 0.1
  want = np.mean([np.log(np.sum(np.exp(l))) - l[2 + i] for i, l in enumerate(logits)])
  got = regularizers.sentence_contrastive(images, sentences, 0.1, first=2)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  with pytest.raises(UserError, match="set --config.model.d_projection=True"):
    config_lib.validate(smoke(**{"loss.contrastive_weight": 1.0, "model.d_projection": False}))


def test_pmap_matches_jit_over_the_mesh(captioned):
  """jit over the mesh runs the game as one device does (`tests/test_step.py` holds that to one
  device's results); pmap runs its own means and gathers (`games.common.Devices`)."""
  # With the contrastive term on: under pmap each device's images meet the gathered captions.
  # SGD, so the parameters show the gradients: Adam's first steps move each parameter by about
  # its lr whatever the gradient's size, so near-zero gradients summed in another order differ
  # by a step.
  config = smoke(**{"train.batch_size": 16, "loss.contrastive_weight": 1.0,
                    "optim.g.optimizer": "sgd", "optim.d.optimizer": "sgd"})
  states = under_jit_and_pmap(config)
  for state, metrics in states.values():
    assert int(state.step) == 2 and np.isfinite(metrics["d_loss"]).all()
    assert np.isfinite(metrics["d_contrastive"]).all() and np.isfinite(metrics["g_contrastive"]).all()
  for side in ("g", "d", "g_ema"):
    assert_close_to_scale(getattr(states["pmap"][0], side), getattr(states["jit"][0], side), 2e-4)


# --- the loop ----------------------------------------------------------------------------------

def train(workdir, **overrides):
  return train_lib.train(smoke(**overrides), str(workdir), progress=False)


def test_resume_is_bitwise_and_grids_show_captions(captioned, tmp_path):
  train(tmp_path / "whole", **{"train.steps": 6})
  assert stopped_copy(tmp_path / "whole", tmp_path / "split") == 4
  train(tmp_path / "split", **{"train.steps": 6})
  assert assert_resumed_as(tmp_path / "split", tmp_path / "whole")[0] == 6
  # 16 samples: 4 rows of 4, each row one caption of the data, written in a white band under it
  picture = np.asarray(Image.open(tmp_path / "whole" / "samples" / "step_000004.png"))
  # 16 px images enlarged until a row is reporting.CAPTION_WIDTH wide, so the words fit
  zoom = -(-reporting.CAPTION_WIDTH // (4 * 16))
  side = 16 * zoom + 1  # an image and the gap above it
  assert picture.shape[1] == 4 * side + 1 and picture.shape[0] > 4 * side + 1 + 4 * 8
  band = picture[side:side + 8]
  assert (band == 255).mean() > 0.5 and band.min() < 100  # mostly paper, some ink


def test_text_game_on_data_without_captions_is_one_sentence(tmp_path, capsys):
  code = cli.main(["train", f"--config={config_path('t2i_digits')}", "--config.data.source=digits",
                   f"--workdir={tmp_path}", "--noprogress"])
  assert code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: ") and "reads captions, and this data has none" in err, err
  assert not os.path.exists(tmp_path / "checkpoints")


# --- the PyTorch peer --------------------------------------------------------------------------

def load_peer():
  pytest.importorskip("torch", reason="the PyTorch peer needs torch (pip install torch)")
  path = os.path.join(REPO, "benchmarks", "peers", "torch_dfgan.py")
  spec = importlib.util.spec_from_file_location("torch_dfgan", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("resolution,width", [(32, 32), (64, 8), (16, 4)])
def test_peer_networks_have_our_parameter_counts(resolution, width):
  peer = load_peer()
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  z, e = jnp.zeros((1, 100)), jnp.zeros((1, 384))
  x = jnp.zeros((1, resolution, resolution, 3))
  ours_g = jax.eval_shape(dfgan.Generator(resolution, 3, width).init, jax.random.key(0), z, e)
  ours_d = jax.eval_shape(dfgan.Discriminator(resolution, width).init, jax.random.key(0), x, e)
  torch_count = lambda net: sum(p.numel() for p in net.parameters())
  assert count(ours_g) == torch_count(peer.Generator(resolution, 3, width, 100, 384))
  assert count(ours_d) == torch_count(peer.Discriminator(resolution, 3, width, 384))


def torch_to_ours(net_g, net_d):
  """The peer's weights as our params (same meaning, our layouts: HWIO kernels, [in, out] dense
  kernels, 4x4 maps flattened position-major)."""
  t = lambda p: jnp.asarray(p.detach().numpy())
  conv = lambda m: {"kernel": t(m.weight.permute(2, 3, 1, 0)),
                    **({"bias": t(m.bias)} if m.bias is not None else {})}
  dense = lambda m: {"kernel": t(m.weight.T), "bias": t(m.bias)}
  c0 = net_g.c0
  g = {"Dense_0": {  # torch's .view(-1, c0, 4, 4) is channel-major
      "kernel": t(net_g.linear.weight.T.reshape(-1, c0, 16).permute(0, 2, 1).reshape(-1, 16 * c0)),
      "bias": t(net_g.linear.bias.reshape(c0, 16).T.reshape(-1))}}
  for i, block in enumerate(net_g.blocks):
    mine = {"SNConv_0": conv(block.conv1), "SNConv_1": conv(block.conv2)}
    if hasattr(block.shortcut, "weight"):  # a 1x1 conv where the channels change
      mine["SNConv_2"] = conv(block.shortcut)
    for j, fuse in enumerate((block.fuse1, block.fuse2)):
      mine[f"DFBlock_{j}"] = {f"Affine_{k}": {
          "gamma_0": dense(a.gamma[0]), "gamma_1": dense(a.gamma[2]),
          "beta_0": dense(a.beta[0]), "beta_1": dense(a.beta[2])} for k, a in enumerate(fuse.affines)}
    g[f"GBlock_{i}"] = mine
  g["SNConv_0"] = conv(net_g.to_image)
  d = {"from_image": conv(net_d.from_image),
       "joint": {"kernel": conv(net_d.joint)["kernel"]},
       "logit": {"kernel": t(net_d.logit.weight[0].permute(1, 2, 0).reshape(-1, 1))}}
  for i, block in enumerate(net_d.blocks):
    d[f"blocks_{i}"] = {"Conv4x4s2_0": conv(block.conv1), "SNConv_0": conv(block.conv2),
                        "SNConv_1": conv(block.shortcut), "gamma": t(block.gamma)}
  return g, d


def test_our_networks_compute_the_peers():
  """Our G and D (the DFBlock before the upsampling, the fused upsampling conv, the sentence's
  share of the joint conv, pooled shortcuts) compute the peer's plain forms, and MA-GP agrees."""
  peer = load_peer()
  torch = peer.torch
  torch.manual_seed(0)
  r, w, nz, dim, batch = 16, 4, 8, TEXT_DIM, 3
  net_g, net_d = peer.Generator(r, 3, w, nz, dim), peer.Discriminator(r, 3, w, dim)
  with torch.no_grad():  # off the init, where the affines ignore the sentence and gamma is 0
    for p in list(net_g.parameters()) + list(net_d.parameters()):
      p.normal_(0, 0.3)
  g_params, d_params = torch_to_ours(net_g, net_d)
  rng = np.random.default_rng(0)
  z, e = rng.normal(size=(batch, nz)).astype(np.float32), rng.normal(size=(batch, dim)).astype(
      np.float32)
  x = rng.uniform(-1, 1, (batch, r, r, 3)).astype(np.float32)
  ours_g, ours_d = dfgan.Generator(r, 3, w), dfgan.Discriminator(r, w)
  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1)))
  want = net_g(torch.from_numpy(z), torch.from_numpy(e)).detach().numpy()
  got = ours_g.apply({"params": g_params}, z, e)
  np.testing.assert_allclose(np.moveaxis(np.asarray(got), -1, 1), want, atol=2e-5)
  real, text = nchw(x).requires_grad_(), torch.from_numpy(e).requires_grad_()
  logits = net_d(real, text)
  d_fn = lambda x, e: ours_d.apply({"params": d_params}, x, e)
  penalty, ours_logits = regularizers.matching_aware_gp(d_fn, x, e)
  np.testing.assert_allclose(ours_logits, logits.detach().numpy(), rtol=1e-4, atol=1e-4)
  grads = torch.autograd.grad(logits.sum(), (real, text))
  want_penalty = 2.0 * sum(g.flatten(1).square().sum(1) for g in grads).pow(3).mean()
  np.testing.assert_allclose(penalty, want_penalty.item(), rtol=1e-4)
