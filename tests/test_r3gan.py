"""The r3gan game: its schedules, jit == pmap, bitwise resume with every schedule mid-way, a gamma
sweep whose copies equal their separate runs, `tune-gamma` end to end, and bad input."""
import json

import jax
import numpy as np
import pytest

from conftest import config_path
from runs import assert_resumed_as, final_state, stopped_copy
from test_cli import assert_one_clear_error
from test_games import assert_close_to_scale
from test_step import load_config, run, under_jit_and_pmap
from gan_jax import cli, config as config_lib, optim
from gan_jax.games.seeds import Seeds

# Every schedule moves during a 4-step smoke run: 8 images a step, ramps of 24 images (3 steps).
RAMPED = {"train.ramp_kimg": 0.024, "augment.kind": "ada", "augment.policy": "bgc",
          "augment.p": 0.5, "augment.target": 0.0, "train.ema_kimg": 0.1}
RAMPED_FLAGS = tuple(f"--config.{k}={v}" for k, v in RAMPED.items())


def test_cosine_ramp_is_the_papers_schedule():
  # base + (final - base)(1 - cos(pi t)) / 2, then held at final
  got = [float(optim.cosine_ramp(s, 2e-4, 5e-5, 100)) for s in (0, 25, 50, 100, 250)]
  want = [2e-4, 2e-4 - 1.5e-4 * (1 - np.cos(np.pi / 4)) / 2, 1.25e-4, 5e-5, 5e-5]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_optimizer_ramps_learning_rate_and_beta2():
  config = load_config("r3gan_stacked", arg=None)
  tx = optim.build(config.optim.d, 100)
  params = {"w": np.ones(3, np.float32)}
  state = tx.init(params)
  for _ in range(50):
    _, state = tx.update({"w": np.ones(3, np.float32)}, state, params)
  hyper = state.hyperparams  # the values of the 50th update
  d_side = config.optim.d
  np.testing.assert_allclose(hyper["learning_rate"],
                             optim.cosine_ramp(49, d_side.lr, d_side.lr_final, 100), rtol=1e-5)
  np.testing.assert_allclose(hyper["b2"], optim.cosine_ramp(49, 0.9, 0.99, 100), rtol=1e-6)
  assert float(hyper["b1"]) == 0.0 and float(hyper["eps"]) == pytest.approx(1e-8)


def test_pmap_matches_jit_over_the_mesh():
  """jit over the mesh runs the game as one device does (`tests/test_step.py` holds that to one
  device's results); pmap runs its own means over the devices (`games.common.Devices`)."""
  config = load_config("r3gan_stacked", **RAMPED)
  states = under_jit_and_pmap(config)
  (jit, metrics), (pmap, _) = states["jit"], states["pmap"]
  assert int(jit.step) == int(pmap.step) == 2
  for key in ("d_loss", "g_loss", "r1_penalty", "r2_penalty", "gamma", "augment_p"):
    assert np.isfinite(metrics[key]), key
  assert float(metrics["r1_penalty"]) > 0 and float(metrics["r2_penalty"]) > 0
  assert_close_to_scale(pmap, jit, 2e-4)


def train(workdir, *flags, verb="train"):
  return cli.main([verb, f"--config={config_path('r3gan_stacked')}", f"--workdir={workdir}",
                   "--noprogress", *flags])


def test_resume_is_bitwise_equal_with_every_schedule_mid_way(tmp_path):
  assert train(tmp_path / "whole", *RAMPED_FLAGS) == 0
  assert stopped_copy(tmp_path / "whole", tmp_path / "split") == 2
  assert train(tmp_path / "split", *RAMPED_FLAGS) == 0
  assert assert_resumed_as(tmp_path / "split", tmp_path / "whole")[0] == 4
  records = [json.loads(l) for l in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
  gammas = [r["gamma"] for r in records]  # logged at steps 2 and 4: the values of steps 1 and 3
  loss = load_config("r3gan_stacked").loss
  np.testing.assert_allclose(gammas, [float(optim.cosine_ramp(s, loss.gamma, loss.gamma_final, 3))
                                      for s in (1, 3)], rtol=1e-5)
  assert 0 < records[0]["augment_p"] < records[1]["augment_p"] == pytest.approx(0.5)


def test_each_gamma_of_a_sweep_equals_its_separate_run():
  config = load_config("r3gan_stacked", **{"loss.gamma_sweep": (0.05, 2.0), "train.num_seeds": 2})
  together, metrics = run(config, "jit", steps=2)
  np.testing.assert_allclose(metrics["gamma"], [0.05, 2.0], rtol=1e-6)  # step 0: the start
  for i, gamma in enumerate((0.05, 2.0)):
    alone = config_lib.with_seed(config, config.seed + i)
    alone.loss.gamma_sweep, alone.loss.gamma, alone.loss.gamma_final = (), gamma, gamma / 10
    state, _ = run(alone, "jit", steps=2)
    assert_close_to_scale(Seeds.select(together, i).g.params, state.g.params, 2e-5)


def test_tune_gamma_end_to_end(tmp_path, capsys):
  # A gamma past float32 (inf in the step) overflows D's loss: that copy stops and is flagged,
  # and the others train on.
  assert train(tmp_path, "--values=0.01,0.1,1e39", "--steps=4", "--num_samples=200",
               verb="tune-gamma") == 0
  out = capsys.readouterr().out
  found = json.loads((tmp_path / "tune_gamma.json").read_text())
  rows = {r["gamma"]: r for r in found["rows"]}
  assert found["metric"] == "reverse_kl" and found["steps"] == 4 and len(rows) == 3
  assert rows[1e39]["warnings"][:1] == ["diverged"]
  assert found["recommended"] in (0.01, 0.1) and found["recommended"] != 1e39
  assert not rows[found["recommended"]]["warnings"]
  override = (tmp_path / "gamma_override.txt").read_text().split()
  assert override == [f"--config.loss.gamma={found['recommended']:g}",
                      f"--config.loss.gamma_final={found['recommended'] / 10:g}"]
  assert "recommended: --config.loss.gamma=" in out and "diverged" in out
  from PIL import Image
  assert Image.open(tmp_path / "tune_gamma.png").height > 3 * 8
  _, state = final_state(tmp_path)
  for tree in (Seeds.select(state, 0), Seeds.select(state, 1)):  # the healthy copies
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree.g.params))


@pytest.mark.parametrize("flags,expected", [
    (("--values=",), "--values is empty"),
    (("--values=0.1,-1",), "must be a positive number"),
    (("--values=0.1,abc",), "not a list of numbers"),
    (("--values=0.1,0.1",), "names a gamma twice"),
    (("--steps=0",), "--steps=0 trains nothing"),
    (("--config=" + config_path("dcgan_digits"),), "tune-gamma tunes R3GAN's gamma"),
])
def test_bad_tune_gamma_input_is_one_sentence(tmp_path, capsys, flags, expected):
  assert train(tmp_path / "run", *flags, verb="tune-gamma") == 2
  assert_one_clear_error(capsys, expected)
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags,expected", [
    (("--config.model.cardinality=(4,3)",), "does not split"),
    (("--config.model.widths=(16,8,8)",), "give each the same number of stages"),
    (("--config.data.resolution=16",), "is not what 2 stages draw"),
    (("--config.loss.adversarial=hinge",), "plays RpGAN"),
    (("--config.augment.kind=ada", "--config.augment.target=0.6"), "ramps ADA's p"),
    (("--config.loss.gamma=0",), "loss.gamma"),
])
def test_bad_settings_are_one_sentence(tmp_path, capsys, flags, expected):
  assert train(tmp_path / "run", *flags) == 2
  assert_one_clear_error(capsys, expected)
