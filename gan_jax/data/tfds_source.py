"""Any prepared TFDS image dataset, read with random access (`as_data_source`: no TensorFlow).

Reading a prepared dataset needs only tensorflow-datasets and pillow (which decodes the stored
PNG/JPEG bytes). Preparing one (download + encode) needs TensorFlow: the `tfds-prepare` extra.
"""
import re

import numpy as np

from gan_jax.data import images
from gan_jax.data.spec import DataSpec
from gan_jax.errors import UserError

DEFAULT_SPLIT = "train"


def parse(text):
  """"NAME[:VERSION][:SPLIT]" -> ("NAME[:VERSION]", split); a version is digits, dots and *, and
  a split may hold colons of its own (train[:90%])."""
  name, version, split = re.fullmatch(r"([^:]*?)(:[\d.*]+)?(?::(.*))?", text).groups()
  return name + (version or ""), split or DEFAULT_SPLIT


def prepare_command(name, data_dir):
  where = f" --data_dir={data_dir}" if data_dir else ""
  return (f'pip install "gan-jax[tfds-prepare]" && tfds build {name} '
          f"--file_format=array_record{where}")


def open_split(name, split, data_dir):
  """(builder, random-access source) of a prepared split; one clear error for every failure."""
  import tensorflow_datasets as tfds
  if not name:
    raise UserError("--config.data.source=tfds: needs a dataset name, e.g. tfds:mnist or "
                    "tfds:cifar10:test.")
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    raise UserError(f"TFDS has no dataset named {name!r}: pick one from "
                    "https://www.tensorflow.org/datasets/catalog (e.g. tfds:mnist).") from None
  except (ValueError, KeyError) as e:  # an unknown config or version of a known dataset
    first = str(e).strip().splitlines()[0].rstrip(".")
    raise UserError(f"TFDS cannot open {name!r} ({first}): check the name against the "
                    "TFDS catalog.") from None
  where = data_dir or "the default TFDS data dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
  try:
    return builder, builder.as_data_source(split=split)
  except (NotImplementedError, ValueError, AssertionError, FileNotFoundError) as e:
    if not builder.is_prepared():
      raise UserError(f"TFDS dataset {name!r} is not prepared in {where}: prepare it once with "
                      f"`{prepare_command(name, data_dir)}` (preparing image datasets needs "
                      "TensorFlow; reading them does not).") from None
    splits = sorted(builder.info.splits.keys())
    if isinstance(e, NotImplementedError):
      raise UserError(f"TFDS dataset {name!r} in {where} was prepared without random access: "
                      f"prepare it again with `{prepare_command(name, data_dir)}`.") from None
    raise UserError(f"TFDS dataset {name!r} has no split {split!r}: use one of "
                    f"{', '.join(splits)} (e.g. tfds:{name}:{splits[0] if splits else 'train'}).") from None


class TfdsSource:
  """One split of a TFDS dataset; its first image feature, fitted to the config, and its
  ClassLabel "label" when it has one (else every label is 0 and `num_classes` is 0)."""

  def __init__(self, text, data_config):
    import tensorflow_datasets as tfds
    d = data_config
    name, split = parse(text)
    builder, self.data = open_split(name, split, d.data_dir)
    features = builder.info.features
    keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not keys:
      raise UserError(f"TFDS dataset {name!r} has no image feature: use an image dataset.")
    self.image_key = keys[0]
    self.name, self.features = name, features  # captioned TFDS data reads its text feature
    label = features["label"] if "label" in features else None
    label = label if isinstance(label, tfds.features.ClassLabel) else None
    self.class_names = list(label.names) if label is not None else None
    self.fit = (d.resolution, d.channels, d.resize)
    self.spec = DataSpec((d.resolution, d.resolution, d.channels), "uint8",
                         label.num_classes if label is not None else 0)
    if not len(self.data):
      raise UserError(f"Split {split!r} of TFDS dataset {name!r} is empty: choose another split.")

  def __len__(self):
    return len(self.data)

  def get(self, indices):
    # One record at a time: decoding (pillow) dominates, and grain already runs steps in parallel.
    examples = [self.data[int(i)] for i in indices]
    x = np.stack([images.fit_array(e[self.image_key], *self.fit, key=int(i))
                  for e, i in zip(examples, indices)])
    if self.class_names is None:
      return {"x": x, "label": np.zeros(len(examples), np.int32)}
    return {"x": x, "label": np.array([e["label"] for e in examples], np.int32)}
