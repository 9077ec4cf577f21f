"""README's super-resolution figure: crops of held-out photos, bicubic | PSNR model | GAN model |
HR, each x4 from the photo downscaled by the evaluation's bicubic.

  python benchmarks/sr_figure.py --psnr=runs/rrdb_psnr --gan=runs/esrgan
      [--photos=astronaut,chelsea] [--crop=96] [--zoom=2] [--out=docs/sr_photos.png]

Each photo is downscaled x scale (MATLAB bicubic), upscaled whole by each run's G (as `gan-jax
upscale` does, tiles and all) and by bicubic; the crop is taken at the same place from each and
from the original, and enlarged `zoom` times (nearest) so pixels can be seen.
"""
import numpy as np
from absl import app, flags

from gan_jax import experiment, reporting, upscaling
from gan_jax.data import degrade, embedded

flags.DEFINE_string("psnr", None, "the PSNR-oriented run's workdir")
flags.DEFINE_string("gan", None, "the GAN run's workdir (optional)")
flags.DEFINE_list("photos", ["astronaut", "chelsea"], "held-out photos to crop")
flags.DEFINE_integer("crop", 96, "crop side, in HR pixels")
flags.DEFINE_integer("zoom", 2, "nearest-neighbour enlargement of the crops")
flags.DEFINE_string("out", "docs/sr_photos.png", "where to write the PNG")
FLAGS = flags.FLAGS


def upscaler(workdir):
  exp, ckpt = experiment.load(workdir)
  try:
    state = experiment.restore_latest(exp, ckpt)
  finally:
    ckpt.close()
  return exp.game.scale, lambda x: exp.game.upscale(state, x)


def main(_):
  runs = [upscaler(w) for w in (FLAGS.psnr, FLAGS.gan) if w]
  scale = runs[0][0]
  names, pictures = embedded.photos("test", channels=3)
  rows = []
  for name in FLAGS.photos:
    hr = pictures[names.index(name)]
    h, w = (n - n % scale for n in hr.shape[:2])
    hr = hr[:h, :w]
    lr = degrade.imresize(hr, 1 / scale)
    outputs = [degrade.imresize(lr, scale)] + [upscaling.upscale_array(lr, fn, scale)
                                               for _, fn in runs] + [hr]
    c = FLAGS.crop
    top, left = (h - c) // 2, (w - c) // 2
    crops = [o[top:top + c, left:left + c].repeat(FLAGS.zoom, 0).repeat(FLAGS.zoom, 1)
             .astype(np.float32) / 127.5 - 1 for o in outputs]  # the grid's [-1, 1]
    rows.append(crops)
  picture = reporting.side_by_side(*(np.stack(column) for column in zip(*rows)), per_row=1)
  reporting.save_picture(FLAGS.out, picture)
  print(FLAGS.out)


if __name__ == "__main__":
  flags.mark_flag_as_required("psnr")
  app.run(main)
