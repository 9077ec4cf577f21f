"""What a checkpoint costs the training loop: orbax's asynchronous writes (as shipped) against
synchronous ones, on the same run.

  python benchmarks/checkpoint_stall.py [--config=dcgan_digits] [--steps=400] [--window=10]
      [--set=train.batch_size=16,...]

Each mode trains `--steps` from scratch with a log every 25 steps and a checkpoint every 50, and
times every step call (the loop's `advance`). A window is the `--window` steps that follow a due
step; windows after a checkpoint step (log + checkpoint) are compared with windows after a
log-only step, so the difference is what the checkpoint adds: the copy to the host, the write
itself when synchronous, and the background write's competition for the CPU when not. Prints one
JSON object (medians in seconds, and the ratio of the two modes' added time).
"""
import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from gan_jax import checkpoint, cli, reporting

flags.DEFINE_string("config", "dcgan_digits", "config to train")
flags.DEFINE_integer("steps", 400, "steps per mode")
flags.DEFINE_integer("window", 10, "steps timed after each due step")
flags.DEFINE_list("set", [], "config overrides KEY=VALUE, e.g. train.batch_size=16")
FLAGS = flags.FLAGS
LOG, CHECKPOINT = 25, 50


def run(asynchronous):
  """Step-call times (seconds since start, indexed by step) of one training run."""
  times = {}
  advance, options = reporting.Reporter.advance, checkpoint.ocp.CheckpointManagerOptions

  def timed(self, steps):
    times[len(times) + steps] = time.perf_counter()
    advance(self, steps)

  def mode(**kw):
    return options(**{**kw, "enable_async_checkpointing": asynchronous})

  reporting.Reporter.advance, checkpoint.ocp.CheckpointManagerOptions = timed, mode
  try:
    with tempfile.TemporaryDirectory() as workdir:
      assert cli.main(["train", f"--config={FLAGS.config}", f"--workdir={workdir}",
                       "--noprogress", f"--config.train.steps={FLAGS.steps}",
                       f"--config.train.log_every={LOG}",
                       f"--config.train.checkpoint_every={CHECKPOINT}",
                       f"--config.train.sample_every={FLAGS.steps}",
                       "--config.train.steps_per_call=1",
                       *[f"--config.{kv}" for kv in FLAGS.set]]) == 0
  finally:
    reporting.Reporter.advance, checkpoint.ocp.CheckpointManagerOptions = advance, options
  return times


def windows(times, every, skip=()):
  """Seconds from due step d to step d + window, for the due steps of `every` (the first is
  left out: it may still compile)."""
  due = [d for d in range(2 * every, FLAGS.steps - FLAGS.window, every) if d not in skip]
  return [times[d + FLAGS.window] - times[d] for d in due]


def main(_):
  result = {"config": FLAGS.config, "set": FLAGS.set, "steps": FLAGS.steps, "window": FLAGS.window,
            "log_every": LOG, "checkpoint_every": CHECKPOINT, "machine": f"{os.cpu_count()} CPUs",
            "date": time.strftime("%Y-%m-%d")}
  added = {}
  for name, asynchronous in (("async", True), ("sync", False)):
    times = run(asynchronous)
    after_checkpoint = np.median(windows(times, CHECKPOINT))
    after_log = np.median(windows(times, LOG, skip=range(0, FLAGS.steps, CHECKPOINT)))
    added[name] = after_checkpoint - after_log
    result[name] = {"after_checkpoint_s": round(float(after_checkpoint), 4),
                    "after_log_only_s": round(float(after_log), 4),
                    "added_s": round(float(added[name]), 4)}
  result["sync_over_async_added"] = round(float(added["sync"] / max(added["async"], 1e-6)), 2)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
