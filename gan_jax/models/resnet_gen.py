"""CycleGAN's ResNet generator (Zhu et al. 2017, after Johnson et al. 2016), as the reference's
ResnetGenerator builds it.

A 7x7 conv, two 3x3 / stride-2 convs down to 1/4 size at width * 4 channels, `n_blocks` residual
blocks there (9 for 256x256, 6 for 128x128), two exact-2x upsamplings back, a 7x7 conv to the
image and tanh. Reflection padding around the stride-1 convs keeps borders free of the zero
frame's artefacts. `upsample="resize"` swaps the transposed convs for nearest-neighbour 2x +
3x3 conv (Odena et al. 2016: no checkerboard), a different net from the reference's.
"""
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models.layers import Conv3x3s2, ConvS1, ConvTranspose3x3s2, norm_layer


class ResnetGenerator(nn.Module):
  out_channels: int
  n_blocks: int = 9
  width: int = 64
  norm: str = "instance"  # instance | batch
  upsample: str = "transpose"  # transpose | resize
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, x, train=True):
    if self.upsample not in ("transpose", "resize"):
      raise ValueError(f"unknown upsample {self.upsample!r}")
    use_bias = self.norm != "batch"  # batch norm's shift makes a bias redundant
    norm = lambda name: norm_layer(self.norm, train, self.axis_name, self.dtype, name)
    conv = dict(use_bias=use_bias, dtype=self.dtype, impl=self.conv_impl)
    reflect = lambda features, k, name: ConvS1(features, k, padding=k // 2, pad_mode="reflect",
                                               name=name, **conv)
    x = x.astype(self.dtype)
    x = nn.relu(norm("conv_in_norm")(reflect(self.width, 7, "conv_in")(x)))
    for i in range(2):
      x = Conv3x3s2(self.width * 2 ** (i + 1), name=f"down{i}", **conv)(x)
      x = nn.relu(norm(f"down{i}_norm")(x))
    for i in range(self.n_blocks):
      y = nn.relu(norm(f"block{i}_norm0")(reflect(x.shape[-1], 3, f"block{i}_conv0")(x)))
      x = x + norm(f"block{i}_norm1")(reflect(x.shape[-1], 3, f"block{i}_conv1")(y))
    for i in range(2):
      features = self.width * 2 ** (1 - i)
      if self.upsample == "transpose":
        x = ConvTranspose3x3s2(features, name=f"up{i}", **conv)(x)
      else:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        x = ConvS1(features, 3, padding=1, name=f"up{i}", **conv)(x)
      x = nn.relu(norm(f"up{i}_norm")(x))
    # The last conv has a bias whatever the norm (no norm follows it).
    x = ConvS1(self.out_channels, 7, padding=3, pad_mode="reflect", use_bias=True,
               dtype=self.dtype, impl=self.conv_impl, name="conv_out")(x)
    return jnp.tanh(x.astype(jnp.float32))
