"""The noise game: G(z, label) -> sample, one D judges it (DCGAN, cGAN, WGAN(-GP), the 2D MLP GANs,
SNGAN / SAGAN / BigGAN).

`batch["x"]` holds `n_critic` micro-batches of real data, [n_critic, B, ...] (uint8 images or
float points), and `batch["label"]` their labels. One step:
  1. D phase: n_critic D updates, each on its own real micro-batch and fresh fakes;
  2. G phase: one G update through the freshly updated D;
  3. EMA of G's params.
G's forward pass for the G phase is computed once, with `jax.vjp`, and its (detached) output also
feeds the last D update: per step that is one G forward, and D forwards on real, on fake and on
fake again with the updated D, as in the pytorch/examples DCGAN loop.

Inference draws samples from fixed latents of a seed (and labels, for conditional models).
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import augment as augment_lib
from gan_jax import models, optim, reporting
from gan_jax.config import BASE_REGULARIZERS
from gan_jax.data import sources
from gan_jax.errors import UserError
from gan_jax.games.common import (Devices, apply, apply_inference, copy_params, d_accuracy, ema,
                                  g_params, in_chunks, infer, init_net, split_variables,
                                  to_model_input)
from gan_jax.losses import adversarial, regularizers
from gan_jax.models import resnet
from gan_jax.state import GANState, as_key, make_key

MODELS = ("dcgan", "resnet", "mlp")
RESNET_KEYS = ("g_spectral_norm", "attention_res", "shared_dim")  # set by config.resnet_gan


def validate_augment(config):
  """One UserError for augmentation settings `Augment` cannot take."""
  try:
    augment_lib.Augment.from_config(config.augment.to_dict())
  except ValueError as e:
    raise UserError(f"--config.augment: {e}.") from None


def validate_resnet(config):
  """One UserError for ResNet GAN settings its modules cannot build."""
  m, r = config.model, config.data.resolution
  missing = [k for k in RESNET_KEYS if k not in m]
  if missing:
    raise UserError(f"--config.model.name=resnet needs the ResNet GAN's settings ("
                    f"{', '.join(missing)}), which this config lacks: start from "
                    "configs/sngan_cifar32.py instead.")
  if r not in resnet.G_CHANNELS:
    raise UserError(f"--config.data.resolution={r} is not a ResNet GAN size: use "
                    f"{', '.join(map(str, resnet.G_CHANNELS))}.")
  chunks = resnet.num_blocks(r) + 1
  if m.shared_dim and m.latent_dim % chunks:
    raise UserError(f"--config.model.latent_dim={m.latent_dim} does not split into the {chunks} "
                    f"equal chunks of hierarchical z at resolution {r}: use a multiple of {chunks}.")
  sides = sorted(set(resnet.g_sides(r)) & set(resnet.d_sides(r)))
  if m.attention_res and m.attention_res not in sides:
    raise UserError(f"--config.model.attention_res={m.attention_res} is not a side both G's and "
                    f"D's blocks output at resolution {r}: use one of "
                    f"{', '.join(map(str, sides))}, or 0.")


def first_reader(model, params, collections, z, labels):
  """fn(z, labels) -> the output of the first layer of G (`model`, in inference mode) whose
  output changes with z: found by running G on two z (`z`, `z` + 1) and comparing the outputs
  of its layers in the order they finish (layers inside others finish first)."""
  def outputs(z, labels):
    finished = []

    def record(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if context.method_name == "__call__" and isinstance(out, jax.Array):
        finished.append(out)
      return out
    with nn.intercept_methods(record):
      apply_inference(model, params, collections, z, labels)
    return finished

  run = jax.jit(outputs)  # one program for both z
  a, b = run(z, labels), run(z + 1.0, labels)
  index = next(i for i, (x, y) in enumerate(zip(a, b))
               if x.shape == y.shape and not np.array_equal(np.asarray(x), np.asarray(y)))
  return lambda z, labels: outputs(z, labels)[index]


class NoiseGame:
  can_generate = True   # `gan-jax sample` draws from it
  can_truncate = True   # `gan-jax sample --truncation=T`: z from a normal truncated at +-T
  directions = ()       # nothing to translate
  spaces = ("z",)       # the latent spaces G reads (`gan_jax.latents`)
  base_regularizers = BASE_REGULARIZERS  # base_config's loss terms it reads (all)
  multi_critic = True   # reads train.n_critic (D updates per G update); other games refuse it
  d_penalty_hint = "an R1 or gradient penalty (--config.loss.r1_weight, --config.loss.gp_weight)"

  def __init__(self, config, spec, axis_name=None):
    self.config, self.spec = config, spec
    self.g_model, self.d_model = models.build(config, spec, axis_name)
    t = config.train
    self.g_tx = optim.build(config.optim.g, t.steps)
    self.d_tx = optim.build(config.optim.d, t.steps * t.n_critic)
    self.augment = augment_lib.Augment.from_config(config.augment.to_dict())
    self.devices = Devices(axis_name)

  @staticmethod
  def validate(config):
    if config.loss.adversarial not in adversarial.LOSSES:
      raise UserError(f"--config.loss.adversarial={config.loss.adversarial!r} is not a loss of the "
                      f"noise game: choose one of {', '.join(adversarial.LOSSES)}.")
    if config.model.name not in MODELS:
      raise UserError(f"--config.model.name={config.model.name!r} is not a model of the noise "
                      f"game: choose one of {', '.join(MODELS)}.")
    if sources.kind(config.data.source) in sources.TWO_DOMAINS:
      raise UserError(f"--config.data.source={config.data.source} gives two image domains (x "
                      f"and y) for translation games, but the {config.model.name} model learns "
                      "one: use digits, folder:PATH or tfds:NAME instead.")
    if config.augment.kind != "none" and config.model.name == "mlp":
      raise UserError(f"--config.augment.kind={config.augment.kind} augments images, and the "
                      f"{config.model.name} model learns points: set it to none.")
    validate_augment(config)
    if config.model.name == "resnet":
      validate_resnet(config)
    if config.model.name == "dcgan":
      r = config.data.resolution
      if r < 8 or 2 ** int(round(math.log2(r))) != r:
        raise UserError(f"--config.data.resolution={r} is not supported by the DCGAN: use a "
                        "power of two >= 8.")
      if config.loss.gp_weight > 0 and config.model.d_norm == "batch":
        raise UserError("A gradient penalty needs a D without batch norm: set "
                        "--config.model.d_norm=layer (or none).")
    if config.loss.ortho_weight and config.model.name == "mlp":
      raise UserError("--config.loss.ortho_weight regularizes conv and linear kernels of image "
                      "generators: set it 0 for the MLP GAN.")

  def init(self, seed=None):
    """Fresh state of `seed` (default config.seed; may be traced: `Seeds` vmaps it)."""
    k_g, k_d, rng = jax.random.split(make_key(self.config.seed if seed is None else seed), 3)
    z = jnp.zeros((2, self.config.model.latent_dim), jnp.float32)
    x = jnp.zeros((2,) + tuple(self.spec.shape), jnp.float32)
    labels = self.no_labels(2)
    g = init_net(self.g_model, k_g, self.g_tx, z, labels)
    return GANState(step=jnp.zeros((), jnp.int32), g=g,
                    d=init_net(self.d_model, k_d, self.d_tx, x, labels),
                    g_ema=copy_params(g.params, self.config.train.ema_decay > 0),
                    rng=jax.random.key_data(rng),
                    extras=self.augment.init_extras() if self.augment.kind != "none" else {})

  def train_step(self, state, batch):
    config, dev = self.config, self.devices
    g_model, d_model, reg = self.g_model, self.d_model, config.loss
    d_loss_fn, g_loss_fn = adversarial.get(reg.adversarial)
    latent_dim, n_critic = config.model.latent_dim, config.train.n_critic
    threshold = adversarial.decision_threshold(reg.adversarial)

    def latents(key, local_batch):
      return dev.local(jax.random.normal(key, (dev.global_size(local_batch), latent_dim)))

    # What D sees goes through `augment` (identity for kind "none"), with keys folded from the
    # phases' own, so that runs without it draw exactly what they drew before.
    p = state.extras.get("augment_p", 0.0)
    see = lambda x, key: self.augment(x, key, p, dev)

    def d_update(d, real, labels, fake, key):
      k_real, k_fake, k_reg = jax.random.split(jax.random.fold_in(key, 1), 3)

      def loss_fn(params):
        real_logits, cols = apply(d_model, params, d.collections, see(real, k_real), labels)
        fake_logits, cols = apply(d_model, params, cols, see(fake, k_fake), labels)
        loss, aux = d_loss_fn(real_logits, fake_logits)
        d_fn = lambda x: apply(d_model, params, cols, see(x, k_reg), labels)[0]
        if reg.gp_weight > 0:
          eps = dev.local(jax.random.uniform(key, (dev.global_size(real.shape[0]),)))
          aux["gradient_penalty"] = regularizers.gradient_penalty(d_fn, real, fake, eps)
          loss = loss + reg.gp_weight * aux["gradient_penalty"]
        if reg.r1_weight > 0:
          aux["r1_penalty"] = regularizers.r1_penalty(d_fn, real)
          loss = loss + reg.r1_weight * aux["r1_penalty"]
        return loss, (aux, cols, real_logits, fake_logits)

      (loss, (aux, cols, real_logits, fake_logits)), grads = (
          jax.value_and_grad(loss_fn, has_aux=True)(d.params))
      d, grads = dev.update(d, grads, self.d_tx, cols)
      if reg.weight_clip > 0:
        d = d.replace(params=regularizers.clip_weights(d.params, reg.weight_clip))
      metrics = {"d_loss": loss, "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits),
                 "d_grad_norm": optax.tree.norm(grads), "real_logits": real_logits, **aux}
      if threshold is not None:
        metrics.update(d_accuracy(real_logits, fake_logits, threshold))
      return d, metrics

    rng = jax.random.fold_in(as_key(state.rng), state.step)
    k_g, k_d = jax.random.split(rng)
    real = to_model_input(batch["x"])
    labels = batch["label"]  # unconditional models ignore them
    local_batch = real.shape[1]

    # G forward for the G phase, once; its detached output also serves the last D update.
    z = latents(k_g, local_batch)
    g_fwd = lambda params: apply(g_model, params, state.g.collections, z, labels[-1])
    fake, g_vjp, g_collections = jax.vjp(g_fwd, state.g.params, has_aux=True)

    d = state.d
    d_keys = jax.random.split(k_d, n_critic)
    if n_critic > 1:
      def critic_update(d, xs):
        real_i, labels_i, key = xs
        k_z, k_reg = jax.random.split(key)
        fake_i, _ = apply(g_model, state.g.params, state.g.collections,
                          latents(k_z, local_batch), labels_i)
        return d_update(d, real_i, labels_i, jax.lax.stop_gradient(fake_i), k_reg)
      d, _ = jax.lax.scan(critic_update, d, (real[:-1], labels[:-1], d_keys[:-1]))
    d, metrics = d_update(d, real[-1], labels[-1], jax.lax.stop_gradient(fake), d_keys[-1])
    extras = self.augment.track(state.extras, metrics.pop("real_logits"), state.step, dev)

    # G phase: gradient of G's loss w.r.t. the fakes through the updated D, then back through G.
    def g_loss_of_fake(fake):
      seen = see(fake, jax.random.fold_in(k_g, 1))
      logits, d_cols = apply(d_model, d.params, d.collections, seen, labels[-1])
      loss, aux = g_loss_fn(logits)
      return loss, (aux, d_cols)
    (g_loss, (g_aux, d_cols)), d_fake = jax.value_and_grad(g_loss_of_fake, has_aux=True)(fake)
    d = d.replace(collections=d_cols)  # D's batch statistics also see this pass, as in PyTorch
    (g_grads,) = g_vjp(d_fake)
    if reg.ortho_weight > 0:
      ortho, ortho_grads = jax.value_and_grad(regularizers.orthogonal_penalty)(state.g.params)
      g_grads = jax.tree.map(lambda g, o: g + reg.ortho_weight * o, g_grads, ortho_grads)
      g_aux["ortho_penalty"] = ortho
    g, g_grads = dev.update(state.g, g_grads, self.g_tx, g_collections)

    metrics.update(g_aux, g_loss=g_loss, g_grad_norm=optax.tree.norm(g_grads))
    if "augment_p" in extras:
      metrics["augment_p"] = extras["augment_p"]
    new_state = state.replace(step=state.step + 1, g=g, d=d, extras=extras,
                              g_ema=ema(state.g_ema, g.params, state.step, config.train.ema_decay,
                                        config.train.ema_start))
    return new_state, dev.mean(metrics)

  # --- inference ---------------------------------------------------------------------------

  def no_labels(self, num):
    """G's and D's label input where none is given (initialisation, a bare `generator` call):
    class 0."""
    return jnp.zeros((num,), jnp.int32)

  def latents(self, state, num, seed=0, labels=None, ema=True, truncation=None):
    """(codes, labels) behind `generate`'s `num` samples of `seed`: G's inputs z here."""
    del state, ema  # z does not depend on the weights
    return self.noise(num, seed, labels, truncation)

  def noise(self, num, seed=0, labels=None, truncation=None):
    """(z, labels) of `num` samples of `seed`: z drawn from a normal, truncated at
    +-`truncation` when given (BigGAN's truncation trick: fidelity for variety); labels cycle
    through the classes unless given."""
    shape = (num, self.config.model.latent_dim)
    if truncation is None:
      z = jax.random.normal(make_key(seed), shape)
    elif truncation <= 0:
      raise UserError(f"--truncation={truncation} leaves no z to draw: give a threshold > 0 "
                      "(0.5 to 2 are usual).")
    else:
      z = jax.random.truncated_normal(make_key(seed), -truncation, truncation, shape)
    if labels is None:
      labels = np.arange(num) % max(self.spec.num_classes, 1)
    return np.asarray(z), np.broadcast_to(np.asarray(labels, np.int32), (num,))

  def render(self, state, codes, labels, ema=True, chunk=1000):
    """Images (numpy) of `latents`' codes, with G in inference mode."""
    params = g_params(state, ema)
    draw = lambda z, labels: infer(self.g_model, params, state.g.collections, z, labels)
    return in_chunks(draw, codes, labels, chunk=chunk)

  def generator(self, state, ema=True, direction=None, space="z"):
    """(fn, variables): G in inference mode as a pure, jittable fn(variables, z, labels=None) ->
    samples (labels: int32 [N] classes or float32 [N, classes] mixes of them, none for an
    unconditional G), and the Flax variables it takes: G's EMA weights (or G's) and its other
    collections. `generate` without truncation draws the same samples from `latents`' z."""
    del direction  # one G
    if space != "z":
      raise ValueError(f"{self.config.model.name} reads z only, not {space}")
    model = self.g_model

    def fn(variables, z, labels=None):
      labels = self.no_labels(z.shape[0]) if labels is None else labels
      return apply_inference(model, *split_variables(variables), z, labels)
    return fn, {"params": g_params(state, ema), **state.g.collections}

  def code_shapes(self):
    """The shape of one code in each of `spaces`."""
    return {"z": (self.config.model.latent_dim,)}

  def features(self, state, z, labels, ema=True):
    """The output of G's first layer that reads z, flattened [N, F] (GANSpace's early
    features), for z [N, latent_dim] (numpy)."""
    reader = first_reader(self.g_model, g_params(state, ema), state.g.collections, z[:2],
                          labels[:2])
    run = jax.jit(lambda z, labels: reader(z, labels).reshape(len(z), -1))
    return in_chunks(run, np.asarray(z, np.float32), np.asarray(labels), chunk=1000)

  def latent_map(self, state, ema=True):
    """("z", A [latent_dim, F]): the linear map from z to G's first layer that reads it (SeFa's
    weights; the same map whatever the layer: a dense layer, a transposed conv of a 1x1 input,
    spectrally normalized or not; the label's part of the layer is left out)."""
    dim = self.config.model.latent_dim
    z, labels = np.zeros((2, dim), np.float32), np.asarray(self.no_labels(2))
    reader = first_reader(self.g_model, g_params(state, ema), state.g.collections, z, labels)
    out = lambda z: reader(z[None], labels[:1]).reshape(-1)
    jac = np.asarray(jax.jit(jax.jacrev(out))(jnp.zeros((dim,), jnp.float32)))  # [F, dim]
    ones = np.ones((1, dim), np.float32)
    out = jax.jit(out)
    if not np.allclose(np.asarray(out(ones[0])) - np.asarray(out(0 * ones[0])), jac.sum(1),
                       atol=1e-4, rtol=1e-3):
      raise UserError(f"The first layer of {self.config.model.name}'s G that reads z is not "
                      "linear in it, so SeFa has no closed form here: use --method=ganspace.")
    return "z", jac.T

  def style_groups(self):
    """Named groups of per-layer styles (`sample --mix`): none, z feeds every layer at once."""
    return {}

  def generate(self, state, num, seed=0, labels=None, ema=True, chunk=1000, truncation=None):
    """`num` samples from fixed latents of `seed` (numpy), with G in inference mode."""
    codes, labels = self.latents(state, num, seed, labels, ema, truncation)
    return self.render(state, codes, labels, ema, chunk), labels

  def discriminate(self, state, images, labels, chunk=500):
    """D's logits (numpy [N]) for images in [-1, 1], with D in inference mode: higher reads as
    more real (`export --filter=discriminator:Q`)."""
    judge = lambda x, labels: infer(self.d_model, state.d.params, state.d.collections, x, labels)
    return in_chunks(judge, np.asarray(images, np.float32), np.asarray(labels, np.int32),
                     chunk=chunk).reshape(len(images))

  def preview_inputs(self, source, held_out=None):
    """What each preview needs from the data: real 2D points drawn under the samples."""
    if len(self.spec.shape) != 1:
      return None
    rng = np.random.default_rng(self.config.seed)
    return source.get(rng.choice(len(source), min(2000, len(source)), replace=False))["x"]

  def preview(self, state, reference):
    """The picture of a sample grid: images from fixed latents, or 2D points over the data."""
    samples, _ = self.generate(state, self.config.sample.num, seed=self.config.seed + 1)
    return reporting.sample_picture(samples, reference)

