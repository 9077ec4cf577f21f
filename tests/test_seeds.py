"""train.num_seeds: N runs vmapped in one program equal the N separate runs, resume exactly, agree
under jit and pmap, and the CLI picks, scores and rejects runs by --seed_index."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import config_path
from gan_jax import cli, config as config_lib, experiment
from gan_jax.games.seeds import Seeds
from gan_jax.state import make_key
from test_step import assert_trees_close, load_config, run
from test_train import (RESUMABLE, assert_bitwise_equal, diverge_at_step_5,  # noqa: F401
                        final_state)


def test_vmapped_draws_equal_unbatched_ones():
  """rbg keys under vmap: JAX's own rule would draw every seed's bits from the first key."""
  def draws(seed):
    k1, k2 = jax.random.split(jax.random.fold_in(make_key(seed), 7))
    inner = jax.vmap(lambda k: jax.random.uniform(k, (3,)))(jax.random.split(k2, 2))
    return jax.random.normal(k1, (4,)), jax.random.bernoulli(k2, 0.5, (5,)), inner
  seeds = 5 + jnp.arange(3)
  batched = jax.jit(jax.vmap(draws))(seeds)
  for i in range(3):
    assert_bitwise_equal(jax.tree.map(lambda x: x[i], batched), draws(int(seeds[i])))


@pytest.mark.parametrize("name", ["gan_ring2d", "dcgan_digits"])
def test_each_seed_equals_its_separate_run(name):
  # seed 3: run i is the run of seed 3 + i (ring2d's points are drawn from the seed too)
  config = load_config(name, **{"seed": 3, "train.batch_size": 8, "train.num_seeds": 2})
  together, metrics = run(config, "jit", steps=3)
  assert metrics["d_loss"].shape == (2,) and int(metrics["nonfinite_step"]) > 3
  for i in range(2):
    alone, alone_metrics = run(config_lib.with_seed(config, 3 + i), "jit", steps=3)
    assert_trees_close(Seeds.select(together, i), alone, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(metrics["g_loss"][i], alone_metrics["g_loss"], rtol=2e-5)
  first, second = (jax.tree.leaves(Seeds.select(together, i).g.params) for i in (0, 1))
  assert max(np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(first, second)) > 1e-3


def test_jit_and_pmap_agree_for_seeds():
  config = load_config("dcgan_digits", **{"train.batch_size": 16, "train.num_seeds": 2})
  jit_state, _ = run(config, "jit", steps=2)
  config.parallel.strategy = "pmap"
  pmap_state, _ = run(config, "pmap", steps=2)
  assert jit_state.step.shape == (2,)
  # atol: Adam turns a gradient that is rounding noise into a step of up to lr (2e-4) either
  # way; one entry of 4096 moved by 2.2e-5 on an AMD EPYC host at the suite's compile flags.
  assert_trees_close(pmap_state, jit_state, rtol=2e-4, atol=1e-4)


def train(workdir, *flags, name="gan_ring2d"):
  return cli.main(["train", f"--config={config_path(name)}", f"--workdir={workdir}",
                   "--noprogress", *flags])


SEEDS = "--config.train.num_seeds=2"


def test_resume_is_bitwise_equal_to_uninterrupted(tmp_path):
  assert train(tmp_path / "whole", SEEDS, "--config.train.steps=6", *RESUMABLE) == 0
  assert train(tmp_path / "split", SEEDS, "--config.train.steps=2", *RESUMABLE) == 0
  assert train(tmp_path / "split", SEEDS, "--config.train.steps=6", *RESUMABLE) == 0
  (step_a, a), (step_b, b) = final_state(tmp_path / "whole"), final_state(tmp_path / "split")
  assert step_a == step_b == 6 and a.step.tolist() == [6, 6]
  assert_bitwise_equal(a, b)


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("seeds")
  assert train(workdir, SEEDS, "--config.eval.every_steps=4", "--config.eval.num_samples=200") == 0
  return workdir


def test_logs_each_seed_and_their_mean(two_seeds):
  records = [json.loads(l) for l in (two_seeds / "metrics.jsonl").read_text().splitlines()]
  losses = [r for r in records if "d_loss" in r]
  assert [r["step"] for r in losses] == [2, 4]
  for r in losses:
    assert r["d_loss"] == pytest.approx((r["d_loss/seed_0"] + r["d_loss/seed_1"]) / 2)
    assert r["d_loss/seed_0"] != r["d_loss/seed_1"]
  evals = [r for r in records if "eval/high_quality" in r]
  assert evals and {"eval/high_quality/seed_0", "eval/high_quality/seed_1",
                    "eval/high_quality/std"} <= set(evals[-1])


def test_sample_picks_a_seed(two_seeds, tmp_path):
  for i in (0, 1):
    assert cli.main(["sample", f"--workdir={two_seeds}", "--num=50", f"--seed_index={i}",
                     f"--out={tmp_path / f'{i}.npz'}"]) == 0
  assert cli.main(["sample", f"--workdir={two_seeds}", "--num=50",
                   f"--out={tmp_path / 'default.npz'}"]) == 0
  got = [np.load(tmp_path / f"{n}.npz")["samples"] for n in ("0", "1", "default")]
  exp, ckpt = experiment.load(str(two_seeds))
  try:
    state = experiment.restore_latest(exp, ckpt)
  finally:
    ckpt.close()
  want, _ = exp.game.generate(exp.seed_state(state, 1), 50, seed=0, ema=True)
  np.testing.assert_array_equal(got[1], want)
  np.testing.assert_array_equal(got[0], got[2])  # run 0 by default
  assert np.abs(got[0] - got[1]).max() > 1e-3


def test_evaluate_scores_every_seed(two_seeds, capsys):
  assert cli.main(["evaluate", f"--workdir={two_seeds}", "--num_samples=300"]) == 0
  both = json.loads(capsys.readouterr().out)
  assert both["num_seeds"] == 2 and both["metrics"] == ["modes"]
  per_seed = [both["high_quality/seed_0"], both["high_quality/seed_1"]]
  assert both["high_quality"] == pytest.approx(np.mean(per_seed))
  assert both["high_quality/std"] == pytest.approx(np.std(per_seed, ddof=1))
  assert cli.main(["evaluate", f"--workdir={two_seeds}", "--num_samples=300",
                   "--seed_index=1"]) == 0
  one = json.loads(capsys.readouterr().out)
  assert one["seed_index"] == 1 and one["high_quality"] == both["high_quality/seed_1"]


def test_a_bad_seed_index_is_one_sentence(two_seeds, tmp_path, capsys):
  single = tmp_path / "single"
  assert train(single) == 0
  capsys.readouterr()
  for argv in (["sample", f"--workdir={two_seeds}", "--seed_index=2"],
               ["evaluate", f"--workdir={two_seeds}", "--seed_index=-1"],
               ["sample", f"--workdir={single}", "--seed_index=1"],
               ["evaluate", f"--workdir={single}", "--seed_index=1"]):
    assert cli.main(argv + [f"--out={tmp_path / 'x.png'}"] * (argv[0] == "sample")) == 2
    err = capsys.readouterr().err.strip()
    assert "--seed_index" in err and "out of range" in err and len(err.splitlines()) == 1, err
  assert not (tmp_path / "x.png").exists()
  assert cli.main(["sample", f"--workdir={single}", "--seed_index=0",
                   f"--out={tmp_path / 'x.png'}"]) == 0


def test_one_nonfinite_seed_stops_every_seed(tmp_path, diverge_at_step_5, capsys):
  """The patched step poisons only the run whose RNG is config.seed's: seed 0 of two."""
  flags = (SEEDS, "--config.train.steps=8", "--config.train.checkpoint_every=4")
  assert train(tmp_path / "stop", *flags) == 1
  assert "non-finite at step 5" in capsys.readouterr().err
  assert train(tmp_path / "back", *flags, "--config.train.nan_policy=rollback") == 0
  assert "rolling back to step 4" in capsys.readouterr().out
  step, state = final_state(tmp_path / "back")
  assert step == 8 and state.step.tolist() == [8, 8]
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state))


def test_num_seeds_must_be_positive(tmp_path, capsys):
  assert train(tmp_path, "--config.train.num_seeds=0") == 2
  assert "num_seeds must be a positive integer" in capsys.readouterr().err
