"""pix2pix's U-Net generator (Isola et al. 2017), as the reference's UnetGenerator builds it.

`num_downs` 4x4 / stride-2 convs halve the image down to 1x1 (8 for 256x256, 7 for 128x128),
then as many 4x4 / stride-2 transposed convs double it back; each decoder block also sees the
matching encoder output (the skip connection, concatenated on channels), so low-level detail
need not squeeze through the bottleneck. Widths: width * (1, 2, 4, 8, 8, ...). Dropout (the
only noise pix2pix's G gets) sits in the decoder blocks whose both sides are width * 8, below
the innermost one: 3 of them in unet_256.
"""
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models.layers import Conv4x4s2, ConvTranspose4x4s2, Dropout, norm_layer


class UNet(nn.Module):
  out_channels: int
  num_downs: int = 8
  width: int = 64
  norm: str = "batch"  # batch | instance
  dropout: float = 0.5
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, x, train=True):
    n = self.num_downs
    widths = [self.width * min(2 ** i, 8) for i in range(n)]  # encoder output i
    use_bias = self.norm != "batch"  # batch norm's shift makes a bias redundant
    conv = dict(dtype=self.dtype, impl=self.conv_impl)
    norm = lambda name: norm_layer(self.norm, train, self.axis_name, self.dtype, name)
    x = x.astype(self.dtype)

    skips = []
    for i in range(n):
      if i:  # the outermost conv sees the image itself
        x = nn.leaky_relu(x, 0.2)
      x = Conv4x4s2(widths[i], use_bias=use_bias, name=f"down{i}", **conv)(x)
      if 0 < i < n - 1:  # no norm on the image side, nor on the 1x1 bottleneck
        x = norm(f"down{i}_norm")(x)
      skips.append(x)

    for i in reversed(range(n)):
      if i < n - 1:
        x = jnp.concatenate([skips[i], x], axis=-1)
      x = nn.relu(x)
      if i == 0:
        x = ConvTranspose4x4s2(self.out_channels, use_bias=True, name="up0", **conv)(x)
        return jnp.tanh(x.astype(jnp.float32))
      x = ConvTranspose4x4s2(widths[i - 1], use_bias=use_bias, name=f"up{i}", **conv)(x)
      x = norm(f"up{i}_norm")(x)
      if self.dropout and 4 <= i < n - 1:
        x = Dropout(self.dropout, self.axis_name)(x, deterministic=not train)
