"""Offline measures of generated moving-digits clips (`gan_jax.data.video.MovingDigits`).

`moving_digit_measures` reads each frame the way the data is made: the ink (white on black) has
a centre of mass, which should move 2-4 px/frame at 64x64 without freezing or jumping, and the
digit around it, cropped and read by the digits classifier, should stay the same digit all clip
long while the clips together cover all ten digits. FVD is `scores.frechet_distance` of I3D
features (`metrics.i3d`), per-frame FID that of Inception features of every frame
(`evaluate.PerFrame`).
"""

from __future__ import annotations

import numpy as np

from gan_jax.data.video import digit_side, speed_range
from gan_jax.errors import UserError
from gan_jax.metrics.digits import NUM_CLASSES, DigitsClassifier

# Ink below this (intensity in [0, 1]) is background: faint speckle must not pull the centre.
INK_THRESHOLD = 0.1
# A frame whose ink adds up to less than this share of a digit's box holds no digit. The faintest
# real digit (a "1") covers 0.18 of its box, 9x more.
EMPTY_INK = 0.02
# A clip is frozen when its centre moves on average less than this share of the slowest data
# speed per frame (0.5 px/frame at 64x64): the data never moves slower than 1x.
FROZEN_SPEED = 0.25
# A clip teleports when its centre moves more than this many times the fastest data speed in one
# frame (12 px at 64x64): a bounce never lengthens a step, and rounding adds under 1.5 px.
TELEPORT_SPEED = 3.0
# The video issue's bar.
IDENTITY_BAR = 0.90        # share of clips keeping one digit
SPEED_TOLERANCE = 0.25     # |speed_ratio - 1| at most this
BROKEN_BAR = 0.10          # frozen + teleports at most this
MIN_CLASS_FRACTION = 0.04  # every digit the majority class of at least this share of clips
_CHUNK_FRAMES = 4096       # frames turned into ink at once: bounds the float32 temporaries


def _area_matrix(side: int) -> np.ndarray:
  """[8, side] weights averaging each of 8 equal spans of `side` pixels (fractional pixels
  shared): the classifier reads 8x8 means, and a digit's side (28 at 64) is rarely a multiple of 8.
  """
  lo = np.arange(8)[:, None] * side / 8
  j = np.arange(side)[None, :]
  overlap = np.clip(np.minimum(j + 1, lo + side / 8) - np.maximum(j, lo), 0, None)
  return (overlap / (side / 8)).astype(np.float32)


def _check_clips(clips, resolution) -> np.ndarray:
  clips = np.asarray(clips)
  if clips.ndim != 5 or clips.shape[2] != clips.shape[3] or clips.shape[4] not in (1, 3):
    raise UserError(f"moving-digit measures want clips [N, T, R, R, 1 or 3], got shape "
                    f"{clips.shape}")
  n, t, r = clips.shape[:3]
  if n < 1 or t < 2:
    raise UserError(f"moving-digit measures need at least 1 clip of at least 2 frames, got {n} "
                    f"clips of {t} frames")
  if resolution is not None and resolution != r:
    raise UserError(f"the clips are {r}x{r} but resolution={resolution}: measure clips at the "
                    f"resolution of the data they imitate")
  if digit_side(r) > r:
    raise UserError(f"{r}x{r} clips are smaller than a digit ({digit_side(r)} px)")
  if clips.dtype != np.uint8 and not np.all(np.isfinite(clips)):
    raise UserError("the clips hold NaN or inf: measure clips of a generator that did not diverge")
  return clips


def _ink(chunk: np.ndarray) -> np.ndarray:
  """Gray intensity in [0, 1], [F, R, R] float32: uint8 as the data stores it, else [-1, 1]."""
  gray = chunk.mean(axis=-1, dtype=np.float32)
  gray = gray / 255.0 if chunk.dtype == np.uint8 else (gray + 1.0) / 2.0
  return np.clip(gray, 0.0, 1.0)


def _centres_and_digits(frames: np.ndarray, side: int):
  """Per frame: ink mass, centre of mass (row, col) and the 8x8 [-1, 1] digit around it."""
  r = frames.shape[1]
  coords = np.arange(r, dtype=np.float32)
  area = _area_matrix(side)
  mass, centres, digits = [], [], []
  for start in range(0, len(frames), _CHUNK_FRAMES):
    ink = _ink(frames[start:start + _CHUNK_FRAMES])
    solid = np.where(ink >= INK_THRESHOLD, ink, 0.0)
    m = solid.sum(axis=(1, 2))
    safe = np.maximum(m, 1e-6)[:, None]
    centre = np.stack([solid.sum(axis=2) @ coords, solid.sum(axis=1) @ coords], -1) / safe
    # The crop is centred on the ink and slid back inside the canvas: a digit at a wall is then
    # cropped whole, as it lies wholly inside. Its 8x8 means read the raw ink, speckle included.
    top = np.clip(np.round(centre - (side - 1) / 2).astype(np.int64), 0, r - side)  # [F, 2]
    span = np.arange(side)
    rows = (top[:, 0, None] + span)[:, :, None]
    cols = (top[:, 1, None] + span)[:, None, :]
    crop = ink[np.arange(len(ink))[:, None, None], rows, cols]  # [F, side, side]
    digits.append(area @ crop @ area.T * 2.0 - 1.0)
    mass.append(m)
    centres.append(centre)
  return np.concatenate(mass), np.concatenate(centres), np.concatenate(digits)[..., None]


def moving_digit_measures(clips, classifier: DigitsClassifier | None = None,
                          resolution: int | None = None) -> dict:
  """How much generated clips [N, T, R, R, 1 or 3] behave like MovingDigits, and the bar's verdict.

  Clips are float in [-1, 1] (uint8 clips are read as the data stores them, 0..255); channels
  are averaged. `resolution`, if given, must be the clips' R: the digit's side and the data's
  speeds are those of `digit_side(R)` and `speed_range(R)`. A frame is *empty* when its ink
  (intensity in [0, 1], below INK_THRESHOLD counting as none) adds up to less than EMPTY_INK of a
  digit's box. Each clip is counted in at most one of `teleports` and `frozen`:

    - `empty`: share of clips with an empty frame;
    - `teleports`: share of clips that have an empty frame or whose ink centre jumps more than
      TELEPORT_SPEED x the fastest data speed between two frames;
    - `frozen`: share of the other clips whose centre moves on average less than FROZEN_SPEED x
      the slowest data speed per frame;
    - `speed_mean`: mean per-frame move of the centre (px/frame) over clips neither frozen nor
      teleporting (NaN if none); `speed_data`: the middle of speed_range(R), which the data's
      uniform speeds average to; `speed_ratio` = speed_mean / speed_data;
    - `identity`: share of clips with no empty frame whose every frame is read as the clip's
      majority class (no disagreement allowed); `frame_agreement`: share of all frames that are
      non-empty and read as their clip's majority class;
    - `class_histogram`: share of all N clips per majority class (over non-empty frames, ties to
      the smaller digit; a clip with no ink at all has no class, so the shares may sum below 1);
      `min_class_fraction` and `classes_present` (classes of at least one clip);
    - `bar`: {"identity": identity >= 0.9, "speed": |speed_ratio - 1| <= 0.25,
      "motion": frozen + teleports <= 0.1, "coverage": all 10 classes with >= 4% each}, and
      `passes`: all four.

  The crop of side digit_side(R) around each frame's centre is brought to 8x8 by area means
  and all frames are read by one `classifier.predict` call (default: the cached digits one).
  """
  clips = _check_clips(clips, resolution)
  n, t, r = clips.shape[:3]
  side = digit_side(r)
  slow, fast = speed_range(r)
  mass, centres, digits = _centres_and_digits(clips.reshape((n * t,) + clips.shape[2:]), side)
  clf = classifier or DigitsClassifier.load_or_train()
  pred = clf.predict(digits).reshape(n, t)

  inked = mass.reshape(n, t) >= EMPTY_INK * side * side
  steps = np.linalg.norm(np.diff(centres.reshape(n, t, 2), axis=1), axis=-1)  # [N, T - 1]
  empty = ~inked.all(axis=1)
  teleport = empty | (steps > TELEPORT_SPEED * fast).any(axis=1)
  clip_speed = steps.mean(axis=1)
  frozen = ~teleport & (clip_speed < FROZEN_SPEED * slow)
  moving = ~teleport & ~frozen
  speed_mean = float(clip_speed[moving].mean()) if moving.any() else float("nan")
  speed_data = (slow + fast) / 2

  votes = np.zeros((n, NUM_CLASSES), np.int64)
  np.add.at(votes, (np.repeat(np.arange(n), t), pred.reshape(-1)), inked.reshape(-1))
  majority = votes.argmax(axis=1)
  agrees = inked & (pred == majority[:, None])
  has_class = inked.any(axis=1)
  hist = np.bincount(majority[has_class], minlength=NUM_CLASSES) / n
  out = {
      "identity": float(agrees.all(axis=1).mean()),
      "frame_agreement": float(agrees.mean()),
      "speed_mean": speed_mean,
      "speed_data": float(speed_data),
      "speed_ratio": speed_mean / speed_data,
      "frozen": float(frozen.mean()),
      "teleports": float(teleport.mean()),
      "empty": float(empty.mean()),
      "class_histogram": [float(h) for h in hist],
      "min_class_fraction": float(hist.min()),
      "classes_present": int((hist > 0).sum()),
  }
  out["bar"] = {
      "identity": out["identity"] >= IDENTITY_BAR,
      "speed": bool(abs(out["speed_ratio"] - 1.0) <= SPEED_TOLERANCE),  # False when NaN
      "motion": out["frozen"] + out["teleports"] <= BROKEN_BAR,
      "coverage": out["classes_present"] == NUM_CLASSES
                  and out["min_class_fraction"] >= MIN_CLASS_FRACTION,
  }
  out["passes"] = all(out["bar"].values())
  return out

