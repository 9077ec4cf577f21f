"""The train step: a pure function (state, batch) -> (state, metrics).

`batch["x"]` holds `n_critic` micro-batches of real data, [n_critic, B, ...] (uint8 images or
float points), and `batch["label"]` their labels. One step:
  1. D phase: n_critic D updates, each on its own real micro-batch and fresh fakes;
  2. G phase: one G update through the freshly updated D;
  3. EMA of G's params.
G's forward pass for the G phase is computed once, with `jax.vjp`, and its (detached) output also
feeds the last D update: per step that is one G forward, and D forwards on real, on fake and on
fake again with the updated D, as in the pytorch/examples DCGAN loop.

Under pmap (`axis_name` set) gradients, batch-norm statistics and metrics are averaged over the
axis, and random draws are made for the global batch and sliced, so pmap reproduces jit.
"""
import jax
import jax.numpy as jnp
import optax

from gan_jax.losses import adversarial, regularizers
from gan_jax.state import NetState, as_key


def to_model_input(x):
  """uint8 images -> float32 in [-1, 1]; done on the device so the host ships 4x fewer bytes."""
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 127.5 - 1.0
  return x.astype(jnp.float32)


def make_train_step(config, g_model, d_model, g_tx, d_tx, axis_name=None):
  d_loss_fn, g_loss_fn = adversarial.get(config.loss.adversarial)
  reg = config.loss
  latent_dim = config.model.latent_dim
  n_critic = config.train.n_critic
  ema_decay = config.train.ema_decay

  def across_devices(tree):
    return jax.lax.pmean(tree, axis_name) if axis_name else tree

  def local(x):
    """This device's rows of a draw made for the global batch (identity under jit)."""
    if axis_name is None:
      return x
    n = x.shape[0] // jax.lax.axis_size(axis_name)
    return jax.lax.dynamic_slice_in_dim(x, jax.lax.axis_index(axis_name) * n, n)

  def global_size(local_size):
    return local_size * (jax.lax.axis_size(axis_name) if axis_name else 1)

  def apply(model, params, collections, inputs, labels):
    """Train-mode forward; returns (output, updated collections)."""
    variables = {"params": params, **collections}
    if not collections:
      return model.apply(variables, inputs, labels, train=True), collections
    return model.apply(variables, inputs, labels, train=True, mutable=list(collections))

  def latents(key, local_batch):
    return local(jax.random.normal(key, (global_size(local_batch), latent_dim)))

  def d_update(d, real, labels, fake, key):
    def loss_fn(params):
      real_logits, cols = apply(d_model, params, d.collections, real, labels)
      fake_logits, cols = apply(d_model, params, cols, fake, labels)
      loss, aux = d_loss_fn(real_logits, fake_logits)
      d_fn = lambda x: apply(d_model, params, cols, x, labels)[0]
      if reg.gp_weight > 0:
        eps = local(jax.random.uniform(key, (global_size(real.shape[0]),)))
        aux["gradient_penalty"] = regularizers.gradient_penalty(d_fn, real, fake, eps)
        loss = loss + reg.gp_weight * aux["gradient_penalty"]
      if reg.r1_weight > 0:
        aux["r1_penalty"] = regularizers.r1_penalty(d_fn, real)
        loss = loss + reg.r1_weight * aux["r1_penalty"]
      return loss, (aux, cols, real_logits, fake_logits)

    (loss, (aux, cols, real_logits, fake_logits)), grads = (
        jax.value_and_grad(loss_fn, has_aux=True)(d.params))
    grads = across_devices(grads)
    updates, opt_state = d_tx.update(grads, d.opt_state, d.params)
    params = optax.apply_updates(d.params, updates)
    if reg.weight_clip > 0:
      params = regularizers.clip_weights(params, reg.weight_clip)
    metrics = {"d_loss": loss, "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits),
               "d_grad_norm": optax.tree.norm(grads), **aux}
    return NetState(params, cols, opt_state), metrics

  def train_step(state, batch):
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

    # G phase: gradient of G's loss w.r.t. the fakes through the updated D, then back through G.
    def g_loss_of_fake(fake):
      logits, d_cols = apply(d_model, d.params, d.collections, fake, labels[-1])
      loss, aux = g_loss_fn(logits)
      return loss, (aux, d_cols)
    (g_loss, (g_aux, d_cols)), d_fake = jax.value_and_grad(g_loss_of_fake, has_aux=True)(fake)
    d = d.replace(collections=d_cols)  # D's batch statistics also see this pass, as in PyTorch
    (g_grads,) = g_vjp(d_fake)
    g_grads = across_devices(g_grads)
    updates, g_opt_state = g_tx.update(g_grads, state.g.opt_state, state.g.params)
    g_params = optax.apply_updates(state.g.params, updates)

    g_ema = state.g_ema
    if g_ema is not None:
      # Warm-up (as TF's ExponentialMovingAverage with num_updates): early on the average would
      # otherwise be mostly the random init.
      t = state.step.astype(jnp.float32)
      decay = jnp.minimum(ema_decay, (1.0 + t) / (10.0 + t))
      g_ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, g_ema, g_params)
    metrics.update(g_aux, g_loss=g_loss, g_grad_norm=optax.tree.norm(g_grads))
    new_state = state.replace(step=state.step + 1, g=NetState(g_params, g_collections, g_opt_state),
                              d=d, g_ema=g_ema)
    return new_state, across_devices(metrics)

  return train_step


NEVER = jnp.iinfo(jnp.int32).max


def make_multi_step(train_step):
  """K steps in one call: `batches` leaves have a leading axis K; lax.scan runs them in order.

  Returns the last step's metrics plus `nonfinite_step`: the first step (1-based count) whose
  losses were not finite, or NEVER. K = 1 calls the step directly, without a loop: XLA:CPU
  runs native convolutions inside one (scan's while) ~30x slower. The CPU matmul forms of
  `models/cpu_conv.py` do not suffer from it.
  """
  def checked_step(state, batch):
    state, metrics = train_step(state, batch)
    finite = jnp.isfinite(metrics["d_loss"]) & jnp.isfinite(metrics["g_loss"])
    return state, (metrics, jnp.where(finite, NEVER, state.step))

  def multi_step(state, batches):
    if jax.tree.leaves(batches)[0].shape[0] == 1:
      state, (metrics, bad) = checked_step(state, jax.tree.map(lambda x: x[0], batches))
    else:
      state, (metrics, bad) = jax.lax.scan(checked_step, state, batches)
      metrics, bad = jax.tree.map(lambda m: m[-1], metrics), jnp.min(bad)
    return state, {**metrics, "nonfinite_step": bad}
  return multi_step
