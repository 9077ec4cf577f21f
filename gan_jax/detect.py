"""`gan-jax detect PATH`: what a picture, a clip or a folder of them says about where it came from.

Per file: the provenance label in its XMP (`provenance.read`), its C2PA state where it holds a
manifest and c2pa-python is installed (`credentials.checker`), the learned watermark read with a
key (`watermark.Watermark.check`, crops undone; a clip's first frames vote, their logits
averaged), and the learned detector's two probabilities that the picture is generated, for
pictures that carry no mark (`detector.Detector.score`: "detector_score" from its network,
"spectral_score" from its spectrum, null below 32 px; a clip's first frames together). The JSON
is the interface:
  {"files": [{"path", "labels", "c2pa", "watermark": {"bits", "bit_accuracy", "p_value",
   "detected"}, "detector_score", "spectral_score"}, ...], "summary": {...}}
paths relative to PATH for a folder (as given for a file). A file that cannot be read is listed
with its "error" and counted, not fatal. The summary counts files with detector_score >= 0.5.
"""
import json
import os
import struct

import numpy as np
from PIL import Image, ImageSequence

from gan_jax import credentials, detector, provenance, watermark
from gan_jax.data import folder, images
from gan_jax.errors import UserError

CLIPS = (".gif", ".mp4")
MAX_FRAMES = 16  # of a clip, read for its watermark


def pictures_of(path):
  """uint8 [N, H, W, 3]: a picture's one frame, or a clip's first MAX_FRAMES."""
  if path.lower().endswith(".mp4"):
    import av  # pylint: disable=import-outside-toplevel  (only MP4 clips need it)
    with av.open(path) as container:
      frames = []
      for frame in container.decode(container.streams.video[0]):
        frames.append(frame.to_ndarray(format="rgb24"))
        if len(frames) == MAX_FRAMES:
          break
  else:
    with Image.open(path) as image:
      frames = [np.asarray(images._to_channels(f.copy(), 3), np.uint8)  # pylint: disable=protected-access
                for _, f in zip(range(MAX_FRAMES), ImageSequence.Iterator(image))]
  if not frames:
    raise ValueError("no frames")
  return np.stack(frames)


def examine(path, wm, key, check_c2pa, learned):
  """One file's record (`learned`: the detector)."""
  record = {"labels": None, "c2pa": None, "watermark": None, "detector_score": None,
            "spectral_score": None}
  try:
    record["labels"] = provenance.read(path)
    frames = pictures_of(path)
  except (OSError, SyntaxError, ValueError, struct.error, IndexError) as e:
    return {**record, "error": f"unreadable: {' '.join(str(e).split()) or type(e).__name__}"}
  except Exception as e:  # pylint: disable=broad-except  (PyAV's errors: one bad clip, not fatal)
    return {**record, "error": f"unreadable: {type(e).__name__}"}
  # a picture is also read reframed (crops undone); a clip's frames vote, their logits averaged
  record["watermark"] = (wm.check(frames[0], key) if len(frames) == 1 else
                         wm.verdict(wm.read(frames).mean(axis=0) > 0, key))
  record["c2pa"] = check_c2pa(path) if check_c2pa else None
  scores = learned.score(frames)
  record["detector_score"], record["spectral_score"] = scores["cnn"], scores["spectral"]
  return record


def detect(path, key=watermark.DEFAULT_KEY, weights=watermark.WEIGHTS,
           detector_weights=detector.WEIGHTS, progress=True):
  """The report (see the module's docstring) of a file or of every picture and clip under a
  folder."""
  if os.path.isdir(path):
    relpaths, _ = folder.walk_images(path, images.EXTENSIONS + CLIPS)
    files = [(r, os.path.join(path, r)) for r in relpaths]
  elif os.path.exists(path):
    files = [(path, path)]
  else:
    raise UserError(f"{path} does not exist: give a picture, a clip or a folder of them.")
  watermark.message(key, 1)  # a bad key fails before any file is read
  wm = watermark.Watermark(weights)
  learned = detector.Detector.load(detector_weights)
  check_c2pa = credentials.checker()
  if progress:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    files = tqdm(files, desc="detect", unit="file")
  records = [{"path": shown, **examine(full, wm, key, check_c2pa, learned)}
             for shown, full in files]
  return {"files": records, "summary": summary(records, key)}


def summary(records, key):
  ok = [r for r in records if "error" not in r]
  return {"files": len(records), "unreadable": len(records) - len(ok), "key": key,
          "labelled": sum(r["labels"] is not None for r in ok),
          "signed": sum(r["c2pa"] is not None for r in ok),
          "watermarked": sum(r["watermark"]["detected"] for r in ok),
          "detector_generated": sum(r["detector_score"] >= 0.5 for r in ok),
          "p_value_threshold": watermark.P_VALUE}


def summary_line(report):
  s = report["summary"]
  return (f"{s['files']} files: {s['watermarked']} watermarked with key {s['key']!r}, "
          f"{s['labelled']} labelled, {s['signed']} with C2PA manifests, "
          f"{s['detector_generated']} scored as generated by the detector, "
          f"{s['unreadable']} unreadable")


def write(report, out):
  with open(out, "w") as f:
    json.dump(report, f, indent=1)
