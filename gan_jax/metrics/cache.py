"""Writing what metrics compute once (the digits classifier, reference statistics, converted
weights) into the cache."""

import contextlib
import os
import tempfile

import numpy as np


@contextlib.contextmanager
def computing(path: str):
  """Hold this while `path` is looked up and, where it is missing, computed and saved: another
  process that needs the same file meanwhile waits for it rather than computing it too (two runs
  started at once on a fresh machine each needing the digits classifier). Without POSIX file
  locks (Windows), or in a cache this process may only read, nothing waits."""
  try:
    import fcntl  # pylint: disable=import-outside-toplevel
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lock = open(path + ".lock", "w")  # pylint: disable=consider-using-with
  except (ImportError, OSError):
    lock = None
  if lock is None:
    yield
    return
  with lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    yield


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


def load_npz(path: str, expected: dict, holds: str, verb: str) -> dict:
  """{name: array} of a converted .npz at `path` (which exists), read without pickle; one
  UserError if it does not decode or its names and shapes are not `expected`'s ({name: shape}).
  `holds` says what it should hold ("VGG19's weights"), `verb` the command that writes it."""
  from gan_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError) as e:
    raise UserError(f"{path} is not a readable .npz ({e}): convert the weights again with "
                    f"`{verb}`.") from None
  bad = sorted(k for k in set(expected) | set(arrays)
               if k not in arrays or k not in expected or arrays[k].shape != tuple(expected[k]))
  if bad:
    raise UserError(f"{path} does not hold {holds} (first mismatch: {bad[0]}): convert them "
                    f"again with `{verb}`.")
  return arrays


def read_torch_weights(torch_path: str, network: str, filename: str, url: str) -> dict:
  """A published PyTorch state dict (`filename`, from `url`) as {key: numpy array}, for a
  converter into the cache's .npz; one UserError for each way the file can be wrong. Needs torch,
  only for this step."""
  from gan_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f"Converting the {network} weights needs PyTorch (only for this step): "
                    "pip install 'gan-jax[convert]'.") from None
  if not os.path.exists(torch_path):
    raise UserError(f"{torch_path} does not exist: download {url} and pass its path.")
  try:
    state = torch.load(torch_path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  (any unreadable file, one message)
    raise UserError(f"{torch_path} is not a readable PyTorch state dict "
                    f"({type(e).__name__}): download {url} again.") from None
  if not isinstance(state, dict) or not all(hasattr(v, "detach") for v in state.values()):
    raise UserError(f"{torch_path} holds a {type(state).__name__}, not a state dict of tensors: "
                    f"pass {filename}.")
  return {k: v.detach().cpu().numpy() for k, v in state.items()}
