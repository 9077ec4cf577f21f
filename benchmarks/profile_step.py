"""Where one config's compiled train step spends its time, layer by layer: the operations' times
from a `jax.profiler` trace of a few calls, each operation attributed to the network layer (the
Flax module path) its compiled instruction came from, split into forward and backward.

  python benchmarks/profile_step.py --config=configs/video_digits.py [--batch_size=16]
      [--calls=2] [--top=25] [--json=PATH] [--config.KEY=VALUE ...]

Prints one JSON object: the step's time while traced (tracing slows it a little), the summed
time of its operations per step (on a multi-threaded CPU backend, operations run side by side,
so the sum can pass the step's time) and `layers`, the largest first: {"layer", "forward_ms",
"backward_ms", "share"} per step, "backward" being what differentiation added (the instructions
XLA names from a transposed JVP). Instructions of no module (the noise draws, the optimizer)
are grouped by their operation's name, in parentheses; `unattributed_ms` is the time of
instructions with no source at all (XLA's own copies and loops). The step is `throughput.py`'s
(synthetic data, input pipeline excluded).
"""
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
from absl import app, flags

import throughput
import timing

# --config, --batch_size and --json are throughput.py's.
flags.DEFINE_integer("calls", 2, "traced calls (after one untraced warm-up call)")
flags.DEFINE_integer("top", 25, "layers listed")
FLAGS = flags.FLAGS

# Trace events that are the runtime's own spans around the operations, not operations.
RUNTIME_EVENTS = ("ThunkExecutor", "SlinkyThreadPool", "PjitFunction", "CommonPjRt",
                  "ParseArguments", "$")
# A module in an instruction's op_name ("jit(multi_step)/transpose(jvp(Generator))/Dense_0/
# dot_general"): Flax's class-named scopes, capitalized, as auto-named submodules are.
MODULE = re.compile(r"^[A-Z]\w*$")


def layer_of(op_name):
  """(layer, "forward" | "backward") of an instruction's op_name metadata."""
  side = "backward" if "transpose(" in op_name else "forward"
  parts = [re.sub(r"^(?:\w+\()+|\)+$", "", p) for p in op_name.split("/")[1:]]
  modules = [p for p in parts if MODULE.match(p)]
  if modules:
    return "/".join(modules), side
  return f"({([p for p in parts if p] or ['unnamed'])[-1]})", side


def op_names(hlo_text):
  """Compiled instruction name -> its op_name metadata (fusions carry their root's)."""
  names = {}
  for m in re.finditer(r"^\s*%?([\w.\-]+) = [^\n]*?op_name=\"([^\"]*)\"", hlo_text, re.M):
    names.setdefault(m.group(1), m.group(2))
  return names


def operation_times(trace_dir):
  """Summed self time (microseconds) per trace event name, from the trace jax.profiler wrote:
  an instruction that runs others (a loop, a call) counts only the time they leave over."""
  path, = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
  with gzip.open(path) as f:
    events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X" and "dur" in e]
  times = collections.Counter()
  by_thread = collections.defaultdict(list)
  for e in events:
    by_thread[e["pid"], e["tid"]].append(e)
  for spans in by_thread.values():
    open_spans = []  # [event, time of its children] of the spans enclosing the current one
    for e in sorted(spans, key=lambda e: (e["ts"], -e["dur"])):
      while open_spans and open_spans[-1][0]["ts"] + open_spans[-1][0]["dur"] <= e["ts"]:
        _close(open_spans.pop(), times)
      if open_spans:
        open_spans[-1][1] += e["dur"]
      open_spans.append([e, 0.0])
    while open_spans:
      _close(open_spans.pop(), times)
  return times


def _close(span, times):
  event, children = span
  if not event["name"].startswith(RUNTIME_EVENTS):
    times[event["name"]] += event["dur"] - children


def profile(config, calls):
  _, fn, state, batch = throughput.prepare(config)
  compiled = fn.lower(state, batch).compile()
  names = op_names(compiled.as_text())
  state, metrics = compiled(state, batch)  # warm-up
  jax.block_until_ready(metrics)
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir)
    start = time.perf_counter()
    for _ in range(calls):
      state, metrics = compiled(state, batch)
      jax.block_until_ready(metrics)
    seconds = time.perf_counter() - start
    jax.profiler.stop_trace()
    times = operation_times(trace_dir)
  steps = calls * config.train.steps_per_call
  layers = collections.defaultdict(lambda: {"forward": 0.0, "backward": 0.0})
  unattributed = 0.0
  for name, us in times.items():
    if name in names:
      layer, side = layer_of(names[name])
      layers[layer][side] += us / 1e3 / steps
    else:  # instructions with no source: XLA's own copies and loops
      unattributed += us / 1e3 / steps
  total = sum(v["forward"] + v["backward"] for v in layers.values())
  rows = sorted(({"layer": k, "forward_ms": v["forward"], "backward_ms": v["backward"],
                  "share": (v["forward"] + v["backward"]) / total} for k, v in layers.items()),
                key=lambda r: -r["share"])
  return {"config": config.name, "backend": jax.default_backend(),
          "batch_size": config.train.batch_size, "calls": calls,
          "traced_step_ms": 1e3 * seconds / steps, "operations_ms": total,
          "unattributed_ms": unattributed, "layers": rows}


def main(argv):
  del argv
  result = profile(throughput.flag_config(), FLAGS.calls)
  result["layers"] = result["layers"][:FLAGS.top]
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
