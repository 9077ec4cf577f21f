"""Classification Accuracy Score (Ravuri & Vinyals 2019): how well a classifier trained on
generated labelled images classifies real held-out ones.

The classifier is scikit-learn's `SVC()` (RBF kernel, its defaults) on small pixel features: each
image's channel mean, average-pooled to 8x8 when its side is a multiple of 8 (the digits
classifier's `to_8x8_gray`), else kept at its own size, flattened. Not a deep network, as in the
paper: a pixel SVC needs no download, trains in seconds on a CPU and gives the same score every
time (SVC is deterministic without `probability`), which is what a metric run beside training
needs. It reads digits well (trained on all 1437 real training digits of
`digits.digits_split()`, 98.3% of the 360 held-out ones; 10 per class: about 90%) and is a weak
reader of natural images: compare a run's `cas` with `cas_real`, the same classifier trained on
as many real images, rather than with the paper's numbers.

Images are float NHWC in [-1, 1], labels integers.
"""
import numpy as np

from gan_jax.metrics.digits import to_8x8_gray


def features(images):
  """[N, H, W, C] in [-1, 1] -> [N, F] float32: the channel mean, 8x8 when H = W is a multiple
  of 8, flattened."""
  images = np.asarray(images, np.float32)
  if images.ndim != 4:
    raise ValueError(f"CAS wants NHWC images, got shape {images.shape}")
  n, h, w, _ = images.shape
  if h == w and h % 8 == 0:
    x = to_8x8_gray(images)
  else:
    x = images.mean(axis=-1, dtype=np.float32)
  return x.reshape(n, -1)


def fit(images, labels):
  """The CAS classifier trained on `images` with `labels` (at least two classes)."""
  from sklearn.svm import SVC  # pylint: disable=g-import-not-at-top

  labels = np.asarray(labels).reshape(-1)
  if len(np.unique(labels)) < 2:
    raise ValueError("CAS trains a classifier, which needs images of at least two classes")
  return SVC().fit(features(images), labels)


def scores(train_images, train_labels, test_images, test_labels, num_classes=None):
  """{"accuracy", "per_class_accuracy"} on the test images of a classifier trained on the train
  images; per class for classes 0..num_classes-1 (NaN for a class the test set lacks)."""
  test_labels = np.asarray(test_labels).reshape(-1)
  predicted = fit(train_images, train_labels).predict(features(test_images))
  correct = predicted == test_labels
  num_classes = num_classes or int(test_labels.max()) + 1
  per_class = [float(correct[test_labels == c].mean()) if np.any(test_labels == c)
               else float("nan") for c in range(num_classes)]
  return {"accuracy": float(correct.mean()), "per_class_accuracy": per_class}


def accuracy(train_images, train_labels, test_images, test_labels):
  """The test accuracy of a classifier trained on the train images: the CAS when those are
  generated and the test images real."""
  return scores(train_images, train_labels, test_images, test_labels)["accuracy"]


def balanced_pick(labels, num, seed=0):
  """Sorted indices of `num` examples with classes as even as the data allows: round-robin over
  the classes, each visited in its own seeded random order."""
  labels = np.asarray(labels).reshape(-1)
  rng = np.random.default_rng(seed)
  queues = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
  picked = []
  while len(picked) < min(num, len(labels)):
    for queue in queues:
      if queue and len(picked) < num:
        picked.append(queue.pop())
  return np.sort(np.array(picked, np.int64))
