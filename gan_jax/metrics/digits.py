"""A small classifier on scikit-learn's 8x8 handwritten digits, for offline digits metrics.

It plays the role InceptionV3 plays for natural images, with no download: trained in seconds on
CPU, deterministically, and cached as an `.npz` (never pickle). Metrics built on it:
`digits_metrics` (class histogram, digits IS, digits FID, label accuracy for conditional models) and
`stacked_digit_modes` (coverage of the 1000 modes of stacked digits, three digits as RGB channels).

Images everywhere are float NHWC in [-1, 1], square, with a resolution that is a multiple of 8, and
1 or 3 channels; they are averaged to gray and average-pooled to 8x8 before the network sees them.

A classifier can also be trained on a style, a rendering of the digits as a second domain
(`gan_jax.data.embedded.STYLES`, e.g. "digit_styles_b", domain B of the digit_styles translation
task): `DigitsClassifier.load_or_train(style=...)` learns to read digits drawn that way, from the
same train split and the same rendering function the data source uses, cached in its own file.
"""

from __future__ import annotations

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from gan_jax.cache import cache_dir
from gan_jax.data import embedded
from gan_jax.metrics.cache import computing, save_npz
from gan_jax.metrics.scores import frechet_distance, inception_score
from gan_jax.metrics.stats import feature_stats

# Bump when the architecture, data split or training recipe changes: old caches are then ignored.
CLASSIFIER_VERSION = "v2"
# Bump when a style's rendering (gan_jax.data.embedded.STYLES) or its training variants change.
STYLE_VERSION = "s1"
STYLE_RESOLUTIONS = (16, 32, 64)  # a style is drawn at these sizes, then pooled to 8x8 to train
# Thick strokes close small loops at 8x8: twice the epochs lift held-out accuracy on
# digit_styles_b at 32x32 from 95.3% to 97.5% (16x16: 93.6% -> 95.3%).
STYLE_EPOCHS = 60
NUM_CLASSES = 10
_BATCH = 1000
_SEED = 0
_NUM_HELD_OUT = 360  # 20% of the 1797 images, stratified.


def cache_path(style: str | None = None) -> str:
  if style is None:
    return os.path.join(cache_dir(), f"digits_classifier_{CLASSIFIER_VERSION}.npz")
  _check_style(style)
  return os.path.join(cache_dir(),
                      f"digits_classifier_{CLASSIFIER_VERSION}_{style}_{STYLE_VERSION}.npz")


def _check_style(style: str) -> None:
  if style not in embedded.STYLES:
    raise ValueError(f"unknown digits style {style!r}: choose one of {', '.join(embedded.STYLES)}")


@functools.lru_cache(maxsize=1)
def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
  images, labels = embedded.digits_8x8()
  return (images.astype(np.float32) / 16.0 * 2.0 - 1.0)[..., None], labels  # [1797, 8, 8, 1]


def digits_split() -> tuple[np.ndarray, np.ndarray]:
  """Fixed, seeded, stratified (train_indices, held_out_indices) of sklearn's digits."""
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top

  _, labels = _load_sklearn_digits()
  idx = np.arange(len(labels))
  train, test = train_test_split(idx, test_size=_NUM_HELD_OUT, random_state=_SEED, stratify=labels)
  return np.sort(train), np.sort(test)


def real_digits(resolution: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """All sklearn digits as float32 NHWC in [-1, 1], bilinearly resized, gray copied to channels."""
  images, labels = _load_sklearn_digits()
  if resolution != 8:
    images = jax.image.resize(images, (images.shape[0], resolution, resolution, 1), "bilinear")
  images = np.repeat(np.asarray(images, dtype=np.float32), channels, axis=-1)
  return images, labels.copy()


def style_digits(style: str, resolution: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """All sklearn digits drawn in `style` at `resolution` (the data source's own rendering of
  `embedded.digits`), as float32 NHWC in [-1, 1], gray copied to channels; and their labels."""
  _check_style(style)
  images, labels = embedded.digits(resolution)
  drawn = embedded.STYLES[style](images).astype(np.float32) / 127.5 - 1.0
  return np.repeat(drawn, channels, axis=-1), labels.copy()


class _DigitsNet(nn.Module):
  """3x3 conv, 2x2 average pool, 3x3 conv, two dense layers; returns (logits, features).

  Pooling before the second conv keeps a training step cheap on CPU (~4x fewer MACs).
  """

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(64, (3, 3))(x))
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(128)(x))
    return nn.Dense(NUM_CLASSES)(features), features


def to_8x8(images: np.ndarray) -> np.ndarray:
  """[N, R, R, C] -> [N, 8, 8, C] float32 by (R/8)x(R/8) average pooling.

  Done on the host so a jitted network sees one shape whatever the resolution: one compile.
  """
  n, h, _, c = images.shape
  f = h // 8
  return images.reshape(n, 8, f, 8, f, c).mean(axis=(2, 4), dtype=np.float32)


def to_8x8_gray(images: np.ndarray) -> np.ndarray:
  """[N, R, R, C] in [-1, 1] -> [N, 8, 8, 1] by channel mean and `to_8x8`: what the classifier
  reads. Also the features of the Classification Accuracy Score (`metrics/cas.py`).
  """
  return to_8x8(images.mean(axis=-1, keepdims=True, dtype=np.float32))


@jax.jit
def _forward(params, x8):
  return _DigitsNet().apply({"params": params}, x8)


def _check_images(images) -> np.ndarray:
  images = np.asarray(images, dtype=np.float32)
  if images.ndim != 4 or images.shape[1] != images.shape[2]:
    raise ValueError(f"digits metrics want square NHWC images, got shape {images.shape}")
  res, ch = images.shape[1], images.shape[3]
  if res < 8 or res % 8 or ch not in (1, 3):
    raise ValueError(f"digits metrics want a resolution that is a multiple of 8 and 1 or 3 "
                     f"channels, got {res}x{res}x{ch}")
  return images


def shifted(images: np.ndarray, rng: np.random.RandomState, max_shift: int,
             pad_mode: str = "constant") -> np.ndarray:
  """Each image moved by its own random (dy, dx) in [-max_shift, max_shift], background filled:
  black (-1) for "constant", the border pixels repeated for "edge" (a light style's paper)."""
  n = images.shape[0]
  m = max_shift
  pad = ((0, 0), (m, m), (m, m), (0, 0))
  padded = (np.pad(images, pad, constant_values=-1.0) if pad_mode == "constant"
            else np.pad(images, pad, mode=pad_mode))
  dy, dx = rng.randint(-m, m + 1, size=(2, n))
  rows = (np.arange(8)[None, :] + m + dy[:, None])[:, :, None]  # [n, 8, 1]
  cols = (np.arange(8)[None, :] + m + dx[:, None])[:, None, :]  # [n, 1, 8]
  return padded[np.arange(n)[:, None, None], rows, cols]


def _resample_round_trip(images: np.ndarray, factor: int) -> np.ndarray:
  n = images.shape[0]
  up = jax.image.resize(images, (n, 8 * factor, 8 * factor, 1), "bilinear")
  return to_8x8_gray(np.asarray(up))


def init_params(model: nn.Module, rng: np.random.RandomState, *inputs) -> dict:
  """He-normal kernels, unit-normal embedding tables and zero biases drawn with numpy; `inputs`:
  example arguments of `model` (default: one 8x8 gray digit).

  Flax's own initializers compile threefry and truncated-normal code that costs seconds on a busy
  CPU; numpy draws are instant and identical on every platform.
  """
  inputs = inputs or (jnp.zeros((1, 8, 8, 1)),)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)["params"]
  flat = traverse_util.flatten_dict(shapes)
  out = {}
  for path in sorted(flat):
    shape = flat[path].shape
    if path[-1] == "kernel":
      fan_in = int(np.prod(shape[:-1]))
      out[path] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    elif path[-1] == "embedding":
      out[path] = rng.standard_normal(shape).astype(np.float32)
    else:
      out[path] = np.zeros(shape, np.float32)
  return traverse_util.unflatten_dict(out)


def _train(seed: int = _SEED, epochs: int = 30, batch_size: int = 128, lr: float = 3e-3,
           max_shift: int = 1, resample_factors=(2, 4, 8), style: str | None = None) -> dict:
  """Deterministic minibatch AdamW on the training split, with random per-image shifts.

  With a `style`, the training digits are those drawn by the style at STYLE_RESOLUTIONS and
  pooled to 8x8 (as the metric will see a generator's outputs), instead of the 8x8 originals.

  The shifts make the classifier tolerant of the small misalignments generated digits have. The
  host loop is deliberate: XLA:CPU runs convolutions inside lax.scan far slower than one jitted step
  called repeatedly, and the data pipeline (seeded numpy) is tiny.
  """
  images, labels = _load_sklearn_digits()
  train_idx, _ = digits_split()
  x_all, y_all = images[train_idx], labels[train_idx]
  n = x_all.shape[0]
  # Variants of each training digit as the metric will see it after a generator trained at 16, 32
  # or 64 pixels: bilinear upsampling then average pooling back to 8x8 blurs strokes slightly.
  if style is None:
    variants = np.stack([x_all] + [_resample_round_trip(x_all, f) for f in resample_factors])
  else:
    variants = np.stack([to_8x8_gray(style_digits(style, r)[0][train_idx])
                         for r in STYLE_RESOLUTIONS])
  steps_per_epoch = n // batch_size
  rng = np.random.RandomState(seed)
  model = _DigitsNet()
  params = init_params(model, rng)
  tx = optax.adamw(optax.cosine_decay_schedule(lr, epochs * steps_per_epoch), weight_decay=1e-4)
  opt_state = tx.init(params)

  def loss_fn(p, x, y):
    logits, _ = model.apply({"params": p}, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  @jax.jit
  def step(p, o, x, y):
    grads = jax.grad(loss_fn)(p, x, y)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o

  for _ in range(epochs):
    perm = rng.permutation(n)
    x_ep = variants[rng.randint(len(variants), size=n), perm]
    x_ep = shifted(x_ep, rng, max_shift, "constant" if style is None else "edge") if max_shift \
        else x_ep
    y_ep = y_all[perm]
    for b in range(steps_per_epoch):  # drop the ragged tail: one compiled shape
      sl = slice(b * batch_size, (b + 1) * batch_size)
      params, opt_state = step(params, opt_state, x_ep[sl], y_ep[sl])
  return jax.tree_util.tree_map(np.asarray, params)


def _save(params, path: str) -> None:
  save_npz(path, {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(params).items()})


def _load(path: str) -> dict:
  with np.load(path, allow_pickle=False) as z:
    flat = {tuple(k.split("/")): z[k] for k in z.files}
  return traverse_util.unflatten_dict(flat)


class DigitsClassifier:
  """The trained digits network plus the real-digit feature statistics for digits FID.

  `style` None reads real digits; a style name (see `style_digits`) reads digits drawn that way,
  and its FID statistics are those of all digits drawn in that style.
  """

  def __init__(self, params, style: str | None = None):
    self.params = jax.tree_util.tree_map(jnp.asarray, params)
    self.style = style
    self._real_stats = {}

  @classmethod
  def load_or_train(cls, style: str | None = None) -> "DigitsClassifier":
    path = cache_path(style)
    with computing(path):
      if os.path.exists(path):
        return cls(_load(path), style)
      params = _train() if style is None else _train(style=style, epochs=STYLE_EPOCHS)
      _save(params, path)
    return cls(params, style)

  def _apply(self, images) -> tuple[np.ndarray, np.ndarray]:
    """(logits [N, 10], features [N, 128]) in batches of 1000, the tail padded to one shape."""
    x8 = to_8x8_gray(_check_images(images))
    n = x8.shape[0]
    logits, feats = [np.zeros((0, NUM_CLASSES), np.float32)], [np.zeros((0, 128), np.float32)]
    for start in range(0, n, _BATCH):
      chunk = x8[start:start + _BATCH]
      m = chunk.shape[0]
      chunk = np.pad(chunk, ((0, _BATCH - m), (0, 0), (0, 0), (0, 0)))
      lg, ft = _forward(self.params, chunk)
      logits.append(np.asarray(lg)[:m])
      feats.append(np.asarray(ft)[:m])
    return np.concatenate(logits), np.concatenate(feats)

  def logits(self, images) -> np.ndarray:
    return self._apply(images)[0]

  def features(self, images) -> np.ndarray:
    """Penultimate-layer activations [N, 128], the feature space of digits FID."""
    return self._apply(images)[1]

  def predict(self, images) -> np.ndarray:
    return self.logits(images).argmax(axis=-1).astype(np.int64)

  def real_stats(self, resolution: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the features of all 1797 real digits, as `real_digits` gives them.

    Per resolution, because bilinear upsampling then pooling back to 8x8 blurs strokes a little:
    a generator that reproduced the upsampled training digits exactly should score ~0.
    """
    if resolution not in self._real_stats:
      images, _ = (real_digits(resolution) if self.style is None
                   else style_digits(self.style, resolution))
      self._real_stats[resolution] = feature_stats(self.features(images))
    return self._real_stats[resolution]


def digits_metrics(images, labels=None, classifier: DigitsClassifier | None = None) -> dict:
  """Class coverage, digits IS and digits FID of generated digit images [N, R, R, 1 or 3].

  FID compares with all 1797 real digits brought to the same resolution R by `real_digits`.
  """
  images = _check_images(images)
  if images.shape[0] < 2:
    raise ValueError("digits metrics need at least 2 images")
  clf = classifier or DigitsClassifier.load_or_train()
  logits, feats = clf._apply(images)  # pylint: disable=protected-access
  pred = logits.argmax(axis=-1)
  hist = np.bincount(pred, minlength=NUM_CLASSES) / len(pred)
  mu, sigma = feature_stats(feats)
  out = {
      "class_histogram": [float(h) for h in hist],
      "min_class_fraction": float(hist.min()),
      "digits_is": inception_score(logits, splits=1)[0],
      "digits_fid": frechet_distance(mu, sigma, *clf.real_stats(images.shape[1])),
  }
  if labels is not None:
    labels = np.asarray(labels).reshape(-1)
    correct = pred == labels
    out["label_accuracy"] = float(correct.mean())
    out["per_class_accuracy"] = [
        float(correct[labels == c].mean()) if np.any(labels == c) else float("nan")
        for c in range(NUM_CLASSES)
    ]
  return out


def stacked_digit_modes(images, labels=None, classifier: DigitsClassifier | None = None) -> dict:
  """Mode coverage for stacked digits: each of 3 channels is a digit, mode = 100 d0 + 10 d1 + d2.
  With `labels` (the numbers a conditional G was asked for) also the fraction drawn as asked."""
  modes = stacked_digit_ids(images, classifier)
  counts = np.bincount(modes, minlength=1000)
  q = counts[counts > 0] / max(len(modes), 1)
  out = {
      "modes_captured": int((counts > 0).sum()),
      "num_modes": 1000,
      "reverse_kl": float(np.sum(q * np.log(q * 1000))) if len(modes) else float("inf"),
  }
  if labels is not None:
    out["label_accuracy"] = float(np.mean(modes == np.asarray(labels).reshape(-1)))
  return out


def stacked_digit_ids(images, classifier: DigitsClassifier | None = None) -> np.ndarray:
  """Mode id in [0, 1000) of each stacked-digits image: 100 d0 + 10 d1 + d2, channel by channel."""
  images = _check_images(images)
  if images.shape[-1] != 3:
    raise ValueError(f"stacked digits have 3 channels, got {images.shape[-1]}")
  clf = classifier or DigitsClassifier.load_or_train()
  d = [clf.predict(images[..., c:c + 1]) for c in range(3)]
  return 100 * d[0] + 10 * d[1] + d[2]
