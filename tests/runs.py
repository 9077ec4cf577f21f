"""Training runs in other processes, as users start them, and their checkpoints read back here."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np

from conftest import REPO, config_path
from gan_jax import cli, experiment


def final_state(workdir):
  """(latest checkpointed step, its state) of `workdir`."""
  exp, ckpt = experiment.load(str(workdir))
  try:
    return ckpt.latest_step(), experiment.restore_latest(exp, ckpt)
  finally:
    ckpt.close()


def stopped_copy(whole, split):
  """`split`: a copy of the finished run `whole` as a run stopped just after its next-to-last
  checkpoint leaves it (the last checkpoint and the metrics logged after it removed), for the
  caller to resume with the same command and compare to `whole` (`assert_resumed_as`). Returns
  the step it resumes from."""
  shutil.copytree(whole, split)
  steps = sorted(int(s) for s in os.listdir(os.path.join(split, "checkpoints")) if s.isdigit())
  assert len(steps) >= 2, f"{whole} keeps checkpoints {steps}: resuming needs two"
  shutil.rmtree(os.path.join(split, "checkpoints", str(steps[-1])))
  path = os.path.join(split, "metrics.jsonl")
  with open(path) as f:
    kept = [line for line in f if json.loads(line)["step"] <= steps[-2]]
  with open(path, "w") as f:
    f.writelines(kept)
  return steps[-2]


def assert_resumed_as(split, whole):
  """`split`, resumed, ends as `whole` did, bit for bit, having logged each step once as `whole`
  did (a run started again from step 0 would log the early steps twice)."""
  assert logged_steps(split) == logged_steps(whole)
  (step_a, a), (step_b, b) = final_state(split), final_state(whole)
  assert step_a == step_b
  assert_bitwise_equal(a, b)
  return step_a, a


def assert_bitwise_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def spawn(args, devices=8, env=None, log=None, fast_compile=True):
  """`python -m gan_jax ARGS` with `devices` fake CPU devices; output to the file `log`. It
  compiles as this process does (the default selection's fast-compile flags: a few steps'
  runs are mostly compiling), or at XLA's defaults (`fast_compile=False`)."""
  ours = os.environ.get("XLA_FLAGS", "").split() if fast_compile else []
  flags = [f for f in ours if not f.startswith("--xla_force_host_platform_device_count")]
  flags.append(f"--xla_force_host_platform_device_count={devices}")
  env = {**os.environ, "XLA_FLAGS": " ".join(flags), **(env or {})}
  out = open(log, "w") if log else subprocess.PIPE
  return subprocess.Popen([sys.executable, "-m", "gan_jax", *args], cwd=REPO, env=env,
                          stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE,
                          text=True)


def train_apart(name, workdir, *flags, timeout=None):
  """`gan-jax train` of configs/NAME.py in a process of one CPU device at XLA's default flags
  (not the suite's 8 fake devices and fast-compile flags, where hundreds of small steps run
  ~3-4x slower); returns what it printed."""
  proc = spawn(["train", f"--config={config_path(name, None)}", f"--workdir={workdir}",
                "--noprogress", *flags], devices=1, fast_compile=False)
  out, err = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, err[-2000:]
  return out


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(args, processes, devices, logs, env=None):
  """One multi-process job on this machine: `processes` processes of `devices` devices each,
  joined by jax.distributed on 127.0.0.1; process i's output goes to logs[i]."""
  port = free_port()
  return [spawn(args, devices, log=logs[i], env={
      "GAN_JAX_COORDINATOR": f"127.0.0.1:{port}", "GAN_JAX_NUM_PROCESSES": str(processes),
      "GAN_JAX_PROCESS_ID": str(i), **(env or {})}) for i in range(processes)]


def wait_all(procs, timeout):
  """Return codes of `procs`, killing every one still running after `timeout` seconds."""
  deadline = time.time() + timeout
  for p in procs:
    try:
      p.wait(timeout=max(deadline - time.time(), 0.1))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise AssertionError(f"processes still running after {timeout} s") from None
  return [p.returncode for p in procs]


def logged_steps(workdir):
  """Steps metrics.jsonl has logged so far (a line being written may be cut short)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line)["step"] for line in f if line.endswith("\n")]


def wait_for_step(workdir, step, procs, timeout=240):
  """Blocks until `workdir` has logged `step` or later; fails if the processes end first."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if any(s >= step for s in logged_steps(workdir)):
      return
    if any(p.poll() is not None for p in procs):
      raise AssertionError(f"a process ended before step {step} was logged")
    time.sleep(0.1)
  raise AssertionError(f"step {step} was not logged within {timeout} s")


def trained(tmp_path_factory, name, *overrides, config=None):
  """runs/<name> under the session's temporary folder: a smoke run of configs/<config or name>,
  trained once per test process (test_api, test_export and test_export_model share them)."""
  workdir = tmp_path_factory.getbasetemp() / "trained" / "runs" / name
  if not (workdir / "checkpoints").is_dir():
    assert cli.main(["train", f"--config={config_path(config or name)}", f"--workdir={workdir}",
                     "--noprogress", *overrides]) == 0
  return workdir
