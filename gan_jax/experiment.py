"""Everything a config builds before training or sampling: data spec, models, optimizers, state.

`train`, `sample` and `evaluate` share this, so a workdir's checkpoint is always read back with
the same model it was written with.
"""
import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import checkpoint, config as config_lib, models, optim
from gan_jax.data.sources import DataSpec
from gan_jax.errors import UserError
from gan_jax.state import init_state, make_key


@dataclasses.dataclass
class Experiment:
  config: object
  spec: DataSpec
  g_model: object      # without a pmap axis name: for init and sampling
  d_model: object
  g_tx: object
  d_tx: object

  @classmethod
  def build(cls, config, spec):
    g_model, d_model = models.build(config, spec)
    t = config.train
    return cls(config, spec, g_model, d_model,
               optim.build(config.optim.g, t.steps), optim.build(config.optim.d, t.steps * t.n_critic))

  def models_for(self, axis_name):
    return models.build(self.config, self.spec, axis_name)

  def init_state(self):
    # One compiled init: eagerly, every initializer would be compiled on its own.
    return jax.jit(lambda: init_state(self.config, self.spec, self.g_model, self.d_model,
                                      self.g_tx, self.d_tx))()

  def abstract_state(self, sharding):
    return checkpoint.abstract_like(jax.eval_shape(self.init_state), sharding)

  def generate(self, state, num, seed=0, labels=None, ema=True, chunk=1000):
    """`num` samples from fixed latents of `seed` (numpy), with G in inference mode."""
    params = state.g_ema if ema and state.g_ema is not None else state.g.params
    z = jax.random.normal(make_key(seed), (num, self.config.model.latent_dim))
    if labels is None:
      labels = np.arange(num) % max(self.spec.num_classes, 1)
    labels = jnp.broadcast_to(jnp.asarray(labels, jnp.int32), (num,))
    out = [_generate(self.g_model, params, state.g.collections, z[i:i + chunk], labels[i:i + chunk])
           for i in range(0, num, chunk)]
    return np.concatenate([np.asarray(o) for o in out]), np.asarray(labels)


@functools.partial(jax.jit, static_argnums=0)
def _generate(g_model, params, collections, z, labels):
  return g_model.apply({"params": params, **collections}, z, labels, train=False)


def save_spec(spec, workdir):
  with open(os.path.join(workdir, "data_spec.json"), "w") as f:
    json.dump(dataclasses.asdict(spec), f)


def load(workdir):
  """(Experiment, Checkpointer) for an existing workdir; one clear error when it has no run."""
  paths = [os.path.join(workdir, f) for f in ("config.json", "data_spec.json")]
  if not all(os.path.exists(p) for p in paths):
    raise UserError(f"{workdir} holds no training run: train one first with "
                    f"`gan-jax train --workdir={workdir}`.")
  config = config_lib.load_json(paths[0])
  with open(paths[1]) as f:
    raw = json.load(f)
  spec = DataSpec(tuple(raw["shape"]), raw["dtype"], raw["num_classes"])
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), config.train.keep_checkpoints)
  if ckpt.latest_step() is None:
    raise UserError(f"{workdir} has no checkpoint yet: train longer (a checkpoint is written every "
                    f"train.checkpoint_every={config.train.checkpoint_every} steps) or resume it.")
  return Experiment.build(config, spec), ckpt


def restore_latest(exp, ckpt):
  """The latest checkpointed state, on the default device."""
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  state, _ = ckpt.restore(exp.abstract_state(sharding))
  return state
