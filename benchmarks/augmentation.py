"""Does a class-conditional GAN trained on few labelled images make useful extra training data?

  python benchmarks/augmentation.py [--ks=5,10,20,50] [--seeds=5] [--steps=2000]
      [--per_class=100] [--resolution=16] [--g_width=64] [--workdir=DIR]
      [--json=benchmarks/results/cpu_augmentation.json] [--plot=docs/augmentation.png] [--smoke]
  python benchmarks/augmentation.py --from_json=benchmarks/results/cpu_augmentation.json

On the embedded digits, for each k and seed: k real digits per class are drawn from the train
part of `metrics.digits.digits_split()` (each seed its own draw; a seed's draws are nested, its
k = 5 digits are among its k = 10 ones), written as PNGs in class subfolders, and
configs/cgan_digits.py trains on `folder:` that (the user's way; config.seed = the seed) and
nothing else. The CAS classifier (`metrics/cas.py`: a pixel SVC) is then trained on (a) the k
real digits per class, (b) those plus `per_class` samples per class of G's EMA, (c) the samples
only, and tested on the 360 held-out digits of `digits_split()`, which no G here has seen.
Prints one JSON object (mean and sample std over the seeds per k, the gain of adding the
samples: real + synthetic less real, seed by seed; every run's figures), writes it to --json and
a plot of accuracy against k to --plot. A workdir that already holds a run (same flags) is
reused, so an interrupted benchmark resumes where it stopped. --from_json rebuilds the table and
the plot from a result's runs, training nothing.

G at 16x16 gets g_width 64: the config's g_width 32 gives G 64 and 32 channels at 4x4 and 8x8
there, and on the digits it collapsed to flat gray against D within 500 steps (measured); 64
gives it the 128 and 64 channels its 32x32 G has at those sizes.
"""
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from gan_jax import cli, experiment, run_report
from gan_jax.data import embedded
from gan_jax.metrics import cas, digits

import timing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "cgan_digits.py")
KINDS = ("real", "real_synthetic", "synthetic")
LEGEND = {"real": "k real per class", "real_synthetic": "real + {m} synthetic per class",
          "synthetic": "{m} synthetic per class only"}
COLORS = {"real": (40, 40, 40), "real_synthetic": (30, 110, 200), "synthetic": (210, 90, 30)}

flags.DEFINE_list("ks", ["5", "10", "20", "50"], "real digits per class")
flags.DEFINE_integer("seeds", 5, "seeds 0..N-1: each its own draw of real digits and its own G")
flags.DEFINE_integer("steps", 2000, "train.steps of each G")
flags.DEFINE_integer("per_class", 100, "synthetic samples per class (M)")
flags.DEFINE_integer("resolution", 16, "data.resolution of G (and of the digits it sees)")
flags.DEFINE_integer("g_width", 64, "model.g_width (see the docstring)")
flags.DEFINE_bool("label_accuracy", True, "also report how often the digits classifier reads "
                  "a sample as the class it was drawn for")
flags.DEFINE_string("workdir", None, "where the folders and runs go (default: a new temp dir)")
flags.DEFINE_string("json", None, "default benchmarks/results/cpu_augmentation.json (--smoke: "
                    "in the workdir)")
flags.DEFINE_string("plot", None, "default docs/augmentation.png (--smoke: in the workdir)")
flags.DEFINE_string("from_json", None, "rebuild the table and plot of this result from its runs "
                    "(and write it back), training nothing")
flags.DEFINE_bool("smoke", False, "a few seconds' check: the config's smoke sizes, k=2, 2 seeds, "
                  "4 steps, 5 samples per class, no label accuracy")
FLAGS = flags.FLAGS


def real_subset(k, seed):
  """Indices (into the embedded digits) of k train digits per class: seed's draw, nested in k."""
  train, _ = digits.digits_split()
  _, labels = embedded.digits(8)
  return train[cas.balanced_pick(labels[train], 10 * k, seed)]


def write_folder(root, images, labels, indices):
  """The digits `indices` as root/<label>/<index>.png, uint8 gray as the digits source has them."""
  for i in indices:
    path = os.path.join(root, str(labels[i]), f"{i:04d}.png")
    if not os.path.exists(path):
      os.makedirs(os.path.dirname(path), exist_ok=True)
      Image.fromarray(images[i, ..., 0]).save(path)


def train_gan(folder, workdir, seed, steps, smoke):
  args = ["train", f"--config={CONFIG}{':smoke' if smoke else ''}", f"--workdir={workdir}",
          "--noprogress", f"--config.data.source=folder:{folder}", f"--config.seed={seed}",
          f"--config.train.steps={steps}"]
  if not smoke:
    args += [f"--config.data.resolution={FLAGS.resolution}",
             f"--config.model.g_width={FLAGS.g_width}",
             f"--config.train.checkpoint_every={steps}", f"--config.train.sample_every={steps}"]
  code = cli.main(args)
  if code:
    sys.exit(code)


def synthetic(workdir, per_class, seed):
  """per_class samples of G's EMA for each class, float NHWC in [-1, 1], and their labels."""
  exp, state = experiment.load_latest(workdir)
  labels = np.repeat(np.arange(10), per_class)
  samples, _ = exp.game.generate(state, len(labels), seed=seed, labels=labels, ema=True)
  return np.asarray(samples, np.float32), labels


def one_run(root, k, seed, resolution, steps, per_class, smoke, test):
  """The three accuracies of one (k, seed), and what it took."""
  images, labels = embedded.digits(resolution)
  pick = real_subset(k, seed)
  folder, workdir = (os.path.join(root, f"k{k}_seed{seed}", d) for d in ("data", "run"))
  write_folder(folder, images, labels, pick)
  start = time.time()
  train_gan(folder, workdir, seed, steps, smoke)
  train_s = time.time() - start
  fake, fake_labels = synthetic(workdir, per_class, seed)
  real = images[pick].astype(np.float32) / 127.5 - 1.0
  sets = {"real": (real, labels[pick]),
          "real_synthetic": (np.concatenate([real, fake]),
                             np.concatenate([labels[pick], fake_labels])),
          "synthetic": (fake, fake_labels)}
  out = {"k": k, "seed": seed, "train_s": round(train_s, 1)}
  out.update({kind: cas.accuracy(*sets[kind], *test) for kind in KINDS})
  if FLAGS.label_accuracy:
    out["synthetic_label_accuracy"] = digits.digits_metrics(fake, fake_labels)["label_accuracy"]
  print({key: round(v, 4) if isinstance(v, float) else v for key, v in out.items()},
        file=sys.stderr, flush=True)
  return out


def summarize(runs, ks):
  """Per k and kind: mean and sample std (ddof 1) over the seeds; "gain": real + synthetic less
  real, seed by seed (the same real digits on both sides)."""
  table = {}
  for k in ks:
    mine = [r for r in runs if r["k"] == k]
    row = {}
    extra = ("synthetic_label_accuracy",) if "synthetic_label_accuracy" in mine[0] else ()
    for kind in KINDS + ("gain",) + extra:
      values = np.array([r["real_synthetic"] - r["real"] if kind == "gain" else r[kind]
                         for r in mine])
      row[kind] = {"mean": float(values.mean()),
                   "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    table[str(k)] = row
  return table


def plot(table, ks, per_class, reference, title, path, size=(760, 500)):
  """Accuracy against k (log axis): a line per training set, bars at +-1 std, the all-real
  classifier dashed."""
  w, h = size
  left, right, top, bottom = 70, 20, 50, 130
  img = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(img)
  font, small = run_report.font(15), run_report.font(13)
  lows = [table[str(k)][kind]["mean"] - table[str(k)][kind]["std"] for k in ks for kind in KINDS]
  y_lo = max(0.0, np.floor(min(lows + [reference]) * 20) / 20 - 0.05)
  y_hi = 1.0
  log_ks = np.log(np.array(ks, np.float64))
  x_lo, x_hi = log_ks.min() - 0.15, log_ks.max() + 0.15
  if x_hi - x_lo < 1e-6:
    x_lo, x_hi = x_lo - 1, x_hi + 1
  px = lambda k: left + (np.log(k) - x_lo) / (x_hi - x_lo) * (w - left - right)
  py = lambda a: top + (y_hi - a) / (y_hi - y_lo) * (h - top - bottom)
  draw.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
  step = 0.05 if y_hi - y_lo <= 0.4 else 0.1
  for tick in np.arange(np.ceil(y_lo / step - 1e-9) * step, y_hi + 1e-9, step):
    y = py(tick)
    draw.line([left, y, w - right, y], fill=(230, 230, 230))
    draw.text((left - 8, y), f"{tick:.2f}", fill=(0, 0, 0), font=small, anchor="rm")
  for k in ks:
    draw.text((px(k), h - bottom + 8), str(k), fill=(0, 0, 0), font=small, anchor="mt")
  draw.text(((left + w - right) / 2, h - bottom + 28), "real digits per class (k), log scale",
            fill=(0, 0, 0), font=font, anchor="mt")
  draw.text((12, top - 30), "held-out accuracy (360 digits)", fill=(0, 0, 0), font=font)
  draw.text((w / 2, 8), title, fill=(0, 0, 0), font=font, anchor="mt")
  y = py(reference)
  for x in range(left, w - right, 12):
    draw.line([x, y, min(x + 6, w - right), y], fill=(120, 120, 120), width=2)
  for offset, kind in zip((-6, 0, 6), KINDS):
    color = COLORS[kind]
    points = [(px(k) + offset, py(table[str(k)][kind]["mean"])) for k in ks]
    if len(points) > 1:
      draw.line(points, fill=color, width=3)
    for k, (x, y) in zip(ks, points):
      std = table[str(k)][kind]["std"]
      draw.line([x, py(table[str(k)][kind]["mean"] + std), x,
                 py(table[str(k)][kind]["mean"] - std)], fill=color, width=2)
      for cap in (std, -std):
        yc = py(table[str(k)][kind]["mean"] + cap)
        draw.line([x - 5, yc, x + 5, yc], fill=color, width=2)
      draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
  entries = [(LEGEND[kind].format(m=per_class), COLORS[kind], False) for kind in KINDS]
  entries.append((f"all 1437 real training digits ({reference:.3f})", (120, 120, 120), True))
  for i, (text, color, dashed) in enumerate(entries):
    x, y = left + 10 + (i % 2) * 330, h - bottom + 56 + (i // 2) * 22
    if dashed:
      for xs in range(x, x + 30, 10):
        draw.line([xs, y + 8, xs + 5, y + 8], fill=color, width=2)
    else:
      draw.line([x, y + 8, x + 30, y + 8], fill=color, width=3)
    draw.text((x + 38, y), text, fill=(0, 0, 0), font=small)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  img.save(path)


def rebuild(path, plot_path):
  """The result at `path` with its table and plot made again from its runs."""
  with open(path) as f:
    result = json.load(f)
  ks, per_class = result["ks"], result["per_class"]
  result["table"] = summarize(result["runs"], ks)
  plot(result["table"], ks, per_class, result["all_real_accuracy"], _title(result["seeds"]),
       plot_path or os.path.join(REPO, result["plot"]))
  result["rebuilt"] = {"command": "python " + " ".join([os.path.relpath(__file__, REPO)]
                                                      + sys.argv[1:]),
                       "date": datetime.date.today().isoformat()}
  timing.emit(result, path)


def _title(seeds):
  return f"CAS classifier on real vs synthetic digits ({seeds} seeds, mean +- std)"


def main(argv):
  del argv
  if FLAGS.from_json:
    return rebuild(FLAGS.from_json, FLAGS.plot)
  started, wall = datetime.datetime.now(datetime.timezone.utc), time.time()
  smoke = FLAGS.smoke
  ks = [2] if smoke else sorted(int(k) for k in FLAGS.ks)
  seeds = 2 if smoke else FLAGS.seeds
  steps = 4 if smoke else FLAGS.steps
  per_class = 5 if smoke else FLAGS.per_class
  resolution = 16 if smoke else FLAGS.resolution  # the smoke config's own
  if smoke:
    FLAGS.label_accuracy = False
  if min(ks) < 1 or seeds < 1 or per_class < 1:
    sys.exit("--ks, --seeds and --per_class must be positive")
  root = FLAGS.workdir or tempfile.mkdtemp(prefix="gan_jax_augmentation_")
  json_path = FLAGS.json or (os.path.join(root, "augmentation.json") if smoke
                             else os.path.join(REPO, "benchmarks/results/cpu_augmentation.json"))
  plot_path = FLAGS.plot or (os.path.join(root, "augmentation.png") if smoke
                             else os.path.join(REPO, "docs/augmentation.png"))
  print(f"runs in {root}", file=sys.stderr, flush=True)

  images, labels = embedded.digits(resolution)
  train, held_out = digits.digits_split()
  test = (images[held_out].astype(np.float32) / 127.5 - 1.0, labels[held_out])
  reference = cas.accuracy(images[train].astype(np.float32) / 127.5 - 1.0, labels[train], *test)
  runs = [one_run(root, k, seed, resolution, steps, per_class, smoke, test)
          for seed in range(seeds) for k in ks]
  table = summarize(runs, ks)
  result = {
      "what": "CAS classifier (pixel SVC, metrics/cas.py) accuracy on the 360 held-out digits of "
              "digits_split(), trained on k real digits per class from its train part, on those "
              "plus per_class samples per class of a cgan_digits G trained on the same k per "
              "class, and on the samples only; mean and sample std (ddof 1) over seeds",
      "command": "python " + " ".join([os.path.relpath(__file__, REPO)] + sys.argv[1:]),
      "date": started.strftime("%Y-%m-%d"), "started_utc": started.isoformat(timespec="seconds"),
      "wall_s": round(time.time() - wall, 1),
      "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
      "config": os.path.relpath(CONFIG, REPO) + (":smoke" if smoke else ""),
      "overrides": ({} if smoke else {"data.resolution": resolution,
                                      "model.g_width": FLAGS.g_width}) | {"train.steps": steps},
      "ks": ks, "seeds": seeds, "per_class": per_class, "test_size": len(test[1]),
      "all_real_accuracy": reference, "num_all_real": len(train),
      "table": table, "runs": runs,
  }
  plot(table, ks, per_class, reference, _title(seeds), plot_path)
  result["plot"] = os.path.relpath(plot_path, REPO) if plot_path.startswith(REPO) else plot_path
  timing.emit(result, json_path)


if __name__ == "__main__":
  app.run(main)
