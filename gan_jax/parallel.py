"""How a step runs over devices: `jit` over a mesh (default), `fsdp` (jit with the state sharded)
or `pmap`; multi-host start-up.

Every strategy runs the same step function. Host batches have leaves [K, n_critic, B_local, ...]
(K = steps per call, B_local = this process's share of the global batch).
"""
import math
import os

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from gan_jax.errors import UserError


def distributed_requested():
  """Whether the environment describes a multi-process job.

  Set GAN_JAX_COORDINATOR (host:port), GAN_JAX_NUM_PROCESSES and GAN_JAX_PROCESS_ID; on TPU pods
  and SLURM, GAN_JAX_DISTRIBUTED=1 lets JAX discover them.
  """
  return (bool(os.environ.get("GAN_JAX_COORDINATOR"))
          or os.environ.get("GAN_JAX_DISTRIBUTED") == "1")


def maybe_initialize_distributed():
  """Start jax.distributed when the environment describes a multi-process job.

  GAN_JAX_HEARTBEAT_TIMEOUT (seconds, JAX's default 100) bounds how long the other processes
  wait for one that died before JAX's runtime ends them."""
  if not distributed_requested():
    return
  kwargs = dict(heartbeat_timeout_seconds=_env_int("GAN_JAX_HEARTBEAT_TIMEOUT", 100, minimum=1))
  if os.environ.get("GAN_JAX_COORDINATOR"):
    kwargs.update(coordinator_address=os.environ["GAN_JAX_COORDINATOR"],
                  num_processes=_env_int("GAN_JAX_NUM_PROCESSES", minimum=1),
                  process_id=_env_int("GAN_JAX_PROCESS_ID", minimum=0))
    if kwargs["process_id"] >= kwargs["num_processes"]:
      raise UserError(f"GAN_JAX_PROCESS_ID={kwargs['process_id']} is not below "
                      f"GAN_JAX_NUM_PROCESSES={kwargs['num_processes']}: number the processes "
                      "0, 1, ..., N - 1.")
  jax.distributed.initialize(**kwargs)


def _env_int(name, default=None, minimum=0):
  text = os.environ.get(name, "")
  if not text and default is not None:
    return default
  if not (text.strip().isdigit() and int(text) >= minimum):
    raise UserError(f"{name}={text!r} is not a whole number >= {minimum}: set it to one (README, "
                    "Multi-host, lists the variables a multi-process run reads).")
  return int(text)


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

  def state_shardings(self, abstract_state):
    """Where each leaf of a state of these shapes lives: everywhere, whole."""
    return jax.tree.map(lambda _: self.replicated, abstract_state)

  def compile(self, fn):
    return jax.jit(fn, in_shardings=(self.replicated, self.batch),
                   out_shardings=(self.replicated, self.replicated), donate_argnums=0)

  def put_state(self, state):
    return jax.device_put(state, self.state_shardings(state))

  def put_batch(self, batch):
    def put(x):
      global_shape = x.shape[:2] + (x.shape[2] * jax.process_count(),) + x.shape[3:]
      return jax.make_array_from_process_local_data(self.batch, x, global_shape)
    return jax.tree.map(put, batch)

  def host_state(self, state):
    """The state as one logical copy (for checkpoints and sampling): global arrays, whole on
    every device under jit, split under fsdp."""
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

  # A restored state is read whole onto every device, then `put_state` stacks it per device.
  state_shardings = JitStrategy.state_shardings

  def put_state(self, state):
    # Through the host: pmap refuses arrays committed to other devices, as restored ones are.
    # Then laid out as pmap lays out its outputs: from host arrays the step's first call would
    # compile a program its second call (on the step's outputs) cannot reuse.
    stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (self.n,) + x.shape), state)
    return jax.pmap(lambda s: s, axis_name=self.axis_name, donate_argnums=0)(stacked)

  def put_batch(self, batch):
    def split(x):  # [K, nc, B, ...] -> [devices, K, nc, B / devices, ...]
      x = np.reshape(x, x.shape[:2] + (self.n, x.shape[2] // self.n) + x.shape[3:])
      return np.moveaxis(x, 2, 0)
    return jax.tree.map(split, batch)

  # Device 0's copy, read from its shard on the host: indexing the replicated arrays would run a
  # program over every device for each leaf (XLA:CPU has aborted in one, under load).
  def host_state(self, state):
    first = lambda x: x.addressable_shards[0].data if isinstance(x, jax.Array) else x
    return jax.tree.map(lambda x: np.asarray(first(x))[0], state)

  def host_metrics(self, metrics):
    return self.host_state(metrics)


# Leaves with fewer elements stay whole on every device under fsdp: biases, norms' scales, the
# step, RNG keys. Splitting them saves little memory and costs a gather each.
FSDP_MIN_SIZE = 2**12


class FsdpStrategy(JitStrategy):
  """ZeRO-3 / FSDP: as `jit` (batch sharded on `data`), but each large state leaf (parameters,
  both optax states, EMA) is split over `data` along one dimension, so a device holds about 1/N
  of the state. XLA gathers weights where the step uses them and reduce-scatters the gradients."""

  def state_shardings(self, abstract_state):
    """Each leaf split along its largest dimension that the device count divides (the later one
    on a tie); leaves under FSDP_MIN_SIZE elements or without such a dimension stay whole."""
    n = self.mesh.shape["data"]

    def place(x):
      dims = [(size, axis) for axis, size in enumerate(x.shape) if size % n == 0]
      if math.prod(x.shape) < FSDP_MIN_SIZE or not dims:
        return self.replicated
      _, axis = max(dims)
      return NamedSharding(self.mesh, P(*(("data" if a == axis else None)
                                          for a in range(len(x.shape)))))
    return jax.tree.map(place, abstract_state)

  def compile(self, fn):
    return _JitForState(fn, self)


class _JitForState:
  """`fn` under jax.jit with the state's in and out shardings from `strategy.state_shardings`,
  which need the state's shapes that `compile` is not given: jitted for the first state it is
  called (or lowered) with. Metrics come back replicated; the state is donated."""

  def __init__(self, fn, strategy):
    self.fn, self.strategy, self.jitted = fn, strategy, None

  def _for(self, state):
    if self.jitted is None:
      shardings = self.strategy.state_shardings(state)
      self.jitted = jax.jit(self.fn, in_shardings=(shardings, self.strategy.batch),
                            out_shardings=(shardings, self.strategy.replicated), donate_argnums=0)
    return self.jitted

  def __call__(self, state, batch):
    return self._for(state)(state, batch)

  def lower(self, state, batch):
    return self._for(state).lower(state, batch)


def get(name):
  return {"jit": JitStrategy, "pmap": PmapStrategy, "fsdp": FsdpStrategy}[name]()
