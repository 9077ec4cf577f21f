"""MoCoGAN's networks (Tulyakov et al. 2018, "MoCoGAN: Decomposing Motion and Content for Video
Generation"), at the sizes of a DCGAN.

G: a clip is one content code (fixed over the clip) and a motion code per frame, the outputs of a
GRU fed fresh noise each frame; each frame's [content, motion] goes through a DCGAN generator
(`dcgan.Generator`, shared by all frames). A clip has as many frames as noise steps, so a trained
G renders clips of any length.

Two critics: the image D is a DCGAN discriminator of single frames; the video D
(`VideoDiscriminator`) convolves the clip in space and time, MoCoGAN's 4x4x4 kernels with
stride 1 in time (valid) and 2 in space, then reads all of what remains with one dense layer.
"""
import math
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from gan_jax.models import dcgan
from gan_jax.models.layers import Conv4x4s2, ConvTranspose4x4s2, class_vector, norm_layer


def stack_time(x, k):
  """[B, T, H, W, C] -> [B, T - k + 1, H, W, k C]: output frame t holds frames t .. t + k - 1, so
  a 2D conv of it is a 3D conv with k frames of kernel, valid in time, and XLA:CPU runs it on the
  fast 2D forms (`layers.Conv4x4s2`)."""
  t = x.shape[1] - k + 1
  return jnp.concatenate([x[:, i:i + t] for i in range(k)], axis=-1)


def clip_length_after(frames, resolution, time_kernel):
  """How many frames the video D's last layer sees, for clips of `frames` frames."""
  for _ in range(int(math.log2(resolution)) - 2):
    frames -= min(time_kernel, frames) - 1
  return frames


def render_frames(g, content, motion, labels, train):
  """The frames [B, F, R, R, C] of a clip G `g` (a module's compact method calls this) draws
  from its content code [B, content_dim] and motion codes [B, F, motion_dim]: each frame's
  [content, motion] through one DCGAN generator, `g`'s submodule "frames"."""
  b, f = motion.shape[:2]
  codes = jnp.concatenate([jnp.broadcast_to(content[:, None], (b, f, content.shape[-1])),
                           motion], -1).reshape(b * f, -1)
  if labels is not None:
    labels = jnp.repeat(jnp.asarray(labels), f, axis=0)
  frames = dcgan.Generator(g.resolution, g.channels, g.width, g.norm, g.num_classes, g.axis_name,
                           g.dtype, name="frames")(codes, labels, train)
  return frames.reshape((b, f) + frames.shape[1:])


def modulated_frames(g, content, motion, labels, train):
  """The frames [B, F, R, R, C] as StyleGAN-V splits the codes (`model.g_content=modulation`):
  the motion code alone makes each frame's 4x4 input (a dense layer), and the content code
  (beside the class's one-hot when conditional), through a 2-layer mapping MLP, sets the gain and
  bias after every batch norm of G for all frames of its clip (BigGAN's conditional batch norm,
  conditioned on the code), zero at the start as SNGAN's class gains: the frames' layout is the
  motion's, their shape the content's. Otherwise `render_frames`' DCGAN generator."""
  b, f = motion.shape[:2]
  style = content if not g.num_classes else jnp.concatenate(
      [content, class_vector(labels, g.num_classes, content.dtype)], -1)
  for _ in range(2):
    style = nn.leaky_relu(nn.Dense(style.shape[-1], dtype=g.dtype)(style), 0.2)
  n_up = int(math.log2(g.resolution)) - 2
  ch = g.width * 2 ** (n_up - 1)
  x = nn.Dense(4 * 4 * ch, use_bias=False, dtype=g.dtype)(motion.reshape(b * f, -1))
  x = x.reshape(b * f, 4, 4, ch)
  for i in range(n_up):
    if i:
      x = ConvTranspose4x4s2(ch, dtype=g.dtype)(x)
    if g.norm == "batch":
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, use_scale=False,
                       use_bias=False, axis_name=g.axis_name, dtype=g.dtype)(x)
    gain = 1 + nn.Dense(ch, kernel_init=nn.initializers.zeros, dtype=g.dtype)(style)
    bias = nn.Dense(ch, kernel_init=nn.initializers.zeros, dtype=g.dtype)(style)
    x = x.reshape((b, f) + x.shape[1:]) * gain[:, None, None, None] + bias[:, None, None, None]
    x = nn.relu(x.reshape((b * f,) + x.shape[2:]))
    ch //= 2
  x = ConvTranspose4x4s2(g.channels, dtype=g.dtype)(x)
  return jnp.tanh(x.astype(jnp.float32)).reshape((b, f) + x.shape[1:])


def frames_of(g, content, motion, labels, train):
  """The frames of a clip G `g` draws, by its `content` field: "input" or "modulation"."""
  draw = modulated_frames if g.content == "modulation" else render_frames
  return draw(g, content, motion, labels, train)


class Generator(nn.Module):
  resolution: int
  channels: int
  motion_dim: int = 10
  width: int = 32
  norm: str = "batch"
  num_classes: int = 0
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  content: str = "input"  # where the content code enters: G's input, or its norms' modulation

  @nn.compact
  def __call__(self, content, noise, labels=None, train=True):
    """content [B, content_dim], noise [B, T, motion_dim] (one draw a frame), labels [B] ->
    clips [B, T, R, R, channels] in [-1, 1]."""
    motion = nn.RNN(nn.GRUCell(self.motion_dim, param_dtype=jnp.float32))(noise)
    return frames_of(self, content, motion, labels, train)


class VideoDiscriminator(nn.Module):
  """Clips [B, T, R, R, C] -> one logit each; projection on the class when conditional."""
  resolution: int
  width: int = 32
  time_kernel: int = 4
  norm: str = "batch"
  num_classes: int = 0
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, labels=None, train=True):
    x = x.astype(self.dtype)
    ch = self.width
    for i in range(int(math.log2(self.resolution)) - 2):
      x = stack_time(x, min(self.time_kernel, x.shape[1]))
      b, t = x.shape[:2]
      x = Conv4x4s2(ch, dtype=self.dtype)(x.reshape((b * t,) + x.shape[2:]))
      x = x.reshape((b, t) + x.shape[1:])
      if i:  # as the DCGAN's D: no normalization on the first layer
        x = norm_layer(self.norm, train, self.axis_name, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
      ch *= 2
    return dcgan.projection_logit(x.reshape(x.shape[0], -1), labels, self.num_classes,
                                  self.dtype)


def build(config, spec, axis_name=None):
  """(G, image D, video D) for `config.model` and clips shaped as `spec` says."""
  m = config.model
  dtype = jnp.bfloat16 if config.train.dtype == "bfloat16" else jnp.float32
  num_classes = spec.num_classes if m.conditional else 0
  r, channels = spec.shape[1], spec.shape[-1]
  g = Generator(r, channels, m.motion_dim, m.g_width, m.g_norm, num_classes, axis_name, dtype,
                m.get("g_content", "input"))
  image_d = dcgan.Discriminator(r, channels, m.d_width, m.d_norm, num_classes, axis_name, dtype)
  video_d = VideoDiscriminator(r, m.v_width, m.time_kernel, m.d_norm, num_classes, axis_name,
                               dtype)
  return g, image_d, video_d
