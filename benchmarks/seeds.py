"""N seeds of a config in one program (`train.num_seeds`) against the same N runs one after
another, alternating (A B A B ...) in one process.

  python benchmarks/seeds.py --config=configs/gan_ring2d.py [--num_seeds=8] [--rounds=3]
      [--steps=4] [--warmup=1] [--json=PATH] [--config.KEY=VALUE ...]

A: the vmapped step of num_seeds runs, `steps` calls. B: the one-seed step (compiled once: a
seed changes the initial state, not the program), `steps` calls for each of the num_seeds runs
in turn. Each call runs train.steps_per_call steps of every run it holds; synthetic data on the
device, state donated, input pipeline excluded. Each round gives aggregate steps/s (steps of all
runs per second) of both and their ratio; the median ratio is the figure to quote. Compile times
(first call less a median call) are reported apart. Prints one JSON object. An R3GAN config's A
is `gan-jax tune-gamma`'s program: its runs differ in gamma too (a factor 2 apart).
"""
import statistics
import sys
import time

import jax
from absl import app, flags

from gan_jax import config as config_lib
from gan_jax import tuning

import throughput
import timing

# --config, --steps (timed calls per run and round), --warmup and --json are throughput.py's.
flags.DEFINE_integer("num_seeds", 8, "runs")
flags.DEFINE_integer("rounds", 3, "pairs of measurements")
FLAGS = flags.FLAGS


class Runs:
  """States of `runs` runs (seeds config.seed + i) sharing one compiled step."""

  def __init__(self, config, runs):
    self.runs = runs
    _, self.fn, state, self.batch = throughput.prepare(config)
    self.states = [state] + [throughput.prepare(config_lib.with_seed(config, config.seed + i))[2]
                             for i in range(1, runs)]

  def call(self, i):
    self.states[i], metrics = self.fn(self.states[i], self.batch)
    return metrics

  def warm(self, warmup):
    """Compiles and warms every run up; returns the compile time (the first call less a median
    warm call)."""
    block = jax.block_until_ready
    first, times = timing.time_calls(lambda: self.call(0), max(warmup, 1), 0, block)
    for i in range(1, self.runs):
      timing.time_calls(lambda: self.call(i), warmup - 1, 0, block)
    return timing.first_call(first, times)["compile_s"]

  def time(self, calls):
    """Seconds of `calls` calls of every run, one run after another, each call waited for."""
    t = time.perf_counter()
    for i in range(self.runs):
      for _ in range(calls):
        jax.block_until_ready(self.call(i))
    return time.perf_counter() - t


def main(argv):
  del argv
  n, calls = FLAGS.num_seeds, FLAGS.steps
  together_config = FLAGS.config.copy_and_resolve_references()
  together_config.train.num_seeds = n
  if together_config.get("game") == "r3gan":  # R3GAN: tune-gamma's program, copies by gamma
    gamma = together_config.loss.gamma
    together_config = tuning.sweep_config(together_config,
                                          [gamma * 2.0 ** (i - n // 2) for i in range(n)])
  one_config = FLAGS.config.copy_and_resolve_references()
  one_config.train.num_seeds = 1
  together, apart = Runs(together_config, 1), Runs(one_config, n)
  compile_s = {"together": together.warm(FLAGS.warmup), "apart": apart.warm(FLAGS.warmup)}
  steps = n * calls * one_config.train.steps_per_call  # steps of all runs, either way
  rounds = []
  for _ in range(FLAGS.rounds):
    a, b = steps / together.time(calls), steps / apart.time(calls)
    rounds.append({"together_steps_per_sec": a, "apart_steps_per_sec": b, "ratio": a / b})
    print(rounds[-1], file=sys.stderr, flush=True)
  median = lambda key: statistics.median(r[key] for r in rounds)
  result = {
      "config": one_config.name, "num_seeds": n, "batch_size": one_config.train.batch_size,
      "steps_per_call": one_config.train.steps_per_call, "calls_per_run": calls,
      "backend": jax.default_backend(), "device_count": jax.device_count(),
      "together_steps_per_sec": median("together_steps_per_sec"),
      "apart_steps_per_sec": median("apart_steps_per_sec"), "median_ratio": median("ratio"),
      "compile_s": compile_s,
      "rounds": rounds,
  }
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
