"""Train a shipped config with its defaults and print its offline quality metrics as JSON.

  python benchmarks/quality.py --config=gan_ring2d [--seed=0] [--workdir=DIR] [--num=2500]
      [--sample_seed=S]

2D mixtures: PacGAN's mode metrics (modes captured, high-quality fraction, reverse KL). Digit
models: the digits classifier's class histogram, digits FID and IS, and for conditional models
the fraction of samples recognized as the label they were drawn for. Resumes if DIR has a run.
"""
import json
import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from gan_jax import cli, experiment
from gan_jax.data import embedded
from gan_jax.metrics import digits, modes2d

flags.DEFINE_string("config", "gan_ring2d", "config name in configs/ or a path")
flags.DEFINE_integer("seed", 0, "config.seed")
flags.DEFINE_string("workdir", None, "run directory (default: a fresh temporary one)")
flags.DEFINE_integer("num", 2500, "samples to score")
flags.DEFINE_integer("sample_seed", None, "latent seed of the scored samples (default 100 + seed)")
FLAGS = flags.FLAGS


def score(exp, state, num, seed):
  source = exp.config.data.source
  if source in ("ring2d", "grid2d"):
    samples, _ = exp.game.generate(state, num, seed=seed)
    modes, std = ((embedded.ring_modes(), embedded.RING_STD) if source == "ring2d"
                  else (embedded.grid_modes(), embedded.GRID_STD))
    return modes2d.mode_metrics(samples, modes, std)
  labels = np.arange(num) % 10 if exp.config.model.conditional else None
  samples, _ = exp.game.generate(state, num, seed=seed, labels=labels)
  m = digits.digits_metrics(samples, labels=labels)
  out = {k: m[k] for k in ("min_class_fraction", "digits_fid", "digits_is")}
  if labels is not None:
    out["min_per_class_accuracy"] = float(np.nanmin(m["per_class_accuracy"]))
  return out


def main(argv):
  del argv
  workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="gan_jax_quality_")
  start = time.time()
  code = cli.main(["train", f"--config={FLAGS.config}", f"--workdir={workdir}", "--noprogress",
                   f"--config.seed={FLAGS.seed}"])
  if code:
    sys.exit(code)
  exp, ckpt = experiment.load(workdir)
  state = experiment.restore_latest(exp, ckpt)
  ckpt.close()
  result = {"config": os.path.basename(FLAGS.config).removesuffix(".py"), "seed": FLAGS.seed,
            "train_s": round(time.time() - start, 1),
            **score(exp, state, FLAGS.num, seed=FLAGS.sample_seed if FLAGS.sample_seed is not None
                    else 100 + FLAGS.seed)}
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
