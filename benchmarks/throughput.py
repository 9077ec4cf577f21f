"""Throughput of one config's compiled train step (any game) on synthetic data on the device.

  python benchmarks/throughput.py --config=configs/dcgan64.py [--batch_size=64] [--steps=20]
      [--warmup=3] [--json=PATH] [--compilation_cache=DIR] [--config.KEY=VALUE ...]

Times `steps` calls of the jitted step (state donated, blocked until ready; input pipeline
excluded) after `warmup` calls and prints one JSON object: img/s (median over calls), step time,
compile time (the first call's time less a median call's), parameter counts, XLA's flop count per
step (with `train.micro_batches`, the same step's in one batch), MFU where the device's peak is
known, the train state's bytes on one device (`state_bytes_per_device`: what
`parallel.strategy=fsdp` shrinks), XLA's temporary memory of a call (`step_temp_bytes`: what
`train.micro_batches` shrinks) and peak device memory where the backend reports it (on CPU: the
process's peak resident memory, compilation included). A call runs the config's
`train.steps_per_call` steps; figures are per step.
"""
import resource
import statistics

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from gan_jax import config as config_lib, encoders, parallel, step as step_lib
from gan_jax.data import sources
from gan_jax.data.sources import DataSpec
from gan_jax.experiment import Experiment
from gan_jax.models import layers

import timing

config_flags.DEFINE_config_file("config", None, "config file", lock_config=True)
flags.DEFINE_integer("batch_size", None, "global batch (default: the config's)")
flags.DEFINE_integer("steps", 20, "timed calls")
flags.DEFINE_integer("warmup", 3, "untimed calls after compiling")
flags.DEFINE_string("json", None, "also write the result here")
flags.DEFINE_string("compilation_cache", None,
                    "XLA's persistent compilation cache directory (default: off): run twice with "
                    "the same fresh directory to time a cold and a cached compile")
FLAGS = flags.FLAGS

def synthetic_batch(config, spec, rng):
  """One call's batch [K, n_critic, B, ...] ([K, n_critic, B, N, ...] for train.num_seeds N > 1):
  uint8 images or float points, random labels; for two-domain data (the translation games) a
  second domain as "y" and "y_label"; for super-resolution (data.scale) LR inputs as "x" and HR
  targets as "y"; for captioned data (spec.text_dim) a random unit embedding per example as
  "text"."""
  t = config.train
  seeds = (t.num_seeds,) if t.get("num_seeds", 1) > 1 else ()
  lead = (t.steps_per_call, t.n_critic, t.batch_size) + seeds
  scale = config.data.get("scale", 0)
  if scale:
    h, w, c = spec.shape
    shapes = {"x": (h // scale, w // scale, c), "y": spec.shape}
  elif sources.kind(config.data.source) in sources.TWO_DOMAINS:
    shapes = {"x": spec.shape, "y": spec.shape}
  else:
    shapes = {"x": spec.shape}
  batch = {}
  for key, shape in shapes.items():
    shape = lead + tuple(shape)
    batch[key] = (rng.integers(0, 256, shape, dtype=np.uint8) if spec.dtype == "uint8"
                  else rng.standard_normal(shape).astype(np.float32))
    batch["label" if key == "x" else "y_label"] = (
        rng.integers(0, max(spec.num_classes, 1), lead).astype(np.int32))
  if spec.text_dim:
    e = rng.standard_normal(lead + (spec.text_dim,)).astype(np.float32)
    batch["text"] = e / np.linalg.norm(e, axis=-1, keepdims=True)
  return batch


def data_spec(config):
  d = config.data
  if config.model.name == "mlp":
    return DataSpec((2,), "float32", 8)
  text_dim = encoders.DIMS[config.text.encoder] if "text" in config else 0
  clip = (d.frames,) if "frames" in d else ()  # video: clips of frames
  return DataSpec(clip + (d.resolution, d.resolution, d.channels), "uint8", 10, text_dim)


def lowered_flops(fn, state, batch, steps_axis=0):
  """XLA's flop count for one step of the measured program `fn` (0 where the backend gives none:
  GPUs under jax 0.11.2). Cost analysis counts a loop body once, so with K steps per call (a
  scan) it is asked about a one-step call; the K axis is `steps_axis` of the batch's leaves (1
  under pmap, after the device axis)."""
  if not hasattr(fn, "lower"):
    return 0.0
  abstract = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
  one_step = jax.tree.map(lambda x: abstract(x[(slice(None),) * steps_axis + (slice(1),)]), batch)
  cost = fn.lower(jax.tree.map(abstract, state), one_step).cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0)) if cost else 0.0


def step_flops(config, platform=None):
  """XLA's flop count for one step of `config` (the whole batch, one device's program), traced as
  `platform` (default: this machine's) runs it (`layers.lowering_for`: native convolutions on GPUs
  and TPUs) and counted by the host CPU's compiler, which answers where a GPU's may not (jax
  0.11.2 on an H200 gave no count: the device check's `flops_probe`). Cost analysis counts a loop
  body once, so it is asked about a one-step call."""
  spec = data_spec(config)
  with layers.lowering_for(platform or jax.default_backend()), \
      jax.default_device(jax.devices("cpu")[0]):
    exp = Experiment.build(config, spec)
    fn = jax.jit(step_lib.make_multi_step(exp.game_for(None).train_step))
    batch = synthetic_batch(config, spec, np.random.default_rng(0))
    return lowered_flops(fn, jax.eval_shape(exp.init_state), batch)


def prepare(config):
  """(strategy, compiled step, state, batch) of `config`: its step as training compiles it, a
  fresh state and one synthetic call's batch, on the devices."""
  config_lib.validate(config, jax.device_count())
  spec = data_spec(config)
  exp = Experiment.build(config, spec)
  strategy = parallel.get(config.parallel.strategy)
  fn = strategy.compile(step_lib.make_multi_step(exp.game_for(strategy.axis_name).train_step))
  state = strategy.put_state(exp.init_state())
  return strategy, fn, state, strategy.put_batch(
      synthetic_batch(config, spec, np.random.default_rng(0)))


def step_temp_bytes(fn, state, batch):
  """XLA's temporary memory for one call of the compiled step (activations and other scratch,
  beyond the state and the batch), or None where the backend does not say."""
  try:
    return int(fn.lower(state, batch).compile().memory_analysis().temp_size_in_bytes)
  except (AttributeError, NotImplementedError):
    return None


def state_bytes_per_device(state):
  """Bytes of the placed train state held by device 0 (its shard of each leaf)."""
  return int(sum(x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(state)))


def measure(config, steps, warmup):
  strategy, fn, state, batch = prepare(config)

  def call():
    nonlocal state
    state, metrics = fn(state, batch)
    return metrics

  # The first call traces, compiles and runs once: what a user waits for before training starts.
  first_call_s, times = timing.time_calls(call, steps, warmup, jax.block_until_ready)
  # the program's own count, else the host's count of the same step (a second trace); with
  # micro-batches (a scan, counted once) the count of the same step in one batch, which leaves
  # out the G forward their G phase repeats
  if config.train.get("micro_batches", 1) > 1:
    whole = config.copy_and_resolve_references()
    whole.train.micro_batches = 1
    flops = step_flops(whole)
  else:
    flops = (lowered_flops(fn, state, batch, steps_axis=1 if strategy.axis_name else 0)
             or step_flops(config))
  k = config.train.steps_per_call
  step_s = statistics.median(times) / k
  device = jax.devices()[0]
  host = strategy.host_state(state)
  count = lambda tree: int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
  result = {
      "config": config.name, "backend": jax.default_backend(), "device_kind": device.device_kind,
      "device_count": jax.device_count(), "batch_size": config.train.batch_size,
      "n_critic": config.train.n_critic, "dtype": config.train.dtype,
      "steps_per_call": k, **timing.per_step(times, config.train.batch_size, k),
      **timing.first_call(first_call_s, times), "g_params": count(host.g.params),
      "d_params": count(host.d.params), "flops_per_step": flops,
      "strategy": config.parallel.strategy, "state_bytes_per_device": state_bytes_per_device(state),
  }
  peak = timing.peak_flops(device.device_kind, config.train.dtype)
  if peak and flops:
    result["mfu"] = flops / step_s / (peak * jax.device_count())
  temp = step_temp_bytes(fn, state, batch)
  if temp is not None:
    result["step_temp_bytes"] = temp
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and "peak_bytes_in_use" in stats:
    result["peak_memory_bytes"] = int(stats["peak_bytes_in_use"])
  elif device.platform == "cpu":  # no device statistics: the process's peak resident memory
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return result


def flag_config():
  """--config with --batch_size applied: the config a step script measures."""
  config = FLAGS.config
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  return config


def main(argv):
  del argv
  config = flag_config()
  if FLAGS.compilation_cache:
    jax.config.update("jax_compilation_cache_dir", FLAGS.compilation_cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  result = measure(config, FLAGS.steps, FLAGS.warmup)
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
