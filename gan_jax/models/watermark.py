"""The learned watermark's networks, in the line of HiDDeN (Zhu et al. 2018) and StegaStamp
(Tancik et al. 2020): an encoder hides K bits in an image, a decoder reads them back, a critic
tells marked images from clean ones.

The mark lives in brightness at a fixed internal side: the encoder sees the image's luma brought
to `side` x `side`, draws a residual there, resized to the image and scaled to a fixed RMS
`strength` at the image's size (so the PSNR of marked against clean is set by construction,
~38.4 dB at 0.024 before clipping), and added to every channel: grey stays grey, any size from
16 to 1024 px takes the same mark, and the mark sits in the low frequencies that JPEG and
downscaling keep. The decoder brings any image's luma to `side` x `side` first.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as the data loaders reduce colour to grey


def luma(images):
  """[B, H, W, C] -> [B, H, W, 1]: grey as is, colour by ITU-R 601."""
  if images.shape[-1] == 1:
    return images
  return images[..., :3] @ jnp.asarray(LUMA, images.dtype)[:, None]


def resize(x, height, width):
  """Bilinear, antialiased when shrinking (so what a downscale keeps is what the nets see)."""
  return jax.image.resize(x, (x.shape[0], height, width, x.shape[-1]), "linear", antialias=True)


class Encoder(nn.Module):
  bits: int
  side: int = 32
  width: int = 32
  strength: float = 0.02  # RMS of the residual, images in [-1, 1]

  @nn.compact
  def __call__(self, images, message, strength=None, train=True):
    """Clean images [B, H, W, C] in [-1, 1] and messages [B, bits] of 0/1 -> marked images;
    `strength` (default the module's) may be traced: training starts loud (`games.watermark`)."""
    del train
    strength = self.strength if strength is None else strength
    b, h, w, _ = images.shape
    cells = self.side // 4
    m = nn.Dense(cells * cells * self.width)(2.0 * message - 1.0)
    m = jax.image.resize(m.reshape(b, cells, cells, self.width),
                         (b, self.side, self.side, self.width), "nearest")
    x = jnp.concatenate([resize(luma(images), self.side, self.side), m], -1)
    for _ in range(3):
      x = nn.relu(nn.Conv(self.width, (3, 3))(x))
    r = nn.Conv(1, (1, 1), use_bias=False)(x)  # no bias: the mean is taken out next
    r = resize(r - jnp.mean(r, axis=(1, 2, 3), keepdims=True), h, w)
    # the RMS is set at the image's own size: resizing up smooths the residual, so set before
    # it, small images would get a louder mark than large ones
    r = strength * r / jnp.sqrt(jnp.mean(r * r, axis=(1, 2, 3), keepdims=True) + 1e-8)
    return jnp.clip(images + r, -1.0, 1.0)


def decoder_input(images, side):
  """What the decoder's convolutions see of images [B, H, W, C] in [-1, 1]: luma at side x side."""
  return resize(luma(images), side, side)


class Decoder(nn.Module):
  bits: int
  side: int = 32
  width: int = 32

  @nn.compact
  def __call__(self, images, train=True, prepared=False):
    """Images [B, H, W, C] in [-1, 1], any size -> logits [B, bits] (> 0: bit 1); `prepared`:
    images are already `decoder_input(images, side)`."""
    del train
    x = images if prepared else decoder_input(images, self.side)
    for i in range(3):
      x = nn.relu(nn.Conv(self.width << i, (3, 3))(x))
      x = nn.relu(nn.Conv(self.width << i, (3, 3), strides=2)(x))
    x = nn.relu(nn.Dense(256)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.bits)(x)


class Critic(nn.Module):
  width: int = 32

  @nn.compact
  def __call__(self, images, train=True):
    """Images [B, H, W, C] -> one logit each, higher for clean."""
    del train
    x = images
    for i in range(3):
      x = nn.leaky_relu(nn.Conv(self.width << i, (3, 3), strides=2)(x), 0.2)
    return nn.Dense(1)(jnp.mean(x, axis=(1, 2)))[:, 0]
