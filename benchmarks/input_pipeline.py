"""Images/s of the input pipeline alone (read, decode, fit, shuffle, batch), no train step.

  python benchmarks/input_pipeline.py [--synthetic=folder|tfds|none] [--num_images=2000]
      [--config=configs/dcgan64.py] [--steps=100] [--warmup=10] [--json=PATH]
      [--config.data.workers=N] [--config.KEY=VALUE ...]

`--synthetic=folder` (default) first writes `num_images` synthetic 64x64 JPEGs (smooth random
pictures, quality 90) to a temporary folder and reads them as `folder:`; `tfds` writes them as a
prepared TFDS dataset (ArrayRecord, written without TensorFlow) and reads it as `tfds:`; `none`
reads the config's own source (e.g. --config.data.source=folder:~/faces). It times `steps` train
steps' worth of batches after `warmup` and prints one JSON object. After the first epoch files
come from the OS page cache.
"""
import atexit
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tensorflow_datasets as tfds
from absl import app, flags
from ml_collections import config_flags

from gan_jax import config as config_lib
from gan_jax.data import pipeline, sources

import timing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_flags():
  """Only when run as a script: tests import this module beside others that define --config."""
  config_flags.DEFINE_config_file("config", os.path.join(REPO, "configs", "dcgan64.py"),
                                  "config whose data block and batch size are used")
  flags.DEFINE_enum("synthetic", "folder", ["folder", "tfds", "none"],
                    "synthetic JPEGs to write and read; none: read the config's data.source")
  flags.DEFINE_integer("num_images", 2000, "synthetic images to write")
  flags.DEFINE_integer("image_size", 64, "side of the synthetic images")
  flags.DEFINE_integer("steps", 100, "timed steps")
  flags.DEFINE_integer("warmup", 10, "untimed steps first")
  flags.DEFINE_string("json", None, "also write the result here")


FLAGS = flags.FLAGS


def synthetic_jpeg(rng, size, quality=90):
  """A smooth random picture as JPEG bytes: natural photos compress and decode like this, unlike
  white noise, which would make the decoder look slower than it is."""
  from PIL import Image
  coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
  picture = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.int16)
  picture = np.clip(picture + rng.integers(-8, 9, picture.shape), 0, 255).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(picture).save(buffer, "JPEG", quality=quality)
  return buffer.getvalue()


def write_folder(root, num_images, size=64, classes=("a", "b"), seed=0):
  """num_images JPEGs under root/<class>/NNNNNN.jpg."""
  rng = np.random.default_rng(seed)
  for i in range(num_images):
    directory = os.path.join(root, classes[i % len(classes)])
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{i:06d}.jpg"), "wb") as f:
      f.write(synthetic_jpeg(rng, size))
  return root


class SyntheticImages(tfds.core.GeneratorBasedBuilder):
  """Smooth random JPEGs labelled a/b, splits train and test (defining it registers it in TFDS).

  tfds's Image feature stores bytes that are already encoded as they are: no TensorFlow needed."""
  VERSION = tfds.core.Version("1.0.0")
  num_images, size, seed = 16, 64, 0

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
        "label": tfds.features.ClassLabel(names=["a", "b"])}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(self.num_images, self.seed),
            "test": self._generate_examples(max(1, self.num_images // 4), self.seed + 1)}

  def _generate_examples(self, num, seed):
    rng = np.random.default_rng(seed)
    for i in range(num):
      yield i, {"image": io.BytesIO(synthetic_jpeg(rng, self.size)), "label": i % 2}


def write_tfds(data_dir, num_images, size=64, seed=0):
  """Prepares `synthetic_images` with num_images train examples in data_dir; returns its name."""
  builder = SyntheticImages(data_dir=data_dir, file_format="array_record")
  builder.num_images, builder.size, builder.seed = num_images, size, seed
  with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON result
    builder.download_and_prepare()
  return builder.name


def measure(config, steps, warmup):
  """Builds `config`'s source and times its pipeline: one JSON-able dict."""
  config_lib.validate_data(config)
  t0 = time.perf_counter()
  source = sources.build(config)
  setup_s = time.perf_counter() - t0
  data = pipeline.make_iterator(source, config)
  for _ in range(warmup):
    next(data)
  t0, cpu0 = time.perf_counter(), time.process_time()
  for _ in range(steps):
    next(data)
  elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
  data.close()
  t, d = config.train, config.data
  per_step = t.batch_size * t.n_critic
  return {
      "source": d.source, "examples": len(source), "resolution": d.resolution,
      "channels": d.channels, "resize": d.resize, "random_flip": d.random_flip,
      "batch_size": t.batch_size, "n_critic": t.n_critic, "steps": steps,
      "workers": pipeline.read_options(d).num_threads, "prefetch": d.prefetch,
      "cpu_count": os.cpu_count(), "imgs_per_sec": steps * per_step / elapsed,
      "step_ms": 1e3 * elapsed / steps, "setup_s": setup_s,
      "cpu_ms_per_image": 1e3 * cpu / (steps * per_step),  # all threads: what training pays
  }


def main(argv):
  del argv
  config = FLAGS.config
  tmp = tempfile.mkdtemp()
  # Removed at exit, once the pipeline's threads have finished the steps they had started.
  atexit.register(shutil.rmtree, tmp, ignore_errors=True)
  if FLAGS.synthetic == "folder":
    config.data.source = "folder:" + write_folder(os.path.join(tmp, "images"), FLAGS.num_images,
                                                  FLAGS.image_size)
  elif FLAGS.synthetic == "tfds":
    config.data.data_dir = os.path.join(tmp, "tfds")
    config.data.source = "tfds:" + write_tfds(config.data.data_dir, FLAGS.num_images,
                                              FLAGS.image_size)
  result = measure(config, FLAGS.steps, FLAGS.warmup)
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  define_flags()
  app.run(main)
