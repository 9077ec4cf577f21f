"""What every benchmark script shares: one way to time calls, one way to report, configs by path."""
import importlib.util
import json
import os
import statistics
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Dense peak FLOP/s of one device, for MFU: (device_kind prefix, dtype) -> flop/s. NVIDIA's
# datasheets (SXM parts, without sparsity) and Google Cloud's TPU pages (bfloat16). float32 is
# the TF32 tensor-core peak: XLA runs float32 convolutions and matmuls as TF32 on these GPUs by
# default (R3GAN's float32 step ran at 98 TFLOP/s on an H200, above the 67 of plain float32).
PEAK_FLOPS = {
    ("NVIDIA H100", "bfloat16"): 989e12, ("NVIDIA H100", "float32"): 495e12,
    ("NVIDIA H200", "bfloat16"): 989e12, ("NVIDIA H200", "float32"): 495e12,
    ("NVIDIA A100", "bfloat16"): 312e12, ("NVIDIA A100", "float32"): 156e12,
    ("TPU v4", "bfloat16"): 275e12, ("TPU v5 lite", "bfloat16"): 197e12,
    ("TPU v5p", "bfloat16"): 459e12, ("TPU v6 lite", "bfloat16"): 918e12,
}


def peak_flops(device_kind, dtype):
  """The device's peak for `dtype`, or None where it is not in the table (CPUs)."""
  return next((v for (kind, dt), v in PEAK_FLOPS.items()
               if device_kind.startswith(kind) and dt == dtype), None)


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
  """img/s, seconds per thousand images (StyleGAN's unit), steps/s and step time (ms) from call
  times of `steps_per_call` steps each."""
  step_s = statistics.median(times) / steps_per_call
  return {"imgs_per_sec": batch_size / step_s, "sec_per_kimg": 1000 * step_s / batch_size,
          "steps_per_sec": 1 / step_s,
          "step_ms": {"median": 1e3 * step_s, "min": 1e3 * min(times) / steps_per_call,
                      "max": 1e3 * max(times) / steps_per_call}}


def first_call(first_s, times):
  """The first call's time and the compile time in it: the first call less a median call."""
  return {"first_call_s": first_s, "compile_s": first_s - statistics.median(times)}


# --- PyTorch peers (torch is imported only by them) -----------------------------------------

def count(net):
  """A torch module's parameters."""
  return sum(p.numel() for p in net.parameters())


def torch_wait(device):
  """`time_calls`' wait for a torch device: CUDA runs asynchronously."""
  import torch  # pylint: disable=g-import-not-at-top
  return (lambda out: torch.cuda.synchronize()) if device.type == "cuda" else (lambda out: out)


def torch_record(name, device, compile, batch_size, dtype, first_s, times, steps_per_call=1,
                 **fields):
  """What every PyTorch peer prints, in throughput.py's keys: `name` (+ "_compile"), the device,
  threads, timings, `fields` (parameter counts, settings), and peak memory on CUDA."""
  import torch  # pylint: disable=g-import-not-at-top
  result = {
      "config": name + ("_compile" if compile else ""), "backend": "torch " + device.type,
      "device_kind": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
      "device_count": 1, "threads": torch.get_num_threads(), "batch_size": batch_size,
      "dtype": dtype, **per_step(times, batch_size, steps_per_call),
      **first_call(first_s, times), **fields}
  if device.type == "cuda":
    result["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
  return result


def load_config(path, overrides=None, arg=None):
  """A config file's `get_config(arg)` (`path` absolute or from the repository's root) with
  `overrides` ({"train.batch_size": 8, ...}), for scripts that take several configs."""
  spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  for key, value in (overrides or {}).items():
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def emit(result, path=None):
  """Print the result as one JSON object; also write it to `path` if given."""
  text = json.dumps(result, indent=2)
  print(text)
  if path:
    with open(path, "w") as f:
      f.write(text + "\n")
