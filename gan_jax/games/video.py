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
`train.micro_batches` = M runs both phases over M slices of the batch in turn (`step_sides`,
which the sparse game shares): a step's activations shrink to a slice's.

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


def instance_noise(key, shape, sigma, dev):
  """Gaussian noise of `sigma` and `shape` [B, ...], drawn for the global batch (this device's rows
  under pmap), or None for sigma 0: what a video game's critics see added to their input
  (MoCoGAN's critics add noise too, before every layer). Drawn for the whole batch at once, so
  micro-batches see the same noise as one batch."""
  if not sigma:
    return None
  noise = jax.random.normal(key, (dev.global_size(shape[0]),) + tuple(shape[1:]), jnp.float32)
  return sigma * dev.local(noise)


def with_noise(x, noise):
  return x if noise is None else x + noise


def split_parts(xs, parts):
  """Every array of `xs` [B, ...] -> [parts, B / parts, ...], slice i = rows i, i + parts, ...:
  with the batch split over devices in blocks, every slice spans the devices, and pmap's
  slices (of each device's block) are jit's."""
  return jax.tree.map(lambda a: jnp.swapaxes(
      a.reshape((a.shape[0] // parts, parts) + a.shape[1:]), 0, 1), xs)


def in_parts(fn, parts, carry, xs):
  """fn(carry, x) -> (carry, out) over `parts` equal slices of the batch `xs` (arrays [B, ...]),
  one after another (a scan: one slice's activations live at a time); returns the last carry and
  `out` averaged over the slices. One part: fn(carry, xs)."""
  if parts == 1:
    return fn(carry, xs)
  carry, outs = jax.lax.scan(fn, carry, split_parts(xs, parts))
  return carry, jax.tree.map(lambda o: jnp.mean(o, axis=0), outs)


def step_sides(game, state, xs, generate, d_loss, g_loss):
  """One D update, then one G update through the updated D (the video games' step); returns
  (G's NetState, D's, metrics).

  xs: the step's per-example arrays [B, ...] (real clips or frames, codes, the critics' noise);
  generate(params, collections, x) -> (fakes, G's collections);
  d_loss(params, collections, x, fakes) and g_loss(D's params, D's collections, x, fakes) ->
  (loss, (D's collections, metrics)), the metrics batch means.
  One part (`train.micro_batches` 1): G's forward runs once for both phases (`jax.vjp`). M parts:
  each phase runs over M slices of the batch in turn and averages their gradients, so one
  slice's activations live at a time; G's forward runs twice (the G phase draws each slice's
  fakes again, the same fakes), and batch statistics are each slice's own."""
  dev, parts = game.devices, game.config.train.get("micro_batches", 1)
  g, d = state.g, state.d
  if parts == 1:
    fakes, g_vjp, g_cols = jax.vjp(lambda p: generate(p, g.collections, xs), g.params,
                                   has_aux=True)
    fakes_of = lambda x: fakes  # x is the whole batch
  else:
    fakes_of = lambda x: generate(g.params, g.collections, x)[0]

  def d_part(cols, x):
    seen = jax.lax.stop_gradient(fakes_of(x))
    (value, (cols, metrics)), grads = jax.value_and_grad(
        lambda p: d_loss(p, cols, x, seen), has_aux=True)(d.params)
    return cols, (grads, dict(metrics, d_loss=value))
  d_cols, (d_grads, d_metrics) = in_parts(d_part, parts, d.collections, xs)
  d, d_grads = dev.update(d, d_grads, game.d_tx, d_cols)

  def g_part(cols, x, fakes):
    """G's loss through the updated D and its gradient at the fakes."""
    (value, (cols, metrics)), d_fakes = jax.value_and_grad(
        lambda f: g_loss(d.params, cols, x, f), has_aux=True)(fakes)
    return cols, d_fakes, dict(metrics, g_loss=value)
  if parts == 1:
    d_cols, d_fakes, g_metrics = g_part(d.collections, xs, fakes)
    g_grads = g_vjp(d_fakes)[0]
  else:
    def g_slice(carry, x):
      g_cols, d_cols = carry
      fakes, vjp, g_cols = jax.vjp(lambda p: generate(p, g_cols, x), g.params, has_aux=True)
      d_cols, d_fakes, metrics = g_part(d_cols, x, fakes)
      return (g_cols, d_cols), (vjp(d_fakes)[0], metrics)
    (g_cols, d_cols), (g_grads, g_metrics) = in_parts(g_slice, parts,
                                                       (g.collections, d.collections), xs)
  d = d.replace(collections=d_cols)  # D's batch statistics also see this pass
  g, g_grads = dev.update(g, g_grads, game.g_tx, g_cols)
  return g, d, {**d_metrics, **g_metrics, "d_grad_norm": optax.tree.norm(d_grads),
                "g_grad_norm": optax.tree.norm(g_grads)}


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
  m = config.model
  if m.get("g_content") == "modulation" and m.g_norm not in ("batch", "none"):
    raise UserError(f"--config.model.g_norm={m.g_norm}: with model.g_content=modulation G's "
                    "norms are batch norms the content code modulates; use batch or none.")


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
    real = to_model_input(batch["x"][0])
    b, t = real.shape[:2]
    k_codes, k_real_frames, k_fake_frames, k_noise = jax.random.split(
        jax.random.fold_in(as_key(state.rng), state.step), 4)
    content, noise = (dev.local(x) for x in self.draw(k_codes, dev.global_size(b)))
    frame_index = lambda key: dev.local(jax.random.randint(
        key, (dev.global_size(b), config.model.image_frames), 0, t))
    seen = lambda i: instance_noise(jax.random.fold_in(k_noise, i), real.shape,
                                    reg.instance_noise, dev)
    xs = dict(real=real, labels=batch["label"][0], content=content, noise=noise,
              real_index=frame_index(k_real_frames), fake_index=frame_index(k_fake_frames),
              real_noise=seen(0), fake_noise=seen(1), g_noise=seen(2))

    def generate(params, collections, x):
      return apply(self.g_model, params, collections, x["content"], x["noise"], x["labels"])

    def critics(params, collections, clips, x, index, noise):
      """(image D's logits, video D's logits, updated collections) of `clips`."""
      clips, cols = with_noise(clips, noise), dict(collections)
      frame_labels = jnp.repeat(x["labels"], config.model.image_frames)
      image, cols["image"] = apply(self.image_d, params["image"], cols["image"],
                                   pick_frames(clips, index), frame_labels)
      video, cols["video"] = apply(self.video_d, params["video"], cols["video"], clips,
                                   x["labels"])
      return image, video, cols

    def d_loss(params, collections, x, fakes):
      real_image, real_video, cols = critics(params, collections, x["real"], x,
                                             x["real_index"], x["real_noise"])
      fake_image, fake_video, cols = critics(params, cols, fakes, x, x["fake_index"],
                                             x["fake_noise"])
      image_loss, _ = d_loss_fn(real_image, fake_image)
      video_loss, _ = d_loss_fn(real_video, fake_video)
      loss = reg.image_weight * image_loss + reg.video_weight * video_loss
      metrics = {"d_image": image_loss, "d_video": video_loss,
                 "d_real": jnp.mean(real_video), "d_fake": jnp.mean(fake_video),
                 "d_real_image": jnp.mean(real_image), "d_fake_image": jnp.mean(fake_image)}
      if threshold is not None:
        metrics.update(d_accuracy(real_video, fake_video, threshold))
      if reg.r1_weight > 0:  # each critic's, at the reals as it saw them (the same noise)
        seen = with_noise(x["real"], x["real_noise"])
        frame_labels = jnp.repeat(x["labels"], config.model.image_frames)
        image_d = lambda v: apply(self.image_d, params["image"], cols["image"], v,
                                  frame_labels)[0]
        video_d = lambda v: apply(self.video_d, params["video"], cols["video"], v,
                                  x["labels"])[0]
        metrics["r1_penalty"] = (
            regularizers.r1_penalty(image_d, pick_frames(seen, x["real_index"]))
            + regularizers.r1_penalty(video_d, seen))
        loss = loss + reg.r1_weight * metrics["r1_penalty"]
      return loss, (cols, metrics)

    def g_loss(params, collections, x, fakes):
      image, video, cols = critics(params, collections, fakes, x, x["fake_index"], x["g_noise"])
      image_loss, video_loss = g_loss_fn(image)[0], g_loss_fn(video)[0]
      return (reg.image_weight * image_loss + reg.video_weight * video_loss,
              (cols, {"g_image": image_loss, "g_video": video_loss}))

    g, d, metrics = step_sides(self, state, xs, generate, d_loss, g_loss)
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
