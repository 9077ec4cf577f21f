"""Training state as pure pytrees: no modules or functions inside, so jit, pmap and orbax see arrays."""
from typing import Any

import flax.struct
import jax


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
  g: NetState       # the G side: one network, or several as pytrees inside one NetState
  d: NetState       # the D side, likewise (CycleGAN: params {"a": ..., "b": ...})
  g_ema: Any        # EMA of G's params, or None when train.ema_decay == 0
  rng: jax.Array     # raw key data; as_key(rng) gives the key
  extras: Any       # a game's running arrays (history pools, ADA p, ...); {} when unused
