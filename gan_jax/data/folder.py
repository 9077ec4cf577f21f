"""A user's own images: a folder (classes = first-level subfolders), or two folders of pairs.

The folder is scanned once, in sorted order, and every file is opened and verified in parallel
(its header; for PNG also the chunk checksums); unreadable files are left out and reported. Pixels are decoded lazily, in `get`, by the input
pipeline's worker threads (pillow releases the GIL while it decodes and resizes).
"""
import concurrent.futures
import logging
import os

import numpy as np
import tqdm
from PIL import Image

from gan_jax.data import images
from gan_jax.data.pipeline import worker_count
from gan_jax.data.spec import DataSpec
from gan_jax.errors import UserError

log = logging.getLogger("gan_jax.data")
SHOWN = 3  # paths quoted when files are left out
PROGRESS_FROM = 20000  # files: checking fewer takes a few seconds at most


def find_images(root):
  """Sorted paths (relative to root) of the image files under `root`, hidden entries skipped."""
  if not os.path.isdir(root):
    what = "is not a folder" if os.path.exists(root) else "does not exist"
    raise UserError(f"Image folder {root} {what}: pass --config.data.source=folder:PATH with a "
                    "folder of images (one subfolder per class if they are labelled).")
  found, others = walk_images(root)
  if not found:
    kinds = ", ".join(e[1:] for e in images.EXTENSIONS)
    content = f"holds no {kinds} files (only {others} others)" if others else "is empty"
    raise UserError(f"Image folder {root} {content}: put images in it, one subfolder per class "
                    "if they are labelled.")
  return found


def walk(root):
  """Yields (directory, its files) under the folder `root`, top down: hidden entries skipped,
  symlinks followed once (a link back up the tree is not walked again)."""
  seen = set()
  for directory, subdirs, files in os.walk(root, followlinks=True):
    real = os.path.realpath(directory)
    if real in seen:
      subdirs[:] = []
      continue
    seen.add(real)
    subdirs[:] = [d for d in subdirs if not d.startswith(".")]
    yield directory, [f for f in files if not f.startswith(".")]


def walk_images(root, extensions=images.EXTENSIONS):
  """(sorted relpaths of the image files (`extensions`) under the folder `root`, count of other
  files), as `walk` finds them. No errors of its own: callers word their own."""
  found, others = [], 0
  for directory, files in walk(root):
    for name in files:
      if name.lower().endswith(extensions):
        found.append(os.path.relpath(os.path.join(directory, name), root))
      else:
        others += 1
  return sorted(found), others


def readable(path):
  """Whether pillow can identify and verify the file (a cheap check: no full decode)."""
  try:
    with Image.open(path) as image:
      image.verify()
    return True
  except Exception:  # pillow raises many types for bad files; any of them means "skip it"
    return False


def check_readable(root, relpaths, workers):
  """The readable subset of `relpaths`, in order; the rest are reported (count, first paths)."""
  paths = [os.path.join(root, p) for p in relpaths]
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    checks = pool.map(readable, paths, chunksize=64)
    ok = list(tqdm.tqdm(checks, total=len(paths), desc=f"checking {root}", unit="file",
                        disable=len(paths) < PROGRESS_FROM))
  bad = [p for p, good in zip(relpaths, ok) if not good]
  if len(bad) == len(relpaths):
    raise UserError(f"None of the {len(bad)} image files in {root} could be read (e.g. "
                    f"{bad[0]}): check that they are valid png, jpg, webp or bmp images.")
  if bad:
    report_left_out(f"{len(bad)} of {len(relpaths)} image files in {root} that pillow cannot "
                    "read", bad)
  return [p for p, good in zip(relpaths, ok) if good]


def report_left_out(what, relpaths):
  shown = ", ".join(relpaths[:SHOWN]) + (", ..." if len(relpaths) > SHOWN else "")
  log.warning("Left out %s: %s", what, shown)


def class_of(relpath):
  """The first-level subfolder, or None for a file directly in the root."""
  head, sep, _ = relpath.partition(os.sep)
  return head if sep else None


class FolderSource:
  """Images from `relpaths` under `root`; label = index of the first-level subfolder (sorted)."""

  def __init__(self, root, relpaths, resolution, channels, resize):
    self.root, self.relpaths = root, relpaths
    self.fit = (resolution, channels, resize)
    names = sorted({class_of(p) for p in relpaths} - {None})
    ids = {name: i for i, name in enumerate(names)}
    self.labels = np.array([ids.get(class_of(p), 0) for p in relpaths], np.int32)
    self.class_names = names or None
    self.spec = DataSpec((resolution, resolution, channels), "uint8", len(names))

  @classmethod
  def scan(cls, root, data_config):
    """Finds and checks the images under `root`; files beside class subfolders are left out."""
    relpaths = find_images(root)
    if any(class_of(p) for p in relpaths):
      loose = [p for p in relpaths if class_of(p) is None]
      if loose:
        report_left_out(f"{len(loose)} images in {root} that are not in a class subfolder", loose)
        relpaths = [p for p in relpaths if class_of(p) is not None]
    relpaths = check_readable(root, relpaths, worker_count(data_config))
    return cls(root, relpaths, data_config.resolution, data_config.channels, data_config.resize)

  def __len__(self):
    return len(self.relpaths)

  def get(self, indices):
    used, pictures = decode_all(indices, len(self), self.load, self.root)
    return {"x": np.stack(pictures), "label": self.labels[used]}

  def load(self, index):
    return images.load(os.path.join(self.root, self.relpaths[index]), *self.fit, key=index)


class PairedFolders:
  """Aligned pairs for translation: A/rel/name.* with B/rel/name.* (extensions may differ). For
  super-resolution (data.scale set) A holds the LR images, loaded at resolution // scale, and B
  the HR ones at resolution."""

  def __init__(self, a, b):
    self.a, self.b = a, b
    # The spec is B's: the target's size, which is data.resolution also in super-resolution.
    self.spec, self.class_names = b.spec, a.class_names

  @classmethod
  def scan(cls, root_a, root_b, data_config):
    stems = []
    for root in (root_a, root_b):
      found = find_images(root)
      stems.append({os.path.splitext(p)[0]: p for p in found})
    common = sorted(stems[0].keys() & stems[1].keys())
    if not common:
      raise UserError(f"No image in {root_a} has a partner of the same relative name in "
                      f"{root_b}: pairs must match, e.g. A/0001.jpg with B/0001.png.")
    for (root, own), other in zip(zip((root_a, root_b), stems), stems[::-1]):
      alone = sorted(own[s] for s in own.keys() - other.keys())
      if alone:
        report_left_out(f"{len(alone)} images in {root} without a partner", alone)
    n = worker_count(data_config)
    ok = [set(check_readable(root, [own[s] for s in common], n))
          for root, own in zip((root_a, root_b), stems)]
    keep = [s for s in common if stems[0][s] in ok[0] and stems[1][s] in ok[1]]
    if not keep:
      raise UserError(f"No pair of {root_a} and {root_b} has both images readable: check the "
                      "files.")
    d = data_config
    sizes = (d.resolution // (d.get("scale", 0) or 1), d.resolution)
    return cls(*(FolderSource(root, [own[s] for s in keep], size, d.channels, d.resize)
                 for root, own, size in zip((root_a, root_b), stems, sizes)))

  def __len__(self):
    return len(self.a)

  def get(self, indices):
    used, pairs = decode_all(indices, len(self), self.load, self.a.root)
    x, y = (np.stack(side) for side in zip(*pairs))
    return {"x": x, "label": self.a.labels[used], "y": y, "y_label": self.b.labels[used]}

  def load(self, index):
    return self.a.load(index), self.b.load(index)


MAX_SUBSTITUTES = 8
_failed = set()  # (root, index) already reported


def decode_all(indices, count, load, root):
  """(indices used, `load(i)` for each): a file that passed the header check but does not decode
  is replaced by the next one that does, the same every time, so a run and its resume see the
  same batches (and labels match the pictures)."""
  used, values = [], []
  for index in indices:
    i, value = _first_that_decodes(int(index), count, load, root)
    used.append(i)
    values.append(value)
  return np.array(used, np.int64), values


def _first_that_decodes(index, count, load, root):
  tries = min(count, MAX_SUBSTITUTES)
  for k in range(tries):
    i = (index + k) % count
    try:
      return i, load(i)
    except Exception:  # as in `readable`: any failure of pillow's
      if (root, i) not in _failed:
        _failed.add((root, i))
        log.warning("Could not decode example %d of %s; using the next one in its place.", i, root)
  raise UserError(f"{tries} images in a row from example {index} of {root} could not be "
                  "decoded: check that the folder has not changed since the run started.")

