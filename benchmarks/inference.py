"""Inference speed: images per second of a config's generator, the in-package function
(`gan_jax.load(...).generator_fn` under `jax.jit`) beside its `gan-jax export-model` artifact
(serialized and read back, as a user loads it), alternating in one process.

  python benchmarks/inference.py [--configs=dcgan64,dcgan_digits,...] [--batches=1,64,1024]
      [--rounds=3] [--calls=3] [--min_seconds=0.5] [--arg=smoke] [--json=PATH]

Three sides, on inputs already on the device (latents and labels for noise runs, images at the
training resolution for translators), G with freshly initialised weights (the speed does not
depend on their values):
  in_package  jax.jit(model.generator_fn)(model.params, *inputs): the weights are arguments, so
              one compiled program serves any checkpoint (as the verbs' `infer`);
  frozen      jax.jit(lambda *inputs: generator_fn(params, *inputs)): the weights are constants
              of the program, as they are in the artifact, so XLA can fold work on them;
  artifact    jax.jit of the exported file's `call` (one dispatch, as in_package's), exported
              with a dynamic batch (`--batch=dynamic`, the default);
  artifact_call  that file's `call` as README's reader uses it (each call dispatches eagerly);
  artifact_fixed  jax.jit of the `call` of a file exported for this batch (`--batch=N`): layers
              whose CPU form depends on the batch take the one for N, not for large batches.
For each config and batch: each side's first call (`first_call_s`: it compiles), then `rounds`
rounds, each timing every side in turn, blocked until ready: `calls` calls, or as many as fill
`min_seconds` where calls are short (a side's count is fixed from a call after the first). A
round gives images/s of each (batch / its median call) and the ratios artifact / in_package
(`ratio`) and artifact / frozen (`ratio_to_frozen`); the medians over rounds are the figures to
quote, since on a shared machine a slow spell falls on every side of a round. `max_abs_diff` is
the largest difference between the artifact's and the in-package outputs (the same G). Prints one
JSON object.
"""
import datetime
import math
import os
import statistics
import sys

import jax
import numpy as np
from absl import app, flags

from gan_jax import api, model_export
from gan_jax.experiment import Experiment

import timing
from throughput import data_spec  # its --json is this script's too


DIGITS = ("dcgan_digits", "cgan_digits", "wgan_gp_digits", "wgan_clip_digits", "stylegan2_digits",
          "pix2pix_digits", "cyclegan_digits")
flags.DEFINE_list("configs", ["dcgan64", *DIGITS], "config names (configs/NAME.py)")
flags.DEFINE_list("batches", ["1", "64", "1024"], "batch sizes")
flags.DEFINE_integer("rounds", 3, "alternating rounds per config and batch")
flags.DEFINE_integer("calls", 3, "timed calls per side and round, at least")
flags.DEFINE_float("min_seconds", 0.5, "timed seconds per side and round, at least")
flags.DEFINE_string("arg", None, "the configs' arg (smoke: the tiny test sizes)")
FLAGS = flags.FLAGS


def fresh_model(name, arg=None):
  """An `api.Model` of config `name` with freshly initialised weights (no run on disk)."""
  config = timing.load_config(os.path.join("configs", f"{name}.py"), arg=arg)
  exp = Experiment.build(config, data_spec(config))
  return api.Model(f"(fresh {name})", exp, exp.init_state())


def inputs(model, batch, rng):
  """The generator's inputs for `batch` images, on the default device."""
  if model.kind == "sample":
    z = rng.standard_normal((batch, model.config.model.latent_dim)).astype(np.float32)
    labels = (np.arange(batch) % max(model.num_classes, 1)).astype(np.int32)
    arrays = (z, labels) if model.num_classes else (z,)
  else:
    side = model.config.data.resolution // (model.scale or 1)
    arrays = (rng.uniform(-1, 1, (batch, side, side, model.channels)).astype(np.float32),)
  return tuple(jax.device_put(a) for a in arrays)


def measure(model, batches, rounds, calls, min_seconds=0.0):
  """{batch: figures} for the in-package function and the artifact of `model`'s G."""
  fn, params = model.generator()
  in_package = jax.jit(fn)
  frozen = jax.jit(lambda *x: fn(params, *x))
  platform = jax.export.default_export_platform()  # `cuda` where jax's backend says `gpu`
  read = lambda batch: jax.export.deserialize(  # as a user reads the file
      model_export.lower(model, batch, platforms=(platform,))[0].serialize())
  artifact = read(None)
  artifact_jit = jax.jit(artifact.call)
  wait = lambda out: out.block_until_ready()
  results, rng = {}, np.random.default_rng(0)
  for batch in batches:
    x = inputs(model, batch, rng)
    fixed = jax.jit(read(batch).call)
    sides = {"in_package": lambda: in_package(params, *x), "frozen": lambda: frozen(*x),
             "artifact": lambda: artifact_jit(*x), "artifact_call": lambda: artifact.call(*x),
             "artifact_fixed": lambda: fixed(*x)}
    record, count = {}, {}
    for side, call in sides.items():
      first, (second,) = timing.time_calls(call, 1, 0, wait)
      record[side] = {"first_call_s": first}
      count[side] = max(calls, math.ceil(min_seconds / second))
    per_round = {side: [] for side in sides}
    for _ in range(rounds):
      for side, call in sides.items():
        _, times = timing.time_calls(call, count[side], 0, wait)
        per_round[side].append(batch / statistics.median(times))
    for side in sides:
      record[side].update(imgs_per_sec=statistics.median(per_round[side]),
                          rounds_imgs_per_sec=per_round[side], calls_per_round=count[side])
    ratios = lambda to: [a / b for a, b in zip(per_round["artifact"], per_round[to])]
    record.update(ratio=statistics.median(ratios("in_package")), ratios=ratios("in_package"),
                  ratio_to_frozen=statistics.median(ratios("frozen")),
                  ratios_to_frozen=ratios("frozen"), max_abs_diff=float(np.abs(
                      np.asarray(sides["artifact"]()) - np.asarray(sides["in_package"]())).max()))
    results[str(batch)] = record
    print(f"{model.config.name} batch {batch}: " + ", ".join(
        f"{side} {record[side]['imgs_per_sec']:.1f}" for side in sides) +
          f" img/s; artifact / in_package {record['ratio']:.3f}, / frozen "
          f"{record['ratio_to_frozen']:.3f}", file=sys.stderr, flush=True)
  return results


def main(argv):
  del argv
  batches = [int(b) for b in FLAGS.batches]
  result = {
      "benchmark": "inference", "backend": jax.default_backend(),
      "device_kind": jax.devices()[0].device_kind, "threads": len(os.sched_getaffinity(0)),
      "jax": jax.__version__, "date": datetime.date.today().isoformat(),
      "arg": FLAGS.arg, "rounds": FLAGS.rounds, "calls": FLAGS.calls,
      "min_seconds": FLAGS.min_seconds, "configs": {}}
  for name in FLAGS.configs:
    model = fresh_model(name, FLAGS.arg)
    params = sum(x.size for x in jax.tree.leaves(model.generator()[1]["params"]))
    result["configs"][name] = {"model": model.config.model.name, "kind": model.kind,
                               "g_params": int(params),
                               "image": list(model.exp.spec.shape),
                               "batches": measure(model, batches, FLAGS.rounds, FLAGS.calls,
                                                  FLAGS.min_seconds)}
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
