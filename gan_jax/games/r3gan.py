"""R3GAN's game (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline"):
the noise game's inputs and inference, with RpGAN + R1 + R2 and the paper's schedules.

One step, D then G on the same real batch (the reference draws one for each phase):
  1. D: softplus(-(D(x) - D(G(z)))) + gamma/2 (R1 at x + R2 at G(z)), every step (no lazy
     interval); the penalties differentiate D through the augmentation, at the images before it;
  2. G: softplus(-(D(G(z)) - D(x))) through the updated D, its scores of the reals held fixed;
  3. G's EMA by half-life in images.
Every schedule is a cosine ramp over `train.ramp_kimg` thousand images, a function of the step
(nothing else to keep, so resume stays bitwise exact): the learning rate (optim.*.lr -> lr_final)
and Adam's beta2 (b2 -> b2_final) inside the optax states, gamma (loss.gamma -> gamma_final), the
EMA's half-life (0 -> train.ema_kimg) and augmentation's p (0 -> augment.p).

gamma's starting value is an array in `extras`, so the copies of `gan-jax tune-gamma` (a
`loss.gamma_sweep`, vmapped by `seeds.Seeds`) differ only in it; each ends at its start times the
config's gamma_final / gamma. In a sweep a copy whose losses turn non-finite stops updating and is
marked `diverged`, and the others train on.
"""
import math

import jax
import jax.numpy as jnp
import optax

from gan_jax import optim
from gan_jax.errors import UserError
from gan_jax.games.common import (apply, check_one_image_domain, copy_params, d_accuracy,
                                  ema_update, to_model_input)
from gan_jax.games.noise import NoiseGame, validate_augment
from gan_jax.games.style import half_life_beta
from gan_jax.losses import adversarial, regularizers
from gan_jax.state import as_key


def ramp_steps(config):
  """Steps over which the schedules move: train.ramp_kimg thousand images."""
  return max(int(round(config.train.ramp_kimg * 1000 / config.train.batch_size)), 1)


class R3Game(NoiseGame):
  multi_critic = False
  base_regularizers = ()  # its own R1 and R2 (loss.gamma)
  d_penalty_hint = "a larger gamma (--config.loss.gamma)"

  def __init__(self, config, spec, axis_name=None):
    super().__init__(config, spec, axis_name)
    steps = ramp_steps(config)
    self.g_tx = optim.build(config.optim.g, steps)
    self.d_tx = optim.build(config.optim.d, steps)
    self.sweep = tuple(config.loss.get("gamma_sweep", ()))

  @staticmethod
  def validate(config):
    check_one_image_domain(config, "r3gan", "R3GAN")
    m, r = config.model, config.data.resolution
    if not len(m.widths) == len(m.cardinality) == len(m.blocks) >= 1:
      raise UserError(f"--config.model.widths, cardinality and blocks give one value per stage "
                      f"and have {len(m.widths)}, {len(m.cardinality)} and {len(m.blocks)}: "
                      "give each the same number of stages.")
    if r != 4 * 2 ** (len(m.widths) - 1):
      stages = math.log2(r / 4) + 1
      raise UserError(f"--config.data.resolution={r} is not what {len(m.widths)} stages draw "
                      f"({4 * 2 ** (len(m.widths) - 1)} pixels, 4 doubled per stage): "
                      + (f"give {int(stages)} stages." if stages.is_integer() and stages >= 1
                         else "use 4 x a power of two."))
    for width, groups in zip(m.widths, m.cardinality):
      if (width * m.expansion) % groups:
        raise UserError(f"--config.model.cardinality={groups} does not split a stage's "
                        f"{width * m.expansion} expanded channels (width {width} x expansion "
                        f"{m.expansion}) into equal groups: use a divisor of it.")
    if config.loss.adversarial != "relativistic_pairing":
      raise UserError(f"--config.loss.adversarial={config.loss.adversarial!r}: the r3gan game "
                      "plays RpGAN; set it to relativistic_pairing.")
    if config.augment.kind == "ada" and config.augment.target:
      raise UserError("--config.augment.target: the r3gan game ramps ADA's p from 0 to "
                      "augment.p rather than adapting it; set --config.augment.target=0.")
    sweep = config.loss.get("gamma_sweep", ())
    if sweep and len(sweep) != config.train.num_seeds:
      raise UserError(f"--config.loss.gamma_sweep has {len(sweep)} values and "
                      f"--config.train.num_seeds={config.train.num_seeds}: train one copy per "
                      "value (gan-jax tune-gamma sets both).")
    validate_augment(config)

  def sweep_values(self):
    """What `seeds.Seeds` gives each copy's `init`: its gamma, in a sweep."""
    return {"gamma": jnp.asarray(self.sweep, jnp.float32)} if self.sweep else {}

  def init(self, seed=None, gamma=None):
    state = super().init(seed)
    state = state.replace(g_ema=copy_params(state.g.params, True))  # the EMA is by half-life
    gamma = self.config.loss.gamma if gamma is None else gamma
    extras = {"gamma": jnp.asarray(gamma, jnp.float32)}
    if self.sweep:
      extras["diverged"] = jnp.zeros((), bool)
    return state.replace(extras=extras)

  def train_step(self, state, batch):
    config, dev, G, D = self.config, self.devices, self.g_model, self.d_model
    ramp = lambda base, final: optim.cosine_ramp(state.step, base, final, ramp_steps(config))
    gamma = ramp(state.extras["gamma"], state.extras["gamma"] * config.loss.gamma_final
                 / config.loss.gamma)
    p = ramp(0.0, config.augment.p)
    rng = jax.random.fold_in(as_key(state.rng), state.step)
    k_z, k_real, k_fake, k_g_real, k_g_fake = jax.random.split(rng, 5)
    real, labels = to_model_input(batch["x"][0]), batch["label"][0]
    z = dev.local(jax.random.normal(k_z, (dev.global_size(real.shape[0]),
                                          config.model.latent_dim)))
    fake, g_vjp = jax.vjp(lambda params: apply(G, params, state.g.collections, z, labels)[0],
                          state.g.params)

    def critic(d_params, key):
      see = lambda x: self.augment(x, key, p, dev)
      return lambda x: apply(D, d_params, state.d.collections, see(x), labels)[0]

    def d_loss_fn(params):
      r1, real_logits = regularizers.zero_centred_penalty(critic(params, k_real), real)
      r2, fake_logits = regularizers.zero_centred_penalty(critic(params, k_fake),
                                                          jax.lax.stop_gradient(fake))
      loss, _ = adversarial.relativistic_pairing_d_loss(real_logits, fake_logits)
      return loss + gamma / 2 * (r1 + r2), (loss, r1, r2, real_logits, fake_logits)

    (d_loss, (d_adv, r1, r2, real_logits, fake_logits)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(state.d.params)
    d, d_grads = dev.update(state.d, d_grads, self.d_tx, state.d.collections)

    def g_loss_fn(fake):
      fixed = jax.lax.stop_gradient(critic(d.params, k_g_real)(real))
      return adversarial.relativistic_pairing_g_loss(fixed, critic(d.params, k_g_fake)(fake))[0]

    g_loss, d_fake = jax.value_and_grad(g_loss_fn)(fake)
    g, g_grads = dev.update(state.g, g_vjp(d_fake)[0], self.g_tx, state.g.collections)
    beta = half_life_beta(config.train.batch_size, ramp(0.0, config.train.ema_kimg * 1000))
    metrics = {"d_loss": d_loss, "g_loss": g_loss, "d_adversarial": d_adv, "r1_penalty": r1,
               "r2_penalty": r2, "gamma": gamma, "d_real": jnp.mean(real_logits),
               "d_fake": jnp.mean(fake_logits), "d_grad_norm": optax.tree.norm(d_grads),
               "g_grad_norm": optax.tree.norm(g_grads),
               **d_accuracy(real_logits - fake_logits, fake_logits - real_logits)}
    if config.augment.kind == "ada":
      metrics["augment_p"] = p
    new_state = state.replace(step=state.step + 1, g=g, d=d,
                              g_ema=ema_update(state.g_ema, g.params, beta))
    metrics = dev.mean(metrics)
    if self.sweep:  # a copy that diverges keeps its last finite state and stays out of the check
      finite = jnp.isfinite(metrics["d_loss"]) & jnp.isfinite(metrics["g_loss"])
      diverged = state.extras["diverged"] | ~finite
      new_state = jax.tree.map(lambda new, old: jnp.where(diverged, old, new), new_state,
                               state.replace(step=state.step + 1))
      new_state = new_state.replace(extras={**state.extras, "diverged": diverged})
      metrics["diverged"] = diverged
    return new_state, metrics
