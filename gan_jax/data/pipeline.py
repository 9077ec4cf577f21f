"""Host input pipeline: a seeded, repeating shuffle of a source, one element per train step.

Element s of the grain dataset is the real data for train step s: `n_critic` micro-batches of the
global batch, of which this process keeps its own slice. Because element s is a pure function of
(seed, s), grain's iterator state (a position) restores exactly, and every process agrees on the
global batch whatever the process count.
"""
import functools

import grain
import numpy as np


class StepBatches:
  """Random access: step -> {"x": [n_critic, local_batch, ...], "label": [n_critic, local_batch]}."""

  def __init__(self, source, batch_size, n_critic, seed, process_index=0, process_count=1):
    self.source, self.seed = source, seed
    self.batch_size, self.n_critic = batch_size, n_critic
    local = batch_size // process_count
    self.local = slice(process_index * local, (process_index + 1) * local)

  @functools.lru_cache(maxsize=2)
  def _permutation(self, epoch):
    return np.random.default_rng([self.seed, epoch]).permutation(len(self.source))

  def __getitem__(self, step):
    n = len(self.source)
    per_step = self.batch_size * self.n_critic
    positions = np.arange(step * per_step, (step + 1) * per_step).reshape(self.n_critic, -1)
    positions = positions[:, self.local].ravel()
    epochs, offsets = np.divmod(positions, n)
    indices = np.empty_like(positions)
    for e in np.unique(epochs):
      sel = epochs == e
      indices[sel] = self._permutation(int(e))[offsets[sel]]
    batch = self.source.get(indices)
    return {k: v.reshape((self.n_critic, -1) + v.shape[1:]) for k, v in batch.items()}


def make_iterator(source, config, process_index=0, process_count=1):
  """A grain iterator over train steps; `get_state()`/`set_state()` go into checkpoints."""
  t = config.train
  steps = StepBatches(source, t.batch_size, t.n_critic, config.seed, process_index, process_count)
  ds = grain.MapDataset.range(1 << 40).map(steps.__getitem__)
  return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
