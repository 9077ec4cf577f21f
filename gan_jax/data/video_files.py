"""Users' own videos, and prepared TFDS video datasets, cut into training clips.

A clip is `frames` consecutive frames, and a clip starts every `stride` frames: a video of n >=
frames frames gives (n - frames) // stride + 1 clips, shorter videos none. Example i is row i of a
table of (video, first frame) built once, at scan time, so it is a pure function of i. Every frame
is fitted as a picture of the image sources is (`images.fit`, center_crop: the shorter side
scaled to `resolution`, the centered square kept) and brought to `channels`, so a clip is uint8
[frames, R, R, channels], as `video.MovingDigits`'s are; frames keep their order and are not
resampled in time (a variable-frame-rate file gives its frames as decoded).

`VideoFolder` decodes every video once, at scan time, and keeps its fitted frames in memory: one
uint8 array per video. Not an LRU of decoded videos filled by `get`, because the pipeline draws
clips at random from the whole folder: consecutive draws land in different videos, so any cache
smaller than the folder misses almost always and `get` would decode a whole video per clip. The
scan has to decode every file to the end anyway (webm and gif containers state no frame count,
others an approximate one, and a damaged file shows only when decoded), and frames at training
size are small: 64x64 RGB is 12 KiB a frame, an hour at 30 fps 1.3 GiB. A folder whose fitted
frames would exceed `max_bytes` (by default half the machine's memory) is refused with a
UserError instead of exhausting it.

`TfdsVideo` reads a prepared split with random access and decodes, per clip, only that clip's
frames from the stored record.
"""
import concurrent.futures
import importlib
import importlib.util
import io
import os
import re

import numpy as np
import tqdm
from PIL import Image

from gan_jax.data import folder, images, tfds_source
from gan_jax.data.spec import DataSpec
from gan_jax.errors import UserError

# Containers PyAV (its bundled FFmpeg) decodes; .gif through FFmpeg's gif decoder as well.
VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif", ".avi", ".mov", ".mkv")
RESIZE = "center_crop"  # the image sources' default rule
PROGRESS_FROM = 50  # videos: decoding fewer takes seconds
MEMORY_SHARE = 0.5  # of the machine's memory, the default limit on a folder's decoded frames
UNREADABLE, TOO_SHORT = "unreadable", "too short"


def clip_table(lengths, frames, stride):
  """Rows (video, first frame) of every clip, int64 [N, 2], video by video, in time order."""
  lengths = np.asarray(lengths, np.int64).reshape(-1)
  counts = np.where(lengths >= frames, (lengths - frames) // stride + 1, 0)
  video = np.repeat(np.arange(len(lengths)), counts)
  first = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
  return np.stack([video, first * stride], 1).astype(np.int64)


def check_clip_args(frames, stride, channels):
  for what, value in (("frames", frames), ("stride", stride)):
    if int(value) < 1:
      raise UserError(f"A clip's {what} must be at least 1 (got {value}): set it to 1 or more.")
  if channels not in (1, 3):
    raise UserError(f"channels must be 1 (gray) or 3 (RGB), not {channels}: set one of them.")


def natural_key(name):
  """Sort key of frame files: runs of digits compare as numbers (frame_2 before frame_10)."""
  parts = re.split(r"(\d+)", name.lower())
  return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


# --- a folder of videos -----------------------------------------------------------------------

def find_videos(root):
  """(sorted relpaths of the videos under the folder `root`, pictures left out, count of other
  files). A video is a file with a VIDEO_EXTENSIONS ending, or a folder of frames: a folder whose
  files are all pictures (images.EXTENSIONS); pictures beside other files are left out. Hidden
  entries are skipped and symlinks followed once (`folder.walk`)."""
  found, stray, others = [], [], 0
  for directory, files in folder.walk(root):
    rel = os.path.relpath(directory, root)
    pictures = [f for f in files if f.lower().endswith(images.EXTENSIONS)]
    if pictures and len(pictures) == len(files):
      found.append(rel)
      continue
    for name in files:
      path = os.path.normpath(os.path.join(rel, name))
      if name.lower().endswith(VIDEO_EXTENSIONS):
        found.append(path)
      elif name.lower().endswith(images.EXTENSIONS):
        stray.append(path)
      else:
        others += 1
  return sorted(found), sorted(stray), others


def decode(path, resolution, channels):
  """A video file's or a folder of frames' frames, fitted: uint8 [n, R, R, C]. Raises whatever
  PyAV or pillow raises on a file it cannot read."""
  if os.path.isdir(path):
    names = sorted((n for n in os.listdir(path)
                    if not n.startswith(".") and n.lower().endswith(images.EXTENSIONS)),
                   key=natural_key)
    fitted = [images.load(os.path.join(path, n), resolution, channels, RESIZE) for n in names]
  else:
    import av  # pylint: disable=import-outside-toplevel  (only folders holding video files need it)
    with av.open(path) as container:
      stream = container.streams.video[0]  # IndexError: no video stream (e.g. an audio file)
      stream.thread_type = "AUTO"  # FFmpeg's frame threads too: a few long videos use every core
      fitted = [fit_frame(f, resolution, channels) for f in container.decode(stream)]
  if not fitted:
    return np.zeros((0, resolution, resolution, channels), np.uint8)
  return np.stack(fitted)


def fit_frame(frame, resolution, channels):
  """A decoded av.VideoFrame, turned upright as players show it and fitted like a picture (alpha,
  e.g. a gif's transparency, composited over white as for images).

  As `images.load` lets libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale, FFmpeg shrinks a
  large frame by such a factor (averaging whole pixel blocks) in the conversion to RGB it does
  anyway, each side staying >= resolution; pillow then fits it. 2-3x faster on 360p video."""
  factor = 1
  while factor < 8 and min(frame.width, frame.height) // (2 * factor) >= resolution:
    factor *= 2
  alpha = any(c.is_alpha for c in frame.format.components)
  picture = Image.fromarray(frame.reformat(
      width=frame.width // factor, height=frame.height // factor,
      format="rgba" if alpha else "rgb24", interpolation="AREA").to_ndarray())
  quarter_turns = int(round(getattr(frame, "rotation", 0) / 90)) % 4  # counter-clockwise
  if quarter_turns:
    picture = picture.transpose((None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                                 Image.Transpose.ROTATE_270)[quarter_turns])
  return images.fit(picture, resolution, channels, RESIZE)


def machine_memory():
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):  # no sysconf (Windows): assume 16 GiB
    return 16 << 30


class VideoFolder:
  """Clips of the videos `relpaths` under `root`, decoded to `videos` (uint8 [n, R, R, C] each).
  Labels as the image folder's: when videos sit in subfolders, label = index of the first-level
  subfolder (sorted), named by `class_names`; otherwise every label is 0 and `class_names` None.
  `skipped` maps each left-out file to why (UNREADABLE or TOO_SHORT)."""

  def __init__(self, root, relpaths, videos, frames, stride, skipped=None):
    check_clip_args(frames, stride, videos[0].shape[-1] if videos else 3)
    self.root, self.relpaths, self.videos = root, list(relpaths), list(videos)
    self.frames, self.stride, self.skipped = frames, stride, dict(skipped or {})
    names = sorted({folder.class_of(p) for p in self.relpaths} - {None})
    ids = {name: i for i, name in enumerate(names)}
    self.class_names = names or None
    self.video_labels = np.array([ids.get(folder.class_of(p), 0) for p in self.relpaths], np.int32)
    self.table = clip_table([len(v) for v in self.videos], frames, stride)
    if not len(self.table):
      raise UserError(f"No video in {root} has {frames} frames to make a clip from: add longer "
                      "videos or lower the frames per clip.")
    self.labels = self.video_labels[self.table[:, 0]]
    self.spec = DataSpec((frames,) + self.videos[0].shape[1:], "uint8", len(names))

  @classmethod
  def scan(cls, path, frames, stride, resolution, channels, workers=None, max_bytes=None):
    """Finds the videos under `path`, decodes them (in `workers` threads) and cuts them into
    clips; files that do not decode or give no clip are left out and reported in one line."""
    check_clip_args(frames, stride, channels)
    root = os.fspath(path)
    if not os.path.isdir(root):
      what = "is not a folder" if os.path.exists(root) else "does not exist"
      raise UserError(f"Video folder {root} {what}: pass a folder of videos (mp4, webm, gif, ...) "
                      "or of folders of frames, one subfolder per class if they are labelled.")
    relpaths, stray, others = find_videos(root)
    if stray:
      folder.report_left_out(f"{len(stray)} pictures in {root} beside other files (a folder of "
                             "frames holds pictures only)", stray)
    if not relpaths:
      content = (f"holds no {', '.join(e[1:] for e in VIDEO_EXTENSIONS)} files or folders of "
                 f"frames (only {others + len(stray)} other files)" if others or stray
                 else "is empty")
      raise UserError(f"Video folder {root} {content}: put videos in it, one subfolder per class "
                      "if they are labelled.")
    if any(folder.class_of(p) for p in relpaths):
      loose = [p for p in relpaths if folder.class_of(p) is None]
      if loose:
        folder.report_left_out(f"{len(loose)} videos in {root} that are not in a class subfolder",
                               loose)
        relpaths = [p for p in relpaths if folder.class_of(p) is not None]
    if any(not os.path.isdir(os.path.join(root, p)) for p in relpaths):
      if importlib.util.find_spec("av") is None:
        raise UserError(f"Reading the video files in {root} needs PyAV: `pip install av` (it "
                        "brings its own FFmpeg).")
    limit = max_bytes or MEMORY_SHARE * machine_memory()
    decoded = decode_all(root, relpaths, frames, resolution, channels,
                         workers or os.cpu_count() or 1, limit)
    skipped = {p: v for p, v in zip(relpaths, decoded) if isinstance(v, str)}
    kept = [(p, v) for p, v in zip(relpaths, decoded) if not isinstance(v, str)]
    if not kept:
      raise UserError(f"No video in {root} gives a clip of {frames} frames ({describe(skipped)}): "
                      "add videos PyAV can decode (mp4, webm, gif, ...) that are at least that "
                      "long, or lower the frames per clip.")
    if skipped:
      folder.log.warning("Left out %d of %d videos in %s: %s", len(skipped), len(relpaths), root,
                         describe(skipped))
    return cls(root, [p for p, _ in kept], [v for _, v in kept], frames, stride, skipped)

  def __len__(self):
    return len(self.table)

  def get(self, indices):
    rows = self.table[np.asarray(indices, np.int64)]
    clips = np.stack([self.videos[v][s:s + self.frames] for v, s in rows])
    return {"x": clips, "label": self.labels[np.asarray(indices, np.int64)]}


def decode_all(root, relpaths, frames, resolution, channels, workers, max_bytes):
  """Per relpath, its fitted frames, or why it is left out (UNREADABLE or TOO_SHORT)."""

  def one(relpath):
    try:
      video = decode(os.path.join(root, relpath), resolution, channels)
    except Exception:  # PyAV and pillow raise many types for bad files; any means "leave it out"
      return UNREADABLE
    return video if len(video) >= frames else TOO_SHORT

  pool = concurrent.futures.ThreadPoolExecutor(workers)
  try:
    out, total = [], 0
    for video in tqdm.tqdm(pool.map(one, relpaths), total=len(relpaths), unit="video",
                           desc=f"decoding {root}", disable=len(relpaths) < PROGRESS_FROM):
      total += 0 if isinstance(video, str) else video.nbytes
      if total > max_bytes:
        raise UserError(f"The videos in {root} take more than {max_bytes / 2**30:.1f} GiB "
                        f"decoded at {resolution}x{resolution}: lower the resolution, use fewer "
                        "or shorter videos, or raise the memory limit (max_bytes).")
      out.append(video)
    return out
  finally:
    pool.shutdown(wait=True, cancel_futures=True)


def describe(skipped):
  """What `skipped` holds: '2 could not be decoded (a.mp4, b.gif), 1 too short for a clip
  (c.webm)'."""
  parts = []
  for why, words in ((UNREADABLE, "could not be decoded"), (TOO_SHORT, "too short for a clip")):
    paths = sorted(p for p, w in skipped.items() if w == why)
    if paths:
      shown = ", ".join(paths[:folder.SHOWN]) + (", ..." if len(paths) > folder.SHOWN else "")
      parts.append(f"{len(paths)} {words} ({shown})")
  return ", ".join(parts)


# --- TFDS video datasets ----------------------------------------------------------------------

# The videos of ucf101, bair_robot_pushing_small (its main camera) and moving_mnist.
PREFERRED_KEYS = ("video", "image_main", "image_sequence")


def video_keys(features):
  """"/"-joined paths, in a record, of its videos: Images inside one Sequence (a tfds Video is a
  Sequence of Images; bair_robot_pushing_small is a Sequence of dicts of Images)."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  found = []

  def walk(node, path, in_sequence):
    if isinstance(node, tfds.features.Image):
      if in_sequence:
        found.append(path)
    elif isinstance(node, tfds.features.Dataset):  # RLDS episodes: not random-access records
      return
    elif isinstance(node, tfds.features.Sequence):
      if not in_sequence:
        walk(node.feature, path, True)
    elif isinstance(node, tfds.features.FeaturesDict):
      for name, child in node.items():
        walk(child, f"{path}/{name}" if path else name, in_sequence)

  walk(features, "", False)
  return found


def at(value, key):
  """The part of a (nested dict) record or shape at the "/"-joined `key`."""
  for part in key.split("/") if key else ():
    value = value[part]
  return value


def register_video_builders():
  """tfds registers its legacy video builders (moving_mnist, ucf101) only once
  tensorflow_datasets.video is imported; it does not import it by itself."""
  try:
    importlib.import_module("tensorflow_datasets.video")
  except ImportError:
    pass


class TfdsVideo:
  """Clips of one split of a prepared TFDS video dataset, from the video feature `key` (by default
  the one named in PREFERRED_KEYS, else the first); labels from its ClassLabel "label" when it
  has one (ucf101), else all 0 with `num_classes` 0 (moving_mnist, bair_robot_pushing_small).

  Videos of a fixed length (the feature's shape says it) need no reading to build the clip table;
  others have their frames counted once, from the raw records without decoding a picture when the
  split is stored as ArrayRecord (still a read of every record: for ucf101 gigabytes)."""

  def __init__(self, name, split, frames, stride, resolution, channels, data_dir=None, key=None):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    check_clip_args(frames, stride, channels)
    register_video_builders()
    try:
      builder, self.data = tfds_source.open_split(name, split, data_dir)
    except ImportError as e:  # tfds.features.Video needs TensorFlow even to describe the data
      if "tensorflow" not in str(e):
        raise
      raise UserError(f"TFDS dataset {name!r} stores videos (tfds.features.Video), which "
                      "tensorflow-datasets cannot open without TensorFlow: `pip install "
                      "tensorflow-cpu` (reading needs no GPU build).") from None
    features = builder.info.features
    keys = video_keys(features)
    if not keys:
      raise UserError(f"TFDS dataset {name!r} has no video feature (tfds.features.Video, or "
                      "images in a Sequence): use a video dataset, e.g. moving_mnist.")
    if key is None:
      key = next((k for k in keys if k.rsplit("/", 1)[-1] in PREFERRED_KEYS), keys[0])
    elif key not in keys:
      raise UserError(f"{key!r} is no video feature of TFDS dataset {name!r}: use one of "
                      f"{', '.join(keys)}.")
    self.name, self.split, self.key, self.frames, self.stride = name, split, key, frames, stride
    self.fit = (resolution, channels, RESIZE)
    label = features["label"] if isinstance(features, tfds.features.FeaturesDict) and \
        "label" in features else None
    label = label if isinstance(label, tfds.features.ClassLabel) else None
    self.class_names = list(label.names) if label is not None else None
    self.spec = DataSpec((frames, resolution, resolution, channels), "uint8",
                         label.num_classes if label is not None else 0)
    if not len(self.data):
      raise UserError(f"Split {split!r} of TFDS dataset {name!r} is empty: choose another split.")
    raw = getattr(self.data, "data_source", None)
    parser = getattr(features, "_example_parser_np", None)  # private to TFDS: used when present
    encoded = raw is not None and parser is not None and isinstance(raw[0], (bytes, memoryview))
    self.raw = raw if encoded else None
    self.parser = parser
    length = at(features.shape, key)[0]
    if length is not None:
      lengths = np.full(len(self.data), length, np.int64)
    else:
      lengths = np.array([len(at(self.record(i), key)) for i in tqdm.tqdm(
          range(len(self.data)), desc=f"counting the frames of {name}", unit="video",
          disable=len(self.data) < folder.PROGRESS_FROM)], np.int64)
    self.lengths = lengths
    self.table = clip_table(lengths, frames, stride)
    if not len(self.table):
      raise UserError(f"No video of split {split!r} of TFDS dataset {name!r} has {frames} frames "
                      f"(the longest has {lengths.max()}): lower the frames per clip.")

  def record(self, index):
    """Example `index`: parsed from its raw record with the pictures still encoded when it can
    be (only a clip's frames are then decoded), else decoded whole by the data source."""
    if self.raw is not None:
      return self.parser.parse_example(self.raw[index])
    return self.data[index]

  def __len__(self):
    return len(self.table)

  def get(self, indices):
    rows = self.table[np.asarray(indices, np.int64)]
    clips, labels = [], []
    for video, first in rows:
      example = self.record(int(video))
      clips.append(np.stack([self.fit_frame(f)
                             for f in at(example, self.key)[first:first + self.frames]]))
      labels.append(example["label"] if self.class_names is not None else 0)
    return {"x": np.stack(clips), "label": np.array(labels, np.int32)}

  def fit_frame(self, frame):
    if isinstance(frame, (bytes, np.bytes_)):  # an encoded picture from a raw record
      with Image.open(io.BytesIO(frame)) as picture:
        return images.fit(picture, *self.fit)
    return images.fit_array(frame, *self.fit)

