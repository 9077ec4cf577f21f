"""How a step runs over devices: `jit` over a mesh (default) or `pmap`; multi-host start-up.

Both strategies run the same step function. Host batches have leaves [K, n_critic, B_local, ...]
(K = steps per call, B_local = this process's share of the global batch).
"""
import os

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def maybe_initialize_distributed():
  """Start jax.distributed when the environment describes a multi-process job.

  Set GAN_JAX_COORDINATOR (host:port), GAN_JAX_NUM_PROCESSES and GAN_JAX_PROCESS_ID; on TPU pods
  and SLURM, GAN_JAX_DISTRIBUTED=1 lets JAX discover them.
  """
  if os.environ.get("GAN_JAX_COORDINATOR"):
    jax.distributed.initialize(
        coordinator_address=os.environ["GAN_JAX_COORDINATOR"],
        num_processes=int(os.environ["GAN_JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["GAN_JAX_PROCESS_ID"]))
  elif os.environ.get("GAN_JAX_DISTRIBUTED") == "1":
    jax.distributed.initialize()


def data_mesh():
  return jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))


class JitStrategy:
  """One mesh axis `data` over every device of every host: batch sharded, state replicated."""
  axis_name = None

  def __init__(self):
    self.mesh = data_mesh()
    self.replicated = NamedSharding(self.mesh, P())
    self.batch = NamedSharding(self.mesh, P(None, None, "data"))

  def compile(self, fn):
    return jax.jit(fn, in_shardings=(self.replicated, self.batch),
                   out_shardings=(self.replicated, self.replicated), donate_argnums=0)

  def put_state(self, state):
    return jax.device_put(state, self.replicated)

  def put_batch(self, batch):
    def put(x):
      global_shape = x.shape[:2] + (x.shape[2] * jax.process_count(),) + x.shape[3:]
      return jax.make_array_from_process_local_data(self.batch, x, global_shape)
    return jax.tree.map(put, batch)

  def host_state(self, state):
    """The state as one replicated copy (for checkpoints and sampling)."""
    return state

  def host_metrics(self, metrics):
    return jax.device_get(metrics)


class PmapStrategy:
  """jax.pmap over this host's devices with axis `data`; the step pmeans grads, BN stats, metrics."""
  axis_name = "data"

  def __init__(self):
    self.mesh = data_mesh()
    self.replicated = NamedSharding(self.mesh, P())
    self.n = jax.local_device_count()

  def compile(self, fn):
    return jax.pmap(fn, axis_name=self.axis_name, donate_argnums=0)

  def put_state(self, state):
    # Through the host: pmap refuses arrays committed to other devices, as restored ones are.
    return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (self.n,) + x.shape), state)

  def put_batch(self, batch):
    def split(x):  # [K, nc, B, ...] -> [devices, K, nc, B / devices, ...]
      x = np.reshape(x, x.shape[:2] + (self.n, x.shape[2] // self.n) + x.shape[3:])
      return np.moveaxis(x, 2, 0)
    return jax.tree.map(split, batch)

  def host_state(self, state):
    return jax.tree.map(lambda x: x[0], state)

  def host_metrics(self, metrics):
    return jax.device_get(jax.tree.map(lambda x: x[0], metrics))


def get(name):
  return {"jit": JitStrategy, "pmap": PmapStrategy}[name]()
