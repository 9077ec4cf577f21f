"""The sparse video game: StyleGAN-V's recipe (Skorokhodov et al. 2022; networks in
`models/video_sparse.py`). G renders a frame at any real time t, so it trains on a few frames of
each clip and renders clips of any length and frame rate.

`batch["x"]` holds real clips, uint8 [1, B, T, R, R, C]. One step:
  1. times: K = `model.frames_per_clip` increasing whole frames of each clip, drawn as StyleGAN-V
     draws them: a span d uniform in [K - 1, min(T - 1, `model.max_distance`)], the first frame
     uniform in [0, T - 1 - d], the last d after it, the others distinct frames between;
  2. reals: those K frames of each real clip; fakes: G renders only those K frames, at the same
     times plus one shift a clip, uniform in [0, `model.time_shift`] frames and fractional.
     D reads only the gaps between the times, which the shift keeps, and so G also learns the
     times after a training clip's end and between its frames (the paper draws fake times at
     fractional offsets within videos of up to 1024 frames; a clip of moving digits is as
     likely to start at any time, so a shifted clip is as real);
  3. D phase: D scores the K frames of each real and each fake clip (through instance noise of
     `loss.instance_noise` sigma; R1 at the reals with `loss.r1_weight`), then G phase: fool
     the updated D; EMA of G's params.
G's forward is computed once (`jax.vjp`) and `train.micro_batches` slices the batch, as in the
video game (`video.step_sides`). Every draw (times, shifts, codes, noise) is made for the global
batch from the step's key, so pmap reproduces jit and resume is exact.

Inference renders `frames` frames at times 0, 1/fps, 2/fps, ... (fps: a multiple of the training
data's frame rate); the motion noise has one draw per grid point, so longer clips continue shorter
ones, and a clip at fps 2 passes through the frames of the same seed's clip at fps 1.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError
from gan_jax.games.common import (apply, copy_params, d_accuracy, ema, g_params, in_chunks, infer,
                                  init_net, to_model_input)
from gan_jax.games.video import (VideoGame, check_clip_settings, instance_noise, pick_frames,
                                 step_sides, with_noise)
from gan_jax.losses import adversarial, regularizers
from gan_jax.models import video_sparse as models
from gan_jax.state import GANState, as_key, make_key


def sample_times(key, num, frames, per_clip, max_distance):
  """int32 [num, per_clip]: increasing frames of clips `frames` long, the first and last at most
  `max_distance` apart (StyleGAN-V's random sampling, with the span uniform over the integers
  where the paper draws powers of two: in a 16-frame clip, 3 frames could span 2, 4 or 8)."""
  k_span, k_start, k_between = jax.random.split(key, 3)
  longest = min(frames - 1, max_distance)
  span = jax.random.randint(k_span, (num,), per_clip - 1, longest + 1)
  start = jax.random.randint(k_start, (num,), 0, frames - span)
  chosen = [jnp.zeros((num, 1), jnp.int32), span[:, None]]
  if per_clip > 2:  # the per_clip - 2 smallest of random scores over 1 .. span - 1: a subset
    inside = jnp.arange(1, longest) < span[:, None]
    scores = jnp.where(inside, jax.random.uniform(k_between, (num, longest - 1)), 2.0)
    chosen.append(jnp.argsort(scores, axis=1)[:, :per_clip - 2].astype(jnp.int32) + 1)
  return jnp.sort(jnp.concatenate(chosen, 1), axis=1) + start[:, None]


class SparseVideoGame(VideoGame):
  """VideoGame's interface (its preview and labels too) on StyleGAN-V's networks and steps."""
  renders_any_time = True  # `sample --fps`
  inputs = ("content", "motion", "times")  # of G (`generator`), `noise` draws them

  def __init__(self, config, spec, axis_name=None):
    super().__init__(config, spec, axis_name)
    m = config.model
    self.max_distance = min(self.frames - 1, m.max_distance)
    self.train_time = self.frames - 1 + m.time_shift  # the latest time G renders in training

  def build_networks(self, axis_name):
    self.g_model, self.d_model = models.build(self.config, self.spec, axis_name)

  @staticmethod
  def validate(config):
    m, d = config.model, config.data
    if m.name != "stylegan_v":
      raise UserError(f"--config.model.name={m.name!r} is not a model of the video_sparse game: "
                      "use stylegan_v.")
    check_clip_settings(config, "video_sparse", "StyleGAN-V's networks")
    if not 2 <= m.frames_per_clip <= d.frames:
      raise UserError(f"--config.model.frames_per_clip={m.frames_per_clip} must be between 2 and "
                      f"the clip's {d.frames} frames (how many frames of each clip D sees).")
    if m.max_distance < m.frames_per_clip - 1:
      raise UserError(f"--config.model.max_distance={m.max_distance} must be at least "
                      f"frames_per_clip - 1 = {m.frames_per_clip - 1}: D's {m.frames_per_clip} "
                      "frames of a clip are that many frames apart at least.")
    c = m.concat_resolution
    if not 4 <= c <= d.resolution or 2 ** int(round(math.log2(c))) != c:
      raise UserError(f"--config.model.concat_resolution={c} must be a power of two from 4 to "
                      f"data.resolution={d.resolution} (where D's frames meet).")
    if m.max_period < m.motion_spacing:
      raise UserError(f"--config.model.max_period={m.max_period} must be at least "
                      f"motion_spacing={m.motion_spacing} (the shortest wave's period).")

  # --- training ------------------------------------------------------------------------------

  def init(self, seed=None):
    """Fresh state of `seed` (default config.seed)."""
    k_g, k_d, rng = jax.random.split(make_key(self.config.seed if seed is None else seed), 3)
    m, k = self.config.model, self.config.model.frames_per_clip
    labels = self.no_labels(2)
    grid = models.grid_size(self.train_time, m.motion_spacing, m.motion_kernel)
    g = init_net(self.g_model, k_g, self.g_tx, jnp.zeros((2, m.content_dim)),
                 jnp.zeros((2, grid, m.motion_dim)), jnp.zeros((2, k)), labels)
    d = init_net(self.d_model, k_d, self.d_tx, jnp.zeros((2, k) + tuple(self.spec.shape[1:])),
                 jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32), (2, k)), labels)
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d,
                    g_ema=copy_params(g.params, self.config.train.ema_decay > 0),
                    rng=jax.random.key_data(rng), extras={})

  def draw(self, key, num, max_time=None):
    """(content [num, content_dim], motion noise [num, N, motion_dim]) from `key`, the noise on
    the time grid up to `max_time` (default: the latest time training renders). Grid point k's
    noise is drawn from its own key, so a longer clip of the same key continues the shorter."""
    m = self.config.model
    size = models.grid_size(self.train_time if max_time is None else max_time, m.motion_spacing,
                            m.motion_kernel)
    k_content, k_motion = jax.random.split(key)
    point = lambda k: jax.random.normal(jax.random.fold_in(k_motion, k), (num, m.motion_dim))
    motion = jax.vmap(point)(jnp.arange(size))  # [N, num, dim]
    return jax.random.normal(k_content, (num, m.content_dim)), jnp.swapaxes(motion, 0, 1)

  def train_step(self, state, batch):
    config, dev, reg, m = self.config, self.devices, self.config.loss, self.config.model
    d_loss_fn, g_loss_fn = adversarial.get(reg.adversarial)
    threshold = adversarial.decision_threshold(reg.adversarial)
    clips = batch["x"][0]
    b, k = clips.shape[0], m.frames_per_clip
    n = dev.global_size(b)
    k_codes, k_times, k_shift, k_noise = jax.random.split(
        jax.random.fold_in(as_key(state.rng), state.step), 4)
    times = sample_times(k_times, n, self.frames, k, m.max_distance)
    fake_times = times + m.time_shift * jax.random.uniform(k_shift, (n, 1))
    content, noise = self.draw(k_codes, n)
    content, noise, times, fake_times = (dev.local(x) for x in (content, noise, times, fake_times))
    # the picked frames only reach float: K of T frames
    real = to_model_input(pick_frames(clips, times)).reshape((b, k) + clips.shape[2:])
    seen = lambda i: instance_noise(jax.random.fold_in(k_noise, i), real.shape,
                                    reg.instance_noise, dev)
    xs = dict(real=real, labels=batch["label"][0], content=content, noise=noise, times=times,
              fake_times=fake_times, real_noise=seen(0), fake_noise=seen(1), g_noise=seen(2))

    def generate(params, collections, x):
      return apply(self.g_model, params, collections, x["content"], x["noise"], x["fake_times"],
                   x["labels"])

    def critic(params, collections, frames, x, noise):
      """D's logits of the frames (at the reals' times) and its updated collections."""
      return apply(self.d_model, params, collections, with_noise(frames, noise), x["times"],
                   x["labels"])

    def d_loss(params, collections, x, fakes):
      real_logits, cols = critic(params, collections, x["real"], x, x["real_noise"])
      fake_logits, cols = critic(params, cols, fakes, x, x["fake_noise"])
      loss, _ = d_loss_fn(real_logits, fake_logits)
      metrics = {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}
      if threshold is not None:
        metrics.update(d_accuracy(real_logits, fake_logits, threshold))
      if reg.r1_weight > 0:  # at the reals as D saw them (the same noise)
        metrics["r1_penalty"] = regularizers.r1_penalty(
            lambda v: critic(params, cols, v, x, x["real_noise"])[0], x["real"])
        loss = loss + reg.r1_weight * metrics["r1_penalty"]
      return loss, (cols, metrics)

    def g_loss(params, collections, x, fakes):
      logits, cols = critic(params, collections, fakes, x, x["g_noise"])
      return g_loss_fn(logits)[0], (cols, {})

    g, d, metrics = step_sides(self, state, xs, generate, d_loss, g_loss)
    new_state = state.replace(step=state.step + 1, g=g, d=d,
                              g_ema=ema(state.g_ema, g.params, state.step, config.train.ema_decay,
                                        config.train.ema_start))
    return new_state, dev.mean(metrics)

  # --- inference -----------------------------------------------------------------------------

  def times(self, frames=None, fps=None):
    """float32 [frames]: the times of a clip's frames, 0, 1/fps, 2/fps, ... in frames of the
    training data; `frames` defaults to the training clips' length, `fps` (a multiple of the
    training data's frame rate) to 1."""
    if frames is not None and (isinstance(frames, bool) or frames < 1):
      raise UserError(f"--frames={frames} must be a positive number of frames.")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float, np.number))
                            or not math.isfinite(fps) or fps <= 0):
      raise UserError(f"--fps={fps} must be a positive multiple of the training clips' frame "
                      "rate (2: twice as many frames a second).")
    return (np.arange(frames or self.frames) / (1.0 if fps is None else float(fps))).astype(
        np.float32)

  def noise(self, num, seed=0, labels=None, frames=None, fps=None):
    """(content, motion noise, times [num, frames], labels) of `num` clips of `seed`, `frames`
    frames long at `fps` (see `times`); labels cycle through the classes unless given."""
    times = self.times(frames, fps)
    content, motion = self.draw(make_key(seed), num, float(times[-1]))
    if labels is None:
      labels = np.arange(num) % max(self.spec.num_classes, 1)
    labels = np.broadcast_to(np.asarray(labels, np.int32), (num,))
    return (np.asarray(content), np.asarray(motion), np.broadcast_to(times, (num, len(times))),
            labels)

  def generate(self, state, num, seed=0, labels=None, ema=True, chunk=64, frames=None, fps=None):
    """`num` clips float32 [num, frames, R, R, C] in [-1, 1] from `seed`'s codes, at `fps` times
    the training data's frame rate, and their labels, with G in inference mode."""
    content, motion, times, labels = self.noise(num, seed, labels, frames, fps)
    params = g_params(state, ema)
    draw = lambda c, m, t, l: infer(self.g_model, params, state.g.collections, c, m, t, l)
    return in_chunks(draw, content, motion, times, labels, chunk=chunk), labels

  def discriminate(self, state, clips, labels, chunk=64):
    """D's logits (numpy [N]) for clips in [-1, 1], in inference mode, from K frames spread
    evenly over each clip's first min(T - 1, max_distance) + 1 frames."""
    clips = np.asarray(clips, np.float32)
    k, t = self.config.model.frames_per_clip, clips.shape[1]
    if t < k:
      raise UserError(f"Clips of {t} frames are too short for D, which sees {k} frames of each.")
    picked = np.round(np.linspace(0, min(t - 1, self.max_distance), k)).astype(np.int32)
    times = np.broadcast_to(picked, (len(clips), k))
    judge = lambda x, ts, l: infer(self.d_model, state.d.params, state.d.collections, x, ts, l)
    return in_chunks(judge, clips[:, picked], times, np.asarray(labels, np.int32),
                     chunk=chunk).reshape(len(clips))
