"""Super-resolution GANs' networks (issue 13): SRResNet (Ledig et al. 2017, in BasicSR's MSRResNet
form), ESRGAN's RRDBNet and VGG-style discriminator (Wang et al. 2018), and Real-ESRGAN's U-Net
discriminator with spectral norm (Wang et al. 2021).

Images are NHWC in [-1, 1], in and out; G has no output tanh (ESRGAN's has none: a bounded output
would fight the L1 and perceptual terms near the ends of the range). G maps [B, h, w, C] to
[B, h * scale, w * scale, out_channels], scale 2 or 4, as log2(scale) 2x upsampling stages:
"pixel_shuffle" (a 3x3 conv to 4x features, then `layers.pixel_shuffle`) or "nearest" (nearest
2x then a 3x3 conv, fused into one 4x4 transposed conv by `layers.SNConv(resample="up")`). BasicSR
runs its x2 RRDBNet as the x4 one on a pixel-unshuffled input; here x2 is one stage instead.

Layouts (`features` F; every conv 3x3 "same" unless named otherwise):
- SRResNet: conv_first + LReLU 0.1; `blocks` residual blocks conv-ReLU-conv without batch norm;
  the upsampling stages (+ LReLU 0.1); conv_hr + LReLU 0.1; conv_last; plus the input upsampled
  bilinearly (a global skip: the net learns the residual). No trunk skip, as MSRResNet.
- RRDBNet: conv_first; `blocks` RRDBs, each three dense blocks of five convs (conv k sees the
  block input and the k - 1 previous outputs concatenated, `growth` channels each, LReLU 0.2;
  the fifth back to F channels, no activation, scaled 0.2 onto the block input) scaled 0.2 onto
  the RRDB input; conv_body, plus conv_first's output (trunk skip); the upsampling stages
  (+ LReLU 0.2); conv_hr + LReLU 0.2; conv_last. The RRDBs run as one `nn.scan`: their weights
  are stacked on a leading axis (params["body"]["rdb1"]["conv1"]["kernel"] is
  [blocks, 3, 3, C, O]; BasicSR's body.i is index i).
- VGGStyleDiscriminator: conv0_0 (bias) + LReLU 0.2; conv0_1 4x4 stride 2 + BN + LReLU; then
  stages of widths 2w, 4w, 8w, 8w, each a 3x3 + BN + LReLU and a 4x4 stride 2 + BN + LReLU (no
  biases before BN); more 8w stages while the side is above 4 and even (BasicSR's 256 layout);
  Dense 100 + LReLU 0.2, Dense 1.
- UNetDiscriminatorSN: conv0 (bias) + LReLU 0.2; three spectrally normed 4x4 stride-2 convs to 2w,
  4w, 8w; three bilinear 2x + SN 3x3 convs back to 4w, 2w, w, each + LReLU and plus the encoder
  output of its size (`skip`); two more SN 3x3 convs + LReLU; conv9 (bias) to one logit a pixel.

Parameter counts equal BasicSR's: RRDBNet(64, 23, 32) x4 16,697,987, SRResNet(64, 16) x4
1,517,571, VGGStyleDiscriminator(64, 128) 14,499,401, UNetDiscriminatorSN(64) 4,376,897.
"""
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import cpu_conv
from gan_jax.models.layers import (Conv4x4s2, SNConv, _use_gemm, conv4x4s2, conv_same, norm_layer,
                                   pixel_shuffle, spectral_normalize, torch_init)

# BasicSR keeps PyTorch's default init (`torch_init`) for the layers it does not re-initialise.

# ESRGAN's init (BasicSR's default_init_weights(..., scale=0.1)): Kaiming normal (fan_in, gain
# sqrt(2)) scaled by 0.1. Small residual branches start the deep trunk near the identity, which
# Wang et al. 2018 (sec. 3.3) found makes the 23-RRDB net train stably without batch norm.
scaled_kaiming = nn.initializers.variance_scaling(2 * 0.1 ** 2, "fan_in", "normal")

UPSAMPLE = ("nearest", "pixel_shuffle")
SCALES = (2, 4)


def upsample_stages(scale):
  """The 2x stages G runs for `scale`."""
  if scale not in SCALES:
    raise ValueError(f"SR nets upsample by 2 or 4, not {scale}")
  return {2: 1, 4: 2}[scale]


def bilinear(x, factor):
  """PyTorch's F.interpolate(scale_factor=factor, mode="bilinear", align_corners=False) for
  upsampling: half-pixel centres, edges clamped (jax's resize drops the out-of-range tap and
  renormalizes, which for factor >= 1 is the same)."""
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, h * factor, w * factor, c), "bilinear", antialias=False)


def _conv(features, name, kernel_init, dtype, impl, use_bias=True, resample="none",
          spectral_norm=False):
  """A 3x3 "same" conv (`layers.conv_same`'s fast path), optionally nearest-2x first (fused)."""
  return SNConv(features, 3, resample=resample, use_bias=use_bias, spectral_norm=spectral_norm,
                kernel_init=kernel_init, dtype=dtype, impl=impl, name=name)


def _upsample(x, scale, kind, slope, kernel_init, dtype, impl, train):
  """G's 2x stages conv_up1, conv_up2, each followed by LReLU(slope)."""
  if kind not in UPSAMPLE:
    raise ValueError(f"unknown upsample {kind!r}: choose {' or '.join(UPSAMPLE)}")
  f = x.shape[-1]
  for i in range(upsample_stages(scale)):
    name = f"conv_up{i + 1}"
    if kind == "pixel_shuffle":
      x = pixel_shuffle(_conv(4 * f, name, kernel_init, dtype, impl)(x, train), 2)
    else:
      x = _conv(f, name, kernel_init, dtype, impl, resample="up")(x, train)
    x = nn.leaky_relu(x, slope)
  return x


class ResidualBlock(nn.Module):
  """SRResNet's block without batch norm: x + conv(ReLU(conv(x)))."""
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train=False):
    conv = lambda name: _conv(x.shape[-1], name, scaled_kaiming, self.dtype, self.conv_impl)
    return x + conv("conv2")(nn.relu(conv("conv1")(x, train)), train)


class SRResNet(nn.Module):
  """Ledig et al. 2017's SRResNet as BasicSR's MSRResNet; see the module docstring."""
  features: int = 64
  blocks: int = 16
  scale: int = 4
  out_channels: int = 3
  upsample: str = "pixel_shuffle"  # pixel_shuffle | nearest
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, x, train=False):
    if x.shape[-1] != self.out_channels:
      raise ValueError(f"SRResNet adds its upsampled input to the output: out_channels "
                       f"{self.out_channels} must equal the input's {x.shape[-1]}")
    conv = lambda f, name: _conv(f, name, scaled_kaiming, self.dtype, self.conv_impl)
    lr = x.astype(jnp.float32)
    h = nn.leaky_relu(conv(self.features, "conv_first")(x.astype(self.dtype), train), 0.1)
    for i in range(self.blocks):
      h = ResidualBlock(self.dtype, self.conv_impl, name=f"body_{i}")(h, train)
    h = _upsample(h, self.scale, self.upsample, 0.1, scaled_kaiming, self.dtype, self.conv_impl,
                  train)
    h = nn.leaky_relu(conv(self.features, "conv_hr")(h, train), 0.1)
    out = conv(self.out_channels, "conv_last")(h, train).astype(jnp.float32)
    return out + bilinear(lr, self.scale)


class _ConvWeights(nn.Module):
  """A 3x3 conv's kernel and bias (as `layers.SNConv`'s) for a layer that runs several convs
  as one operation."""
  features: int

  @nn.compact
  def __call__(self, in_features):
    return (self.param("kernel", scaled_kaiming, (3, 3, in_features, self.features), jnp.float32),
            self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32))


def dense_convs(x, weights, conv):
  """The dense block's convs one by one: conv k, conv(h, kernel) + bias, reads x and the
  earlier convs' outputs after LReLU 0.2, concatenated; returns the last conv's output."""
  feats = [x]
  for kernel, bias in weights[:-1]:
    feats.append(nn.leaky_relu(conv(jnp.concatenate(feats, -1), kernel) + bias.astype(x.dtype),
                               0.2))
  kernel, bias = weights[-1]
  return conv(jnp.concatenate(feats, -1), kernel) + bias.astype(x.dtype)


class DenseBlock(nn.Module):
  """ESRGAN's residual dense block: five convs, each seeing all earlier outputs; x + 0.2 * out.
  On XLA:CPU in float32 from 32 features the five convs run as one Winograd operation
  (`cpu_conv.dense_convs3x3`), elsewhere conv by conv."""
  growth: int = 32
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x):
    c, g = x.shape[-1], self.growth
    weights = [_ConvWeights(f, name=f"conv{k + 1}")(c + g * k)
               for k, f in enumerate([g] * 4 + [c])]
    # Narrower blocks (the tests' sizes) compile several times longer as Winograd than they run.
    if (_use_gemm(self.conv_impl) and self.dtype == jnp.float32
        and c >= cpu_conv.WINOGRAD_MIN_CHANNELS):
      out = cpu_conv.dense_convs3x3(x, *zip(*weights), 0.2)
    else:
      # Inside RRDBNet's scan XLA:CPU's native conv is a slow path (../DESIGN.md): im2col there.
      out = dense_convs(x.astype(self.dtype), weights, lambda h, kernel: conv_same(
          h, kernel.astype(self.dtype), self.conv_impl, "im2col"))
    # Residual scaling (Wang et al. 2018, sec. 3.3): keeps the deep trunk's updates small.
    return x + 0.2 * out


class RRDB(nn.Module):
  """Residual-in-residual dense block: x + 0.2 * (three dense blocks)(x)."""
  growth: int = 32
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x):
    h = x
    for i in range(3):
      h = DenseBlock(self.growth, self.dtype, self.conv_impl, name=f"rdb{i + 1}")(h)
    return x + 0.2 * h


class RRDBNet(nn.Module):
  """ESRGAN's generator (Wang et al. 2018); see the module docstring."""
  features: int = 64
  blocks: int = 23
  growth: int = 32
  scale: int = 4
  out_channels: int = 3
  upsample: str = "nearest"  # nearest (ESRGAN) | pixel_shuffle
  global_skip: bool = False  # add the input upsampled bilinearly, as SRResNet (not ESRGAN)
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, x, train=False):
    if self.global_skip and x.shape[-1] != self.out_channels:
      raise ValueError(f"a global skip adds the {x.shape[-1]}-channel input to the "
                       f"{self.out_channels}-channel output")
    conv = lambda f, name: _conv(f, name, torch_init, self.dtype, self.conv_impl)
    feat = conv(self.features, "conv_first")(x.astype(self.dtype), train)
    # The RRDBs as one scanned block, weights stacked on a leading axis: compiled once, not
    # `blocks` times (23 unrolled Winograd RRDBs did not compile in 24 GB).
    body = nn.scan(lambda block, h, _: (block(h), None), variable_axes={"params": 0},
                   split_rngs={"params": True}, length=self.blocks)
    h, _ = body(RRDB(self.growth, self.dtype, self.conv_impl, name="body"), feat, None)
    feat = feat + conv(self.features, "conv_body")(h, train)
    h = _upsample(feat, self.scale, self.upsample, 0.2, torch_init, self.dtype, self.conv_impl,
                  train)
    h = nn.leaky_relu(conv(self.features, "conv_hr")(h, train), 0.2)
    out = conv(self.out_channels, "conv_last")(h, train).astype(jnp.float32)
    return out + bilinear(x.astype(jnp.float32), self.scale) if self.global_skip else out


def vgg_widths(width, resolution):
  """The VGG-style D's stage widths: w, 2w, 4w, 8w, 8w (each stage halves the side), then 8w
  stages while the side left is above 4 and even, so 128 and 256 both end at 4x4 as BasicSR's."""
  if resolution % 32:
    raise ValueError(f"the VGG-style D takes sides that are multiples of 32, not {resolution}")
  widths, side = [width, 2 * width, 4 * width, 8 * width, 8 * width], resolution // 32
  while side > 4 and side % 2 == 0:
    widths.append(8 * width)
    side //= 2
  return widths


class VGGStyleDiscriminator(nn.Module):
  """ESRGAN's D: images [B, resolution, resolution, C] -> float32 logits [B]. Batch norm over
  the global batch under pmap (`axis_name`). The flatten before Dense is NHWC's (h, w, c)."""
  width: int = 64
  resolution: int = 128
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, x, train=False):
    if x.shape[1:3] != (self.resolution, self.resolution):
      raise ValueError(f"VGGStyleDiscriminator(resolution={self.resolution}) got images of "
                       f"{x.shape[1]}x{x.shape[2]}")
    norm = lambda name: norm_layer("batch", train, self.axis_name, self.dtype, name)
    lrelu = lambda t: nn.leaky_relu(t, 0.2)
    x = x.astype(self.dtype)
    for i, f in enumerate(vgg_widths(self.width, self.resolution)):
      # Batch norm's shift makes the biases redundant, but conv0_0 (no norm after it) has one.
      x = _conv(f, f"conv{i}_0", torch_init, self.dtype, self.conv_impl, use_bias=i == 0)(x, train)
      x = lrelu(x if i == 0 else norm(f"bn{i}_0")(x))
      x = Conv4x4s2(f, kernel_init=torch_init, dtype=self.dtype, impl=self.conv_impl,
                    name=f"conv{i}_1")(x)
      x = lrelu(norm(f"bn{i}_1")(x))
    x = x.reshape(x.shape[0], -1)
    x = lrelu(nn.Dense(100, kernel_init=torch_init, dtype=self.dtype, name="linear1")(x))
    x = nn.Dense(1, kernel_init=torch_init, dtype=self.dtype, name="linear2")(x)
    return x[:, 0].astype(jnp.float32)


class SNConv4x4s2(nn.Module):
  """`layers.Conv4x4s2` (4x4, stride 2, padding 1) with a spectrally normalized kernel."""
  features: int
  kernel_init: Any = torch_init
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, train):
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features), jnp.float32)
    kernel = spectral_normalize(self, kernel, train)
    return conv4x4s2(x.astype(self.dtype), kernel.astype(self.dtype), self.impl)


class UNetDiscriminatorSN(nn.Module):
  """Real-ESRGAN's D: images [B, H, W, C] (H, W multiples of 8) -> float32 logits
  [B, H, W, 1], one per pixel. Spectral norm on all but the first and last convs; its vectors
  live in the "spectral" collection and move only in train mode."""
  width: int = 64
  skip: bool = True
  dtype: Any = jnp.float32
  conv_impl: str = "auto"  # see layers._use_gemm

  @nn.compact
  def __call__(self, x, train=False):
    if x.shape[1] % 8 or x.shape[2] % 8:
      raise ValueError(f"UNetDiscriminatorSN halves the image 3 times: sides must be multiples "
                       f"of 8, got {x.shape[1]}x{x.shape[2]}")
    w, lrelu = self.width, lambda t: nn.leaky_relu(t, 0.2)
    sn_conv = lambda f, name: _conv(f, name, torch_init, self.dtype, self.conv_impl,
                                    use_bias=False, spectral_norm=True)
    down = lambda f, name: SNConv4x4s2(f, dtype=self.dtype, impl=self.conv_impl, name=name)
    x0 = lrelu(_conv(w, "conv0", torch_init, self.dtype, self.conv_impl)(x.astype(self.dtype),
                                                                         train))
    x1 = lrelu(down(2 * w, "conv1")(x0, train))
    x2 = lrelu(down(4 * w, "conv2")(x1, train))
    h = lrelu(down(8 * w, "conv3")(x2, train))
    for i, (f, skip) in enumerate([(4 * w, x2), (2 * w, x1), (w, x0)]):
      h = lrelu(sn_conv(f, f"conv{4 + i}")(bilinear(h, 2), train))
      h = h + skip if self.skip else h
    h = lrelu(sn_conv(w, "conv7")(h, train))
    h = lrelu(sn_conv(w, "conv8")(h, train))
    out = _conv(1, "conv9", torch_init, self.dtype, self.conv_impl)(h, train)
    return out.astype(jnp.float32)
