"""Reference statistics of a real dataset, computed once per (dataset, extractor) and cached.

The cache file is named by a hash of everything its numbers depend on: the dataset (the config's
`data` block), the split, the resolution, the extractor's name, the sha256 of its weights file and
the number of real images used. Change any of them and the statistics are recomputed; the key is
also stored inside the file and checked on reading.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tqdm

from gan_jax.cache import cache_dir
from gan_jax.metrics.cache import save_npz
from gan_jax.metrics.stats import FeatureStats

_CHUNK = 256  # real images read and extracted at a time


def cache_key(config, extractor, num: int) -> dict:
  data = config.data.to_dict()
  split = data.pop("split", "train")
  resolution = data.pop("resolution")
  return {
      "dataset": json.dumps(data, sort_keys=True),
      "split": split,
      "resolution": int(resolution),
      "extractor": extractor.name,
      "weights_sha256": extractor.weights_hash,
      "num": int(num),
  }


def cache_path(key: dict) -> str:
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
  source = json.loads(key["dataset"]).get("source", "data")
  name = f"{source}_{key['split']}_{key['resolution']}px_{key['extractor']}_{digest}.npz"
  return os.path.join(cache_dir(), "reference", name)


def _read(path: str, key: dict):
  if not os.path.exists(path):
    return None
  with np.load(path, allow_pickle=False) as z:
    if json.loads(str(z["key"])) != key:  # a hash collision or a hand-edited file
      return None
    return {k: z[k] for k in ("mean", "cov", "features")}


def real_images(source, num: int):
  """Yields uint8 batches of the first `num` examples of a seeded permutation of `source`."""
  order = np.random.default_rng(0).permutation(len(source))[:num]
  for start in range(0, len(order), _CHUNK):
    yield source.get(np.sort(order[start:start + _CHUNK]))["x"]


def reference_stats(config, source, extractor, num: int, progress=False) -> dict:
  """{"mean", "cov", "features"} of up to `num` real examples under `extractor`, cached.

  `extractor(images) -> (features, logits)`, with `name` and `weights_hash` attributes;
  `progress`: a progress bar while they are computed (not when read from the cache).
  """
  num = min(num, len(source))
  key = cache_key(config, extractor, num)
  path = cache_path(key)
  cached = _read(path, key)
  if cached is not None:
    return cached
  stats, features = FeatureStats(), []
  with tqdm.tqdm(total=num, desc=f"real examples' {extractor.name} statistics (cached after)",
                 unit="example", disable=not progress) as bar:
    for images in real_images(source, num):
      feats, _ = extractor(images)
      stats.update(feats)
      features.append(np.asarray(feats, np.float32))
      bar.update(len(images))
  mean, cov = stats.result()
  out = {"mean": mean, "cov": cov, "features": np.concatenate(features)}
  save_npz(path, {**out, "key": np.array(json.dumps(key, sort_keys=True))})
  return out
