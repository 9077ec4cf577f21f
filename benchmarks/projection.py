"""`gan-jax project` measured on the digits runs: how well it recovers pictures, and how fast.

  python benchmarks/projection.py [--dcgan=runs/dcgan_digits]
      [--stylegan2=runs/stylegan2_digits] [--cgan=runs/cgan_digits]
      [--held_out_run=runs/dcgan_digits_train_split] [--num=16] [--held_out=360]
      [--steps=500] [--json=benchmarks/results/cpu_projection.json]

(a) Generated pictures: `--num` samples each run draws itself (seed 1000, quantised to uint8 as a
    saved picture is), projected at the default settings into w (StyleGAN2) or z (the DCGANs);
    PSNR of what the written latent renders to vs the picture (goal: >= 30 dB).
(b) Held-out real digits: the digits classifier's held-out digits (`digits_split`, 360, 36 a
    class; `--held_out` takes the first N of a seeded shuffle), projected into a DCGAN trained on
    the classifier's train split only (`--held_out_run`; trained here, about 2 minutes, when
    missing: the 1437 train digits written as PNGs, `configs/dcgan_digits.py` on that folder),
    so neither network saw them. The score is the share of projections the classifier reads as
    the digit's label (goal: >= 85%), beside the classifier's accuracy on the digits themselves.
    The same digits are also projected into `--dcgan` (trained on all 1797 digits, so it saw
    them) and `--cgan` (which also tries every class: its chosen class is a reading too).
(c) Speed: steps/s of one batch of 8 pictures with all their starts (a step updates every
    candidate), compile excluded, and pictures/min at the default steps.
Prints one JSON object (and writes it to --json).
"""
import datetime
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
from absl import app, flags
from PIL import Image

from gan_jax import api, projection
from gan_jax.data import embedded
from gan_jax.metrics import digits as digits_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("dcgan", "runs/dcgan_digits", "DCGAN digits run")
flags.DEFINE_string("stylegan2", "runs/stylegan2_digits", "StyleGAN2 digits run")
flags.DEFINE_string("cgan", "runs/cgan_digits", "conditional DCGAN digits run")
flags.DEFINE_string("held_out_run", "runs/dcgan_digits_train_split",
                    "DCGAN trained on the classifier's train split (trained here when missing)")
flags.DEFINE_integer("num", 16, "generated pictures per run")
flags.DEFINE_integer("held_out", 360, "held-out real digits projected (of 360)")
flags.DEFINE_integer("steps", projection.DEFAULT_STEPS, "optimisation steps")
flags.DEFINE_string("json", os.path.join(REPO, "benchmarks", "results", "cpu_projection.json"),
                    "where to write the result")
FLAGS = flags.FLAGS


def run_projection(model, pixels, space=None, label=None):
  """Projects uint8 pictures in batches of projection.BATCH; (Projection parts joined, seconds
  of the warm batches, warm batch count, seconds of the first batch: compile included)."""
  space = space or ("w" if "w" in model.spaces else "z")
  projector = projection.Projector(model, space, projection.Settings(steps=FLAGS.steps))
  parts, warm, first = [], [], None
  for i in range(0, len(pixels), projection.BATCH):
    batch = pixels[i:i + projection.BATCH]
    t = time.perf_counter()
    parts.append(projector.project(batch, label))
    seconds = time.perf_counter() - t
    if first is None:
      first = seconds
    elif len(batch) == projection.BATCH:
      warm.append(seconds)
  return projector, parts, warm, first


def summary(model, space, projector, parts, warm, first):
  psnr = np.concatenate([p.psnr for p in parts])
  out = {"workdir": model.workdir, "step": model.step, "space": space,
         "distance": projector.distance, "candidates_per_picture": parts[0].candidates,
         "pictures": int(len(psnr)), "psnr_mean": round(float(psnr.mean()), 2),
         "psnr_median": round(float(np.median(psnr)), 2), "psnr_min": round(float(psnr.min()), 2),
         "share_psnr_ge_30": round(float(np.mean(psnr >= 30)), 4),
         "first_batch_seconds": round(first, 2)}
  if warm:
    per_batch = float(np.median(warm))
    out.update(batch=projection.BATCH, seconds_per_batch=round(per_batch, 2),
               steps_per_second=round(FLAGS.steps / per_batch, 2),
               pictures_per_minute=round(60 * projection.BATCH / per_batch, 1))
  return out


def generated(workdir):
  """(a) and (c): the run's own samples projected back."""
  model = api.load(workdir, needs="sample")
  space = "w" if "w" in model.spaces else "z"
  pixels = model.sample(FLAGS.num, seed=1000, uint8=True)
  result = summary(model, space, *run_projection(model, pixels, space))
  print(json.dumps({os.path.basename(workdir): result}), file=sys.stderr)
  return result


def held_out_digits():
  """(uint8 [N, 32, 32, 1] held-out digits as the digits source draws them, their labels)."""
  pixels, labels = embedded.digits(32)
  _, test = digits_metrics.digits_split()
  test = np.random.default_rng(0).permutation(test)[:FLAGS.held_out]
  return pixels[test], labels[test]


def ensure_train_split_run(workdir):
  """A DCGAN digits run on the classifier's train split only (as configs/dcgan_digits.py)."""
  if os.path.isdir(os.path.join(workdir, "checkpoints")):
    return
  folder = workdir + "_pictures"
  pixels, labels = embedded.digits(32)
  train, _ = digits_metrics.digits_split()
  for i in train:
    os.makedirs(os.path.join(folder, str(labels[i])), exist_ok=True)
    Image.fromarray(pixels[i, ..., 0]).save(os.path.join(folder, str(labels[i]), f"{i:04d}.png"))
  subprocess.run([sys.executable, "-m", "gan_jax", "train", "--config=dcgan_digits",
                  f"--workdir={workdir}", f"--config.data.source=folder:{folder}", "--noprogress"],
                 cwd=REPO, check=True)


def held_out(workdir, classifier, pixels, labels):
  """(b): held-out digits projected into `workdir`, read by the digits classifier."""
  model = api.load(workdir, needs="sample")
  projector, parts, warm, first = run_projection(model, pixels)
  result = summary(model, "z", projector, parts, warm, first)
  images = np.concatenate([p.images for p in parts])
  read = classifier.predict(np.clip(images, -1, 1))
  result["read_as_same_digit"] = round(float(np.mean(read == labels)), 4)
  if model.num_classes:
    chosen = np.concatenate([p.latents.labels for p in parts])
    result["class_chosen_is_label"] = round(float(np.mean(chosen == labels)), 4)
  print(json.dumps({os.path.basename(workdir): result}), file=sys.stderr)
  return result


def main(_):
  settings = projection.Settings(steps=FLAGS.steps)
  record = {"benchmark": "projection", "backend": jax.default_backend(), "threads": os.cpu_count(),
            "jax": jax.__version__, "date": datetime.date.today().isoformat(),
            "command": "python " + " ".join(sys.argv),
            "settings": {k: v for k, v in vars(settings).items()},
            "starts_by_space": projection.STARTS, "batch": projection.BATCH,
            "generated": {}, "held_out": {}}
  for workdir in (FLAGS.dcgan, FLAGS.stylegan2, FLAGS.cgan):
    if workdir:
      record["generated"][os.path.basename(workdir)] = generated(workdir)
  if FLAGS.held_out:
    classifier = digits_metrics.DigitsClassifier.load_or_train()
    pixels, labels = held_out_digits()
    targets = pixels.astype(np.float32) / 127.5 - 1
    record["held_out"]["classifier_on_the_digits"] = round(
        float(np.mean(classifier.predict(targets) == labels)), 4)
    ensure_train_split_run(FLAGS.held_out_run)
    for workdir in (FLAGS.held_out_run, FLAGS.dcgan, FLAGS.cgan):
      if workdir:
        record["held_out"][os.path.basename(workdir)] = held_out(workdir, classifier, pixels,
                                                                 labels)
  text = json.dumps(record, indent=2)
  print(text)
  if FLAGS.json:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json)), exist_ok=True)
    with open(FLAGS.json, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  app.run(main)
