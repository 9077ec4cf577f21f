"""Training state as pure pytrees: no modules or functions inside, so jit, pmap and orbax see arrays."""
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


# XLA's RngBitGenerator: its programs compile several times faster on CPU than threefry's.
RNG_IMPL = "rbg"


def make_key(seed):
  return jax.random.key(seed, impl=RNG_IMPL)


def as_key(data):
  """A typed key from the raw uint32 data kept in GANState.rng (plain arrays checkpoint simply)."""
  return jax.random.wrap_key_data(data, impl=RNG_IMPL)


@flax.struct.dataclass
class NetState:
  """One network: its parameters, other Flax collections (batch_stats, ...) and optax state."""
  params: Any
  collections: Any
  opt_state: Any


@flax.struct.dataclass
class GANState:
  step: jax.Array
  g: NetState
  d: NetState
  g_ema: Any        # EMA of G's params, or None when train.ema_decay == 0
  rng: jax.Array     # raw key data; as_key(rng) gives the key
  extras: Any       # per-variant scalars (ADA p, path-length mean, ...); {} when unused


def _split_variables(variables):
  variables = dict(variables)
  return variables.pop("params"), variables


def init_state(config, spec, g_model, d_model, g_tx, d_tx):
  """Fresh state from config.seed; the models are the ones without a pmap axis name."""
  k_g, k_d, rng = jax.random.split(make_key(config.seed), 3)
  z = jnp.zeros((2, config.model.latent_dim), jnp.float32)
  x = jnp.zeros((2,) + tuple(spec.shape), jnp.float32)
  labels = jnp.zeros((2,), jnp.int32)
  g_params, g_cols = _split_variables(g_model.init(k_g, z, labels, train=True))
  d_params, d_cols = _split_variables(d_model.init(k_d, x, labels, train=True))
  return GANState(
      step=jnp.zeros((), jnp.int32),
      g=NetState(g_params, g_cols, g_tx.init(g_params)),
      d=NetState(d_params, d_cols, d_tx.init(d_params)),
      g_ema=jax.tree.map(jnp.copy, g_params) if config.train.ema_decay > 0 else None,  # no aliasing: the state is donated
      rng=jax.random.key_data(rng),
      extras={})
