"""What wraps every game's step: K steps per call and the non-finite check.

A game's `train_step(state, batch) -> (state, metrics)` (see `gan_jax/games`) is pure; every
game reports `d_loss` and `g_loss`, which the check below watches.
"""
import jax
import jax.numpy as jnp

NEVER = jnp.iinfo(jnp.int32).max


def make_multi_step(train_step):
  """K steps in one call: `batches` leaves have a leading axis K; lax.scan runs them in order.

  Returns the last step's metrics plus `nonfinite_step`: the first step (1-based count) whose
  losses were not finite, or NEVER. Under `games.seeds.Seeds` losses are [N] arrays: one seed
  not finite marks the step for all, so the loop stops (or rolls back) the whole program, every
  seed to the same checkpoint, except seeds the game marks `diverged` (a tune-gamma copy that
  stopped updating: the others train on). K = 1 calls the step directly, without a loop:
  XLA:CPU runs native convolutions inside one (scan's while) ~30x slower. The CPU matmul forms of
  `models/cpu_conv.py` do not suffer from it.
  """
  def checked_step(state, batch):
    state, metrics = train_step(state, batch)
    finite = jnp.isfinite(metrics["d_loss"]) & jnp.isfinite(metrics["g_loss"])
    finite = jnp.all(finite | metrics.get("diverged", False))  # seeds a game has let drop out
    return state, (metrics, jnp.where(finite, NEVER, jnp.max(state.step)))

  def multi_step(state, batches):
    if jax.tree.leaves(batches)[0].shape[0] == 1:
      state, (metrics, bad) = checked_step(state, jax.tree.map(lambda x: x[0], batches))
    else:
      state, (metrics, bad) = jax.lax.scan(checked_step, state, batches)
      metrics, bad = jax.tree.map(lambda m: m[-1], metrics), jnp.min(bad)
    return state, {**metrics, "nonfinite_step": bad}
  return multi_step
