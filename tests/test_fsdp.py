"""parallel.strategy=fsdp: state sharded over the 8 test devices, results equal jit's, checkpoints
move between strategies, and a sharded run samples and evaluates."""
import json
import shutil

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from conftest import config_path
from gan_jax import cli, experiment, parallel, step as step_lib
from gan_jax.data import sources
from gan_jax.experiment import Experiment
from test_games import assert_close_to_scale
from test_step import assert_trees_close, batches, load_config, run
from test_superres import narrow_vgg  # noqa: F401  (a fixture)

# DCGAN on digits with 32 channels: its larger convs and Dense layers (and their Adam moments and
# EMA) pass parallel.FSDP_MIN_SIZE and get split; batch norm's vectors stay whole.
WIDE = {"model.g_width": 32, "model.d_width": 32}
WIDE_FLAGS = [f"--config.{k}={v}" for k, v in WIDE.items()]
# fsdp sums gradients over the devices in another order than jit (a reduce-scatter of shards, not
# one all-reduce), so float32 results differ in the last bits (~1e-7 relative), a little more
# after Adam divides by sqrt(nu). One step moves weights by up to lr = 2e-4: a wrong gradient or a
# misplaced shard shows far above these bounds.
CLOSE = dict(rtol=1e-4, atol=1e-6)


def sharded_specs(state):
  return {jax.tree_util.keystr(path): x.sharding.spec
          for path, x in jax.tree_util.tree_leaves_with_path(state) if x.sharding.spec != P()}


def run_on_devices(config, steps=3):
  """(device state, last metrics) after `steps` steps of `config`'s strategy on the same batches."""
  source = sources.build(config)
  exp = Experiment.build(config, source.spec)
  strategy = parallel.get(config.parallel.strategy)
  multi = strategy.compile(step_lib.make_multi_step(exp.game_for(strategy.axis_name).train_step))
  state = strategy.put_state(exp.init_state())
  for batch in batches(config, source, steps):
    state, metrics = multi(state, strategy.put_batch(jax.tree.map(lambda x: x[None], batch)))
  return state, jax.device_get(metrics)


def test_fsdp_shards_the_state_and_matches_jit():
  config = load_config("dcgan_digits", **{"train.batch_size": 16, **WIDE})
  jit_state, jit_metrics = run_on_devices(config)
  config.parallel.strategy = "fsdp"
  fsdp_state, fsdp_metrics = run_on_devices(config)
  sharded = sharded_specs(fsdp_state)
  assert not sharded_specs(jit_state)
  # G's 4x4 conv from 64 to 32 channels, its weights, Adam moments and EMA: split on the 64
  kernel = "['ConvTranspose4x4s2_0']['kernel']"
  for where in (".g.params", ".g.opt_state[0].mu", ".g.opt_state[0].nu", ".g_ema"):
    assert sharded[where + kernel] == P(None, None, "data", None)
  assert any(k.startswith(".d.params") for k in sharded)
  assert not any("BatchNorm" in k for k in sharded) and ".step" not in sharded
  leaf = fsdp_state.g.params["ConvTranspose4x4s2_0"]["kernel"]
  assert leaf.addressable_shards[0].data.shape == (4, 4, 8, 32)
  assert set(fsdp_metrics) == set(jit_metrics)
  for key in jit_metrics:
    np.testing.assert_allclose(fsdp_metrics[key], jit_metrics[key], rtol=1e-5, err_msg=key)
  assert int(fsdp_state.step) == 3
  assert_trees_close(jax.device_get(fsdp_state), jax.device_get(jit_state), **CLOSE)


def test_state_shardings_rule():
  strategy = parallel.FsdpStrategy()
  shape = lambda *s: jax.ShapeDtypeStruct(s, np.float32)
  shardings = strategy.state_shardings({
      "conv": shape(4, 4, 64, 128),    # largest divisible dimension
      "tie": shape(64, 64),            # the later of two
      "odd": shape(3, 3, 67, 99),      # none divisible by 8: whole
      "small": shape(8, 8, 8),         # under FSDP_MIN_SIZE: whole
      "dense": shape(4099, 8)})        # the only divisible dimension, though the smaller
  assert {k: s.spec for k, s in shardings.items()} == {
      "conv": P(None, None, None, "data"), "tie": P(None, "data"), "odd": P(), "small": P(),
      "dense": P(None, "data")}
  assert all(s.spec == P() for s in jax.tree.leaves(
      parallel.JitStrategy().state_shardings({"conv": shape(4, 4, 64, 128)})))


# The other games (the noise game is above), and a num_seeds run, at smoke size with
# FSDP_MIN_SIZE lowered so that their small layers split too. SGD: Adam turns gradients' rounding
# noise (biases that a norm cancels) into steps of +-lr whose signs differ between strategies.
# fsdp compiles those many splits slowly (35-120 s a game on 2 busy cores), hence `slow` for all
# but the seeds run (seconds). narrow_vgg stands in for superres's VGG19 weights.
SGD = {"optim.g.optimizer": "sgd", "optim.d.optimizer": "sgd", "optim.g.lr": 1e-3,
       "optim.d.lr": 1e-3}
GAMES = {
    "seeds": ("dcgan_digits", {"train.num_seeds": 2}),
    "paired": ("pix2pix_digits", {}),
    "cycle": ("cyclegan_digits", {}),
    "stylegan2": ("stylegan2", {"data.source": "stacked_digits", "augment.kind": "none"}),
    "superres": ("esrgan", {}),
}


@pytest.mark.parametrize("game", [pytest.param(g, marks=[pytest.mark.slow] * (g != "seeds"))
                                  for g in GAMES])
def test_every_game_matches_jit_under_fsdp(game, monkeypatch, narrow_vgg):
  monkeypatch.setattr(parallel, "FSDP_MIN_SIZE", 64)
  name, overrides = GAMES[game]
  config = load_config(name, **{"train.batch_size": 8, **SGD, **overrides})
  jit_state, jit_metrics = run(config, "jit")
  config.parallel.strategy = "fsdp"
  assert sharded_specs(parallel.get("fsdp").put_state(jit_state))
  fsdp_state, fsdp_metrics = run(config, "fsdp")
  assert int(np.max(fsdp_state.step)) == 2
  for key in jit_metrics:
    np.testing.assert_allclose(fsdp_metrics[key], jit_metrics[key], rtol=1e-4, atol=1e-6,
                               err_msg=key)
  assert_close_to_scale(fsdp_state, jit_state, 2e-4)


def train(workdir, strategy, steps, *flags):
  assert cli.main(["train", f"--config={config_path('dcgan_digits')}", f"--workdir={workdir}",
                   "--noprogress", f"--config.parallel.strategy={strategy}",
                   f"--config.train.steps={steps}", *WIDE_FLAGS, *flags]) == 0
  return workdir


def final_state(workdir):
  return experiment.load_latest(str(workdir))[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Four steps of jit alone, and two of one strategy resumed to four by another; the fsdp legs
  evaluate during training (inference on the sharded state)."""
  root = tmp_path_factory.mktemp("fsdp")
  evaluating = ("--config.eval.every_steps=2", "--config.eval.num_samples=100")
  jit_whole = train(root / "jit", "jit", 4)
  jit_then_fsdp = train(train(root / "jit_fsdp", "jit", 2), "fsdp", 4, *evaluating)
  fsdp_half = train(root / "fsdp_jit", "fsdp", 2, *evaluating)
  shutil.copytree(fsdp_half, root / "fsdp_pmap")
  fsdp_then_jit = train(fsdp_half, "jit", 4)
  fsdp_then_pmap = train(root / "fsdp_pmap", "pmap", 4)
  pmap_then_fsdp = train(train(root / "pmap_fsdp", "pmap", 2), "fsdp", 4)
  return jit_whole, jit_then_fsdp, fsdp_then_jit, fsdp_then_pmap, pmap_then_fsdp


def test_checkpoints_resume_across_strategies(runs):
  jit_whole, *resumed = (final_state(r) for r in runs)
  for state in resumed:
    assert int(state.step) == 4
    assert_trees_close(state, jit_whole, **CLOSE)
  # The restore target train.py builds for fsdp reads a checkpoint that jit wrote into shards.
  exp, ckpt = experiment.load(str(runs[0]))
  try:
    state, _ = ckpt.restore(exp.abstract_state(parallel.FsdpStrategy().state_shardings))
  finally:
    ckpt.close()
  assert sharded_specs(state)
  assert_trees_close(jax.device_get(state), jit_whole, rtol=0, atol=0)


def test_a_sharded_run_samples_and_evaluates(runs, tmp_path, capsys):
  jit_whole, jit_then_fsdp, fsdp_then_jit, *_ = runs
  for name, workdir in (("jit", jit_whole), ("fsdp", jit_then_fsdp)):
    assert cli.main(["sample", f"--workdir={workdir}", "--num=8", "--seed=1",
                     f"--out={tmp_path / name}.npz"]) == 0
  fsdp_samples, jit_samples = (np.load(tmp_path / f"{n}.npz")["samples"] for n in ("fsdp", "jit"))
  assert fsdp_samples.shape == (8, 16, 16, 1)
  np.testing.assert_allclose(fsdp_samples, jit_samples, atol=1e-4)
  for workdir, fsdp_steps in ((jit_then_fsdp, [4]), (fsdp_then_jit, [2])):
    with open(workdir / "metrics.jsonl") as f:
      evals = [r for r in map(json.loads, f) if r.get("eval/digits_fid", 0) > 0]
    assert [r["step"] for r in evals] == fsdp_steps
  capsys.readouterr()
  assert cli.main(["evaluate", f"--workdir={jit_then_fsdp}", "--num_samples=100"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["step"] == 4 and result["digits_fid"] > 0
