"""The learned detector's network: a small fully convolutional classifier of generated pictures.

Its logit map is averaged over positions, so one set of weights scores a picture of any size
(8 px and up) without resizing it, which would blur away the upsampling traces it looks for
(Wang et al. 2020 crop rather than resize for the same reason).
"""
from typing import Sequence

import flax.linen as nn


class Detector(nn.Module):
  widths: Sequence[int] = (32, 64, 128, 128)
  strides: Sequence[int] = (1, 2, 2, 1)

  @nn.compact
  def __call__(self, images):
    """RGB images [B, H, W, 3] in [-1, 1] -> logits [B], higher for generated."""
    x = images
    for width, stride in zip(self.widths, self.strides):
      x = nn.leaky_relu(nn.Conv(width, (3, 3), strides=stride)(x), 0.2)
    return nn.Conv(1, (1, 1))(x).mean(axis=(1, 2, 3))
