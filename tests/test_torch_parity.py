"""Our DCGAN step does what the pytorch/examples DCGAN iteration does (benchmarks/peers), to float
tolerance: same weights, same data and noise in, same losses and weights out after two steps,
with the CPU's matmul-form convolutions and with native ones."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from gan_jax.data.sources import DataSpec
from gan_jax.experiment import Experiment
from gan_jax.state import as_key
from test_step import load_config

torch = pytest.importorskip("torch", reason="the PyTorch reference needs torch (pip install torch)")

RES, WIDTH, NZ, BATCH = 16, 8, 100, 8


def load_peer():
  path = os.path.join(REPO, "benchmarks", "peers", "torch_dcgan.py")
  spec = importlib.util.spec_from_file_location("torch_dcgan", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def t2j(t):
  return jnp.asarray(t.detach().numpy())


def torch_to_ours(net_g, net_d):
  """pytorch/examples' Sequential weights -> our G and D params (same meaning, our layouts)."""
  g_convs = [m for m in net_g if isinstance(m, torch.nn.ConvTranspose2d)]
  d_convs = [m for m in net_d if isinstance(m, torch.nn.Conv2d)]
  bn = lambda net: [m for m in net if isinstance(m, torch.nn.BatchNorm2d)]
  # G's first layer maps z on a 1x1 grid to 4x4: a dense layer onto (h, w, c).
  g = {"Dense_0": {"kernel": t2j(g_convs[0].weight.permute(0, 2, 3, 1).reshape(NZ, -1))}}
  for i, m in enumerate(g_convs[1:]):  # [in, out, kh, kw] -> [kh, kw, in, out]
    g[f"ConvTranspose4x4s2_{i}"] = {"kernel": t2j(m.weight.permute(2, 3, 0, 1))}
  d = {f"Conv4x4s2_{i}": {"kernel": t2j(m.weight.permute(2, 3, 1, 0))}  # [out, in, kh, kw]
       for i, m in enumerate(d_convs[:-1])}
  # D's last layer, a 4x4 valid conv to one logit, is a dense layer on (h, w, c).
  d["Dense_0"] = {"kernel": t2j(d_convs[-1].weight.permute(2, 3, 1, 0).reshape(-1, 1))}
  for params, net in ((g, net_g), (d, net_d)):
    for i, m in enumerate(bn(net)):
      params[f"BatchNorm_{i}"] = {"scale": t2j(m.weight), "bias": t2j(m.bias)}
  return g, d


# The three ways our 4x4 convs run: native XLA convs, and on CPU matmuls via im2col or via
# Winograd (normally chosen by channel count; forced here for every layer).
@pytest.mark.parametrize("impl", ["im2col", "winograd", "conv"])
def test_dcgan_step_matches_pytorch_examples(impl, monkeypatch):
  monkeypatch.setattr("gan_jax.models.layers._use_gemm", lambda _: impl != "conv")
  monkeypatch.setattr("gan_jax.models.cpu_conv.WINOGRAD_MIN_CHANNELS",
                      1 if impl == "winograd" else 10**9)
  peer = load_peer()
  torch.manual_seed(0)
  net_g = peer.generator(RES, NZ, WIDTH)
  net_d = peer.discriminator(RES, WIDTH)
  net_g.apply(peer.init_weights)
  net_d.apply(peer.init_weights)

  config = load_config("dcgan64", **{
      "data.resolution": RES, "model.latent_dim": NZ, "model.g_width": WIDTH, "model.d_width": WIDTH,
      "train.batch_size": BATCH})
  exp = Experiment.build(config, DataSpec((RES, RES, 3), "uint8", 10))
  state = exp.init_state()
  g_params, d_params = torch_to_ours(net_g, net_d)
  assert jax.tree.structure(g_params) == jax.tree.structure(state.g.params)
  assert jax.tree.structure(d_params) == jax.tree.structure(state.d.params)
  state = state.replace(g=state.g.replace(params=g_params), d=state.d.replace(params=d_params))
  step = jax.jit(exp.game.train_step)
  iteration = peer.make_iteration(net_g, net_d, BATCH, NZ, torch.device("cpu"))

  rng = np.random.default_rng(0)
  for _ in range(2):
    images = rng.integers(0, 256, (1, BATCH, RES, RES, 3), dtype=np.uint8)
    # the latents our step draws from its state (see games/noise.py, latents)
    k_g, _ = jax.random.split(jax.random.fold_in(as_key(state.rng), state.step))
    z = np.array(jax.random.normal(k_g, (BATCH, NZ)))
    state, metrics = step(state, {"x": images, "label": np.zeros((1, BATCH), np.int32)})
    real = torch.from_numpy(images[0].astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
    d_loss, g_loss = iteration(real, torch.from_numpy(z))
    np.testing.assert_allclose(metrics["d_loss"], d_loss.item(), rtol=1e-4)
    np.testing.assert_allclose(metrics["g_loss"], g_loss.item(), rtol=1e-4)

  # After two Adam steps (each moving a weight by about lr = 2e-4) the weights agree far closer
  # than one step's size.
  want_g, want_d = torch_to_ours(net_g, net_d)
  for got, want in ((state.g.params, want_g), (state.d.params, want_d)):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, atol=2e-5)
