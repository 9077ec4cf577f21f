"""Orbax checkpoints of the train state plus the input pipeline's position."""
import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:

  def __init__(self, directory, keep=2):
    self.manager = ocp.CheckpointManager(
        os.path.abspath(directory), options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=True, create=True))

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step, state, data_state):
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)

  def restore(self, abstract_state, step=None):
    """(state, data_state) of `step` (default: latest), placed as `abstract_state` says."""
    step = self.latest_step() if step is None else step
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored.state, restored.data

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def abstract_like(state, sharding):
  """ShapeDtypeStructs of `state` with one sharding, the restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)
