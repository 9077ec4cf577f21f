"""The text game: G(z, e) -> image for a sentence embedding e, D judges (image, sentence) pairs
(DF-GAN, Tao et al. 2022).

`batch["x"]` holds real images [1, B, H, W, C] and `batch["text"]` one unit caption embedding
each [1, B, D]. One step, as DF-GAN's code:
  1. D: hinge loss on real images with their captions (-> real), fakes of those captions (->
     fake) and real images with another example's caption (-> fake), the two fake kinds weighted
     1/2 each; plus MA-GP, k E[||grad_(x, e) D(x, e)||^p] on the real pairs
     (`regularizers.matching_aware_gp`). The mismatched caption of example i is example i + 1's
     in the global batch, so pmap pairs what jit pairs;
  2. G: -D(G(z, e), e) through the updated D;
  with loss.contrastive_weight > 0, XMC-GAN's sentence-image contrastive term joins both losses
  (D: real images against the batch's captions; G: fakes), in D's projection space;
  3. EMA of G's params.
D's blocks run once on the reals: the matched and mismatched pairs share their features
(`Discriminator.features`, `judge`).

Everything after training is the noise game's with `labels` meaning caption embeddings: float32
[N, D] (or one [D] for all) wherever a class label would go (`generate`, `render`, `generator`,
`discriminate`, latent files). Without them, `noise` draws captions of the data (`captions`,
set by training and by `experiment.load` from the workdir's text_embeddings.npz), so evaluation
and the health checks see what training saw; a game with no captions at hand (built from a
config alone) draws random unit vectors of `seed`. Sample grids show a row per caption of the
data.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import models, optim, reporting
from gan_jax.errors import UserError
from gan_jax.games.common import (Devices, apply, copy_params, d_accuracy, ema, in_chunks, infer,
                                  init_net, to_model_input)
from gan_jax.games.noise import NoiseGame
from gan_jax.losses import adversarial, regularizers
from gan_jax.state import GANState, as_key, make_key

TEXT_STREAM = 1  # random embeddings (labels=None) draw apart from z


class TextGame(NoiseGame):
  can_truncate = True  # z from a truncated normal, as the noise game
  multi_critic = False
  base_regularizers = ()  # its own MA-GP (loss.magp_weight)
  d_penalty_hint = "a stronger MA-GP (--config.loss.magp_weight)"

  def __init__(self, config, spec, axis_name=None):
    self.config, self.spec = config, spec
    self.g_model, self.d_model = models.build(config, spec, axis_name)
    t = config.train
    self.g_tx = optim.build(config.optim.g, t.steps)
    self.d_tx = optim.build(config.optim.d, t.steps)
    self.devices = Devices(axis_name)
    self.captions = None  # (texts, embeddings [K, D]) of the data, where known

  def use_captions(self, texts, embeddings):
    """The data's captions, drawn from where no embeddings are given."""
    self.captions = (list(texts), np.asarray(embeddings, np.float32))

  @staticmethod
  def validate(config):
    if config.model.name != "dfgan":
      raise UserError(f"--config.model.name={config.model.name!r} is not a model of the text "
                      "game: use dfgan.")
    if config.loss.adversarial not in adversarial.LOSSES:
      raise UserError(f"--config.loss.adversarial={config.loss.adversarial!r} is not a loss of "
                      f"the text game: choose one of {', '.join(adversarial.LOSSES)}.")
    if config.model.get("g_norm", "none") not in ("none", "instance"):
      raise UserError(f"--config.model.g_norm={config.model.g_norm!r} is not a norm of the DF-GAN: "
                      "use none (the paper's) or instance.")
    r = config.data.resolution
    if r < 8 or 2 ** int(round(math.log2(r))) != r:
      raise UserError(f"--config.data.resolution={r} is not supported by the DF-GAN: use a power "
                      "of two >= 8.")
    if config.augment.kind != "none":
      raise UserError(f"--config.augment.kind={config.augment.kind}: the text game shows D "
                      "unaugmented pairs; set it to none.")
    if config.loss.get("contrastive_weight", 0) and not config.model.get("d_projection"):
      raise UserError("--config.loss.contrastive_weight compares D's features with its sentence "
                      "projection: set --config.model.d_projection=True, or the weight 0.")

  def no_labels(self, num):
    """Zero embeddings: G's and D's text input where none is given (initialisation)."""
    return jnp.zeros((num, self.spec.text_dim), jnp.float32)

  def init(self, seed=None):
    """Fresh state of `seed` (default config.seed; may be traced: `Seeds` vmaps it)."""
    k_g, k_d, rng = jax.random.split(make_key(self.config.seed if seed is None else seed), 3)
    z = jnp.zeros((2, self.config.model.latent_dim), jnp.float32)
    x = jnp.zeros((2,) + tuple(self.spec.shape), jnp.float32)
    g = init_net(self.g_model, k_g, self.g_tx, z, self.no_labels(2))
    return GANState(step=jnp.zeros((), jnp.int32), g=g,
                    d=init_net(self.d_model, k_d, self.d_tx, x, self.no_labels(2)),
                    g_ema=copy_params(g.params, self.config.train.ema_decay > 0),
                    rng=jax.random.key_data(rng), extras={})

  def train_step(self, state, batch):
    config, dev, reg = self.config, self.devices, self.config.loss
    contrast_weight = reg.get("contrastive_weight", 0.0)  # runs saved before it read 0
    G, D = self.g_model, self.d_model
    d_loss_fn, g_loss_fn = adversarial.get(reg.adversarial)
    real = to_model_input(batch["x"][-1])
    text = batch["text"][-1].astype(jnp.float32)
    local = real.shape[0]
    z = dev.local(jax.random.normal(jax.random.fold_in(as_key(state.rng), state.step),
                                    (dev.global_size(local), config.model.latent_dim)))
    mismatched = dev.local(jnp.roll(dev.gather(text), -1, axis=0))

    # G's forward once: its detached output trains D, its VJP trains G.
    fake, g_vjp = jax.vjp(lambda p: apply(G, p, {}, z, text)[0], state.g.params)

    def contrastive(params, h):
      """XMC-GAN's term for features h of this device's images and their captions."""
      images, sentences = apply(D, params, {}, h, text, method="contrast")[0]
      return contrast_weight * regularizers.sentence_contrastive(
          images, dev.gather(sentences), reg.contrastive_temperature, dev.offset(local))

    def d_loss(params):
      features = lambda x: apply(D, params, {}, x, method="features")[0]
      judge = lambda h, e: apply(D, params, {}, h, e, method="judge")[0]

      def on_real(x, e):
        h = features(x)
        return judge(h, e), h
      if reg.magp_weight > 0:
        magp, real_logits, h = regularizers.matching_aware_gp(
            on_real, real, text, reg.magp_weight, reg.magp_power, has_aux=True)
      else:
        (real_logits, h), magp = on_real(real, text), jnp.zeros((), jnp.float32)
      mismatched_logits = judge(h, mismatched)
      fake_logits = judge(features(jax.lax.stop_gradient(fake)), text)
      # Fakes and mismatched pairs are the fake side, half the weight each (equal counts).
      loss, aux = d_loss_fn(real_logits, jnp.concatenate([fake_logits, mismatched_logits]))
      if contrast_weight > 0:  # real images pick their own captions
        aux = {**aux, "d_contrastive": contrastive(params, h)}
        loss += aux["d_contrastive"]
      return loss + magp, (aux, magp, real_logits, fake_logits, mismatched_logits)

    (loss, (aux, magp, real_logits, fake_logits, mismatched_logits)), grads = (
        jax.value_and_grad(d_loss, has_aux=True)(state.d.params))
    d, d_grads = dev.update(state.d, grads, self.d_tx, {})

    def g_loss(fake):
      h = apply(D, d.params, {}, fake, method="features")[0]
      loss, g_aux = g_loss_fn(apply(D, d.params, {}, h, text, method="judge")[0])
      if contrast_weight > 0:  # fakes pick the captions they were drawn for
        g_aux = {**g_aux, "g_contrastive": contrastive(d.params, h)}
        loss += g_aux["g_contrastive"]
      return loss, g_aux
    (g_loss_value, g_aux), d_fake = jax.value_and_grad(g_loss, has_aux=True)(fake)
    (g_grads,) = g_vjp(d_fake)
    g, g_grads = dev.update(state.g, g_grads, self.g_tx, {})

    metrics = {"d_loss": loss, "g_loss": g_loss_value, "magp": magp,
               "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits),
               "d_mismatched": jnp.mean(mismatched_logits),
               "d_grad_norm": optax.tree.norm(d_grads), "g_grad_norm": optax.tree.norm(g_grads),
               **aux, **g_aux, **d_accuracy(real_logits, fake_logits,
                                            adversarial.decision_threshold(reg.adversarial))}
    new_state = state.replace(step=state.step + 1, g=g, d=d,
                              g_ema=ema(state.g_ema, g.params, state.step, config.train.ema_decay,
                                        config.train.ema_start))
    return new_state, dev.mean(metrics)

  # --- inference: the noise game's, labels = caption embeddings -----------------------------

  def noise(self, num, seed=0, labels=None, truncation=None):
    """(z, embeddings [num, D]) of `num` samples of `seed`: z as the noise game draws it; the
    embeddings given (one [D] for all, or one per sample), else those of captions of the data
    drawn by `seed`, else random unit vectors of `seed`."""
    z, _ = super().noise(num, seed, None, truncation)
    if labels is None and self.captions is not None:
      key = jax.random.fold_in(make_key(seed), TEXT_STREAM)
      labels = self.captions[1][np.asarray(jax.random.randint(key, (num,), 0,
                                                              len(self.captions[1])))]
    elif labels is None:
      e = jax.random.normal(jax.random.fold_in(make_key(seed), TEXT_STREAM),
                            (num, self.spec.text_dim))
      labels = e / jnp.linalg.norm(e, axis=-1, keepdims=True)
    labels = np.asarray(labels, np.float32)
    if labels.shape[-1:] != (self.spec.text_dim,) or labels.ndim > 2:
      raise UserError(f"Caption embeddings of shape {labels.shape} do not fit this run, whose "
                      f"captions were embedded in {self.spec.text_dim} dimensions: pass [N, "
                      f"{self.spec.text_dim}] or one [{self.spec.text_dim}] for all samples.")
    return z, np.broadcast_to(labels, (num, self.spec.text_dim))

  def discriminate(self, state, images, labels, chunk=500):
    """D's logits (numpy [N]) for images in [-1, 1] with caption embeddings [N, D]: higher
    reads as a more real, better matched pair."""
    judge = lambda x, e: infer(self.d_model, state.d.params, state.d.collections, x, e)
    return in_chunks(judge, np.asarray(images, np.float32), np.asarray(labels, np.float32),
                     chunk=chunk).reshape(len(images))

  def preview_inputs(self, source, held_out=None):
    """The captions the sample grids show, one row each: (captions or None, embeddings [R, D]),
    a fixed choice of the source's `captions` and `embeddings` where it has them, else
    of its examples' embeddings (then with no words to write)."""
    del held_out
    rows = -(-self.config.sample.num // self.columns())
    rng = np.random.default_rng(self.config.seed)
    captions = getattr(source, "captions", None)
    embeddings = getattr(source, "embeddings", None)
    if captions is not None and embeddings is not None:
      picked = rng.choice(len(captions), rows, replace=len(captions) < rows)
      return [captions[i] for i in picked], np.asarray(embeddings, np.float32)[picked]
    picked = rng.choice(len(source), rows, replace=len(source) < rows)
    return None, np.asarray(source.get(np.sort(picked))["text"], np.float32)

  def columns(self):
    return math.ceil(math.sqrt(self.config.sample.num))

  def preview(self, state, inputs):
    """A grid of samples, a row per caption (written under it), from fixed latents."""
    captions, embeddings = inputs
    cols = self.columns()
    samples, _ = self.generate(state, len(embeddings) * cols, seed=self.config.seed + 1,
                               labels=np.repeat(embeddings, cols, axis=0))
    return reporting.captioned_grid(samples, captions, cols)
