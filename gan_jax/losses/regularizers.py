"""Regularizers, each a pure function the config turns on.

`d_fn(x) -> logits[B]` is D applied with fixed parameters; the input-gradient penalties
differentiate it with respect to its input, per sample. `orthogonal_penalty` acts on G's weights.
"""
import jax
import jax.numpy as jnp
import optax


def _input_grads(d_fn, x):
  # Summing logits gives each sample's gradient w.r.t. its own input (samples are independent
  # when D has no batch norm).
  return jax.grad(lambda v: jnp.sum(d_fn(v).astype(jnp.float32)))(x)


def _per_sample_sq_norm(g):
  return jnp.sum(jnp.reshape(g.astype(jnp.float32), (g.shape[0], -1)) ** 2, axis=1)


def gradient_penalty(d_fn, real, fake, eps):
  """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - 1)^2], x_hat = eps real + (1-eps) fake.

  eps has shape [B]: one uniform draw per sample.
  """
  eps = jnp.reshape(eps, (-1,) + (1,) * (real.ndim - 1)).astype(real.dtype)
  x_hat = eps * real + (1.0 - eps) * fake
  norms = jnp.sqrt(_per_sample_sq_norm(_input_grads(d_fn, x_hat)) + 1e-12)
  return jnp.mean((norms - 1.0) ** 2)


def zero_centred_penalty(d_fn, x):
  """(E[||grad D(x)||^2], D(x)): R1 (Mescheder et al. 2018) at reals, R2 (Roth et al. 2017) at
  fakes, with D's logits on x from the same pass (R3GAN's D loss needs both). The config's weight
  is gamma/2."""
  logits, pull = jax.vjp(lambda v: d_fn(v).astype(jnp.float32), x)
  (grads,) = pull(jnp.ones_like(logits))  # per sample: samples are independent in D
  return jnp.mean(_per_sample_sq_norm(grads)), logits


def r1_penalty(d_fn, real):
  """R1 alone: E[||grad D(x)||^2] on real data."""
  return zero_centred_penalty(d_fn, real)[0]


def matching_aware_gp(d_fn, real, text, k=2.0, p=6.0, has_aux=False):
  """DF-GAN's matching-aware zero-centred gradient penalty (MA-GP, Tao et al. 2022):
  k E[||(grad_x D(x, e), grad_e D(x, e))||^p] at real images x with their own sentences e, the
  gradient taken w.r.t. both (the paper's k = 2, p = 6).

  d_fn(x, e) -> logits [B], or (logits, aux) with `has_aux`. Returns (penalty, logits) or
  (penalty, logits, aux): the gradient comes with D's logits on those pairs, so a step's loss
  needs no second pass over them.
  """
  if has_aux:
    logits, pull, aux = jax.vjp(d_fn, real, text, has_aux=True)
  else:
    logits, pull = jax.vjp(d_fn, real, text)
  grad_x, grad_e = pull(jnp.ones_like(logits))  # per sample: samples are independent in D
  squared = _per_sample_sq_norm(grad_x) + _per_sample_sq_norm(grad_e)
  penalty = k * jnp.mean(squared ** (p / 2))  # no square root: smooth at a zero gradient
  return (penalty, logits, aux) if has_aux else (penalty, logits)


def sentence_contrastive(images, sentences, temperature=0.1, first=0):
  """XMC-GAN's sentence-image contrastive loss (Zhang et al. 2021): each image's cosines with
  every sentence of the global batch, over `temperature`, as logits whose class is its own
  sentence; the mean cross-entropy over the images. images [B, K] and sentences [N, K] are unit
  vectors, the images rows first .. first + B - 1 of the global batch."""
  logits = images @ sentences.T / temperature
  labels = first + jnp.arange(images.shape[0])
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def clip_weights(params, c):
  """WGAN weight clipping: every D parameter into [-c, c]."""
  return jax.tree.map(lambda p: jnp.clip(p, -c, c), params)


def orthogonal_penalty(params):
  """BigGAN's orthogonal regularization (Brock et al. 2019, sec. 3.1), off-diagonal form: the sum
  over kernels W of 0.5 ||W W^T * (1 - I)||_F^2, each seen as a matrix [out, -1] (out = the last
  axis: Dense [in, out], HWIO convs). Its gradient is 2 (W W^T * (1 - I)) W, so beta times it is
  the paper's added gradient. Skipped: parameters with fewer than 2 dimensions (biases, norm
  scales, attention's gamma) and embedding tables (leaves named "embedding": class embeddings
  are lookups, not maps of features)."""
  total = jnp.zeros((), jnp.float32)
  for path, w in jax.tree_util.tree_leaves_with_path(params):
    if w.ndim < 2 or getattr(path[-1], "key", None) == "embedding":
      continue
    m = jnp.reshape(w.astype(jnp.float32), (-1, w.shape[-1]))  # W^T
    gram = m.T @ m
    total = total + 0.5 * jnp.sum(jnp.square(gram * (1.0 - jnp.eye(gram.shape[0]))))
  return total
