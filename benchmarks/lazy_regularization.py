"""Why StyleGAN2's lazy regularizers are `lax.cond`s in one compiled step: that program's compile
time and the time of each kind of step in its cycle (main phases only; with the path-length
penalty; with both regularizers), beside a program compiled without the regularizers, which is
what the main phases cost alone and what each extra program of a separate-phases design would
cost to build.

  python benchmarks/lazy_regularization.py [--config=configs/stylegan2_digits.py] [--cycles=2]
      [--json=PATH] [--config.KEY=VALUE ...]

Synthetic data on the device, one step per call (state donated, blocked until ready); the first
call's time less a median call's is the compile time. Prints one JSON object.
"""
import collections
import statistics

import jax
from absl import app, flags

import timing
from throughput import FLAGS, flag_config, prepare

flags.DEFINE_integer("cycles", 2, "timed cycles of the slower regularizer's interval")


def kind(step, loss):
  """Which phases a step runs: main (Gmain, Dmain), +greg, +dreg."""
  parts = ["main"]
  if loss.pl_weight and step % loss.pl_interval == 0:
    parts.append("greg")
  if loss.r1_gamma and step % loss.r1_interval == 0:
    parts.append("dreg")
  return "+".join(parts)


def time_steps(config, calls):
  """(compile seconds, {kind: median ms}, mean ms over the timed steps) of one step per call."""
  config.train.steps_per_call = 1
  _, fn, state, batch = prepare(config)

  def call():
    nonlocal state
    state, metrics = fn(state, batch)
    return metrics

  # Call i runs step i: call 0 (step 0) compiles, calls 1..`calls` are timed.
  first, times = timing.time_calls(call, calls, 0, jax.block_until_ready)
  by_kind = collections.defaultdict(list)
  for step, t in enumerate(times, start=1):
    by_kind[kind(step, config.loss)].append(1e3 * t)
  return (first - statistics.median(times),
          {k: statistics.median(v) for k, v in sorted(by_kind.items())},
          1e3 * statistics.mean(times))


def main(argv):
  del argv
  config = flag_config()
  cycle = max(config.loss.r1_interval, config.loss.pl_interval)
  calls = FLAGS.cycles * cycle
  compile_s, step_ms, mean_ms = time_steps(config.copy_and_resolve_references(), calls)
  plain = config.copy_and_resolve_references()
  plain.loss.r1_gamma, plain.loss.pl_weight = 0.0, 0.0
  plain_compile_s, plain_ms, _ = time_steps(plain, calls)
  timing.emit({
      "config": config.name, "backend": jax.default_backend(),
      "batch_size": config.train.batch_size, "cycle_steps": cycle, "timed_steps": calls,
      "lazy_conds": {"compile_s": compile_s, "step_ms": step_ms, "mean_step_ms": mean_ms},
      "no_regularizers": {"compile_s": plain_compile_s, "step_ms": plain_ms["main"]},
  }, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
