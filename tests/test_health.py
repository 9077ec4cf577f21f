"""The training-health monitor: each detector on made-up histories, firing and not; real runs made
to fail (mode collapse, a winning D) raise their alarm, healthy ones none; `train.health=stop`
ends the run with one sentence and exit code 1, `off` writes no health keys."""
import json
import os
import subprocess
import sys
import types

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, config_path
from runs import train_apart
from gan_jax import cli, config as config_lib, health, run_report
from gan_jax.errors import HealthAlarm
from gan_jax.games.common import d_accuracy
from gan_jax.losses import adversarial
from gan_jax.metrics.scores import mean_pairwise_distance

W = health.WINDOW


# --- detectors on made-up histories ----------------------------------------------------------

def test_d_wins_when_it_stays_sure_for_d_wins_steps():
  every = 50
  steps = np.arange(every, 2001, every)
  sure, unsure = np.ones(len(steps)), np.full(len(steps), 0.55)
  span = health.D_WINS_STEPS // every  # logged steps after the first sure one
  assert health.d_wins(steps[:span + 1], sure[:span + 1], sure[:span + 1])
  assert not health.d_wins(steps[:span], sure[:span], sure[:span])
  assert not health.d_wins(steps, unsure, unsure)  # a D at equilibrium
  # A healthy DCGAN's D on the digits: right about every sample for a few logged steps, then
  # G catches up.
  bursts = np.where((steps // every) % 6 < 4, 1.0, 0.7)
  assert not health.d_wins(steps, bursts, bursts)
  # Sure for long, then unsure once: the streak starts over.
  once = sure.copy()
  once[-3] = 0.8  # balanced accuracy 0.9
  assert not health.d_wins(steps, once, sure) and health.d_wins(steps[:-3], once[:-3], sure[:-3])
  # Balanced: all reals right and a few fakes wrong is still winning (0.975 >= 0.95).
  assert health.d_wins(steps, sure, np.full(len(steps), 0.95))
  # Logging every step: D_WINS_STEPS of them, not WINDOW.
  every_step = np.arange(1, health.D_WINS_STEPS + 1)
  assert not health.d_wins(every_step, np.ones(len(every_step)), np.ones(len(every_step)))


def test_d_wins_per_seed():
  steps = np.arange(100, health.D_WINS_STEPS + 101, 100)
  acc = np.stack([np.ones(len(steps)), np.full(len(steps), 0.5)], 1)  # [steps, seeds]
  np.testing.assert_array_equal(health.d_wins(steps, acc, acc), [True, False])


def test_g_vanished():
  assert health.g_vanished([1.0, 2.0] + [0.0] * W)  # dead units: exactly 0
  assert not health.g_vanished([1.0, 2.0] + [0.0] * (W - 1))
  # A healthy ring run's gradient falls to ~3% of its peak as the learning rate decays.
  assert not health.g_vanished(np.geomspace(0.7, 0.02, 40))
  np.testing.assert_allclose(health.share_of_peak([2.0, 4.0, 1.0, 5.0]), [1, 1, 0.25, 1])


def test_loss_spike():
  noisy = 0.7 + 0.02 * np.random.default_rng(0).standard_normal(30)
  assert health.spike_score(noisy) < 3
  assert health.spike_score(np.append(noisy, 2.0)) > health.SPIKE_SIGMAS
  # A flat loss's tiny wobbles are no spike: the spread is floored at a share of the median.
  flat = np.append(np.full(20, 1.386), 1.39)
  assert health.spike_score(flat) < 1
  assert health.spike_score(np.append(noisy[:5], 50.0)) == 0  # too little history to judge
  assert health.spike_score(np.append(noisy, 0.0)) == 0  # a loss that drops is no spike


def test_nonfinite_names_the_values_and_the_seeds():
  names, fired = health.nonfinite({"d_loss": 1.0, "g_grad_norm": np.inf, "r1": np.nan})
  assert names == ["g_grad_norm", "r1"] and fired
  names, fired = health.nonfinite({"d_loss": np.array([1.0, 2.0]),
                                   "g_grad_norm": np.array([1.0, np.inf])})
  assert names == ["g_grad_norm"] and list(fired) == [False, True]


def test_diversity_of_points_and_images():
  assert mean_pairwise_distance([[0.0, 0.0], [3.0, 4.0]]) == pytest.approx(5.0)
  # Three points on a line at 0, 1, 3: pair distances 1, 3, 2.
  assert mean_pairwise_distance([[0.0], [1.0], [3.0]]) == pytest.approx(2.0)
  assert health.diversity(np.ones((10, 2))) == 0  # one point: full collapse
  images = np.random.default_rng(0).uniform(-1, 1, (6, 64, 64, 3))
  assert health.pooled(images).shape == (6, health.POOL_SIDE ** 2 * 3)
  np.testing.assert_allclose(health.pooled(images)[0, :3], images[0, :2, :2].mean((0, 1)),
                             rtol=1e-6)
  assert not health.collapsed(0.9) and health.collapsed(0.1)


def test_classes_covered_counts_digits_found_at_a_quarter_of_their_share():
  assert health.classes_covered(np.arange(100) % 10, 10) == 1.0
  assert health.classes_covered(np.zeros(100, int), 10) == 0.1  # one digit
  # 7 digits evenly, 3 at 2% each (under a quarter of 10%): 7 of 10 found, the alarm's side.
  few = np.concatenate([np.repeat(np.arange(7), 13), np.repeat([7, 8, 9], 2)])
  assert health.classes_covered(few, 10) == 0.7 < health.CLASSES_COVERED
  # 3 at 3% each are still found (a quarter of 10% is 2.5%).
  some = np.concatenate([np.repeat(np.arange(7), 13), np.repeat([7, 8, 9], 3)])
  assert health.classes_covered(some, 10) == 1.0


def test_d_accuracy_is_measured_at_the_losses_decision_boundary():
  acc = d_accuracy(jnp.array([1.0, -1.0, 2.0, 0.3]), jnp.array([-1.0, 1.0, -3.0, 0.3]), 0.0)
  assert float(acc["d_acc_real"]) == 0.75 and float(acc["d_acc_fake"]) == 0.5
  assert float(d_accuracy(jnp.array([0.3]), jnp.array([0.3]), 0.5)["d_acc_fake"]) == 1.0
  assert adversarial.decision_threshold("least_squares") == 0.5
  assert adversarial.decision_threshold("hinge") == 0.0
  assert adversarial.decision_threshold("wasserstein") is None  # a critic has no boundary


# --- the monitor on made-up metrics ---------------------------------------------------------

class Messages:
  def __init__(self):
    self.lines = []

  def message(self, text):
    self.lines.append(text)


PENALTY = "a penalty (--config.loss.p)"  # the fake games' advice: a game names its own


def monitor(mode="warn", penalty=PENALTY):
  """A Monitor of a game that cannot draw from noise (no diversity), writing to `Messages`."""
  config = config_lib.base_config()
  config.train.health = mode
  game = types.SimpleNamespace(can_generate=False)
  if penalty:
    game.d_penalty_hint = penalty
  exp = types.SimpleNamespace(config=config, num_seeds=1, game=game)
  return health.Monitor(exp, None, Messages(), 0)


def winning(step):
  """A D right about everything from step 30 on."""
  late = step >= 30
  return {"d_loss": 0.05, "g_loss": 5.0, "d_real": 20.0, "d_fake": -20.0,
          "d_acc_real": 1.0 if late else 0.6, "d_acc_fake": 1.0 if late else 0.5,
          "d_grad_norm": 1.0, "g_grad_norm": 0.1 if late else 10.0}


def run(mon, metrics_of, steps, every=10):
  return {s: mon.check(s, metrics_of(s), lambda: None) for s in range(every, steps + 1, every)}


def test_an_alarm_is_logged_at_every_step_it_holds_and_written_once():
  mon = monitor()
  end = 30 + health.D_WINS_STEPS + 100
  keys = run(mon, winning, end)
  fired = [s for s, k in keys.items() if k["health/alarm_d_wins"]]
  assert fired == list(range(30 + health.D_WINS_STEPS, end + 1, 10))
  assert all(not k["health/alarm_nonfinite"] and not k["health/alarm_g_vanished"]
             for k in keys.values())
  # Spikes are judged once SPIKE_MIN_HISTORY logged values precede one.
  assert [s for s, k in keys.items() if "health/loss_spike" in k][0] == 10 * (
      health.SPIKE_MIN_HISTORY + 1)
  [line] = mon.reporter.lines
  assert line.startswith(f"Health alarm at step {fired[0]}: D is winning") and "\n" not in line
  assert "G's gradient norm at 1% of its peak" in line and "Usually tried: " in line
  assert f"--config.optim.g.lr), add {PENALTY}, use the non_saturating loss" in line
  mon.raise_if_stopping(last_checkpoint=50)  # warn: never stops
  mon = monitor(penalty=None)  # a game without a penalty of its own (the translators)
  run(mon, winning, end)
  assert "--config.optim.g.lr), use the non_saturating loss" in mon.reporter.lines[0]


def test_stop_raises_one_sentence_naming_the_step_and_the_checkpoint():
  mon = monitor("stop")
  end = 30 + health.D_WINS_STEPS
  keys = run(mon, winning, end)
  assert keys[end]["health/alarm_d_wins"] and not keys[end - 10]["health/alarm_d_wins"]
  with pytest.raises(HealthAlarm) as e:
    mon.raise_if_stopping(last_checkpoint=500)
  message = str(e.value)
  assert message.startswith(f"Training stopped at step {end} by the health monitor: D is winning")
  assert "the checkpoint of step 500 is intact" in message and ". " not in message
  with pytest.raises(HealthAlarm, match="no checkpoint had been written yet"):
    mon.raise_if_stopping(last_checkpoint=None)


def test_off_watches_nothing():
  mon = monitor("off")
  assert all(k == {} for k in run(mon, winning, 100).values())
  assert mon.reporter.lines == []


def test_a_rollback_forgets_the_steps_it_undid():
  mon = monitor()
  run(mon, winning, 60)
  assert [s for s, _ in mon.history][-1] == 60
  mon.check(40, winning(40), lambda: None)
  assert [s for s, _ in mon.history] == [10, 20, 30, 40]


class Points:
  """A data source of 2D points."""

  def __init__(self, points):
    self.points = points

  def __len__(self):
    return len(self.points)

  def get(self, indices):
    return {"x": self.points[indices]}


def test_diversity_is_measured_past_each_sample_every_and_again_after_a_rollback():
  points = np.random.default_rng(0).standard_normal((500, 2)).astype(np.float32)

  def generate(state, num, seed, ema):  # the "collapsed" G draws one point
    return (np.zeros((num, 2)) if state == "collapsed" else points[-num:]), None
  config = config_lib.base_config()
  config.train.sample_every, config.train.steps = 100, 1000
  config.train.health_samples = 100
  config.data.source = "ring2d"
  game = types.SimpleNamespace(can_generate=True, generate=generate, d_penalty_hint=PENALTY,
                               multi_critic=True)  # the noise game's D steps per G step
  exp = types.SimpleNamespace(config=config, num_seeds=1, seed_state=lambda state, i: state,
                              game=game)
  mon = health.Monitor(exp, Points(points), Messages(), 0)
  checked = {s: mon.check(s, winning(0), lambda s=s: "collapsed" if s > 200 else "fine")
             for s in (50, 100, 150, 250, 300)}
  assert [s for s, k in checked.items() if "health/diversity" in k] == [100, 250, 300]
  assert 0.8 < checked[100]["health/diversity"] < 1.2 and not checked[100]["health/alarm_collapse"]
  assert checked[250]["health/diversity"] == 0 and checked[250]["health/alarm_collapse"]
  assert "likely mode collapse" in mon.reporter.lines[0]
  assert "pairwise distance of 100 samples" in mon.reporter.lines[0]
  assert f"add {PENALTY}, more D steps per G step (--config.train.n_critic), or a larger batch" in (
      mon.reporter.lines[0])
  # Rolled back to step 150: the next logged step passes step 200 again.
  assert "health/diversity" in mon.check(250, winning(0), lambda: "fine")


def test_on_the_digits_missing_digits_twice_in_a_row_are_a_collapse(monkeypatch):
  """Samples as spread out as real digits, but the classifier reads 3 digits in them."""
  digits = np.random.default_rng(0).uniform(-1, 1, (300, 8, 8, 1)).astype(np.float32)

  class ThreeDigits:
    def predict(self, images):
      return np.arange(len(images)) % (3 if self.few else 10)
  reader = ThreeDigits()
  monkeypatch.setattr(health.DigitsClassifier, "load_or_train", lambda: reader)
  config = config_lib.base_config()
  config.train.sample_every, config.train.steps = 100, 1000
  exp = types.SimpleNamespace(
      config=config, num_seeds=1, seed_state=lambda state, i: state, game=types.SimpleNamespace(
          can_generate=True, generate=lambda state, num, seed, ema: (digits[-num:], None),
          d_penalty_hint=PENALTY))
  mon = health.Monitor(exp, Points(digits), Messages(), 0)
  checked = {}
  for step, few in ((100, True), (200, False), (300, True), (400, True)):
    reader.few = few
    checked[step] = mon.check(step, winning(0), lambda: "state")
  assert [checked[s]["health/classes_covered"] for s in (100, 200, 300, 400)] == [.3, 1, .3, .3]
  assert [bool(checked[s]["health/alarm_collapse"]) for s in (100, 200, 300, 400)] == [
      False, False, False, True]  # once is early training's unevenness, twice a collapse
  assert "finds 3 of 10 digits" in mon.reporter.lines[0]
  # A game with one D update per G update is not told to raise train.n_critic.
  assert f"add {PENALTY}, or a larger batch" in mon.reporter.lines[0]


def test_a_nonfinite_gradient_norm_alarms_at_once():
  mon = monitor()
  metrics = {**winning(0), "g_grad_norm": np.inf}
  assert mon.check(10, metrics, lambda: None)["health/alarm_nonfinite"]
  assert "g_grad_norm became non-finite" in mon.reporter.lines[0]


def test_seeds_are_judged_one_by_one():
  """Under train.num_seeds every value is an [N] array; an alarm names the seeds it fired for."""
  mon = monitor()
  keys = run(mon, lambda s: {k: np.array([0.6 if k.startswith("d_acc") else v, v])
                             for k, v in winning(s).items()}, 30 + health.D_WINS_STEPS)
  last = keys[30 + health.D_WINS_STEPS]
  assert list(last["health/alarm_d_wins"]) == [False, True]
  assert list(last["health/g_grad_share"]) == [0.01, 0.01]
  [line] = mon.reporter.lines
  assert "G is not catching up (seeds 1)." in line


# --- real runs -----------------------------------------------------------------------------

def records(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


def alarms(workdir):
  """{alarm key: [steps where it was non-zero]}."""
  found = {}
  for r in records(workdir):
    for k, v in r.items():
      if k.startswith("health/alarm_") and "/seed_" not in k:
        found.setdefault(k, [])
        if v:
          found[k].append(r["step"])
  return found


def train(workdir, *flags, arg=None, name="gan_ring2d"):
  return cli.main(["train", f"--config={config_path(name, arg)}", f"--workdir={workdir}",
                   "--noprogress", *flags])


# The 2D ring in steps of 50 (its default), short, at constant learning rates and without R1.
SHORT = ("--config.train.log_every=50", "--config.train.sample_every=100",
         "--config.train.checkpoint_every=100", "--config.loss.r1_weight=0",
         "--config.optim.g.schedule=constant", "--config.optim.d.schedule=constant")
# G 500x faster than D: G moves all its samples onto the one point D likes best.
COLLAPSE = (*SHORT, "--config.train.steps=300", "--config.optim.g.lr=0.05",
            "--config.optim.d.lr=1e-4")
# Healthy: the ring's own recipe, shortened (its learning rates decay over the 400 steps).
HEALTHY = ("--config.train.steps=400", "--config.train.batch_size=256",
           "--config.train.steps_per_call=20", "--config.train.log_every=20",
           "--config.train.sample_every=100", "--config.train.checkpoint_every=400")
ALARMS = {f"health/alarm_{k}" for k in ("nonfinite", "loss_spike", "d_wins", "g_vanished",
                                         "collapse")}


def test_a_collapsing_run_raises_the_collapse_alarm_and_report_marks_it(tmp_path):
  out = train_apart("gan_ring2d", tmp_path, *COLLAPSE, timeout=300)
  found = alarms(tmp_path)
  assert found["health/alarm_collapse"] and found["health/alarm_collapse"][0] <= 200
  diversity = [r["health/diversity"] for r in records(tmp_path) if "health/diversity" in r]
  assert len(diversity) == 3 and max(diversity[1:]) < 0.05  # G draws one point
  assert out.count("Health alarm") == 1 and "likely mode collapse" in out
  result = run_report.report(str(tmp_path))
  assert set(found["health/alarm_collapse"]) <= set(result.alarms)
  assert "health/diversity" in [p.name for p in result.panels]


@pytest.mark.slow  # ~60 s on 2 cores: D_WINS_STEPS of D winning take 1100 steps of batch 512
def test_a_d_that_keeps_winning_raises_its_alarm(tmp_path):
  """G barely moves (learning rate 1e-6) and the minimax loss gives it little to learn from."""
  assert train(tmp_path, *SHORT, "--config.train.steps=1100",
               "--config.loss.adversarial=minimax", "--config.optim.g.lr=1e-6",
               "--config.optim.d.lr=0.05") == 0
  found = alarms(tmp_path)
  assert found["health/alarm_d_wins"] and found["health/alarm_d_wins"][0] <= 1100


def test_healthy_ring_runs_raise_no_alarm_in_three_seeds(tmp_path):
  """Seeds 0, 1 and 2 in one program (train.num_seeds), each judged on its own."""
  out = train_apart("gan_ring2d", tmp_path, *HEALTHY, "--config.train.num_seeds=3", timeout=300)
  assert "Health alarm" not in out
  found = {}
  for r in records(tmp_path):
    for k, v in r.items():
      if k.startswith("health/alarm_"):
        found.setdefault(k, []).extend([r["step"]] if v else [])
  assert {k.split("/seed_")[0] for k in found} == ALARMS
  assert {f"health/alarm_collapse/seed_{i}" for i in range(3)} <= found.keys()
  assert all(steps == [] for steps in found.values()), found
  diversity = [r for r in records(tmp_path) if "health/diversity" in r]
  assert len(diversity) == 4 and min(r[f"health/diversity/seed_{i}"] for r in diversity
                                     for i in range(3)) > 0.8


def test_stop_ends_the_cli_with_exit_code_1_and_one_sentence(tmp_path):
  env = {**os.environ, "PYTHONPATH": REPO}
  proc = subprocess.run(
      [sys.executable, "-m", "gan_jax", "train", f"--config={config_path('gan_ring2d', None)}",
       f"--workdir={tmp_path}", "--noprogress", *COLLAPSE, "--config.train.checkpoint_every=50",
       "--config.train.health=stop"],
      capture_output=True, text=True, env=env, timeout=300)
  assert proc.returncode == 1, proc.stderr
  err = proc.stderr.strip()
  assert err.startswith("gan-jax: Training stopped at step 100 by the health monitor: sample "
                        "diversity dropped to 0% of the real data's"), err
  assert err.endswith("; the checkpoint of step 50 is intact (--config.train.health=warn logs "
                      "alarms and trains on).") and "\n" not in err
  assert "Health alarm at step 100" in proc.stdout
  assert max(r["step"] for r in records(tmp_path)) == 100  # the alarm was logged, then it stopped
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["50"]


def test_off_writes_no_health_keys(tmp_path):
  assert train(tmp_path / "off", "--config.train.health=off", arg="smoke") == 0
  logged = records(tmp_path / "off")
  assert logged and not [k for r in logged for k in r if k.startswith("health/")]
  assert train(tmp_path / "warn", arg="smoke") == 0  # what off leaves out
  assert "health/alarm_nonfinite" in records(tmp_path / "warn")[0]


def test_a_bad_health_setting_is_one_sentence(tmp_path, capsys):
  assert train(tmp_path / "run", "--config.train.health=loud", arg="smoke") == 2
  err = capsys.readouterr().err.strip()
  assert "--config.train.health='loud' is not supported: choose one of warn, stop, off." in err
  assert not (tmp_path / "run").exists()
