"""What latent directions do to a trained digits model, and how fast walks render.

  python benchmarks/directions.py --workdir=runs/cgan_digits [--num=5] [--samples=1000]
      [--json=PATH]

For each method (SeFa, GANSpace) and each of its top `num` directions: `samples` codes (labels
cycling through the classes) moved -3, 0 and +3 sigma, and
  pixel_change     mean |image(+3) - image(-3)| in [0, 1] pixel units;
  class_change     the share of samples whose digit, as the digits classifier reads it, differs
                   at -3 or +3 sigma from the one at 0;
  prob_shift       mean total-variation distance of the classifier's probabilities between -3 and
                   +3 sigma (0: it reads the same, 1: entirely different digits).
A direction that restyles (slant, thickness) moves pixels and keeps the digit; one that changes
the digit moves both. `random`: the same for `num` random unit directions of SeFa's space, the
baseline a found direction should beat. Then `walk_frames_per_s`: frames of `gan-jax
interpolate` rendered per second (a 2-keyframe walk of 64 frames, the median of 5 after a first, compiling call), and the
time to find each method's directions. Prints one JSON object.
"""
import datetime
import json
import os
import platform
import time

import jax
import numpy as np
from absl import app, flags

from gan_jax import api, directions, sampling
from gan_jax.metrics.digits import DigitsClassifier

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/cgan_digits", "a trained digits run")
flags.DEFINE_integer("num", 5, "directions per method")
flags.DEFINE_integer("samples", 1000, "codes moved along each direction")
flags.DEFINE_string("json", None, "also write the JSON here")


def effect(model, found, index, codes, classifier):
  images = [model.render(directions.move(model, codes, found, index, s)) for s in (-3, 0, 3)]
  probs = [jax.nn.softmax(classifier.logits(x)) for x in images]
  digits = [np.asarray(p).argmax(-1) for p in probs]
  return {
      "direction": index,
      "pixel_change": round(float(np.abs(images[2] - images[0]).mean() / 2), 4),
      "class_change": round(float(np.mean((digits[0] != digits[1]) | (digits[2] != digits[1]))),
                            3),
      "prob_shift": round(float(0.5 * np.abs(np.asarray(probs[2] - probs[0])).sum(-1).mean()),
                          3),
  }


def walk_speed(model):
  keyframes = model.latents(2, seed=0)
  times = []
  for _ in range(6):
    start = time.perf_counter()
    sampling.walk(model, keyframes, 64)
    times.append(time.perf_counter() - start)
  return round(65 / float(np.median(times[1:])), 1)


def random_directions(model, num, space):
  dim = model.game.code_shapes()[space][-1]
  vectors = np.random.default_rng(0).normal(size=(num, dim))
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  return directions.Directions(space, vectors.astype(np.float32),
                               directions.sigmas(model, space, vectors, 0), "random")


def main(_):
  model = api.load(FLAGS.workdir)
  classifier = DigitsClassifier.load_or_train()
  codes = model.latents(FLAGS.samples, seed=1)
  result = {"workdir": os.path.abspath(FLAGS.workdir), "step": model.step,
            "samples": FLAGS.samples, "methods": {}}
  finders = {"sefa": directions.sefa, "ganspace": directions.ganspace,
             "random": lambda model, num: random_directions(model, num, space)}
  for method, finder in finders.items():
    start = time.perf_counter()
    found = finder(model, FLAGS.num)
    space, seconds = found.space, time.perf_counter() - start
    result["methods"][method] = {
        "find_s": round(seconds, 2), "space": found.space,
        "directions": [effect(model, found, i, codes, classifier) for i in range(len(found))]}
  result["walk_frames_per_s"] = walk_speed(model)
  result.update(machine=f"{platform.machine()} {os.cpu_count()} CPUs, jax {jax.__version__} "
                f"{jax.default_backend()}", date=datetime.date.today().isoformat())
  text = json.dumps(result, indent=1)
  print(text)
  if FLAGS.json:
    with open(FLAGS.json, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  app.run(main)
