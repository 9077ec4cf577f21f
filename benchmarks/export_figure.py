"""README's detection-export figure: canvases of `gan-jax export --format=ultralytics-det`, with
the boxes of their label files drawn over them (green) and each box's class written above it.

  python benchmarks/export_figure.py --export=/tmp/det [--num=4] [--out=docs/synthetic_detection.png]

It reads the files back as a YOLO trainer would (images/train/*.png and labels/train/*.txt), so
the figure shows what the labels say, not what the exporter meant.
"""
import os

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

flags.DEFINE_string("export", None, "an ultralytics-det export folder")
flags.DEFINE_integer("num", 4, "canvases shown, side by side")
flags.DEFINE_string("out", "docs/synthetic_detection.png", "where to write the PNG")
FLAGS = flags.FLAGS
GAP = 4  # pixels between canvases


def annotated(image_path, label_path):
  picture = Image.open(image_path).convert("RGB")
  draw, size = ImageDraw.Draw(picture), picture.size[0]
  with open(label_path) as f:
    for line in f.read().splitlines():
      label, cx, cy, w, h = line.split()
      cx, cy, w, h = (float(v) * size for v in (cx, cy, w, h))
      box = (cx - w / 2, cy - h / 2, cx + w / 2 - 1, cy + h / 2 - 1)
      draw.rectangle(box, outline=(0, 255, 0))
      draw.text((box[0] + 1, max(box[1] - 11, 0)), label, fill=(0, 255, 0))
  return np.asarray(picture)


def main(_):
  folder = os.path.join(FLAGS.export, "images", "train")
  names = sorted(os.listdir(folder))[:FLAGS.num]
  tiles = [annotated(os.path.join(folder, n),
                     os.path.join(FLAGS.export, "labels", "train", os.path.splitext(n)[0] + ".txt"))
           for n in names]
  side = tiles[0].shape[0]
  strip = np.full((side, len(tiles) * (side + GAP) - GAP, 3), 255, np.uint8)
  for i, tile in enumerate(tiles):
    strip[:, i * (side + GAP):i * (side + GAP) + side] = tile
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  Image.fromarray(strip).save(FLAGS.out)
  print(FLAGS.out)


if __name__ == "__main__":
  flags.mark_flag_as_required("export")
  app.run(main)
