"""N seeds of one game in one compiled program (`train.num_seeds`): a leading axis on the state.

Run i is the run of seed config.seed + i: its own init, data order (the pipeline stacks N
pipelines, see `data/pipeline.py`) and noise (`state.RNG_IMPL` draws per key under vmap).
Batch leaves carry the seed axis after the per-run batch axis, [n_critic, B, N, ...], so the
strategies shard axis B as they do for one run. Metrics come back as [N] arrays.

`init`, `train_step` and `preview` take the stacked state (what training holds); everything
else is the inner game's, for ONE run's state: `select(state, i)` picks it.
"""
import jax
import jax.numpy as jnp

from gan_jax.models import layers

SEED_AXIS = 2  # of a step's batch leaves: [n_critic, B, N, ...]


class Seeds:

  def __init__(self, game, num_seeds):
    self.game, self.num_seeds = game, num_seeds

  def __getattr__(self, name):  # validate, can_generate, directions, generate, ...: the game's
    return getattr(self.game, name)

  def init(self, seed=None):
    """The states of seeds seed + i (default config.seed + i), stacked."""
    first = self.game.config.seed if seed is None else seed
    # a game may vary settings across the runs too (R3GAN's gamma sweep): [N] values each
    varied = getattr(self.game, "sweep_values", dict)()
    seeds = first + jnp.arange(self.num_seeds)
    return jax.vmap(lambda s, v: self.game.init(s, **v))(seeds, varied)

  def train_step(self, state, batch):
    with layers.batched_runs():
      return jax.vmap(self.game.train_step, in_axes=(0, SEED_AXIS))(state, batch)

  @staticmethod
  def select(state, index):
    """Run `index`'s state out of the stacked one."""
    return jax.tree.map(lambda x: x[index], state)

  def preview(self, state, inputs):
    """Sample grids show seed 0 (the run of config.seed)."""
    return self.game.preview(self.select(state, 0), inputs)
