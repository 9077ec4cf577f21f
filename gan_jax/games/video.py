"""The video game: G(content code, motion codes) -> clip, judged by an image D and a video D
(MoCoGAN, Tulyakov et al. 2018; networks in `models/video.py`).

`batch["x"]` holds real clips, uint8 [1, B, T, R, R, C]. One step:
  1. D phase: the image D scores `model.image_frames` frames drawn at random from each real and
     each fake clip, the video D the whole clips (both seeing them through instance noise of
     `loss.instance_noise` sigma); D's loss is the sum of the two critics' losses (each weighted
     by `loss.image_weight`, `loss.video_weight`) and, with `loss.r1_weight`, of their R1
     penalties at the reals;
  2. G phase: fool both critics through their updated weights;
  3. EMA of G's params.
G's forward is computed once (`jax.vjp`), as in the noise game. The frames the image D sees are
drawn for the global batch from the step's key, so pmap reproduces jit and resume is exact.

Inference draws clips from a seed's codes; the motion noise has one draw per frame, so a clip can
be rendered with any number of frames (`gan-jax sample --frames`).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import optim, reporting
from gan_jax.data import sources
from gan_jax.errors import UserError
from gan_jax.games.common import (Devices, apply, apply_inference, copy_params, d_accuracy, ema,
                                  g_params, in_chunks, infer, init_net, init_side,
                                  split_variables, to_model_input)
from gan_jax.losses import adversarial, regularizers
from gan_jax.models import video as video_models
from gan_jax.state import GANState, as_key, make_key


def pick_frames(clips, index):
  """clips [B, T, ...] and frame indices [B, K] -> the picked frames [B K, ...]."""
  picked = jnp.take_along_axis(clips, index.reshape(index.shape + (1,) * (clips.ndim - 2)), 1)
  return picked.reshape((-1,) + clips.shape[2:])


def instance_noise(x, key, sigma, dev):
  """x plus Gaussian noise of `sigma`, drawn for the global batch (this device's rows under
  pmap): what a video game's critics see (MoCoGAN's critics add noise too, before every layer)."""
  if not sigma:
    return x
  noise = jax.random.normal(key, (dev.global_size(x.shape[0]),) + x.shape[1:], x.dtype)
  return x + sigma * dev.local(noise)


def check_clip_settings(config, game, networks):
  """The checks every video game makes, one UserError each: clip data, a resolution `networks`
  take (a power of two >= 8), a loss it knows, one D update per G update, no augmentation."""
  d = config.data
  if sources.kind(d.source) not in sources.VIDEO_KINDS:  # tfds:NAME: a video dataset
    raise UserError(f"--config.data.source={d.source} holds images, and the {game} game learns "
                    "clips: use moving_digits, videos:PATH or tfds:NAME of a video dataset.")
  r = d.resolution
  if r < 8 or 2 ** int(round(math.log2(r))) != r:
    raise UserError(f"--config.data.resolution={r} is not supported by {networks}: use a power "
                    "of two >= 8.")
  if config.loss.adversarial not in adversarial.LOSSES:
    raise UserError(f"--config.loss.adversarial={config.loss.adversarial!r} is not a loss of "
                    f"the {game} game: choose one of {', '.join(adversarial.LOSSES)}.")
  if config.augment.kind != "none":
    raise UserError(f"--config.augment.kind={config.augment.kind}: the {game} game does not "
                    "augment clips yet; set it to none.")


class VideoGame:
  can_generate = True    # `gan-jax sample` draws clips from it
  can_truncate = False
  directions = ()
  spaces = ()            # no latent space the image tools (walks, directions) can work in
  renders_any_time = False  # G draws frame after frame: no `sample --fps`
  inputs = ("content", "motion")  # of G (`generator`), `noise` draws them
  base_regularizers = ("r1_weight",)  # of base_config's loss terms, the one it reads
  d_penalty_hint = "an R1 penalty (--config.loss.r1_weight)"  # the health monitor's advice

  def __init__(self, config, spec, axis_name=None):
    self.config, self.spec = config, spec
    self.frames = spec.shape[0]  # of a training clip; inference may render other lengths
    self.build_networks(axis_name)
    self.g_tx = optim.build(config.optim.g, config.train.steps)
    self.d_tx = optim.build(config.optim.d, config.train.steps)
    self.devices = Devices(axis_name)

  def build_networks(self, axis_name):
    self.g_model, self.image_d, self.video_d = video_models.build(self.config, self.spec,
                                                                  axis_name)

  @staticmethod
  def validate(config):
    m, d = config.model, config.data
    if m.name != "mocogan":
      raise UserError(f"--config.model.name={m.name!r} is not a model of the video game: use "
                      "mocogan.")
    check_clip_settings(config, "video", "MoCoGAN's networks")
    if not 1 <= m.image_frames <= d.frames:
      raise UserError(f"--config.model.image_frames={m.image_frames} must be between 1 and the "
                      f"clip's {d.frames} frames (how many frames of each clip the image D sees).")

  # --- training ------------------------------------------------------------------------------

  def no_labels(self, num):
    return jnp.zeros((num,), jnp.int32)

  def init(self, seed=None):
    """Fresh state of `seed` (default config.seed)."""
    k_g, k_image, k_video, rng = jax.random.split(
        make_key(self.config.seed if seed is None else seed), 4)
    m, t = self.config.model, self.frames
    clips = jnp.zeros((2,) + tuple(self.spec.shape), jnp.float32)
    labels = self.no_labels(2)
    g = init_net(self.g_model, k_g, self.g_tx, jnp.zeros((2, m.content_dim)),
                 jnp.zeros((2, t, m.motion_dim)), labels)
    d = init_side(self.d_tx, image=(self.image_d, k_image, (clips[:, 0], labels)),
                  video=(self.video_d, k_video, (clips, labels)))
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d,
                    g_ema=copy_params(g.params, self.config.train.ema_decay > 0),
                    rng=jax.random.key_data(rng), extras={})

  def draw(self, key, num, frames=None):
    """(content [num, content_dim], motion noise [num, frames, motion_dim]) from `key`. Frame t's
    noise is drawn from its own key, so a longer clip of the same key continues the shorter."""
    m = self.config.model
    k_content, k_motion = jax.random.split(key)
    frame_noise = lambda t: jax.random.normal(jax.random.fold_in(k_motion, t), (num, m.motion_dim))
    motion = jax.vmap(frame_noise)(jnp.arange(frames or self.frames))  # [frames, num, dim]
    return jax.random.normal(k_content, (num, m.content_dim)), jnp.swapaxes(motion, 0, 1)

  def train_step(self, state, batch):
    config, dev, reg = self.config, self.devices, self.config.loss
    d_loss_fn, g_loss_fn = adversarial.get(reg.adversarial)
    threshold = adversarial.decision_threshold(reg.adversarial)
    real, labels = to_model_input(batch["x"][0]), batch["label"][0]
    b, t = real.shape[:2]
    k_codes, k_real_frames, k_fake_frames, k_noise = jax.random.split(
        jax.random.fold_in(as_key(state.rng), state.step), 4)
    content, noise = (dev.local(x) for x in self.draw(k_codes, dev.global_size(b)))
    frame_index = lambda key: dev.local(jax.random.randint(
        key, (dev.global_size(b), config.model.image_frames), 0, t))
    real_index, fake_index = frame_index(k_real_frames), frame_index(k_fake_frames)
    frame_labels = jnp.repeat(labels, config.model.image_frames)

    g_fwd = lambda params: apply(self.g_model, params, state.g.collections, content, noise, labels)
    fake, g_vjp, g_cols = jax.vjp(g_fwd, state.g.params, has_aux=True)

    def critics(params, collections, clips, index, key):
      """(image D's logits, video D's logits, updated collections) of `clips`."""
      clips, cols = instance_noise(clips, key, reg.instance_noise, dev), dict(collections)
      image, cols["image"] = apply(self.image_d, params["image"], cols["image"],
                                   pick_frames(clips, index), frame_labels)
      video, cols["video"] = apply(self.video_d, params["video"], cols["video"], clips, labels)
      return image, video, cols

    def d_loss(params):
      real_image, real_video, cols = critics(params, state.d.collections, real, real_index,
                                             jax.random.fold_in(k_noise, 0))
      fake_image, fake_video, cols = critics(params, cols, jax.lax.stop_gradient(fake),
                                             fake_index, jax.random.fold_in(k_noise, 1))
      image_loss, _ = d_loss_fn(real_image, fake_image)
      video_loss, _ = d_loss_fn(real_video, fake_video)
      loss = reg.image_weight * image_loss + reg.video_weight * video_loss
      aux = {}
      if reg.r1_weight > 0:  # each critic's, at the reals as it saw them (the same noise)
        seen = instance_noise(real, jax.random.fold_in(k_noise, 0), reg.instance_noise, dev)
        image_d = lambda x: apply(self.image_d, params["image"], cols["image"], x,
                                  frame_labels)[0]
        video_d = lambda x: apply(self.video_d, params["video"], cols["video"], x, labels)[0]
        aux["r1_penalty"] = (regularizers.r1_penalty(image_d, pick_frames(seen, real_index))
                             + regularizers.r1_penalty(video_d, seen))
        loss = loss + reg.r1_weight * aux["r1_penalty"]
      return loss, (cols, image_loss, video_loss, real_image, fake_image, real_video, fake_video,
                    aux)

    (d_value, (d_cols, image_loss, video_loss, real_image, fake_image, real_video, fake_video,
               d_aux)), d_grads = jax.value_and_grad(d_loss, has_aux=True)(state.d.params)
    d, d_grads = dev.update(state.d, d_grads, self.d_tx, d_cols)

    def g_loss(fake):
      image, video, cols = critics(d.params, d.collections, fake, fake_index,
                                   jax.random.fold_in(k_noise, 2))
      image_loss, video_loss = g_loss_fn(image)[0], g_loss_fn(video)[0]
      return (reg.image_weight * image_loss + reg.video_weight * video_loss,
              (cols, image_loss, video_loss))

    (g_value, (d_cols, g_image, g_video)), d_fake = jax.value_and_grad(g_loss, has_aux=True)(fake)
    d = d.replace(collections=d_cols)  # the critics' batch statistics also see this pass
    g, g_grads = dev.update(state.g, g_vjp(d_fake)[0], self.g_tx, g_cols)

    metrics = {"d_loss": d_value, "g_loss": g_value, "d_image": image_loss, "d_video": video_loss,
               "g_image": g_image, "g_video": g_video,
               "d_real": jnp.mean(real_video), "d_fake": jnp.mean(fake_video),
               "d_real_image": jnp.mean(real_image), "d_fake_image": jnp.mean(fake_image),
               "d_grad_norm": optax.tree.norm(d_grads), "g_grad_norm": optax.tree.norm(g_grads),
               **d_aux}
    if threshold is not None:
      metrics.update(d_accuracy(real_video, fake_video, threshold))
    new_state = state.replace(step=state.step + 1, g=g, d=d,
                              g_ema=ema(state.g_ema, g.params, state.step, config.train.ema_decay,
                                        config.train.ema_start))
    return new_state, dev.mean(metrics)

  # --- inference -----------------------------------------------------------------------------

  def noise(self, num, seed=0, labels=None, frames=None):
    """(content, motion noise, labels) of `num` clips of `seed`, `frames` frames long (default:
    the training clips'); labels cycle through the classes unless given."""
    content, motion = self.draw(make_key(seed), num, frames)
    if labels is None:
      labels = np.arange(num) % max(self.spec.num_classes, 1)
    labels = np.broadcast_to(np.asarray(labels, np.int32), (num,))
    return np.asarray(content), np.asarray(motion), labels

  def generate(self, state, num, seed=0, labels=None, ema=True, chunk=64, frames=None):
    """`num` clips float32 [num, frames, R, R, C] in [-1, 1] from `seed`'s codes, and their
    labels, with G in inference mode."""
    if frames is not None and frames < 1:
      raise UserError(f"--frames={frames} must be a positive number of frames.")
    content, motion, labels = self.noise(num, seed, labels, frames)
    params = g_params(state, ema)
    draw = lambda c, m, l: infer(self.g_model, params, state.g.collections, c, m, l)
    return in_chunks(draw, content, motion, labels, chunk=chunk), labels

  def generator(self, state, ema=True):
    """(fn, variables): G in inference mode as a pure, jittable fn(variables, *inputs[, labels])
    -> clips [N, T, R, R, C] in [-1, 1], and the Flax variables it takes (G's EMA weights, or
    G's). `inputs` are those the class names, which `noise` draws: MoCoGAN's content
    [N, content_dim] and motion noise [N, T, motion_dim] (one draw a frame); the sparse game's
    also the frames' times [N, T] (float, in frames of the training data), its motion noise on
    a grid that must cover the latest time."""
    model, count = self.g_model, len(self.inputs)

    def fn(variables, *inputs):
      labels = inputs[count] if len(inputs) > count else self.no_labels(inputs[0].shape[0])
      return apply_inference(model, *split_variables(variables), *inputs[:count], labels)
    return fn, {"params": g_params(state, ema), **state.g.collections}

  def discriminate(self, state, clips, labels, chunk=64):
    """The video D's logits (numpy [N]) for clips in [-1, 1], in inference mode."""
    judge = lambda x, l: infer(self.video_d, state.d.params["video"],
                               state.d.collections["video"], x, l)
    return in_chunks(judge, np.asarray(clips, np.float32), np.asarray(labels, np.int32),
                     chunk=chunk).reshape(len(clips))

  def style_groups(self):
    return {}

  def preview_inputs(self, source, held_out=None):
    return None

  def preview(self, state, inputs):
    """An animation: the grid of sample clips, frame by frame, [T, H, W, C]."""
    clips, _ = self.generate(state, self.config.sample.num, seed=self.config.seed + 1)
    return reporting.clip_grid(clips)
