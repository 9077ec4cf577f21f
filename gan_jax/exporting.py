"""`gan-jax export`: labelled synthetic data from a trained noise-to-image run, in the layouts other
tools read, with the run that made it written beside it (export.json) and into every picture
(`provenance`).

Formats:
  folder            OUT/<class>/<n>.png (OUT/<n>.png unconditional): `folder:` sources,
                    torchvision's ImageFolder
  ultralytics-cls   OUT/train/<class>/..., OUT/val/<class>/...: Ultralytics' classification layout
  ultralytics-det   OUT/images/<split>/<n>.png, OUT/labels/<split>/<n>.txt (`class cx cy w h`),
                    OUT/data.yaml: canvases of pasted generated objects (`detection`)
  npz               OUT/synthetic.npz: images uint8 [N, H, W, C], labels, class_names
  tfds              OUT/<TFDS_NAME>/1.0.0: `tfds.builder_from_directory` and
                    `--config.data.source=tfds:<TFDS_NAME> --config.data.data_dir=OUT` read it

How samples are drawn: the output is a sequence of slots, each wanting one sample of a label
(interleaved over the labels; a detection canvas is a run of slots). Batches of BATCH samples are
drawn for the next open slots, from latents of (seed, batch index), so the files depend on the
flags only (not on the device count); a filter may reject samples, and the next batch asks again.
Samples are scored as the uint8 pixels that are written, so a filter's decision can be checked on
the files.
"""
import concurrent.futures
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import os
import shutil
import threading
import time

import numpy as np
import scipy.special
import tqdm
from PIL import Image

from gan_jax import provenance, reporting, sampling, watermark
from gan_jax.data import sources
from gan_jax.errors import UserError

FORMATS = ("folder", "ultralytics-cls", "ultralytics-det", "npz", "tfds")
IMAGE_FORMATS = ("png", "jpg")
SPLIT_FORMATS = ("ultralytics-cls", "ultralytics-det", "tfds")
DEFAULT_SPLIT = {"ultralytics-cls": 0.9, "ultralytics-det": 0.9, "tfds": 1.0}
BATCH = 256          # samples per generator call; fixed, so the files do not depend on the machine
CALIBRATION = 1024   # samples per label behind a discriminator filter's thresholds
MAX_DRAWS = 100      # a filter may draw up to this many samples per slot before giving up
TFDS_NAME = "gan_jax_synthetic"


@dataclasses.dataclass
class Canvas:
  """`ultralytics-det`: canvas side, objects per canvas (1..max_objects), objects' sides as
  fractions of the canvas, and the background (a colour, folder:PATH of pictures, or run:WORKDIR,
  samples of another run)."""
  size: int = 256
  max_objects: int = 4
  min_scale: float = 0.15
  max_scale: float = 0.5
  background: str = "black"


def parse_filter(text):
  """"discriminator:Q" | "classifier:C" | None -> (kind, value) or None; one UserError otherwise."""
  if not text:
    return None
  kind, _, value = text.partition(":")
  try:
    value = float(value)
  except ValueError:
    value = None
  if kind == "discriminator" and value is not None and 0 < value <= 1:
    return kind, value
  if kind == "classifier" and value is not None and 0 <= value <= 1:
    return kind, value
  raise UserError(f"--filter={text} is not a filter: use discriminator:Q (keep the top fraction "
                  "0 < Q <= 1 by D's score) or classifier:C (keep samples read as their label with "
                  "confidence >= C, 0 <= C <= 1).")


def load_classifier(spec, exp):
  """The scorer of `--classifier`: "digits" (the project's digits classifier; the default for runs
  on the digits), or "module:function" / "path/to/file.py:function", a function
  `(images float32 [N, H, W, C] in [-1, 1]) -> probabilities [N, num_classes]`."""
  spec = spec or ("digits" if exp.config.data.source == "digits" else None)
  if spec is None:
    raise UserError("--filter=classifier:C needs a classifier for this run's images: give "
                    "--classifier=module:function (images [N, H, W, C] in [-1, 1] -> "
                    "probabilities [N, classes]), or --classifier=digits for digit images.")
  if spec == "digits":
    from gan_jax.metrics.digits import DigitsClassifier
    network = DigitsClassifier.load_or_train()
    return lambda images: scipy.special.softmax(network.logits(images), axis=-1)
  where, _, name = spec.rpartition(":")
  try:
    if where.endswith(".py"):
      module_spec = importlib.util.spec_from_file_location("gan_jax_user_classifier", where)
      module = importlib.util.module_from_spec(module_spec)
      module_spec.loader.exec_module(module)
    else:
      module = importlib.import_module(where)
    return getattr(module, name)
  except (ImportError, AttributeError, FileNotFoundError, ValueError) as e:
    raise UserError(f"--classifier={spec} could not be loaded ({e}): give module:function or "
                    "path/to/file.py:function.") from None


class Plan:
  """The slots the output wants filled, in order: `labels[k]` is slot k's label; item i (a picture,
  or a canvas) is slots `bounds[i]:bounds[i + 1]`. Slots of one label are filled in order."""

  def __init__(self, labels, bounds):
    self.labels, self.bounds = np.asarray(labels, np.int32), np.asarray(bounds)
    self.filled = np.zeros(len(self.labels), bool)
    self.images = [None] * len(self.labels)
    self.slots_of = {int(l): list(np.flatnonzero(self.labels == l)) for l in np.unique(labels)}
    self.next_of = dict.fromkeys(self.slots_of, 0)
    self.rank = np.zeros(len(self.labels), np.int64)  # slot k is the rank[k]-th of its label
    for slots in self.slots_of.values():
      self.rank[slots] = np.arange(len(slots))
    self.done_items, self.first_open = 0, 0

  def wanted(self, n):
    """Labels of the next `n` open slots (repeated when fewer are open)."""
    while self.first_open < len(self.filled) and self.filled[self.first_open]:
      self.first_open += 1
    open_slots = np.flatnonzero(~self.filled[self.first_open:])[:n] + self.first_open
    return np.resize(self.labels[open_slots], n)

  def wants(self, label):
    """Whether a slot of `label` is open."""
    return self.next_of.get(int(label), 0) < len(self.slots_of.get(int(label), ()))

  def fill(self, image, label):
    """Puts a sample into its label's next open slot (`wants` it)."""
    k = self.next_of[int(label)]
    slot = self.slots_of[int(label)][k]
    self.filled[slot], self.images[slot] = True, image
    self.next_of[int(label)] = k + 1

  def ready(self):
    """Items whose slots are all filled, in order: (item index, its slots)."""
    while self.done_items < len(self.bounds) - 1:
      lo, hi = self.bounds[self.done_items], self.bounds[self.done_items + 1]
      if not self.filled[lo:hi].all():
        return
      yield self.done_items, range(lo, hi)
      for k in range(lo, hi):
        self.images[k] = None  # written: free it
      self.done_items += 1

  @property
  def complete(self):
    return self.done_items == len(self.bounds) - 1


def _batch_seed(seed, stream, index):
  """The latent seed of batch `index` of a stream (0: the exported samples, 1: calibration)."""
  return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0] % (1 << 31))


class Exporter:
  """One export: the run to draw from, what to draw and keep, and where to write it."""

  def __init__(self, workdir, out, num, per_class=False, labels=None, format="folder",
               split=None, seed=0, truncation=None, ema=True, filter=None, classifier=None,
               image_format="png", overwrite=False, canvas=None, seed_index=0):
    if format not in FORMATS:
      raise UserError(f"--format={format} is not a format: use one of {', '.join(FORMATS)}.")
    if image_format not in IMAGE_FORMATS:
      raise UserError(f"--image_format={image_format} is not supported: use png or jpg.")
    if num is None or num < 1:
      raise UserError(f"--num={num} must be a positive number of "
                      f"{'canvases' if format == 'ultralytics-det' else 'images'}.")
    if split is not None and format not in SPLIT_FORMATS:
      raise UserError(f"--split divides {', '.join(SPLIT_FORMATS)} exports into train and "
                      f"validation parts; --format={format} writes one set: drop --split.")
    self.split = DEFAULT_SPLIT.get(format, 1.0) if split is None else split
    if not 0 < self.split <= 1:
      raise UserError(f"--split={split} must be the training fraction, 0 < split <= 1.")
    self.workdir, self.out, self.format, self.image_format = workdir, out, format, image_format
    self.seed, self.ema, self.filter = seed, ema, parse_filter(filter)
    self.canvas = canvas or Canvas()
    self.replace = self._check_out(overwrite)
    model, self.truncate = sampling.open_run(workdir, None, truncation, None, seed_index)
    self.exp, self.state, classes = model.exp, model.state, model.num_classes
    if len(self.exp.spec.shape) != 3:
      raise UserError(f"export writes images, and {workdir} learned {model.learned}: use `gan-jax "
                      f"sample --workdir={workdir} --out=samples.npz`.")
    self.labelled = classes > 0
    self.names = class_names(workdir, classes)
    self.chosen = self._chosen(labels, per_class)
    self.plan = self._plan(num, per_class)
    self.score = self._scorer(classifier)
    self.thresholds = self._calibrate() if self.filter and self.filter[0] == "discriminator" else {}
    self.fields = provenance.of_state(self.exp.config, workdir, self.state, seed, ema)
    self.truncation = truncation

  def _chosen(self, labels, per_class):
    """The labels to export (indices), from --labels (indices or class names)."""
    if not self.labelled:
      what = {"ultralytics-cls": "--format=ultralytics-cls (classes are its folders)",
              "ultralytics-det": "--format=ultralytics-det (objects need classes)"}
      asked = ("--per_class" if per_class else "--labels" if labels
               else what.get(self.format))
      if asked:
        raise UserError(f"{asked} needs a class-conditional run, and {self.workdir} trained an "
                        "unconditional model: drop it, or train with --config.model.conditional"
                        "=True on labelled data.")
      return [0]
    if not labels:
      return list(range(len(self.names)))
    chosen = []
    for text in labels.split(","):
      text = text.strip()
      if text in self.names:
        chosen.append(self.names.index(text))
      elif text.isdigit() and int(text) < len(self.names):
        chosen.append(int(text))
      else:
        raise UserError(f"--labels names an unknown label {text!r}: this run's classes are "
                        f"{', '.join(self.names)} (or their indices 0..{len(self.names) - 1}).")
    return sorted(set(chosen))

  def _plan(self, num, per_class):
    chosen = np.array(self.chosen)
    if self.format == "ultralytics-det":
      rng = np.random.default_rng([self.seed, 2])
      counts = rng.integers(1, self.canvas.max_objects + 1, num)
      labels = rng.choice(chosen, counts.sum())
      return Plan(labels, np.concatenate([[0], np.cumsum(counts)]))
    total = num * len(chosen) if per_class else num
    return Plan(np.resize(chosen, total), np.arange(total + 1))

  def _scorer(self, classifier):
    """`(images uint8, labels) -> scores`, higher kept first; None without a filter."""
    if self.filter is None:
      return None
    to_float = lambda pixels: pixels.astype(np.float32) / 127.5 - 1.0
    if self.filter[0] == "discriminator":
      return lambda pixels, labels: self.exp.game.discriminate(self.state, to_float(pixels), labels)
    if not self.labelled:
      raise UserError("--filter=classifier:C keeps samples read as their label, and "
                      f"{self.workdir} trained an unconditional model: use "
                      "--filter=discriminator:Q.")
    probabilities = load_classifier(classifier, self.exp)
    def score(pixels, labels):
      p = np.asarray(probabilities(to_float(pixels)))
      if p.ndim != 2 or p.shape[0] != len(labels) or p.shape[1] < len(self.names):
        raise UserError(f"--classifier returned an array of shape {p.shape} for {len(labels)} "
                        f"images: it must return probabilities [N, {len(self.names)}].")
      return p[np.arange(len(labels)), labels]
    return score

  def _draw(self, stream, index, labels):
    """uint8 samples of `labels` from batch `index` of a stream."""
    samples, labels = self.exp.game.generate(self.state, len(labels),
                                             seed=_batch_seed(self.seed, stream, index),
                                             labels=labels, ema=self.ema, **self.truncate)
    return reporting.to_uint8(samples), labels

  def _calibrate(self):
    """Per label, the discriminator score above which the top fraction Q lies, from CALIBRATION
    samples of their own stream."""
    q = self.filter[1]
    labels = np.resize(np.array(self.chosen), CALIBRATION * len(self.chosen))
    scores = np.concatenate([self.score(*self._draw(1, b, labels[b * BATCH:(b + 1) * BATCH]))
                             for b in range(-(-len(labels) // BATCH))])
    return {int(l): float(np.quantile(scores[labels == l], 1 - q)) for l in self.chosen}

  def _keep(self, pixels, labels):
    if self.filter is None:
      return np.ones(len(labels), bool)
    scores = self.score(pixels, labels)
    if self.filter[0] == "discriminator":
      return scores >= np.array([self.thresholds[int(l)] for l in labels])
    return scores >= self.filter[1]

  def _check_out(self, overwrite):
    """Whether an earlier export in --out is to be replaced; one UserError where files would be
    lost or mixed with others."""
    if os.path.exists(self.out) and not os.path.isdir(self.out):
      raise UserError(f"--out={self.out} is a file: give a folder to write the export to.")
    if not os.path.exists(self.out) or not os.listdir(self.out):
      return False
    if not overwrite:
      raise UserError(f"--out={self.out} is not empty: choose a new folder, or pass --overwrite to "
                      "replace an earlier export there.")
    if not os.path.exists(os.path.join(self.out, "export.json")):
      raise UserError(f"--out={self.out} holds files that are not an export, which --overwrite "
                      "does not delete: choose an empty or new folder.")
    return True

  # --- writing ----------------------------------------------------------------------------

  def run(self, progress=True):
    """Draws, filters and writes everything; returns the export.json record."""
    if self.replace:
      shutil.rmtree(self.out)
    os.makedirs(self.out, exist_ok=True)
    try:
      return self._run(progress)
    except BaseException:
      shutil.rmtree(self.out)  # ours alone (checked empty or an earlier export): no half export
      raise

  def _run(self, progress):
    writer = WRITERS[self.format](self)
    generated, kept = {}, {}
    unit = "canvas" if self.format == "ultralytics-det" else "img"
    bar = tqdm.tqdm(total=len(self.plan.bounds) - 1, desc=f"export {self.format}", unit=unit,
                    disable=not progress)
    start, pending, index = time.time(), [], 0
    limit = MAX_DRAWS * len(self.plan.labels) + BATCH
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
      while not self.plan.complete:
        if index * BATCH > limit:
          rate = sum(kept.values()) / max(sum(generated.values()), 1)
          raise UserError(f"--filter={self.filter[0]}:{self.filter[1]:g} kept {rate:.2%} of "
                          f"{sum(generated.values())} samples, too few to finish: loosen it.")
        pixels, labels = self._draw(0, index, self.plan.wanted(BATCH))
        index += 1
        keeps = self._keep(pixels, labels)  # judged unmarked, as the model drew them
        if self.format in MARKED_IN_BATCHES:
          pixels = watermark.apply(pixels)  # one call a batch, not one a picture
        for image, l, keep in zip(pixels, labels, keeps):
          if not self.plan.wants(l):
            continue  # a batch's surplus: drawn, never considered
          generated[int(l)] = generated.get(int(l), 0) + 1
          if keep:
            self.plan.fill(image, l)
            kept[int(l)] = kept.get(int(l), 0) + 1
        # Pictures are encoded by the pool while the next batch is drawn.
        previous, pending = pending, [
            pool.submit(writer.write, item, [self.plan.images[k] for k in slots],
                        self.plan.labels[slots.start:slots.stop], self.plan.rank[slots.start])
            for item, slots in self.plan.ready()]
        for future in previous:
          future.result()  # a writer's error surfaces here
        bar.update(len(previous))
      for future in pending:
        future.result()
      bar.update(len(pending))
    bar.close()
    seconds = time.time() - start
    record = self._record(generated, kept)
    writer.close(record)
    with open(os.path.join(self.out, "export.json"), "w") as f:
      json.dump(record, f, indent=2)
    record["seconds"] = seconds
    return record

  def _record(self, generated, kept):
    name = lambda l: self.names[l] if self.labelled else "all"
    record = {**self.fields,
              "format": self.format, "image_format": self.image_format,
              "truncation": self.truncation, "ema": self.ema,
              "filter": None if self.filter is None else f"{self.filter[0]}:{self.filter[1]:g}",
              "split": self.split if self.format in SPLIT_FORMATS else None,
              "images": int(len(self.plan.bounds) - 1),
              "counts": {name(l): kept.get(l, 0) for l in self.chosen},
              "generated": {name(l): generated.get(l, 0) for l in self.chosen},
              "acceptance": sum(kept.values()) / max(sum(generated.values()), 1)}
    if self.thresholds:
      record["thresholds"] = {name(l): t for l, t in self.thresholds.items()}
    if self.format == "ultralytics-det":
      record["objects"] = record.pop("counts")
      record["canvas"] = dataclasses.asdict(self.canvas)
    return record

  def encode(self, pixels):
    """File bytes of one uint8 HWC picture, with its provenance and watermark (and signed, where a
    signer is in use: `credentials`). Samples written as they are were marked a batch at a time
    (`_run`); a detection canvas is marked here."""
    return reporting.encode_picture(pixels, self.fields,
                                    "png" if self.image_format == "png" else "jpeg",
                                    marked=self.format in MARKED_IN_BATCHES)

  def name_of(self, label):
    return self.names[label] if self.labelled else None

  def in_train(self, rank, count):
    """Whether the rank-th of `count` items goes to the training part."""
    return rank < round(self.split * count)


def class_names(workdir, classes):
  """Class names, label i first: the run's labels.json (named classes), else "0", "1", ..."""
  ids = sources.read_labels(workdir) if classes else None
  return sorted(ids, key=ids.get) if ids else [str(i) for i in range(classes)]


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


class FolderWriter:
  """folder and ultralytics-cls: one file per picture, in class folders."""

  def __init__(self, export):
    self.export = export
    self.counts = {l: len(s) for l, s in export.plan.slots_of.items()}

  def write(self, item, images, labels, rank):
    e, label = self.export, int(labels[0])
    parts = [] if e.name_of(label) is None else [e.name_of(label)]
    if e.format == "ultralytics-cls":
      parts.insert(0, "train" if e.in_train(rank, self.counts[label]) else "val")
    _write(os.path.join(e.out, *parts, f"{rank:06d}.{e.image_format}"), e.encode(images[0]))

  def close(self, record):
    pass


class DetectionWriter:
  """ultralytics-det: canvases of pasted objects, their YOLO label files and data.yaml."""

  def __init__(self, export):
    from gan_jax import detection
    self.export, self.detection = export, detection
    c = export.canvas
    if c.background.startswith("run:"):
      self.background = GeneratedBackgrounds(c.background[len("run:"):], export.seed, export.ema)
      colour = self.background.channels == 3
    else:
      self.background = detection.Background(c.background)
      colour = c.background.startswith("folder:")
    channels = export.exp.spec.shape[-1]
    self.channels = 3 if channels == 3 or colour else channels
    self.count = len(export.plan.bounds) - 1
    self.boxes = {}  # item -> its boxes' labels: an object that shows nothing or finds no room
                     # is left out of its canvas

  def write(self, item, images, labels, rank):
    e, c, d = self.export, self.export.canvas, self.detection
    rng = np.random.default_rng([e.seed, 3, item])
    if isinstance(self.background, GeneratedBackgrounds):
      background = self.background.draw(item, c.size, self.channels)
    else:
      background = self.background.draw(rng, c.size, self.channels)
    canvas, boxes = d.compose(background, images, labels, rng, c.min_scale, c.max_scale)
    self.boxes[item] = [box[0] for box in boxes]
    split = "train" if e.in_train(item, self.count) else "val"
    _write(os.path.join(e.out, "images", split, f"{item:06d}.{e.image_format}"), e.encode(canvas))
    _write(os.path.join(e.out, "labels", split, f"{item:06d}.txt"),
           d.yolo_lines(boxes, c.size).encode())

  def close(self, record):
    e = self.export
    pasted = np.bincount(np.concatenate([[], *self.boxes.values()]).astype(int),
                         minlength=len(e.names))
    record["boxes"] = {e.names[l]: int(pasted[l]) for l in e.chosen}
    self.detection.write_data_yaml(os.path.join(e.out, "data.yaml"), os.path.abspath(e.out),
                                   e.names)


class GeneratedBackgrounds:
  """--background=run:WORKDIR: canvas i's background is sample i of another run (say, an
  unconditional one trained on scenes), enlarged to the canvas by bicubic."""

  def __init__(self, workdir, seed, ema):
    model, _ = sampling.open_run(workdir, None, None, None)
    self.exp, self.state = model.exp, model.state
    if len(self.exp.spec.shape) != 3:
      raise UserError(f"--background=run:{workdir} learned {model.learned}, not pictures: use a "
                      "run that draws images.")
    self.seed, self.ema, self.channels = seed, ema, self.exp.spec.shape[-1]
    self.lock, self.batches = threading.Lock(), {}

  def draw(self, item, size, channels):
    from gan_jax import detection
    index, row = divmod(item, BATCH)
    with self.lock:  # writer threads ask for canvases of the same batch
      if index not in self.batches:
        samples, _ = self.exp.game.generate(self.state, BATCH, seed=_batch_seed(self.seed, 4,
                                                                                 index),
                                            ema=self.ema)
        self.batches = {k: v for k, v in self.batches.items() if k >= index - 1}
        self.batches[index] = reporting.to_uint8(samples)
      pixels = self.batches[index][row]
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    enlarged = np.asarray(picture.resize((size, size), Image.Resampling.BICUBIC), np.uint8)
    return detection.to_channels(enlarged.reshape(size, size, -1), channels)


class ArrayWriter:
  """npz and tfds: the pictures gathered in order, written at the end."""

  def __init__(self, export):
    self.export, self.items = export, {}

  def write(self, item, images, labels, rank):
    e = self.export
    self.items[item] = (images[0], int(labels[0]), e.encode(images[0]) if e.format == "tfds"
                        else None)

  def close(self, record):
    e = self.export
    images, labels, files = zip(*(self.items[i] for i in sorted(self.items)))
    if e.format == "npz":
      arrays = {"images": np.stack(images), "provenance": json.dumps(e.fields)}
      if e.labelled:
        arrays.update(labels=np.array(labels, np.int32), class_names=np.array(e.names))
      np.savez(os.path.join(e.out, "synthetic.npz"), **arrays)
    else:
      record["tfds_name"] = TFDS_NAME
      write_tfds(e.out, images[0].shape, e.names if e.labelled else None, files, labels, e.split)


# Formats whose files are the samples themselves, marked a batch at a time before they are
# encoded (npz keeps the unmarked arrays; a detection canvas is marked whole).
MARKED_IN_BATCHES = ("folder", "ultralytics-cls", "tfds")
WRITERS = {"folder": FolderWriter, "ultralytics-cls": FolderWriter,
           "ultralytics-det": DetectionWriter, "npz": ArrayWriter, "tfds": ArrayWriter}


def write_tfds(data_dir, shape, names, files, labels, split):
  """A TFDS dataset TFDS_NAME 1.0.0 under `data_dir` (array_record, so readable with random
  access and without TensorFlow) of encoded pictures `files`: splits train and, for split < 1,
  validation (the last part)."""
  import tensorflow_datasets as tfds
  features = {"image": tfds.features.Image(shape=shape, encoding_format="png")}
  if names:
    features["label"] = tfds.features.ClassLabel(names=names)
  cut = round(split * len(files))
  parts = {"train": range(cut)} if cut == len(files) else {"train": range(cut),
                                                           "validation": range(cut, len(files))}

  def examples(indices):
    for i in indices:
      example = {"image": io.BytesIO(files[i])}
      if names:
        example["label"] = labels[i]
      yield i, example

  with tfds.core.registered.skip_registration():
    class GanJaxSynthetic(tfds.core.GeneratorBasedBuilder):
      """Synthetic pictures written by `gan-jax export`."""
      VERSION = tfds.core.Version("1.0.0")

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features),
                                     disable_shuffling=True)

      def _split_generators(self, dl_manager):
        return {name: self._generate_examples(indices) for name, indices in parts.items()}

      def _generate_examples(self, indices):
        return examples(indices)

  builder = GanJaxSynthetic(data_dir=data_dir, file_format="array_record")
  # Quiet: TFDS would announce a download and draw bars of its own beside export's.
  tfds.disable_progress_bar()
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  finally:
    tfds.enable_progress_bar()
  shutil.rmtree(os.path.join(data_dir, "downloads"), ignore_errors=True)


def summary(record, out):
  """The line `gan-jax export` prints: what was written, how fast, what the filter kept."""
  what = "canvases" if record["format"] == "ultralytics-det" else "images"
  rate = record["images"] / max(record["seconds"], 1e-9)
  line = (f"wrote {record['images']} {what} ({record['format']}) to {out} in "
          f"{record['seconds']:.1f} s: {rate:.0f} {what}/s")
  if record["filter"]:
    line += f"; {record['filter']} kept {record['acceptance']:.1%} of the samples drawn"
  if record.get("tfds_name"):
    line += (f"; read it with --config.data.source=tfds:{record['tfds_name']} "
             f"--config.data.data_dir={out}")
  return line


def export(workdir, out, num, progress=True, **options):
  """Writes an export (see the module docstring; `options` as `Exporter`'s); returns its record,
  with "seconds" added."""
  return Exporter(workdir, out, num, **options).run(progress)
