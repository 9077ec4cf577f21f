"""Training state as pure pytrees: no modules or functions inside, so jit, pmap and orbax see arrays."""
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
from jax.extend import random as jax_random

_RBG = jax_random.rbg_prng_impl


def _rbg_bits(key, bit_width, shape):
  """rbg's random bits, vmap-invariant: under vmap, JAX's rule for RngBitGenerator draws every
  batch member's bits from the first key, so N seeds vmapped in one program would not draw what
  N separate runs draw. Here each key of a batch makes its own draw (as many ops as keys)."""
  @jax.custom_batching.custom_vmap
  def bits(key):
    return _RBG.random_bits(key, bit_width, shape)

  @bits.def_vmap
  def _(axis_size, in_batched, keys):
    if not in_batched[0]:
      return bits(keys), False
    return jnp.stack([bits(keys[i]) for i in range(axis_size)]), True
  return bits(key)


# XLA's RngBitGenerator (its programs compile several times faster on CPU than threefry's), with
# the same bits as JAX's "rbg" for an unbatched key, and the same again under vmap.
RNG_IMPL = jax_random.define_prng_impl(
    key_shape=_RBG.key_shape, seed=_RBG.seed, split=_RBG.split, random_bits=_rbg_bits,
    fold_in=_RBG.fold_in, name="rbg_seedwise", tag="rbgs")


def make_key(seed):
  return jax.random.key(seed, impl=RNG_IMPL)


def as_key(data):
  """A typed key from the raw uint32 data kept in GANState.rng (plain arrays checkpoint simply)."""
  return jax.random.wrap_key_data(data, impl=RNG_IMPL)


def fold_in(rng, data):
  """The raw key data `rng` folded with `data`; a stack of keys (one per seed) key by key."""
  fold = lambda r: jax.random.key_data(jax.random.fold_in(as_key(r), data))
  for _ in range(rng.ndim - 1):
    fold = jax.vmap(fold)
  return fold(rng)


@flax.struct.dataclass
class NetState:
  """One network: its parameters, other Flax collections (batch_stats, ...) and optax state."""
  params: Any
  collections: Any
  opt_state: Any


@flax.struct.dataclass
class GANState:
  step: jax.Array
  g: NetState       # the G side: one network, or several as pytrees inside one NetState
  d: NetState       # the D side, likewise (CycleGAN: params {"a": ..., "b": ...})
  g_ema: Any        # EMA of G's params, or None when train.ema_decay == 0
  rng: jax.Array     # raw key data; as_key(rng) gives the key
  extras: Any       # a game's running arrays (history pools, ADA p, ...); {} when unused
