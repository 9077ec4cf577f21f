"""StyleGAN-V's networks (Skorokhodov et al. 2022, "StyleGAN-V: A Continuous Video Generator with
the Price, Image Quality and Perks of StyleGAN2"), at the sizes of a DCGAN.

G renders the frame of a clip at any real time t (in frames of the training data's rate):
  - motion noise: one vector every `spacing` frames, vector k at time k x spacing;
  - smoothing: two padding-less 1D convs (LeakyReLU) over the noise turn it into codes u_k (the
    paper's motion mapping network, kernel 11 at width 512; here `kernel` at the noise's width);
  - the motion code at t, between grid times t_l = k spacing and t_r = t_l + spacing: sin/cos
    waves of fixed frequencies (periods spaced evenly in log2 from `spacing` to `max_period`
    frames), each frequency scaled by tanh(A u_k) + 1 and shifted by a phase B u_k (times
    longest period / its period), A, B linear without bias (the paper's guard against every
    clip getting one motion); minus the straight line between the waves' values at t_l and t_r,
    plus the straight line between aligners C u_k and C u_k+1. At grid times the code is C u_k:
    it is continuous, and with wave parameters new every segment it does not cycle (the
    paper's acyclic positional encoding);
  - the frame: a DCGAN generator (`dcgan.Generator`) of [content code, motion code at t].
Simplified from the paper: no StyleGAN2 synthesis; by default no mapping network either, the
codes side by side at G's input, where the paper concatenates the motion code to the constant
input and modulates with w (`model.g_content=modulation` is that split on the DCGAN generator:
`video.modulated_frames`); no phase dropout in training.

D (`SparseDiscriminator`) judges K frames of a clip at increasing integer times t_1 < ... < t_K:
a DCGAN D trunk encodes each frame down to `concat_resolution`, the frames' features are
concatenated along channels and convolved together down to 4x4; the time differences
t_(i+1) - t_i, each a learned embedding of the whole difference next to fixed sin/cos features
of it (frequencies pi 2^j / 2^ceil(log2 max_distance)), map to a vector the logit projects on
(StyleGAN2's conditioning, with the class's one-hot beside them when conditional). The paper
halves each frame's channels before concatenating; this D keeps them.
"""
import math
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gan_jax.models.video import frames_of
from gan_jax.models.layers import Conv4x4s2, class_vector, norm_layer


def wave_frequencies(count, shortest, longest):
  """Angular frequencies of `count` periods from `shortest` to `longest` frames, evenly spaced
  in log2 (StyleGAN-V's linspaced frequencies)."""
  return (2 * np.pi / np.exp2(np.linspace(np.log2(shortest), np.log2(longest), count))
          ).astype(np.float32)


def difference_frequencies(max_distance):
  """pi 2^j / R for j < log2 R, R = max_distance rounded up to a power of two: sin/cos of them
  tell every distance up to R apart (StyleGAN-V's fixed time encoder)."""
  r = 2 ** max(int(math.ceil(math.log2(max(max_distance, 2)))), 1)
  return (np.pi * np.exp2(np.arange(int(math.log2(r)))) / r).astype(np.float32)


def grid_size(max_time, spacing, kernel):
  """Motion noise vectors that cover times [0, max_time]: the codes u_k to the right of max_time,
  one spare (host and device may round t / spacing differently), and the 2 (kernel - 1) the two
  padding-less convs eat."""
  return int(math.floor(max_time / spacing)) + 3 + 2 * (kernel - 1)


class MotionCode(nn.Module):
  """Motion noise on the time grid [B, N, D] and times [B, F] -> motion codes [B, F, 2 waves]."""
  spacing: int
  waves: int
  max_period: float
  kernel: int = 3

  @nn.compact
  def __call__(self, noise, t):
    u = noise.astype(jnp.float32)
    for _ in range(2):
      u = nn.leaky_relu(nn.Conv(noise.shape[-1], (self.kernel,), padding="VALID")(u), 0.2)
    t = t.astype(jnp.float32)
    left = jnp.floor(t / self.spacing)
    weight = (t / self.spacing - left)[..., None]
    left = left.astype(jnp.int32)
    take = lambda k: jnp.take_along_axis(u, jnp.clip(k, 0, u.shape[1] - 1)[..., None], 1)
    u_left, u_right = take(left), take(left + 1)
    freqs = jnp.asarray(wave_frequencies(self.waves, self.spacing, self.max_period))
    scale = jnp.tanh(nn.Dense(self.waves, use_bias=False, name="periods")(u_left)) + 1.0
    phase = nn.Dense(self.waves, use_bias=False, name="phases")(u_left) * (
        self.max_period * freqs / (2 * np.pi))  # the paper's phase scales: longest / period

    def wave(time):
      angle = freqs * scale * time[..., None] + phase
      return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], -1)

    t_left = (left * self.spacing).astype(jnp.float32)
    aligner = nn.Dense(2 * self.waves, use_bias=False, name="aligners")
    line = lambda a, b: (1.0 - weight) * a + weight * b
    return (wave(t) - line(wave(t_left), wave(t_left + self.spacing))
            + line(aligner(u_left), aligner(u_right)))


class Generator(nn.Module):
  resolution: int
  channels: int
  spacing: int = 8
  waves: int = 16
  max_period: float = 256.0
  kernel: int = 3
  width: int = 32
  norm: str = "batch"
  num_classes: int = 0
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  content: str = "input"  # where the content code enters (`video.frames_of`)

  @nn.compact
  def __call__(self, content, noise, t, labels=None, train=True):
    """content [B, content_dim], motion noise [B, N, motion_dim] on the time grid, times [B, F]
    (float frames), labels [B] -> the frames at those times [B, F, R, R, channels] in [-1, 1]."""
    motion = MotionCode(self.spacing, self.waves, self.max_period, self.kernel,
                        name="motion")(noise, t)
    return frames_of(self, content, motion, labels, train)


class SparseDiscriminator(nn.Module):
  """K frames of each clip [B, K, R, R, C] at integer times [B, K] -> one logit a clip."""
  resolution: int
  max_distance: int
  concat_resolution: int = 16
  width: int = 32
  embed_dim: int = 32
  norm: str = "batch"
  num_classes: int = 0
  axis_name: Optional[str] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, t, labels=None, train=True):
    b, k = x.shape[:2]
    x = x.reshape((b * k,) + x.shape[2:]).astype(self.dtype)
    ch, res, joined = self.width, self.resolution, False
    for i in range(int(math.log2(self.resolution)) - 2):
      if res == self.concat_resolution:
        x, joined = self.join(x, b, k), True
      x = Conv4x4s2(ch, dtype=self.dtype)(x)
      if i:  # as the DCGAN's D: no normalization on the first layer
        x = norm_layer(self.norm, train, self.axis_name, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
      ch, res = ch * 2, res // 2
    if not joined:  # concat_resolution 4: the frames meet after the last conv
      x = self.join(x, b, k)
    dim = ch // 2
    # the head as StyleGAN2's epilogue: a hidden layer, an output the condition projects on
    h = nn.leaky_relu(nn.Dense(dim, dtype=self.dtype)(x.reshape(b, -1)), 0.2)
    out = nn.Dense(dim, dtype=self.dtype)(h)
    condition = self.time_differences(t)
    if self.num_classes:
      condition = jnp.concatenate([condition, class_vector(labels, self.num_classes)], -1)
    cmap = nn.leaky_relu(nn.Dense(dim, dtype=self.dtype)(condition.astype(self.dtype)), 0.2)
    cmap = nn.Dense(dim, dtype=self.dtype)(cmap)
    return (jnp.sum(out * cmap, -1) / math.sqrt(dim)).astype(jnp.float32)

  @staticmethod
  def join(x, b, k):
    """Per-frame features [B K, H, W, C] -> each clip's frames side by side [B, H, W, K C]."""
    x = x.reshape((b, k) + x.shape[1:])
    return jnp.moveaxis(x, 1, 3).reshape((b,) + x.shape[2:4] + (k * x.shape[-1],))

  def time_differences(self, t):
    """Integer times [B, K] -> features of their K - 1 gaps [B, (K - 1) features]."""
    gaps = jnp.diff(jnp.asarray(t, jnp.int32), axis=1)
    learned = nn.Embed(self.max_distance + 1, self.embed_dim, name="gaps")(
        jnp.clip(gaps, 0, self.max_distance))
    angle = gaps[..., None].astype(jnp.float32) * difference_frequencies(self.max_distance)
    features = jnp.concatenate([learned, jnp.sin(angle), jnp.cos(angle)], -1)
    return features.reshape(len(t), -1)


def build(config, spec, axis_name=None):
  """(G, D) for `config.model` and clips shaped as `spec` says."""
  m = config.model
  dtype = jnp.bfloat16 if config.train.dtype == "bfloat16" else jnp.float32
  num_classes = spec.num_classes if m.conditional else 0
  r, channels = spec.shape[1], spec.shape[-1]
  g = Generator(r, channels, m.motion_spacing, m.time_features, float(m.max_period),
                m.motion_kernel, m.g_width, m.g_norm, num_classes, axis_name, dtype,
                m.get("g_content", "input"))
  d = SparseDiscriminator(r, m.max_distance, m.concat_resolution, m.d_width,
                          2 * m.time_features, m.d_norm, num_classes, axis_name, dtype)
  return g, d
