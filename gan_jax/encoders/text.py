"""What the text encoders share: reading a safetensors checkpoint into a Flax tree, attention,
activations, and the batching loop behind `encode`.

A model's Flax modules are named after the checkpoint's PyTorch modules (dotted names such as
"attention.self.query"), so loading is mechanical: each Flax leaf names its tensor
("kernel" <- "weight" transposed, "embedding" and LayerNorm's "scale" <- "weight").
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from gan_jax.errors import UserError

# Sequence lengths are padded up to one of these (or the model's maximum), batches to a power of
# two: few shapes, so few compiles, and above 8 positions less than a third of padding.
LENGTH_BUCKETS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
MIN_BATCH = 8


def read_safetensors(path: str) -> dict:
  """{name: numpy array} of a .safetensors file; no torch."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    raise UserError(f"{path} does not exist: pass a folder that holds the checkpoint's weights.")
  try:
    return load_file(path)
  except Exception as e:  # pylint: disable=broad-except  (any unreadable file, one message)
    raise UserError(f"{path} is not a readable safetensors file ({type(e).__name__}): "
                    "save the checkpoint again with safe_serialization.") from None


def torch_key(path: tuple) -> tuple[str, bool]:
  """The PyTorch tensor behind a Flax leaf, and whether its axes are reversed in PyTorch
  (Linear's [out, in], Conv's OIHW against HWIO). A leaf of another name is a bare parameter of
  that name (CLIP's class_embedding)."""
  *modules, leaf = path
  weight = ".".join(modules) + ".weight"
  return {"kernel": (weight, True), "embedding": (weight, False), "scale": (weight, False),
          "bias": (".".join(modules) + ".bias", False)}.get(leaf, (".".join(path), False))


def params_from_torch(tensors: dict, shapes: dict, source: str) -> dict:
  """The Flax params tree of `shapes` (from jax.eval_shape of init) filled from `tensors`
  ({PyTorch name: array}); tensors the model does not use are ignored."""
  leaves, missing, wrong = {}, [], []
  for path, want in jax.tree_util.tree_flatten_with_path(shapes)[0]:
    path = tuple(k.key for k in path)
    name, transpose = torch_key(path)
    if name not in tensors:
      missing.append(name)
      continue
    value = np.asarray(tensors[name], np.float32)
    if transpose:  # [out, in] -> [in, out]; OIHW -> HWIO
      value = value.T if value.ndim == 2 else value.transpose(2, 3, 1, 0)
    if value.shape != want.shape:
      wrong.append(f"{name} {tuple(value.shape)} (expected {tuple(want.shape)})")
    leaves[path] = value
  if missing or wrong:
    what = (f"lacks {len(missing)} tensors (first: {missing[0]})" if missing
            else f"has tensors of the wrong shape ({wrong[0]})")
    raise UserError(f"{source} {what}: it is not a checkpoint of this architecture.")
  tree = {}
  for path, value in leaves.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),  # erf form, torch's default
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
}


def attention(q, k, v, heads: int, mask):
  """Multi-head scaled dot-product attention. q, k, v: [B, L, D]; mask: bool, broadcastable to
  [B, heads, Lq, Lk], True where a query may see a key."""
  b, lq, d = q.shape
  split = lambda x: x.reshape(b, x.shape[1], heads, d // heads)
  scores = jnp.einsum("bqhd,bkhd->bhqk", split(q), split(k)) / np.sqrt(d // heads)
  # A replaced (not added) minimum: a row with every key masked stays finite.
  scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), split(v))
  return out.reshape(b, lq, d)


def l2_normalize(x):
  """Rows scaled to unit length (zero rows stay zero), as torch's F.normalize."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def bucket(n: int, buckets) -> int:
  """The smallest bucket that holds n (the largest bucket caps it)."""
  return next((b for b in buckets if b >= n), buckets[-1])


class TextEncoder:
  """A frozen text encoder: `encode(texts)` -> float32 [N, dim], rows L2-normalised.

  Subclasses set `name`, `dim`, `max_length`, `pad_id`, `params` (on the device) and
  `_apply(params, ids [B, L] int32, lengths [B] int32) -> [B, dim]` (jitted), and implement
  `token_ids(texts) -> list of int arrays`, each at most `max_length` long.
  """
  name: str
  dim: int
  max_length: int
  pad_id: int = 0

  def token_ids(self, texts: list[str]) -> list[np.ndarray]:
    raise NotImplementedError

  def encode(self, texts: list[str], batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Embeddings of `texts`, in order. Batches are padded to a length bucket and a power of
    two (few compiles), not to the model's maximum length."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
      raise UserError(f"{self.name} encodes a list of strings: pass [text, ...], "
                      "not a single string or other values.")
    if batch_size < 1:
      raise UserError(f"batch_size must be at least 1, got {batch_size}.")
    ids = self.token_ids(list(texts))
    lengths_allowed = tuple(b for b in LENGTH_BUCKETS if b < self.max_length) + (self.max_length,)
    batches = tuple(2 ** i for i in range(MIN_BATCH.bit_length() - 1, batch_size.bit_length())
                    if 2 ** i < batch_size) + (batch_size,)
    # Sorted by length, each batch within one length bucket: one long text does not make a
    # batch of short ones pay for its length.
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    groups = {}
    for i in order:
      groups.setdefault(bucket(len(ids[i]), lengths_allowed), []).append(i)
    out = np.zeros((len(ids), self.dim), np.float32)
    with tqdm.tqdm(total=len(ids), desc=f"encoding with {self.name}", unit="text",
                   disable=not progress, dynamic_ncols=True) as bar:
      for length, group in groups.items():
        for start in range(0, len(group), batch_size):
          rows = group[start:start + batch_size]
          block = np.full((bucket(len(rows), batches), length), self.pad_id, np.int32)
          lengths = np.zeros((block.shape[0],), np.int32)
          for j, i in enumerate(rows):
            block[j, :len(ids[i])] = ids[i]
            lengths[j] = len(ids[i])
          # Full float32 matmuls on every backend: the same embeddings a cache was keyed on.
          with jax.default_matmul_precision("float32"):
            emb = self._apply(self.params, block, lengths)
          out[rows] = np.asarray(emb)[:len(rows)]
          bar.update(len(rows))
    return out
