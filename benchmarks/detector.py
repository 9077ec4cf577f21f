"""The learned detector of generated pictures: trains the shipped one and measures its average
precision per generator family, README's table, from one command.

  python benchmarks/detector.py --workdir=runs/detector [--families=dcgan,...]
      [--train_families=dcgan,wgan_gp]
      [--weights=gan_jax/weights/detector.npz] [--json=PATH] [--smoke]

1. Generators: one run of each family in FAMILIES, trained on 32x32 crops of the bundled train
   photos (the `photos` source); CycleGAN colours grey crops of the grey train photos into crops
   of the colour ones (two folders written here). A finished run in --workdir is reused.
2. Pictures: real = crops of the train photos (training) and of the four held-out photos
   (`photos:test`, never seen by a generator or the detector); fake = each family's samples
   (CycleGAN: its colourings of the grey of the real test crops), other seeds for training and
   testing.
3. The detector (`gan_jax.detector`): trained on real vs the --train_families' samples, with
   Wang et al.'s blur and JPEG augmentation; its spectral score fitted on the same pictures.
4. Average precision of each score, real test crops vs each family's test samples (held-out
   families too), as they are ("clean"), cropped by a pixel ("shift1": an upsampler's pixel
   pattern out of phase; the network's score only) and after JPEG q75 (pillow), plus the
   accuracy at 0.5.
Prints one JSON object; --weights writes the trained detector there.
"""
import os
import sys
import time

import numpy as np
from absl import app, flags
from PIL import Image

from gan_jax import api, attacks, cli, detector, experiment
from gan_jax.data import embedded

import timing

flags.DEFINE_string("workdir", None, "the generators' runs and the pictures are kept here")
flags.DEFINE_list("families", None, "the families to measure (default: all of FAMILIES)")
flags.DEFINE_list("train_families", ["dcgan", "wgan_gp"], "families the detector trains on")
flags.DEFINE_string("weights", None, "write the trained detector here (e.g. the shipped "
                    "gan_jax/weights/detector.npz)")
flags.DEFINE_integer("train_per_family", 3000, "fake training pictures of each train family")
flags.DEFINE_integer("test", 1000, "test pictures per family, and real ones")
flags.DEFINE_integer("steps", detector.STEPS, "the detector's training steps")
flags.DEFINE_string("json", None, "also write the result here")
flags.DEFINE_bool("smoke", False, "a check in about a minute: smoke-sized generators trained 4 "
                  "steps, 64 pictures, 20 detector steps")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS

SIDE = 32
PHOTOS = ["--config.data.source=photos", "--config.data.channels=3",
          f"--config.data.resolution={SIDE}"]
# family: (config, training steps, overrides). Widths and steps fit 2 CPU cores (minutes each);
# BigGAN's EMA starts at once and at 0.999, as 0.9999 would barely leave the initial weights in
# these steps.
FAMILIES = {
    "dcgan": ("dcgan_digits", 3000, PHOTOS),
    "wgan_gp": ("wgan_gp_digits", 1000, PHOTOS),
    "stylegan2": ("stylegan2_digits", 512, PHOTOS),
    "biggan": ("biggan_cifar32", 500, PHOTOS + [
        "--config.model.g_width=32", "--config.model.d_width=32", "--config.train.ema_start=0",
        "--config.train.ema_decay=0.999"]),
    "cyclegan": ("cyclegan_digits", 2000, [
        "--config.data.channels=3", "--config.data.source=unpaired:{cycle}/A,{cycle}/B"]),
}


def grey_and_colour_crops(num, seed):
  """Crops of the grey train photos and of the colour ones (CycleGAN's domains A and B)."""
  _, pictures = embedded.photos("train", 3)
  grey = [p for p in pictures if np.array_equal(p[..., 0], p[..., 2])]
  colour = [p for p in pictures if not np.array_equal(p[..., 0], p[..., 2])]
  return tuple(embedded.crops(ps, SIDE, num, seed) for ps in (grey, colour))


def cycle_folders(root, num):
  """root/cycle, holding A/ and B/: `num` crops of each domain as PNGs (written once)."""
  cycle = os.path.join(root, "cycle")
  if not os.path.isdir(os.path.join(cycle, "B")):
    for d, pictures in zip("AB", grey_and_colour_crops(num, seed=0)):
      os.makedirs(os.path.join(cycle, d))
      for i, p in enumerate(pictures):
        Image.fromarray(p).save(os.path.join(cycle, d, f"{i:05d}.png"))
  return cycle


def train_generator(family, workdir, smoke):
  config, steps, overrides = FAMILIES[family]
  run = os.path.join(workdir, "runs", family)
  if family == "cyclegan":
    cycle = cycle_folders(workdir, 64 if smoke else 2000)
    overrides = [o.format(cycle=cycle) for o in overrides]
  if smoke:
    config, steps = config + ":smoke", 4
  if os.path.isdir(run):
    _, state = experiment.load_latest(run)
    if int(state.step) >= steps:
      return run
  start = time.time()
  code = cli.main(["train", f"--config={config}", f"--workdir={run}", "--noprogress",
                   f"--config.train.steps={steps}", f"--config.train.checkpoint_every={steps}",
                   "--no-watermark"] + overrides)
  if code:
    sys.exit(code)
  print(f"{family}: {steps} steps in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
  return run


def fakes(family, run, num, seed):
  """uint8 [num, SIDE, SIDE, 3] of a family's run. CycleGAN colours the grey of the held-out
  crops that `seed` draws: at the test seed, the real test crops themselves, so each real
  picture meets its own recolouring."""
  model = api.load(run)
  if family == "cyclegan":
    grey = embedded.photo_crops("test", SIDE, num, seed=seed).mean(axis=-1, keepdims=True)
    grey = np.repeat(np.round(grey).astype(np.uint8), 3, axis=-1)
    return model.translate(grey, direction="AtoB", uint8=True)
  return model.sample(num, seed=seed, uint8=True)


def pictures(workdir, smoke):
  """{"real_train", "real_test", "<family>_train" (train families), "<family>_test"}: uint8,
  kept in workdir/pictures.npz (what it lacks is drawn and added)."""
  path = os.path.join(workdir, "pictures_smoke.npz" if smoke else "pictures.npz")
  out = {}
  if os.path.exists(path):
    with np.load(path) as f:
      out = {k: f[k] for k in f.files}
  per_family = 64 if smoke else FLAGS.train_per_family
  test = 64 if smoke else FLAGS.test
  before = set(out)
  if "real_test" not in out:
    out["real_test"] = embedded.photo_crops("test", SIDE, test, seed=2)
  if "real_train" not in out:
    out["real_train"] = embedded.photo_crops("train", SIDE, per_family * 2, seed=1)
  for family in measured():
    trains = family in FLAGS.train_families
    if f"{family}_test" in out and (f"{family}_train" in out or not trains):
      continue
    run = train_generator(family, workdir, smoke)
    out[f"{family}_test"] = fakes(family, run, test, seed=2)
    if trains:
      out[f"{family}_train"] = fakes(family, run, per_family, seed=1)
  if set(out) != before:
    np.savez(path, **out)
  return out


def measured():
  """The families --families names (default: all)."""
  return FLAGS.families or list(FAMILIES)


def average_precision(real_scores, fake_scores):
  from sklearn.metrics import average_precision_score  # pylint: disable=import-outside-toplevel
  labels = np.concatenate([np.zeros(len(real_scores)), np.ones(len(fake_scores))])
  return float(average_precision_score(labels, np.concatenate([real_scores, fake_scores])))


def shift1(batch):
  """Each picture without its first row and column: 31 x 31, its pixels one out of phase with
  the generator's grid (the network's score only)."""
  return batch[:, 1:, 1:]


def jpeg75(batch):
  return np.stack([attacks.ATTACKS["jpeg75"](p) for p in batch])


def main(argv):
  del argv
  os.makedirs(FLAGS.workdir, exist_ok=True)
  sets = pictures(FLAGS.workdir, FLAGS.smoke)
  real = sets["real_train"]
  fake = np.concatenate([sets[f"{f}_train"] for f in FLAGS.train_families])
  start = time.time()
  trained = detector.train(real, fake, steps=20 if FLAGS.smoke else FLAGS.steps,
                           progress=not FLAGS.smoke)
  train_s = time.time() - start
  if FLAGS.weights:
    trained.save(FLAGS.weights)
  rows = {}
  for name, attack in (("clean", lambda b: b), ("shift1", shift1), ("jpeg75", jpeg75)):
    real_scores = trained.scores(attack(sets["real_test"]))
    for family in measured():
      fake_scores = trained.scores(attack(sets[f"{family}_test"]))
      row = rows.setdefault(family, {"trained_on": family in FLAGS.train_families})
      for score in real_scores:
        r, f = real_scores[score], fake_scores[score]
        if r is None:  # the spectral score reads 32 x 32 tiles only
          continue
        row[f"{score}_ap_{name}"] = average_precision(r, f)
        row[f"{score}_accuracy_{name}"] = float((np.sum(r < 0.5) + np.sum(f >= 0.5))
                                                / (len(r) + len(f)))
  result = {"benchmark": "detector", "side": SIDE, "smoke": FLAGS.smoke,
            "train_families": FLAGS.train_families,
            "generators": {f: {"config": c, "steps": s, "overrides": o}
                           for f, (c, s, o) in FAMILIES.items() if f in measured()},
            "real_train": len(real), "fake_train": len(fake),
            "test_per_family": len(sets["real_test"]),
            "detector_steps": trained.steps, "detector_train_s": round(train_s, 1),
            "families": rows, "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
