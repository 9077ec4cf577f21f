"""Where metrics keep what they compute once (the digits classifier, reference statistics)."""

import os
import tempfile

import numpy as np

from gan_jax.cache import cache_dir  # noqa: F401  (metrics read it from here)


def save_npz(path: str, arrays: dict) -> None:
  """np.savez to a temp file, then rename, so a concurrent reader never sees a partial file."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".npz.tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
