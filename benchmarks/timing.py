"""What every benchmark script shares: one way to time calls, one way to report."""
import json
import statistics
import time


def time_calls(call, steps, warmup, wait=lambda out: out):
  """Seconds of the first call (it builds or compiles), then of `steps` calls after `warmup`
  untimed ones; `wait(out)` blocks until a call's work is done (asynchronous devices)."""
  t0 = time.perf_counter()
  wait(call())
  first = time.perf_counter() - t0
  for _ in range(warmup):
    wait(call())
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    wait(call())
    times.append(time.perf_counter() - t)
  return first, times


def per_step(times, batch_size, steps_per_call=1):
  """img/s, steps/s and step time (ms) from call times of `steps_per_call` steps each."""
  step_s = statistics.median(times) / steps_per_call
  return {"imgs_per_sec": batch_size / step_s, "steps_per_sec": 1 / step_s,
          "step_ms": {"median": 1e3 * step_s, "min": 1e3 * min(times) / steps_per_call,
                      "max": 1e3 * max(times) / steps_per_call}}


def emit(result, path=None):
  """Print the result as one JSON object; also write it to `path` if given."""
  text = json.dumps(result, indent=2)
  print(text)
  if path:
    with open(path, "w") as f:
      f.write(text + "\n")
