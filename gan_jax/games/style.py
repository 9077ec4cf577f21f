"""The style game: StyleGAN2's training recipe (Karras et al. 2020) on the noise game's inference.

One step is one iteration of stylegan2-ada-pytorch's loop, its phases in its order, each with
fresh latents:
  1. Gmain: fool D with G(z), style mixing with probability `loss.style_mixing` (the layers from
     a random cutoff on take a second latent's w);
  2. Greg, every `loss.pl_interval` steps: path-length penalty on a batch shrunk by
     `loss.pl_batch_shrink`, weight `loss.pl_weight` x the interval; its running mean in extras;
  3. Dmain: logistic loss on reals and on fakes from the updated G;
  4. Dreg, every `loss.r1_interval` steps: R1 on the reals (and, with `loss.r2`, R2 on those
     fakes), gamma / 2 x the interval;
  5. EMA of G with a half-life of `train.ema_kimg` thousand images (ramped up by
     `train.ema_rampup`), ADA's p moved from the sign of D on reals (`augment`).
The lazy phases are `lax.cond`s on the step: one compiled program, the regularizers' work only on
their steps. Their optimizer steps use the same Adam as the main phases, whose learning rate and
betas are corrected for the extra steps as NVIDIA's (lr x c, beta ** c, c = k / (k + 1)).
Every image D sees, in every phase, goes through `augment` (ADA or DiffAugment).

`loss.adversarial=relativistic_pairing` with `loss.r2=True` trains these networks with R3GAN's
loss (RpGAN, each fake paired with a real, + R1 + R2): the R3GAN paper's config-B ablation, the
StyleGAN2 backbone under the new loss (gan_jax/games/r3gan.py plays it on R3GAN's networks).
"""
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import augment as augment_lib
from gan_jax import models, optim
from gan_jax.errors import UserError
from gan_jax.games.common import (Devices, apply, apply_inference, check_one_image_domain,
                                  copy_params, d_accuracy, ema_update, g_params, in_chunks, infer,
                                  init_net, split_variables, to_model_input)
from gan_jax.games.noise import NoiseGame, validate_augment
from gan_jax.losses import adversarial, regularizers
from gan_jax.state import GANState, as_key, make_key


def lazy_optimizer(c, total_steps, interval):
  """Adam for a side regularized every `interval` steps: NVIDIA's correction for the extra
  optimizer steps, lr x c and betas ** c with c = interval / (interval + 1)."""
  c = c.copy_and_resolve_references()
  if interval:
    ratio = interval / (interval + 1)
    c.lr, c.b1, c.b2 = c.lr * ratio, c.b1 ** ratio, c.b2 ** ratio
  return optim.build(c, total_steps)


def freeze_blocks(tx, resolution, blocks):
  """FreezeD (Mo et al. 2020): `tx` with no updates for D's first `blocks` blocks from the input
  (FromRGB and the blocks at resolution, resolution / 2, ...); the rest trains as before."""
  if not blocks:
    return tx
  frozen = tuple(f"b{resolution >> i}_" for i in range(blocks))
  labels = lambda params: {k: "frozen" if k.startswith(frozen) else "trained" for k in params}
  return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)


def half_life_beta(batch_size, nimg):
  """The EMA's weight on the past per step for a half-life of `nimg` images (0: G itself)."""
  return 0.5 ** (batch_size / jnp.maximum(nimg, 1e-8))


def ema_beta(step, batch_size, ema_kimg, rampup):
  """stylegan2-ada-pytorch's EMA: half-life ema_kimg thousand images, limited to `rampup` x the
  images seen so far (none at the first step: the average starts at G)."""
  nimg = jnp.float32(ema_kimg * 1000)
  if rampup:
    nimg = jnp.minimum(nimg, step.astype(jnp.float32) * batch_size * rampup)
  return half_life_beta(batch_size, nimg)


class StyleGame(NoiseGame):
  can_truncate = True  # `gan-jax sample --truncation=PSI`: w pulled toward its tracked average
  spaces = ("z", "w", "w+")
  multi_critic = False
  base_regularizers = ()  # its own lazy R1 (loss.r1_gamma) and path length
  d_penalty_hint = "a stronger R1 penalty (--config.loss.r1_gamma)"

  def __init__(self, config, spec, axis_name=None):
    self.config, self.spec = config, spec
    self.g_model, self.d_model = models.build(config, spec, axis_name)
    t, reg = config.train, config.loss
    self.g_tx = lazy_optimizer(config.optim.g, t.steps, reg.pl_interval if reg.pl_weight else 0)
    self.d_tx = freeze_blocks(
        lazy_optimizer(config.optim.d, t.steps, reg.r1_interval if reg.r1_gamma else 0),
        config.data.resolution, t.freeze_d)
    self.augment = augment_lib.Augment.from_config(config.augment.to_dict())
    self.devices = Devices(axis_name)

  @staticmethod
  def validate(config):
    check_one_image_domain(config, "stylegan2", "StyleGAN2")
    r = config.data.resolution
    if r < 8 or 2 ** int(round(math.log2(r))) != r:
      raise UserError(f"--config.data.resolution={r} is not supported by StyleGAN2: use a power "
                      "of two >= 8.")
    t, reg = config.train, config.loss
    if reg.adversarial not in ("non_saturating", "relativistic_pairing"):
      raise UserError(f"--config.loss.adversarial={reg.adversarial!r}: the stylegan2 game "
                      "plays StyleGAN2's logistic loss or R3GAN's pairing; set it to "
                      "non_saturating or relativistic_pairing.")
    if (reg.adversarial == "relativistic_pairing" and config.augment.kind == "ada"
        and config.augment.target):
      raise UserError("--config.augment.target: ADA adapts p to the sign of D on reals, which "
                      "RpGAN leaves free (its logits are defined up to a constant); keep p "
                      "fixed with --config.augment.target=0, or use augment.kind=diffaugment.")
    if reg.r2 and not reg.r1_gamma:
      raise UserError("--config.loss.r2 takes R1's weight and interval, and "
                      "--config.loss.r1_gamma is 0: set a gamma > 0.")
    if reg.pl_weight and t.batch_size // reg.pl_batch_shrink < 1:
      raise UserError(f"--config.loss.pl_batch_shrink={reg.pl_batch_shrink} leaves no image of "
                      f"a batch of {t.batch_size} for the path-length penalty: lower it.")
    group = min(config.model.mbstd_group or t.batch_size, t.batch_size)
    if t.batch_size % group:
      raise UserError(f"--config.model.mbstd_group={config.model.mbstd_group}: D's "
                      f"minibatch-stddev groups must split the batch of {t.batch_size}; use a "
                      "divisor of it (0 = the whole batch).")
    blocks = int(math.log2(r)) - 2
    if not 0 <= t.freeze_d <= blocks:
      raise UserError(f"--config.train.freeze_d={t.freeze_d}: D has {blocks} blocks before its "
                      f"4x4 output at {r} pixels; freeze 0 to {blocks} of them.")
    validate_augment(config)

  def init(self, seed=None):
    """Fresh state of `seed` (default config.seed; may be traced: `Seeds` vmaps it)."""
    k_g, k_d, rng = jax.random.split(make_key(self.config.seed if seed is None else seed), 3)
    z = jnp.zeros((2, self.config.model.latent_dim), jnp.float32)
    x = jnp.zeros((2,) + tuple(self.spec.shape), jnp.float32)
    labels = jnp.zeros((2,), jnp.int32)
    g = init_net(self.g_model, k_g, self.g_tx, z, labels)
    extras = {"pl_mean": jnp.zeros((), jnp.float32), "pl_penalty": jnp.zeros((), jnp.float32),
              "r1_penalty": jnp.zeros((), jnp.float32), **self.augment.init_extras()}
    if self.config.loss.r2:
      extras["r2_penalty"] = jnp.zeros((), jnp.float32)
    return GANState(step=jnp.zeros((), jnp.int32), g=g,
                    d=init_net(self.d_model, k_d, self.d_tx, x, labels),
                    g_ema=copy_params(g.params, True), rng=jax.random.key_data(rng),
                    extras=extras)

  def train_step(self, state, batch):
    config, dev, reg, G, D = self.config, self.devices, self.config.loss, self.g_model, self.d_model
    num_ws, z_dim = G.num_ws, config.model.latent_dim
    real = to_model_input(batch["x"][-1])
    labels = batch["label"][-1]  # fakes take the reals' labels (conditional models)
    local = real.shape[0]
    step, extras = state.step, state.extras
    k_gmain, k_greg, k_dmain, k_dreg = jax.random.split(
        jax.random.fold_in(as_key(state.rng), step), 4)
    p = extras["augment_p"]
    pairing, r2 = reg.adversarial == "relativistic_pairing", reg.r2

    def see(params, images, key):
      """D's logits of augmented images (every image D sees is augmented)."""
      return apply(D, params, {}, self.augment(images, key, p, dev), labels[:images.shape[0]])[0]

    def mapping(params, cols, key, n):
      """ws of n fresh latents with style mixing; updates w_avg in `cols`."""
      k_z, k_mix_z, k_cut, k_mix = jax.random.split(key, 4)
      draw = lambda k: dev.local(jax.random.normal(k, (dev.global_size(n), z_dim)))
      ws, cols = apply(G, params, cols, draw(k_z), labels[:n], method=G.mapping)
      if reg.style_mixing > 0:
        mixed, _ = apply(G, params, cols, draw(k_mix_z), labels[:n], method=G.mapping,
                         train=False)  # w_avg is not updated by the second latent
        cutoff = jax.random.randint(k_cut, (), 1, num_ws)
        cutoff = jnp.where(jax.random.uniform(k_mix) < reg.style_mixing, cutoff, num_ws)
        ws = jnp.where((jnp.arange(num_ws) < cutoff)[None, :, None], ws, mixed)
      return ws, cols

    def synthesis(params, cols, ws, key):
      return apply(G, params, cols, ws, method=G.synthesis, rngs={"noise": key})[0]

    def generate(params, cols, key, n):
      k_map, k_noise = jax.random.split(key)
      ws, cols = mapping(params, cols, k_map, n)
      return synthesis(params, cols, ws, k_noise), cols

    # Gmain
    def g_main(params):
      k_gen, k_aug = jax.random.split(k_gmain)
      fake, cols = generate(params, state.g.collections, k_gen, local)
      logits = see(state.d.params, fake, k_aug)
      if pairing:  # each fake against a real, whose score is held fixed
        fixed = jax.lax.stop_gradient(see(state.d.params, real, jax.random.fold_in(k_gmain, 1)))
        return adversarial.relativistic_pairing_g_loss(fixed, logits)[0], (cols, logits)
      return jnp.mean(jax.nn.softplus(-logits)), (cols, logits)
    (g_loss, (g_cols, fake_logits_g)), grads = jax.value_and_grad(g_main, has_aux=True)(
        state.g.params)
    g, g_grads = dev.update(state.g, grads, self.g_tx, g_cols)

    # Greg: path-length penalty, lazily
    def g_reg(g, extras):
      n = local // reg.pl_batch_shrink
      k_map, k_noise, k_pl = jax.random.split(k_greg, 3)

      def pl_loss(params):
        ws, cols = mapping(params, g.collections, k_map, n)
        img, pull = jax.vjp(lambda ws: synthesis(params, cols, ws, k_noise), ws)
        h, w = img.shape[1:3]
        noise = dev.local(jax.random.normal(k_pl, (dev.global_size(n),) + img.shape[1:]))
        (ws_grads,) = pull(noise / math.sqrt(h * w))
        lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(ws_grads), axis=2), axis=1))
        pl_mean = extras["pl_mean"] + reg.pl_decay * (
            dev.mean(jnp.mean(lengths)) - extras["pl_mean"])
        penalty = jnp.mean(jnp.square(lengths - jax.lax.stop_gradient(pl_mean)))
        return penalty * reg.pl_weight * reg.pl_interval, (cols, pl_mean, penalty)
      (_, (cols, pl_mean, penalty)), grads = jax.value_and_grad(pl_loss, has_aux=True)(g.params)
      g, _ = dev.update(g, grads, self.g_tx, cols)
      return g, {**extras, "pl_mean": jax.lax.stop_gradient(pl_mean),
                 "pl_penalty": dev.mean(penalty)}
    if reg.pl_weight:
      g, extras = jax.lax.cond(step % reg.pl_interval == 0, g_reg, lambda g, e: (g, e), g, extras)

    # Dmain, on fakes of the updated G
    k_gen, k_aug_fake, k_aug_real = jax.random.split(k_dmain, 3)
    fake, g_cols = generate(g.params, g.collections, k_gen, local)
    g = g.replace(collections=g_cols)
    fake = jax.lax.stop_gradient(fake)

    def d_main(params):
      fake_logits, real_logits = see(params, fake, k_aug_fake), see(params, real, k_aug_real)
      if pairing:
        loss = adversarial.relativistic_pairing_d_loss(real_logits, fake_logits)[0]
      else:
        loss = jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))
      return loss, (fake_logits, real_logits)
    (d_loss, (fake_logits, real_logits)), grads = jax.value_and_grad(d_main, has_aux=True)(
        state.d.params)
    d, d_grads = dev.update(state.d, grads, self.d_tx, {})

    # Dreg: R1 on the reals (and R2 on the fakes), before augmentation, lazily
    def d_reg(d, extras):
      def penalty_at(params, images, key):
        return regularizers.zero_centred_penalty(lambda x: see(params, x, key), images)[0]

      def penalty_loss(params):
        penalties = {"r1_penalty": penalty_at(params, real, k_dreg)}
        if r2:
          penalties["r2_penalty"] = penalty_at(params, fake, jax.random.fold_in(k_dreg, 1))
        return sum(penalties.values()) * (reg.r1_gamma / 2) * reg.r1_interval, penalties
      (_, penalties), grads = jax.value_and_grad(penalty_loss, has_aux=True)(d.params)
      d, _ = dev.update(d, grads, self.d_tx, {})
      return d, {**extras, **dev.mean(penalties)}
    if reg.r1_gamma:
      d, extras = jax.lax.cond(step % reg.r1_interval == 0, d_reg, lambda d, e: (d, e), d, extras)

    extras = self.augment.track(extras, real_logits, step, dev)
    batch_size = dev.global_size(local)
    beta = ema_beta(step, batch_size, config.train.ema_kimg, config.train.ema_rampup)
    metrics = {"d_loss": d_loss, "g_loss": g_loss, "d_real": jnp.mean(real_logits),
               "d_fake": jnp.mean(fake_logits), "d_grad_norm": optax.tree.norm(d_grads),
               "g_grad_norm": optax.tree.norm(g_grads),
               "d_real_sign": jnp.mean(jnp.sign(real_logits)),
               **d_accuracy(real_logits, fake_logits)}
    new_state = state.replace(step=step + 1, g=g, d=d, extras=extras,
                              g_ema=ema_update(state.g_ema, g.params, beta))
    metrics = dev.mean(metrics)
    metrics.update(pl_penalty=extras["pl_penalty"], pl_mean=extras["pl_mean"],
                   r1_penalty=extras["r1_penalty"], augment_p=extras["augment_p"],
                   **({"r2_penalty": extras["r2_penalty"]} if r2 else {}),
                   kimg=(step + 1).astype(jnp.float32) * batch_size / 1000)
    return new_state, metrics

  # --- inference ---------------------------------------------------------------------------

  def latents(self, state, num, seed=0, labels=None, ema=True, truncation=None,
              truncation_cutoff=None):
    """(ws, labels) behind `generate`'s `num` samples of `seed`: the mapping of fixed latents
    (G_ema's, or G's) with the training G's tracked w_avg, truncated toward it by psi =
    `truncation` (for the first `truncation_cutoff` ws; None = 1, no truncation)."""
    z, labels = self.noise(num, seed, labels)
    return self.map(state, z, labels, ema, truncation, truncation_cutoff), labels

  def map(self, state, z, labels, ema=True, truncation=None, truncation_cutoff=None):
    """ws [N, num_ws, w_dim] of z [N, z_dim] (numpy) through the mapping network."""
    psi = 1.0 if truncation is None else truncation
    return np.asarray(infer(self.g_model, g_params(state, ema), state.g.collections, z, labels,
                            method="mapping", truncation_psi=jnp.float32(psi),
                            truncation_cutoff=truncation_cutoff))

  def render(self, state, codes, labels=None, ema=True, chunk=500):
    """Images of ws [N, num_ws, w_dim] with the fixed noise buffers (NVIDIA's
    noise_mode="const"), so the same ws always give the same image."""
    del labels  # the ws carry them
    draw = lambda ws: infer(self.g_model, g_params(state, ema), state.g.collections, ws,
                            method="synthesis", noise_mode="const")
    return in_chunks(draw, codes, chunk=chunk)

  def generator(self, state, ema=True, direction=None, space="z"):
    """(fn, variables) as the noise game's: fn(variables, codes, labels=None) renders codes of
    `space` with the fixed noise buffers (in "noise_const", among the variables): z through the
    mapping, untruncated (`generate` with truncation=None); w [N, w_dim] given to every layer;
    w+ [N, num_ws, w_dim] as they are (labels unused: ws carry them)."""
    del direction
    model = self.g_model

    def fn(variables, codes, labels=None):
      params, collections = split_variables(variables)
      if space == "z":
        labels = jnp.zeros(codes.shape[:1], jnp.int32) if labels is None else labels
        codes = apply_inference(model, params, collections, codes, labels, method="mapping",
                                truncation_psi=jnp.float32(1.0), truncation_cutoff=None)
      elif space == "w":
        codes = jnp.broadcast_to(codes[:, None], (codes.shape[0], model.num_ws, codes.shape[-1]))
      return apply_inference(model, params, collections, codes, method="synthesis",
                             noise_mode="const")
    return fn, {"params": g_params(state, ema), **state.g.collections}

  def code_shapes(self):
    m, n = self.config.model, self.g_model.num_ws
    return {"z": (m.latent_dim,), "w": (self.g_model.w_dim,), "w+": (n, self.g_model.w_dim)}

  def features(self, state, z, labels, ema=True):
    """w [N, w_dim] of z, untruncated: GANSpace's PCA runs on w in StyleGAN."""
    return self.map(state, z, labels, ema)[:, 0]

  def latent_map(self, state, ema=True):
    """("w", A [w_dim, F]): the style affines of every synthesis layer side by side (SeFa's
    weights for StyleGAN: the layers that read w). Each layer's equalized-lr gain is one scalar,
    which SeFa's per-column normalisation removes."""
    flat = flax.traverse_util.flatten_dict(g_params(state, ema))
    kernels = [np.asarray(v) for k, v in sorted(flat.items())
               if "synthesis_network" in k and "affine" in k and k[-1] == "kernel"]
    return "w", np.concatenate(kernels, axis=1)

  def style_groups(self):
    """The ws that modulate coarse (4-8 px), middle (16-32 px) and fine (64 px on, and the last
    ToRGB) layers: the groups of the StyleGAN papers' style-mixing figures."""
    n = self.g_model.num_ws
    return {"coarse": range(0, min(3, n)), "middle": range(3, min(7, n)), "fine": range(7, n)}

  def generate(self, state, num, seed=0, labels=None, ema=True, chunk=500, truncation=None,
               truncation_cutoff=None):
    ws, labels = self.latents(state, num, seed, labels, ema, truncation, truncation_cutoff)
    return self.render(state, ws, ema=ema, chunk=chunk), labels
