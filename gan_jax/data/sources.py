"""Sources: random access to examples by index, vectorized over a batch of indices.

A source has `spec` (shape of one example, dtype, number of classes), `__len__` and
`get(indices) -> {"x": array[B, ...], "label": int32[B]}`. Images are uint8 HWC; 2D points are
float32 [2]. Sources of two image domains (for translation) add "y" and "y_label"; labelled image
sources have `class_names` (label i is class_names[i]). Captioned sources (`captions`) have the
distinct caption strings as `captions` and add a "caption" id per example to what `get` returns
when given one draw per example; a text run embeds them (`captions.embed`).

`config.data.source` names one:
  digits | stacked_digits | ring2d | grid2d      embedded, no download
  digit_edges                                    embedded pairs: x = a digit's edge map, y = the digit
  digit_styles                                   embedded, unpaired: A = the digits, B = other digits
                                                 redrawn (thick dark ink on striped paper)
  photos                                         photographs bundled with scikit-image and
                                                 scikit-learn: square crops at seeded places (HR
                                                 patches for super-resolution)
  t2i_digits                                     embedded, captioned: real digits drawn in 5
                                                 colours, 10 (digit, colour) pairs held out
  moving_digits                                  embedded clips: real digits moving and bouncing
                                                 on a black canvas (`video.MovingDigits`)
  videos:PATH                                    a folder of videos (.mp4, .webm, .gif, ...) or of
                                                 frame folders, cut into clips (`video_files`)
  tfds:NAME[:SPLIT]                              a prepared TFDS dataset (split: train); captioned
                                                 with data.text_key naming its text feature
  folder:PATH                                    a folder of images, classes = subfolders
  captions:PATH                                  a folder of images captioned by its metadata.jsonl
  pair:A,B                                       two folders of aligned pairs (same names)
  unpaired:A,B | unpaired:tfds:NAME              two domains, each a folder or tfds:NAME:SPLIT;
                                                 tfds:NAME alone means its trainA and trainB

The two embedded translation tasks train on the train part of `metrics.digits.digits_split()`
only; `build(config, split="test")` gives their 360 held-out digits as aligned pairs for
evaluation and sample grids; for `photos` it gives the four held-out photos whole
(`PhotoSet`); None for every other source, which has no held-out part.

Configs with `data.frames` (the video game's) read clips [frames, R, R, C]: tfds:NAME then names
a TFDS video dataset (`video_files.TfdsVideo`, with `data.stride` and `data.video_key`).

With `config.data.scale` set (super-resolution), the pipeline makes "x" the degraded LR of each
image and "y" the image itself, except for pair:LR,HR folders, whose LR side is loaded at
resolution // scale.
"""
import json
import os

import numpy as np

from gan_jax.data import captions, embedded, folder, tfds_source, video, video_files
from gan_jax.data.spec import DataSpec
from gan_jax.errors import UserError


class ArraySource:
  """Examples held in memory."""

  def __init__(self, x, labels, num_classes):
    self.x, self.labels = x, labels
    self.spec = DataSpec(tuple(x.shape[1:]), str(x.dtype), num_classes)

  def __len__(self):
    return len(self.x)

  def get(self, indices):
    return {"x": self.x[indices], "label": self.labels[indices]}


class PairedArrays:
  """Aligned pairs held in memory: example i is (x[i], y[i]), both of class labels[i]."""

  def __init__(self, x, y, labels, num_classes):
    self.x, self.y, self.labels = x, y, labels
    self.spec = DataSpec(tuple(x.shape[1:]), str(x.dtype), num_classes)

  def __len__(self):
    return len(self.x)

  def get(self, indices):
    labels = self.labels[indices]
    return {"x": self.x[indices], "label": labels, "y": self.y[indices], "y_label": labels}


class StackedDigitsSource:
  """Three real digits as the R, G, B channels: 1000 modes (Metz et al. 2017; VEEGAN; PacGAN).

  Example i stacks digits chosen by a fixed seeded table; its label is the 3-digit number.
  """

  def __init__(self, resolution, size=1 << 16, seed=0):
    self.images, self.digit_labels = embedded.digits(resolution)
    self.table = np.random.default_rng(seed).integers(0, len(self.images), (size, 3))
    self.spec = DataSpec((resolution, resolution, 3), "uint8", 1000)

  def __len__(self):
    return len(self.table)

  def get(self, indices):
    picks = self.table[indices]                                # [B, 3]
    x = self.images[picks, ..., 0]                             # [B, 3, R, R]
    labels = self.digit_labels[picks] @ np.array([100, 10, 1])
    return {"x": np.moveaxis(x, 1, -1), "label": labels.astype(np.int32)}


class PhotoCrops:
  """resolution x resolution crops of the train photos (`embedded.PHOTOS_TRAIN`): example i is the
  crop at a photo and offset chosen by a fixed seeded table, so it is a pure function of i (as in
  StackedDigitsSource); its label is the photo's index. Photos are drawn equally often."""

  def __init__(self, resolution, channels, size=1 << 16, seed=0):
    self.class_names, self.photos = embedded.photos("train", channels)
    smallest = min(min(p.shape[:2]) for p in self.photos)
    if resolution > smallest:
      raise UserError(f"--config.data.resolution={resolution} is larger than the smallest photo "
                      f"({smallest} pixels high): use at most {smallest}.")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(self.photos), size)
    room = np.array([p.shape[:2] for p in self.photos])[picks] - resolution + 1
    corners = np.floor(rng.random((size, 2)) * room).astype(np.int64)
    self.table = np.concatenate([picks[:, None], corners], axis=1)  # [size, 3]: photo, top, left
    self.resolution = resolution
    self.spec = DataSpec((resolution, resolution, channels), "uint8", len(self.photos))

  def __len__(self):
    return len(self.table)

  def get(self, indices):
    rows, r = self.table[indices], self.resolution
    x = np.stack([self.photos[p][t:t + r, l:l + r] for p, t, l in rows])
    return {"x": x, "label": rows[:, 0].astype(np.int32)}


class PhotoSet:
  """Whole photos of different sizes (the held-out photos): `images()` and `names`, no `get`,
  since they do not stack into one array; super-resolution evaluation reads them one by one."""

  def __init__(self, channels, split="test"):
    self.names, self._images = embedded.photos(split, channels)

  def __len__(self):
    return len(self._images)

  def images(self):
    """The photos: uint8 [H, W, channels] each (read-only, shared)."""
    return list(self._images)


class Subset:
  """`size` examples of `source`, a fixed random choice (`data.subset`: small-data runs)."""

  def __init__(self, source, size, seed=0):
    if size > len(source):
      raise UserError(f"--config.data.subset={size} is more than the {len(source)} examples of "
                      "the data: use fewer, or 0 for all.")
    self.source = source
    self.indices = np.sort(np.random.default_rng(seed).choice(len(source), size, replace=False))
    self.spec, self.class_names = source.spec, getattr(source, "class_names", None)

  def __len__(self):
    return len(self.indices)

  @property
  def captions(self):
    return getattr(self.source, "captions", None)

  def get(self, indices, *caption_draws):
    return self.source.get(self.indices[indices], *caption_draws)


class Unpaired:
  """Two independent image domains: each keeps its own length, shuffle and epochs (the pipeline
  reads `domains` separately), so no image of A is tied to one of B."""

  def __init__(self, a, b):
    self.domains = (a, b)
    self.spec, self.class_names = a.spec, getattr(a, "class_names", None)

  def __len__(self):
    return max(len(d) for d in self.domains)


TRANSLATION = ("digit_edges", "digit_styles")  # embedded two-domain tasks, with a held-out split
VIDEO = ("moving_digits",)  # embedded clips [frames, R, R, C]
EMBEDDED = (("digits", "stacked_digits", "ring2d", "grid2d", "photos", "t2i_digits") + TRANSLATION
            + VIDEO)
FILE_KINDS = ("tfds", "folder", "captions", "pair", "unpaired", "videos")
TWO_DOMAINS = ("pair", "unpaired") + TRANSLATION
PAIRED_KINDS = ("pair", "digit_edges")  # two domains aligned example by example
VIDEO_KINDS = VIDEO + ("videos", "tfds")  # sources that give clips (tfds: with data.frames)
SPLITS = ("train", "test")
HALVES_SEED = 0  # digit_styles: which train digits are domain A's and which B's
FORMS = ", ".join(EMBEDDED + ("tfds:NAME[:SPLIT]", "folder:PATH", "captions:PATH", "pair:A,B",
                              "unpaired:A,B", "videos:PATH"))


def kind(source):
  """"folder" for "folder:PATH", "digits" for "digits", ...; one clear error for anything else."""
  head, sep, _ = source.partition(":")
  if (head in FILE_KINDS) if sep else (head in EMBEDDED):
    return head
  raise UserError(f"Unknown data source {source!r}: use one of {FORMS}.")


SEEDED = ("ring2d", "grid2d")  # sources whose examples are drawn from config.seed


def for_seed(source, config):
  """The training `source` of another seed's `config`: rebuilt where examples depend on it."""
  return build(config) if kind(config.data.source) in SEEDED else source


def build(config, split="train"):
  """The source named by `config.data.source`; split="test" gives the held-out pairs of an
  embedded translation task (digit_edges, digit_styles), the held-out photos whole for `photos`
  (a `PhotoSet`), held-out clips for `moving_digits` and None for any other source."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  d = config.data
  name = d.source
  if split == "test":
    if name == "photos":
      _check_photo_channels(d)
      return PhotoSet(d.channels)
    if name == "moving_digits":
      return _moving_digits(d, split="test", seed=video.HELD_OUT_SEED)
    return _digit_translation(d, split) if kind(name) in TRANSLATION else None
  source = _build_train(config)
  return Subset(source, d.subset) if d.get("subset") else source


def _build_train(config):
  d = config.data
  name = d.source
  if name in TRANSLATION:
    return _digit_translation(d, "train")
  if kind(name) in FILE_KINDS:
    return _build_images(d)
  if name == "digits":
    images, labels = embedded.digits(d.resolution)
    if d.channels != 1:
      images = np.repeat(images, d.channels, axis=-1)
    return ArraySource(images, labels, 10)
  if name == "stacked_digits":
    if d.channels != 3:
      raise UserError("stacked_digits has 3 channels (one digit each): set --config.data.channels=3.")
    return StackedDigitsSource(d.resolution)
  if name == "photos":
    _check_photo_channels(d)
    return PhotoCrops(d.resolution, d.channels)
  if name == "t2i_digits":
    if d.channels != 3:
      raise UserError("t2i_digits draws digits in colours: set --config.data.channels=3.")
    return captions.DigitCaptions(d.resolution)
  if name == "moving_digits":
    return _moving_digits(d)
  if name in ("ring2d", "grid2d"):
    modes, std = ((embedded.ring_modes(), embedded.RING_STD) if name == "ring2d"
                  else (embedded.grid_modes(), embedded.GRID_STD))
    points, ids = embedded.mixture(modes, std, seed=config.seed)
    return ArraySource(points, ids, len(modes))


def _moving_digits(d, **split):
  if d.channels != 1:
    raise UserError("moving_digits draws white digits on black: set --config.data.channels=1.")
  return video.MovingDigits(d.resolution, d.frames, d.num_digits, **split)


def _check_photo_channels(d):
  if d.channels not in (1, 3):
    raise UserError(f"photos are RGB (3 channels) or their luma (1): set --config.data.channels "
                    f"to 1 or 3, not {d.channels}.")


def _digit_translation(d, split):
  """digit_edges / digit_styles from the train (or held-out) digits of `digits_split()`.

  digit_edges pairs each digit (y) with its edge map (x). digit_styles trains on two disjoint
  halves of the train digits, split per class: A reads one half as it is, B the other half in
  `embedded.digit_style_b`, so no digit of B is a redrawn digit of A. Its held-out split renders
  the SAME held-out digits both ways (x = A, y = B, aligned by index), for A->B->A checks.
  """
  from gan_jax.metrics.digits import digits_split  # the classifier's split, kept apart from it
  if d.channels not in (1, 3):
    raise UserError(f"{d.source} is gray (1 channel), or gray copied to 3: set "
                    f"--config.data.channels to 1 or 3, not {d.channels}.")
  images, labels = embedded.digits(d.resolution)
  train, test = digits_split()
  repeat = lambda x: np.repeat(x, d.channels, axis=-1) if d.channels != 1 else x
  if d.source == "digit_edges":
    idx = train if split == "train" else test
    return PairedArrays(repeat(embedded.digit_edges(images[idx])), repeat(images[idx]),
                        labels[idx], 10)
  if split == "test":
    return PairedArrays(repeat(images[test]), repeat(embedded.digit_style_b(images[test])),
                        labels[test], 10)
  a, b = style_halves(train, labels[train])
  return Unpaired(ArraySource(repeat(images[a]), labels[a], 10),
                  ArraySource(repeat(embedded.digit_style_b(images[b])), labels[b], 10))


def style_halves(indices, labels, seed=HALVES_SEED):
  """Two disjoint, sorted halves of `indices`, each class split in two by a seeded shuffle."""
  rng = np.random.default_rng(seed)
  a, b = [], []
  for c in np.unique(labels):
    mine = rng.permutation(indices[labels == c])
    a.append(mine[:len(mine) // 2])
    b.append(mine[len(mine) // 2:])
  return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def _build_images(d):
  if d.channels not in (1, 3):
    raise UserError(f"--config.data.channels={d.channels} is not supported for image files: use "
                    "1 (gray) or 3 (RGB).")
  head, _, rest = d.source.partition(":")
  if "frames" in d:  # clips
    return _clips(d, head, rest)
  if head == "videos":
    raise UserError(f"--config.data.source={d.source} gives clips, and this config learns images: "
                    "train a video config (configs/video_folder.py) on it.")
  if head in ("tfds", "folder"):
    return _one_domain(d.source, d)
  if head == "captions":
    return captions.CaptionFolder.scan(_folder_path(d.source, d.source, head), d)
  parts = rest.split(",")
  if head == "unpaired" and len(parts) == 1 and parts[0].startswith("tfds:"):
    parts = [f"{parts[0]}:trainA", f"{parts[0]}:trainB"]  # the cycle_gan layout
  if len(parts) != 2 or not all(parts):
    raise UserError(f"--config.data.source={d.source} needs two domains: {head}:A,B (folders"
                    f"{'' if head == 'pair' else ' or tfds:NAME:SPLIT'}, no comma inside a path).")
  if head == "unpaired":
    return Unpaired(*(_one_domain(p, d) for p in parts))
  if any(p.startswith("tfds:") for p in parts):
    raise UserError("pair:A,B pairs two folders by file name; for TFDS datasets use unpaired:A,B.")
  return folder.PairedFolders.scan(*(_folder_path(p, d.source) for p in parts), d)


def _clips(d, head, rest):
  """The clips of a videos:PATH folder or a TFDS video dataset (tfds:NAME[:SPLIT])."""
  if head == "videos":
    return video_files.VideoFolder.scan(_folder_path(d.source, d.source, head), d.frames,
                                        d.stride, d.resolution, d.channels)
  if head == "tfds":
    name, _, split = rest.partition(":")
    return video_files.TfdsVideo(name, split or "train", d.frames, d.stride, d.resolution,
                                 d.channels, d.data_dir or None, d.video_key or None)
  raise UserError(f"--config.data.source={d.source} holds images, and this config reads clips "
                  "(data.frames): use moving_digits, videos:PATH or tfds:NAME of a video dataset.")


def _one_domain(text, d):
  if text.startswith("tfds:"):
    source = tfds_source.TfdsSource(text.removeprefix("tfds:"), d)
    return captions.TfdsCaptions(source, d.text_key) if d.get("text_key") else source
  return folder.FolderSource.scan(_folder_path(text, d.source), d)


def _folder_path(text, source, head="folder"):
  path = text.removeprefix(f"{head}:")
  if not path:
    raise UserError(f"--config.data.source={source} names no folder: use {head}:PATH.")
  return os.path.expanduser(path)


def read_labels(workdir):
  """The run's labels.json (class name -> label), or None for data without named classes."""
  path = os.path.join(workdir, "labels.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_labels(source, workdir):
  """labels.json in the workdir: class name -> label, for sources with named classes."""
  names = getattr(source, "class_names", None)
  if names:
    with open(os.path.join(workdir, "labels.json"), "w") as f:
      json.dump({name: i for i, name in enumerate(names)}, f, indent=2)
