"""The watermark game: hide K bits in an image so that they survive what happens to pictures,
and keep the marked image indistinguishable from the clean one (HiDDeN, Zhu et al. 2018;
StegaStamp, Tancik et al. 2020; networks in `models/watermark.py`).

The G side holds two networks, the encoder and the decoder, under one optax state; the D side
is a critic of clean against marked. One step on {"x": clean images}, each with a random message:
  1. critic phase: non-saturating loss, clean real and marked fake;
  2. G phase: the decoder's binary cross-entropy on the marked images after `attacks.noisy`
     (a random mix of crop, downscale, blur, JPEG, noise, colour and 8-bit rounding), the same
     on clean images attacked alike toward 1/2 (`loss.clean_weight`: the decoder reads no
     message where none was hidden, so clean images score as chance and the false-positive rate
     follows the binomial), and `loss.critic_weight` x the critic's loss on marked images.
The residual's RMS is fixed by the encoder (`model.strength`), so imperceptibility needs no
image loss; training starts at `loss.strength_start` without attacks and ramps to both over
`loss.ramp_steps`. Inference: `gan_jax.watermark` marks and reads pictures with the trained weights.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import attacks, optim, reporting
from gan_jax.errors import UserError
from gan_jax.games.common import Devices, apply, init_net, to_model_input
from gan_jax.models import watermark as nets
from gan_jax.state import GANState, NetState, as_key, make_key

PREVIEW_ROWS = 8


def networks(config):
  m = config.model
  return (nets.Encoder(m.bits, m.side, m.width, m.strength), nets.Decoder(m.bits, m.side, m.width),
          nets.Critic(m.width))


def bit_accuracy(logits, message):
  return jnp.mean((logits > 0) == (message > 0.5))


class WatermarkGame:
  can_generate = False
  directions = ()
  kind = "watermark"  # what `gan_jax.api` tells a verb that wants a generator or a translator

  def __init__(self, config, spec, axis_name=None):
    self.config, self.spec = config, spec
    self.encoder, self.decoder, self.critic = networks(config)
    self.g_tx = optim.build(config.optim.g, config.train.steps)
    self.d_tx = optim.build(config.optim.d, config.train.steps)
    self.devices = Devices(axis_name)

  @staticmethod
  def validate(config):
    if config.model.name != "watermark":
      raise UserError(f"--config.model.name={config.model.name!r} is not a model of the "
                      "watermark game: use watermark.")
    if config.model.bits < 1 or config.model.side % 4:
      raise UserError("--config.model.bits must be >= 1 and model.side a multiple of 4, got "
                      f"{config.model.bits} and {config.model.side}.")
    if config.data.resolution % 8:
      raise UserError(f"--config.data.resolution={config.data.resolution}: the watermark game "
                      "trains on sides that are multiples of 8 (JPEG's blocks).")

  def init(self, seed=None):
    k_e, k_dec, k_c, rng = jax.random.split(
        make_key(self.config.seed if seed is None else seed), 4)
    r, c = self.config.data.resolution, self.spec.shape[-1]
    images = jnp.zeros((1, r, r, c), jnp.float32)
    message = jnp.zeros((1, self.config.model.bits), jnp.float32)
    # The networks keep no collections: an empty dict per network would not read back.
    params = {"encoder": self.encoder.init(k_e, images, message)["params"],
              "decoder": self.decoder.init(k_dec, images)["params"]}
    g = NetState(params, {}, self.g_tx.init(params))
    return GANState(step=jnp.zeros((), jnp.int32), g=g,
                    d=init_net(self.critic, k_c, self.d_tx, images), g_ema=None,
                    rng=jax.random.key_data(rng), extras={})

  def train_step(self, state, batch):
    dev, reg = self.devices, self.config.loss
    clean = to_model_input(batch["x"][-1])
    # Draws for the global batch, each device taking its rows: jit and pmap agree.
    key = jax.random.fold_in(as_key(state.rng), state.step)
    k_msg, k_marked, k_clean = jax.random.split(key, 3)
    message = dev.local(jax.random.bernoulli(
        k_msg, 0.5, (dev.global_size(clean.shape[0]), self.config.model.bits)))
    message = message.astype(jnp.float32)
    # Training starts loud and unattacked, and the residual's RMS falls geometrically to
    # model.strength as the attacks and the clean term ramp in: at 40 dB from the first step
    # the photos drown the residual and the decoder settles at chance.
    ramp = jnp.minimum(1.0, state.step / max(reg.ramp_steps, 1))
    m = self.config.model
    strength = m.strength * (reg.strength_start / m.strength) ** (1.0 - ramp)
    mark = lambda p: apply(self.encoder, p["encoder"], {}, clean, message, strength)[0]
    decode = lambda p, x: apply(self.decoder, p["decoder"], {}, x)[0]
    critic = lambda p, x: apply(self.critic, p, {}, x)[0]

    marked = jax.lax.stop_gradient(mark(state.g.params))
    def d_loss(params):
      real, fake = critic(params, clean), critic(params, marked)
      return jnp.mean(jax.nn.softplus(-real) + jax.nn.softplus(fake)), (real, fake)
    (d_value, (real, fake)), d_grads = jax.value_and_grad(d_loss, has_aux=True)(state.d.params)
    d, d_grads = dev.update(state.d, d_grads, self.d_tx, {})

    def g_loss(params):
      marked = mark(params)
      logits = decode(params, attacks.noisy(marked, k_marked, reg.attack_p * ramp, dev))
      clean_logits = decode(params, attacks.noisy(clean, k_clean, reg.attack_p * ramp, dev))
      terms = {
          "message": jnp.mean(optax.sigmoid_binary_cross_entropy(logits, message)),
          "clean": jnp.mean(optax.sigmoid_binary_cross_entropy(clean_logits, 0.5)),
          "critic": jnp.mean(jax.nn.softplus(-critic(d.params, marked))),
      }
      total = terms["message"] + ramp * reg.clean_weight * terms["clean"] + (
          reg.critic_weight * terms["critic"])
      return total, (terms, logits, marked)
    (g_value, (terms, logits, marked)), g_grads = jax.value_and_grad(g_loss, has_aux=True)(
        state.g.params)
    g, g_grads = dev.update(state.g, g_grads, self.g_tx, {})
    mse = jnp.mean((marked - clean) ** 2)
    metrics = dict(g_loss=g_value, d_loss=d_value, bit_accuracy=bit_accuracy(logits, message),
                   psnr=10 * jnp.log10(4.0 / jnp.maximum(mse, 1e-12)),
                   d_real=jnp.mean(real), d_fake=jnp.mean(fake),
                   g_grad_norm=optax.tree.norm(g_grads), d_grad_norm=optax.tree.norm(d_grads),
                   **terms)
    return state.replace(step=state.step + 1, g=g, d=d), dev.mean(metrics)

  # --- inference ---------------------------------------------------------------------------

  def preview_inputs(self, source, held_out=None):
    return {"x": source.get(np.arange(min(PREVIEW_ROWS, len(source))))["x"]}

  def preview(self, state, inputs):
    """clean | marked | their difference x 10 (grey is none), a row each."""
    clean = np.asarray(to_model_input(jnp.asarray(inputs["x"])))
    message = jnp.asarray(np.random.default_rng(0).integers(
        0, 2, (len(clean), self.config.model.bits)), jnp.float32)
    marked = np.asarray(apply(self.encoder, state.g.params["encoder"], {}, clean, message,
                              train=False)[0])
    return reporting.side_by_side(clean, marked, np.clip(10 * (marked - clean), -1, 1))
