"""CLIP score of images against their captions (Hessel et al. 2021, CLIPScore): the mean over
pairs of 100 * max(cos(image embedding, caption embedding), 0), both from one CLIP checkpoint.
The paper's CLIP-S weighs the cosine by 2.5; 100 is the scale torchmetrics and most
text-to-image papers report. Higher: the images show what their captions say.

Needs a whole Hugging Face CLIPModel folder (config.json, model.safetensors, tokenizer.json):
gan_jax.encoders' clip text tower and encoders/clip_vision.py's image tower, no torch.
"""

from __future__ import annotations

import numpy as np

from gan_jax.errors import UserError


def clip_score(image_embeddings, text_embeddings) -> float:
  """100 * mean of max(cos, 0) over matching rows of two [N, D] arrays (any scale)."""
  a = np.asarray(image_embeddings, np.float64)
  b = np.asarray(text_embeddings, np.float64)
  if a.shape != b.shape or a.ndim != 2 or not len(a):
    raise UserError(f"The CLIP score pairs each image with its caption: got {a.shape[0]} images "
                    f"and {b.shape[0]} captions; pass as many of each, at least one.")
  cos = np.sum(a * b, axis=1) / np.maximum(
      np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
  return float(100.0 * np.mean(np.maximum(cos, 0.0)))


class ClipScorer:
  """`scorer(images, captions)` -> the CLIP score of NHWC images in [-1, 1] against their
  captions, with the checkpoint in `folder`."""
  name = "clip_score"

  def __init__(self, folder: str):
    from gan_jax import encoders  # pylint: disable=g-import-not-at-top
    from gan_jax.encoders import clip_vision  # pylint: disable=g-import-not-at-top
    self.text = encoders.get(f"clip:{folder}")
    self.vision = clip_vision.ClipVision(folder)
    if self.text.dim != self.vision.dim:
      raise UserError(f"{folder}'s text and image towers project to {self.text.dim} and "
                      f"{self.vision.dim} dimensions: pass one CLIPModel checkpoint.")

  def __call__(self, images, captions: list[str]) -> float:
    if len(images) != len(captions):
      raise UserError(f"The CLIP score pairs each image with its caption: got {len(images)} "
                      f"images and {len(captions)} captions; pass as many of each.")
    return clip_score(self.vision.encode(images), self.text.encode(list(captions)))
