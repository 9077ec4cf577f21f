"""Latent codes of noise-to-image models, in one of three spaces, and the files that carry them.

- "z": G's input, drawn from a normal (every noise model).
- "w": the mapping network's output, one w for every layer (models with a mapping network).
- "w+": one w per synthesis layer, [num_ws, w_dim] per image (StyleGAN's extended space).

A code moves only forward (z -> w -> w+: the mapping is not invertible), so an operation that
mixes codes works in the furthest space among them. `Latents` are what `sample --latent`,
`interpolate`, `directions` and `project` read and write as .npz files; `gan_jax.api.Model`
draws, converts and renders them.
"""
import dataclasses
import os

import numpy as np

from gan_jax.errors import UserError

SPACES = ("z", "w", "w+")


def furthest(*spaces):
  """The space every one of `spaces` can be carried into."""
  return SPACES[max(SPACES.index(s) for s in spaces)]


@dataclasses.dataclass(frozen=True)
class Latents:
  """N codes of one space and their labels.

  space: "z", "w" or "w+". codes: float32 [N, latent_dim] (z), [N, w_dim] (w) or
  [N, num_ws, w_dim] (w+). labels: int32 [N] class indices, or float32 [N, classes] (a mix of
  classes, as label walks draw); zeros for unconditional models.
  """
  space: str
  codes: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    if self.space not in SPACES:
      raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
    codes = np.asarray(self.codes, np.float32)
    labels = np.asarray(self.labels)
    labels = labels.astype(np.float32 if labels.dtype.kind == "f" else np.int32)
    if codes.ndim != (3 if self.space == "w+" else 2) or len(labels) != len(codes):
      raise ValueError(f"{self.space} codes of shape {codes.shape} with {len(labels)} labels")
    object.__setattr__(self, "codes", codes)
    object.__setattr__(self, "labels", labels)

  def __len__(self):
    return len(self.codes)

  def __getitem__(self, index):
    """The codes at `index` (an int keeps the batch axis)."""
    index = slice(index, index + 1) if isinstance(index, (int, np.integer)) else index
    return Latents(self.space, self.codes[index], self.labels[index])

  def save(self, path, **info):
    """Writes an .npz at `path` (space, codes, labels, and `info` such as the run and step)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, space=self.space, codes=self.codes, labels=self.labels,
             **{k: np.asarray(v) for k, v in info.items() if v is not None})
    return path


def concatenate(latents):
  """One Latents of several of the same space."""
  return Latents(latents[0].space, np.concatenate([l.codes for l in latents]),
                 np.concatenate([l.labels for l in latents]))


def load(path):
  """The Latents of an .npz written by `Latents.save` (`project`, `sample --out=X.npz`); one
  UserError for a file that is not one."""
  if not os.path.isfile(path):
    raise UserError(f"Latent file {path} does not exist: give an .npz that `gan-jax project` "
                    "or `gan-jax sample --out=X.npz` wrote.")
  try:
    with np.load(path) as f:
      return Latents(str(f["space"]), f["codes"], f["labels"])
  except Exception:  # pylint: disable=broad-except  (np.load and KeyError/ValueError alike)
    raise UserError(f"{path} is not a latent file (an .npz with space, codes and labels): give "
                    "one that `gan-jax project` or `gan-jax sample --out=X.npz` wrote.") from None


def slerp(a, b, t):
  """Codes between a and b (t in [0, 1], broadcasting) along the great circle, where Gaussian z
  lie, rather than the chord that passes near the origin."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  cos = np.sum(a * b, -1, keepdims=True) / (np.linalg.norm(a, axis=-1, keepdims=True)
                                            * np.linalg.norm(b, axis=-1, keepdims=True))
  omega = np.arccos(np.clip(cos, -1.0, 1.0))
  sin = np.sin(omega)
  safe = np.where(sin < 1e-6, 1.0, sin)
  curved = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / safe
  return np.where(sin < 1e-6, (1 - t) * a + t * b, curved).astype(np.float32)


def lerp(a, b, t):
  """Codes on the straight line from a to b (w spaces, labels)."""
  return ((1 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)).astype(np.float32)
