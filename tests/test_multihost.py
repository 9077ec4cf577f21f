"""Several processes joined by jax.distributed on 127.0.0.1, as on a pod or cluster: the same
results as one process, one checkpoint that any process count reads, a stop request to any
process stopping all of them at one step, and a dead process ending the others."""
import json
import os
import re
import signal
import time

import jax
import numpy as np
import pytest

from conftest import config_path
from runs import assert_bitwise_equal, final_state, launch, spawn, wait_all, wait_for_step

# dcgan_digits:smoke (batch 16) with constant learning rates, so a run may be resumed with a
# larger train.steps; metrics every 2 steps, a checkpoint every 4.
FLAGS = ("--noprogress",
         "--config.train.log_every=2", "--config.train.checkpoint_every=4",
         "--config.optim.g.schedule=constant", "--config.optim.d.schedule=constant")
DEVICES = 4  # global devices of every run here: 1 x 4, 2 x 2 or 4 x 1


def train_args(workdir, steps):
  return ["train", f"--config={config_path('dcgan_digits')}", f"--workdir={workdir}",
          f"--config.train.steps={steps}", *FLAGS]


def train(workdir, steps, processes=1, timeout=300):
  """Trains `workdir` to `steps` with `processes` processes; returns their logs."""
  args = train_args(workdir, steps)
  logs = [f"{workdir}.log{i}" for i in range(processes)]
  if processes == 1:
    procs = [spawn(args, DEVICES, log=logs[0])]
  else:
    procs = launch(args, processes, DEVICES // processes, logs)
  codes = wait_all(procs, timeout)
  texts = [open(log).read() for log in logs]
  assert codes == [0] * processes, texts
  return texts


def metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def assert_close(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), atol=atol)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("one") / "run"
  train(workdir, 8)
  return workdir


@pytest.mark.parametrize("processes", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_processes_match_one_process(processes, one_process, tmp_path):
  """The same global batch over 2 (4) processes: the first steps' metrics and parameters equal
  one process's to float tolerance. (Over hundreds of steps the collectives' summation order
  makes them drift apart; bitwise equality holds between runs of one process count.)"""
  workdir = tmp_path / "run"
  train(workdir, 8, processes)
  assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "8"]  # one checkpoint, not one each
  ours, theirs = metrics(workdir), metrics(one_process)
  assert [r["step"] for r in ours] == [r["step"] for r in theirs] == [2, 4, 6, 8]
  for a, b in zip(ours, theirs):
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
      assert a[key] == pytest.approx(b[key], abs=1e-5), key
  (step_a, a), (step_b, b) = final_state(workdir), final_state(one_process)
  assert step_a == step_b == 8
  assert_close(a, b, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("first, then", [(1, 2), (2, 1)])
def test_checkpoint_restores_with_another_process_count(first, then, one_process, tmp_path):
  """A checkpoint written by `first` processes continues under `then` with the batches an
  uninterrupted run sees: the end matches one uninterrupted process to float tolerance."""
  workdir = tmp_path / "run"
  train(workdir, 4, first)
  train(workdir, 8, then)
  ours, theirs = metrics(workdir), metrics(one_process)
  assert [r["step"] for r in ours] == [2, 4, 6, 8]
  for a, b in zip(ours[2:], theirs[2:]):
    assert a["d_loss"] == pytest.approx(b["d_loss"], abs=1e-5)
  assert_close(final_state(workdir)[1], final_state(one_process)[1], atol=1e-5)


LONG = 30  # steps of the runs stopped on the way (two processes step ~5 times a second here)


@pytest.fixture(scope="module")
def two_processes_whole(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("whole") / "run"
  train(workdir, LONG, 2)
  return final_state(workdir)


def stopped_at(log):
  return int(re.search(r"stopped at step (\d+)", log).group(1))


@pytest.mark.parametrize("sig, target", [
    (signal.SIGTERM, 1),  # a preemption notice to one process
    pytest.param(signal.SIGINT, 0, marks=pytest.mark.slow)])  # Ctrl-C in process 0's terminal
def test_stop_request_to_one_process_stops_all_at_one_step(sig, target, two_processes_whole,
                                                          tmp_path):
  workdir = tmp_path / "run"
  args = train_args(workdir, LONG)
  logs = [tmp_path / "log0", tmp_path / "log1"]
  procs = launch(args, 2, DEVICES // 2, logs)
  wait_for_step(workdir, 6, procs)
  procs[target].send_signal(sig)
  assert wait_all(procs, 120) == [0, 0]
  texts = [log.read_text() for log in logs]
  step = stopped_at(texts[0])
  assert step == stopped_at(texts[1]) and 6 <= step < LONG, texts
  assert final_state(workdir)[0] == step  # both saved that step, together
  train(workdir, LONG, 2)  # the same command resumes
  step, state = final_state(workdir)
  assert step == LONG
  assert_bitwise_equal(state, two_processes_whole[1])


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])  # 0 also hosts the coordination service
def test_killed_process_ends_the_others_and_the_run_resumes(victim, two_processes_whole,
                                                            tmp_path):
  workdir = tmp_path / "run"
  args = train_args(workdir, LONG)
  logs = [tmp_path / "log0", tmp_path / "log1"]
  procs = launch(args, 2, DEVICES // 2, logs, env={"GAN_JAX_HEARTBEAT_TIMEOUT": "10"})
  wait_for_step(workdir, 6, procs)
  procs[victim].kill()
  survivor = procs[1 - victim]
  start = time.time()
  survivor.wait(timeout=60)  # bounded: raises if it hangs
  text = logs[1 - victim].read_text()
  assert survivor.returncode != 0 and time.time() - start < 60
  # Our sentence when the survivor's collective fails (exit 1); JAX's runtime ends it when it was
  # waiting elsewhere, once the dead one misses heartbeats (or at once, if it hosted the service).
  assert "one of them has likely died" in text or "another task died" in text, text
  train(workdir, LONG, 2)  # rerunning the command resumes from the last checkpoint
  step, state = final_state(workdir)
  assert step == LONG
  assert_bitwise_equal(state, two_processes_whole[1])


@pytest.mark.parametrize("verb", ["sample", "evaluate", "export", "translate", "upscale", "report"])
def test_other_verbs_say_they_run_in_one_process(verb, tmp_path):
  proc = spawn([verb, f"--workdir={tmp_path}"], env={
      "GAN_JAX_COORDINATOR": "127.0.0.1:1", "GAN_JAX_NUM_PROCESSES": "2",
      "GAN_JAX_PROCESS_ID": "0"})
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 2
  assert err.count("\n") == 1 and "one process" in err and "GAN_JAX_COORDINATOR" in err, err


@pytest.mark.parametrize("env, expected", [
    ({"GAN_JAX_NUM_PROCESSES": "two", "GAN_JAX_PROCESS_ID": "0"}, "GAN_JAX_NUM_PROCESSES='two'"),
    ({"GAN_JAX_NUM_PROCESSES": "2", "GAN_JAX_PROCESS_ID": "2"}, "GAN_JAX_PROCESS_ID=2 is not below"),
    ({"GAN_JAX_NUM_PROCESSES": "2"}, "GAN_JAX_PROCESS_ID=''")])
def test_bad_multi_process_environment_is_one_sentence(env, expected, tmp_path):
  proc = spawn(train_args(tmp_path / "run", 4),
               env={"GAN_JAX_COORDINATOR": "127.0.0.1:1", "GAN_JAX_PROCESS_ID": "", **env})
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 2 and err.count("\n") == 1 and expected in err, err
  assert not (tmp_path / "run").exists()
