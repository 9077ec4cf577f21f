"""Writing what metrics compute once (the digits classifier, reference statistics) into the cache."""

import os
import tempfile

import numpy as np


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
