"""A fault suite: runs killed (SIGKILL: no handler runs) at random moments, during steps and
during checkpoint writes, then restarted with the same command, end bitwise equal to a run never
interrupted."""
import random
import time

import pytest

from conftest import config_path
from runs import assert_bitwise_equal, final_state, launch, logged_steps, spawn, wait_all

STEPS = 40
# A checkpoint every 2 steps, so that many kills land while one is being written.
FLAGS = ("--noprogress", f"--config.train.steps={STEPS}", "--config.train.log_every=1",
         "--config.train.checkpoint_every=2")


def args(workdir, config):
  return ["train", f"--config={config_path(config)}", f"--workdir={workdir}", *FLAGS]


def start(workdir, config, processes, log):
  if processes == 1:
    return [spawn(args(workdir, config), log=log)]
  return launch(args(workdir, config), processes, 8 // processes,
                [f"{log}.{i}" for i in range(processes)],
                env={"GAN_JAX_HEARTBEAT_TIMEOUT": "10"})


def kill_at_random(workdir, config, kills, processes, rng, log):
  """Starts the run `kills` times and SIGKILLs one of its processes at a random moment: 0-0.3 s
  after it logs a random step (drawn in increasing order, so the kills spread over the run); then
  lets it finish. Returns the last step logged before each kill."""
  killed_at = []
  for target in sorted(rng.sample(range(1, STEPS * 3 // 4), kills)):  # leaves time to kill
    procs = start(workdir, config, processes, log)
    deadline = time.time() + 240
    while (max(logged_steps(workdir), default=0) < target
           and all(p.poll() is None for p in procs)):
      assert time.time() < deadline, f"the run did not reach step {target}"
      time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.3))
    if any(p.poll() is not None for p in procs):
      break  # it finished first
    rng.choice(procs).kill()
    killed_at.append(logged_steps(workdir)[-1])
    for p in procs:  # the others end on their own (a failed collective, or JAX's heartbeat)
      p.wait(timeout=120)
  assert wait_all(start(workdir, config, processes, log), 300) == [0] * processes
  return killed_at


# Minutes each (every restart imports JAX and restores); tests/test_train.py kills a run once in
# the default suite.
@pytest.mark.slow
@pytest.mark.parametrize("config, kills, processes", [("gan_ring2d", 20, 1), ("dcgan_digits", 5, 2)])
def test_runs_killed_at_random_moments_resume_bitwise(config, kills, processes, tmp_path):
  whole = tmp_path / "whole"
  assert wait_all(start(whole, config, processes, tmp_path / "whole.log"), 300) == [0] * processes
  cut = tmp_path / "cut"
  killed_at = kill_at_random(cut, config, kills, processes, random.Random(kills),
                             tmp_path / "cut.log")
  assert len(killed_at) == kills, f"the run finished before kill {len(killed_at) + 1}"
  (step_a, a), (step_b, b) = final_state(cut), final_state(whole)
  assert step_a == step_b == STEPS, killed_at
  assert_bitwise_equal(a, b)
  print("killed after steps", killed_at)
