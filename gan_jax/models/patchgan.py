"""pix2pix's PatchGAN discriminator (Isola et al. 2017), as the reference's NLayerDiscriminator
and PixelDiscriminator build it.

It scores overlapping patches rather than the whole image: one logit per patch, so D judges
local texture (the L1 term carries the low frequencies). `n_layers` sets the patch size:
3 -> 70x70 (n_layers 4x4 / stride-2 convs, then two 4x4 / stride-1 / pad-1 convs), 1 -> 16x16,
0 -> the 1x1 PixelGAN (1x1 convs only). For pix2pix the game feeds it (input, output) stacked
on channels; for CycleGAN one domain's images.
"""
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models.layers import Conv4x4s2, ConvS1, norm_layer


class PatchGAN(nn.Module):
  width: int = 64
  n_layers: int = 3
  norm: str = "batch"  # batch | instance
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, x, train=True):
    """x [B, H, W, C] -> float32 logits [B, h, w], one per patch (no sigmoid)."""
    use_bias = self.norm != "batch"  # batch norm's shift makes a bias redundant
    norm = lambda name: norm_layer(self.norm, train, self.axis_name, self.dtype, name)
    conv = dict(dtype=self.dtype, impl=self.conv_impl)
    x = x.astype(self.dtype)
    if self.n_layers == 0:  # PixelGAN: 1x1 convs
      x = nn.leaky_relu(ConvS1(self.width, 1, use_bias=True, name="conv0", **conv)(x), 0.2)
      x = ConvS1(2 * self.width, 1, use_bias=use_bias, name="conv1", **conv)(x)
      x = nn.leaky_relu(norm("conv1_norm")(x), 0.2)
      # The reference gives this last 1x1 conv a bias only with instance norm, too.
      x = ConvS1(1, 1, use_bias=use_bias, name="conv2", **conv)(x)
      return x[..., 0].astype(jnp.float32)

    # No norm on the image side: the first conv has a bias either way.
    x = nn.leaky_relu(Conv4x4s2(self.width, use_bias=True, name="conv0", **conv)(x), 0.2)
    for i in range(1, self.n_layers + 1):
      features = self.width * min(2 ** i, 8)
      if i < self.n_layers:
        x = Conv4x4s2(features, use_bias=use_bias, name=f"conv{i}", **conv)(x)
      else:  # the last widening conv keeps the size (-1 pixel), to grow the patch
        x = ConvS1(features, 4, padding=1, use_bias=use_bias, name=f"conv{i}", **conv)(x)
      x = nn.leaky_relu(norm(f"conv{i}_norm")(x), 0.2)
    x = ConvS1(1, 4, padding=1, use_bias=True, name=f"conv{self.n_layers + 1}", **conv)(x)
    return x[..., 0].astype(jnp.float32)
