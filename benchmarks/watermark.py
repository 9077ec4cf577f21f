"""The watermark's robustness and cost: README's table, from one command.

  python benchmarks/watermark.py [--weights=gan_jax/weights/watermark.npz] [--sizes=64,128,256]
      [--num=100] [--json=PATH]

Pictures: `--num` random crops a size of the held-out photos (`photos:test`, never trained on),
each marked with its own key. For each attack in `attacks.ATTACKS` (pillow's JPEG, bicubic
resize, centre crop, Gaussian blur, Gaussian noise, and all of them in a row), on the marked
pictures and on the same clean pictures: the plain read's bit accuracy against each key's
message, the share `Watermark.check` detects (its reframed reads included, at P_VALUE) among
marked pictures (TPR, and the part found only by a reframed read) and among clean ones (FPR),
the check's seconds a picture, and the plain read's TPR at the agreement that lets 1% of the
clean pictures through (empirical). Cost:
PSNR and SSIM of marked against clean, and seconds to mark and to read. What the mark does to
data trained on: the same classifier (an RBF SVC on the raw 32x32 pixels) trained on the train
part of the embedded real digits, marked (each with its own key) and unmarked, and tested on the
clean held-out digits (`metrics.digits.digits_split`). `unseen`: the same measures on kinds of
picture it was not trained on (real digits, generators' samples), at 32x32. Prints one JSON object.
"""
import os
import time

import numpy as np
from absl import app, flags

from gan_jax import attacks, reporting, watermark
from gan_jax.data import embedded
from gan_jax.metrics import digits, pairs

import timing

# 32x32 samples of the detector benchmark's generators (benchmarks/detector.py), kept for tests
SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                       "data", "detector_samples.npz")

flags.DEFINE_string("weights", watermark.WEIGHTS, "the watermark's weights file")
flags.DEFINE_list("sizes", ["64", "128", "256"], "picture sides")
flags.DEFINE_integer("num", 100, "pictures a size")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def agreement(wm, pictures, messages):
  """Bits of each picture that agree with its message."""
  bits = wm.read(np.stack(pictures)) > 0
  return np.sum(bits == (messages > 0.5), axis=1)


def measure(wm, clean, names=tuple(attacks.ATTACKS)):
  """The row of uint8 pictures `clean` [N, S, S, C]: cost, and each attack of `names`."""
  num, side = len(clean), clean.shape[1]
  keys = [f"benchmark-{i}" for i in range(num)]
  messages = np.stack([watermark.message(k, wm.bits) for k in keys])
  t = time.perf_counter()
  marked = np.stack([wm.mark(p, k) for p, k in zip(clean, keys)])
  mark_s = (time.perf_counter() - t) / num
  as_float = lambda x: x.astype(np.float64) / 127.5 - 1.0
  row = {"side": side, "num": num, "psnr": pairs.psnr(as_float(marked), as_float(clean)),
         "ssim": pairs.ssim(as_float(marked), as_float(clean)), "mark_s": mark_s, "attacks": {}}
  for name in names:
    attack = attacks.ATTACKS[name]
    attacked = [attack(p) for p in marked]
    attacked_clean = [attack(p) for p in clean]
    on_marked = agreement(wm, attacked, messages)
    on_clean = agreement(wm, attacked_clean, messages)
    # the empirical 1% operating point of the plain read: the agreement 1% of clean pictures reach
    empirical = np.quantile(on_clean, 0.99, method="higher") + 1
    t = time.perf_counter()
    found = [wm.check(p, k) for p, k in zip(attacked, keys)]
    check_s = (time.perf_counter() - t) / num
    false = [wm.check(p, k)["detected"] for p, k in zip(attacked_clean, keys)]
    row["attacks"][name] = {
        "bit_accuracy": float(np.mean(on_marked) / wm.bits),
        "tpr": float(np.mean([f["detected"] for f in found])),
        "fpr": float(np.mean(false)),
        "reframed": float(np.mean([f["detected"] and "reframed" in f for f in found])),
        "tpr_at_1pct_fpr": float(np.mean(on_marked >= empirical)),
        "clean_bit_accuracy": float(np.mean(on_clean) / wm.bits),
        "check_s": check_s,
    }
  return row


def unseen(wm, num):
  """Pictures unlike the photos it was trained on, at 32x32: real digits (grey, the default
  config's data) and 96 generators' samples (DCGAN, StyleGAN2, BigGAN; SAMPLES)."""
  images, _ = digits.real_digits(32)
  pixels = reporting.to_uint8(images[:num])
  with np.load(SAMPLES) as f:
    samples = np.concatenate([f[k] for k in sorted(f.files)])
  names = ("none", "jpeg75", "resize0.5", "jpeg75+resize0.5")
  return {"digits": measure(wm, pixels.reshape(-1, 32, 32, 1), names),
          "samples": measure(wm, samples, names)}


def classifier_cost(wm):
  """Held-out accuracy of a pixel classifier trained on unmarked and on marked digits."""
  from sklearn.svm import SVC  # pylint: disable=g-import-not-at-top
  images, labels = digits.real_digits(32)
  pixels = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  train, test = digits.digits_split()
  marked = np.stack([wm.mark(pixels[i], f"digit-{i}") for i in train])
  flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
  score = lambda x: float(SVC().fit(flat(x), labels[train]).score(flat(pixels[test]),
                                                                   labels[test]))
  unmarked_accuracy, marked_accuracy = score(pixels[train]), score(marked)
  return {"train": len(train), "test": len(test), "unmarked": unmarked_accuracy,
          "marked": marked_accuracy, "difference_points": 100 * (marked_accuracy -
                                                                   unmarked_accuracy)}


def main(argv):
  del argv
  wm = watermark.Watermark(FLAGS.weights)
  result = {"benchmark": "watermark", "weights": FLAGS.weights, "bits": wm.bits,
            "p_value": watermark.P_VALUE, "reframes": watermark.REFRAMES,
            "sizes": [measure(wm, embedded.photo_crops("test", int(s), FLAGS.num))
                      for s in FLAGS.sizes],
            "unseen": unseen(wm, FLAGS.num),
            "classifier": classifier_cost(wm)}
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
