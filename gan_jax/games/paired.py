"""The paired game: image -> image with targets (pix2pix, Isola et al. 2017).

G maps an input x to y_hat; a conditional D judges (input, output) pairs, x and y concatenated on
channels, one logit per patch. One step on a batch of aligned pairs {"x": inputs, "y": targets}:
  1. G forward once (dropout is its noise), kept with `jax.vjp` for the G phase;
  2. D phase: real pairs (x, y) against fake pairs (x, sg(y_hat)), the loss halved;
  3. G phase: fool the updated D on (x, y_hat) (weighted by `loss.adversarial_weight`; 0 gives
     the paper's L1-only baseline), plus `loss.l1_weight` * |y_hat - y|.
Inference translates images: `translate(state, images)`.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import models, optim, reporting
from gan_jax.data import sources
from gan_jax.errors import UserError
from gan_jax.games.common import (Devices, apply, copy_params, ema, g_params, image_generator,
                                  in_chunks, infer, init_net, to_model_input)
from gan_jax.losses import adversarial
from gan_jax.state import GANState, as_key, make_key

LOSSES = tuple(adversarial.TARGET_TERMS)
PREVIEW_ROWS = 8  # fixed examples (per domain) in a sample grid


def validate_image_to_image(config, game_name, losses):
  """What every image-to-image game (pix2pix, CycleGAN, super-resolution) asks of the settings:
  one of its `losses`, nothing augmented. One UserError."""
  if config.loss.adversarial not in losses:
    raise UserError(f"--config.loss.adversarial={config.loss.adversarial!r} is not a loss of the "
                    f"{game_name} game: choose one of {', '.join(losses)}.")
  if config.augment.kind != "none":
    raise UserError(f"--config.augment.kind={config.augment.kind}: the {game_name} game does not "
                    "augment what D sees; set it to none.")


def validate_translation(config, game_name, needs_pairs):
  """The settings both translation games share; one UserError for the first bad one."""
  validate_image_to_image(config, game_name, LOSSES)
  pairs, domains = sources.PAIRED_KINDS, sources.TWO_DOMAINS
  kind = sources.kind(config.data.source)
  if kind not in (pairs if needs_pairs else domains):
    what = "aligned pairs (pair:A,B or digit_edges)" if needs_pairs else (
        "two image domains (unpaired:A,B, pair:A,B, digit_styles or digit_edges)")
    raise UserError(f"The {game_name} game trains on {what}, and --config.data.source="
                    f"{config.data.source} is not one: pass such a source.")
  models.validate_translation(config)


class Translator:
  """What the translation games share: an image-to-image G and a PatchGAN D from the config (one
  module each, applied with each network's own parameters), one optax transform per side."""
  can_generate = False

  def __init__(self, config, spec, axis_name=None):
    self.config, self.spec = config, spec
    channels = spec.shape[-1]
    self.g_model, self.d_model = models.build_translation(config, channels, channels, axis_name)
    self.g_tx = optim.build(config.optim.g, config.train.steps)
    self.d_tx = optim.build(config.optim.d, config.train.steps)
    self.multiple = models.translation_multiple(config)  # of H and W that G can take
    self.devices = Devices(axis_name)


class PairedGame(Translator):
  directions = ("AtoB",)

  @staticmethod
  def validate(config):
    validate_translation(config, "paired", needs_pairs=True)

  def init(self, seed=None):
    """Fresh state of `seed` (default config.seed; may be traced: `Seeds` vmaps it)."""
    k_g, k_d, rng = jax.random.split(make_key(self.config.seed if seed is None else seed), 3)
    x = jnp.zeros((1,) + tuple(self.spec.shape), jnp.float32)
    g = init_net(self.g_model, k_g, self.g_tx, x)
    return GANState(step=jnp.zeros((), jnp.int32), g=g,
                    d=init_net(self.d_model, k_d, self.d_tx, jnp.concatenate([x, x], -1)),
                    g_ema=copy_params(g.params, self.config.train.ema_decay > 0),
                    rng=jax.random.key_data(rng), extras={})

  def train_step(self, state, batch):
    dev, reg = self.devices, self.config.loss
    d_loss_fn, g_loss_fn = adversarial.get_targets(reg.adversarial)
    x, y = to_model_input(batch["x"][-1]), to_model_input(batch["y"][-1])
    pair = lambda out: jnp.concatenate([x, out], -1)
    key = jax.random.fold_in(as_key(state.rng), state.step)
    # G's dropout key: layers.Dropout draws masks for the global batch (pmap reproduces jit).
    rngs = {"dropout": key}

    g_fwd = lambda p: apply(self.g_model, p, state.g.collections, x, rngs=rngs)
    fake, g_vjp, g_cols = jax.vjp(g_fwd, state.g.params, has_aux=True)

    def d_loss(params):
      real_logits, cols = apply(self.d_model, params, state.d.collections, pair(y))
      fake_logits, cols = apply(self.d_model, params, cols, pair(jax.lax.stop_gradient(fake)))
      loss, _ = d_loss_fn(real_logits, fake_logits)
      return loss, (cols, real_logits, fake_logits)
    (d_value, (d_cols, real_logits, fake_logits)), d_grads = (
        jax.value_and_grad(d_loss, has_aux=True)(state.d.params))
    d, d_grads = dev.update(state.d, d_grads, self.d_tx, d_cols)

    def g_loss(fake):
      logits, cols = apply(self.d_model, d.params, d.collections, pair(fake))
      adv, _ = g_loss_fn(logits)
      l1 = jnp.mean(jnp.abs(fake - y))
      return reg.adversarial_weight * adv + reg.l1_weight * l1, (adv, l1, cols)
    (g_value, (adv, l1, d_cols)), d_fake = jax.value_and_grad(g_loss, has_aux=True)(fake)
    d = d.replace(collections=d_cols)  # D's batch statistics also see this pass, as in PyTorch
    (g_grads,) = g_vjp(d_fake)
    g, g_grads = dev.update(state.g, g_grads, self.g_tx, g_cols)

    metrics = {"d_loss": d_value, "g_loss": g_value, "g_adversarial": adv, "l1": l1,
               "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits),
               "d_grad_norm": optax.tree.norm(d_grads), "g_grad_norm": optax.tree.norm(g_grads)}
    new_state = state.replace(step=state.step + 1, g=g, d=d, g_ema=ema(
        state.g_ema, g.params, state.step, self.config.train.ema_decay))
    return new_state, dev.mean(metrics)

  # --- inference ---------------------------------------------------------------------------

  def translate(self, state, images, direction="AtoB", ema=True, chunk=64):
    """float NHWC in [-1, 1] -> G's outputs (numpy), H and W multiples of `self.multiple`."""
    del direction  # one direction: the data's A -> B
    params = g_params(state, ema)
    run = lambda x: infer(self.g_model, params, state.g.collections, x)
    return in_chunks(run, jnp.asarray(images, jnp.float32), chunk=chunk)

  def generator(self, state, ema=True, direction="AtoB"):
    """(fn, variables): G as a pure fn(variables, images) -> images (`common.image_generator`)."""
    del direction
    return image_generator(self.g_model, g_params(state, ema), state.g.collections)

  def preview_inputs(self, source, held_out=None):
    """Fixed pairs: the first held-out ones where the data has a held-out part."""
    data = source if held_out is None else held_out
    batch = data.get(np.arange(min(PREVIEW_ROWS, len(data))))
    return {k: to_model_input(batch[k]) for k in ("x", "y")}

  def preview(self, state, inputs):
    """input | output | target, two examples a row."""
    x = np.asarray(inputs["x"])
    return reporting.side_by_side(x, self.translate(state, x), inputs["y"])
