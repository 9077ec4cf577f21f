"""Everything a config builds before training or inference: data spec, game (models,
optimizers), state.

`train`, `sample`, `translate` and `evaluate` share this, so a workdir's checkpoint is always read
back with the same game and models it was written with.
"""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp

from gan_jax import checkpoint, config as config_lib, games
from gan_jax.data import captions
from gan_jax.data.sources import DataSpec
from gan_jax.errors import UserError


@dataclasses.dataclass
class Experiment:
  config: object
  spec: DataSpec
  game: object      # built without a pmap axis name: for init, sampling, translation

  @classmethod
  def build(cls, config, spec):
    return cls(config, spec, games.build(config, spec))

  def game_for(self, axis_name):
    """The game with its models built for a pmap axis (None: jit over a mesh)."""
    return games.build(self.config, self.spec, axis_name)

  def init_state(self):
    # One compiled init: eagerly, every initializer would be compiled on its own.
    return jax.jit(self.game.init)()

  def abstract_state(self, sharding):
    """The restore target: the state's shapes placed by `sharding`, one Sharding for every leaf
    or a function of the shapes giving one per leaf (a strategy's `state_shardings`)."""
    shapes = jax.eval_shape(self.game.init)
    return checkpoint.abstract_like(shapes, sharding(shapes) if callable(sharding) else sharding)

  @property
  def num_seeds(self):
    return games.num_seeds(self.config)

  def check_seed_index(self, index):
    """One UserError for a run index (`--seed_index`) this run does not have."""
    n = self.num_seeds
    if not 0 <= index < n:
      trained = f"seeds 0..{n - 1}" if n > 1 else "one seed, index 0"
      raise UserError(f"--seed_index={index} is out of range: this run trained {trained} "
                      f"(train.num_seeds={n}); pick one of those or leave it out.")

  def seed_state(self, state, index):
    """Run `index`'s state: a num_seeds run keeps its runs stacked, a single run is run 0."""
    self.check_seed_index(index)
    return self.game.select(state, index) if self.num_seeds > 1 else state


def save_spec(spec, workdir):
  with open(os.path.join(workdir, "data_spec.json"), "w") as f:
    json.dump(dataclasses.asdict(spec), f)


def load_spec(workdir):
  """The DataSpec `save_spec` wrote; specs saved before captioned data existed have no text_dim
  (0: no text)."""
  with open(os.path.join(workdir, "data_spec.json")) as f:
    raw = json.load(f)
  return DataSpec(tuple(raw["shape"]), raw["dtype"], raw["num_classes"], raw.get("text_dim", 0))


def load(workdir):
  """(Experiment, Checkpointer) for an existing workdir; one clear error when it has no run."""
  paths = [os.path.join(workdir, f) for f in ("config.json", "data_spec.json")]
  if not all(os.path.exists(p) for p in paths):
    raise UserError(f"{workdir} holds no training run: train one first with "
                    f"`gan-jax train --workdir={workdir}`.")
  config = config_lib.load_json(paths[0])
  spec = load_spec(workdir)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), config.train.keep_checkpoints)
  if ckpt.latest_step() is None:
    raise UserError(f"{workdir} has no checkpoint yet: train longer (a checkpoint is written every "
                    f"train.checkpoint_every={config.train.checkpoint_every} steps) or resume it.")
  exp = Experiment.build(config, spec)
  cached = captions.load(workdir) if spec.text_dim else None
  if cached:  # text runs draw the data's captions where none are given
    exp.game.use_captions(*cached[:2])
  return exp, ckpt


def restore(exp, ckpt, step=None):
  """The state of checkpoint `step`, on the default device; by default the latest (a damaged
  latest checkpoint is reported and the one before it read instead). One UserError for a step
  the run did not keep."""
  kept = sorted(ckpt.manager.all_steps())
  if step is not None and step not in kept:
    raise UserError(f"step={step} is not a checkpoint of {os.path.dirname(ckpt.directory)}, "
                    f"which keeps steps {', '.join(map(str, kept))}: pick one of those, or leave "
                    "step out for the latest.")
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  state, _ = ckpt.restore(exp.abstract_state(sharding), step)
  return state


def restore_latest(exp, ckpt):
  """The latest checkpointed state, on the default device (`restore`)."""
  return restore(exp, ckpt)


def load_latest(workdir):
  """(Experiment, latest checkpointed state) of an existing workdir."""
  exp, ckpt = load(workdir)
  try:
    return exp, restore_latest(exp, ckpt)
  finally:
    ckpt.close()


def networks(state, sides=("g", "d")):
  """What fine-tuning carries over: the `sides`' weights and other collections, and G's EMA.
  A game names its `fine_tune_sides` where it differs (ESRGAN's GAN stage starts from the PSNR
  model's G and a fresh D)."""
  nets = {side: (getattr(state, side).params, getattr(state, side).collections)
          for side in sides}
  return {**nets, "g_ema": state.g_ema}


def load_networks(workdir, like, num_seeds=1, sides=("g", "d")):
  """`networks` of the latest checkpoint in `workdir`, checked against those of the state `like`
  (one UserError naming the first difference: fine-tuning needs the same network sizes). A
  one-seed run's networks start each of `num_seeds` > 1 seeds."""
  try:
    source, ckpt = load(workdir)
  except UserError as e:
    raise UserError(f"--config.train.init_from={workdir}: {e}") from None
  try:
    nets = networks(restore_latest(source, ckpt), sides)
  finally:
    ckpt.close()
  if num_seeds > 1 and source.num_seeds == 1:
    nets = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_seeds,) + x.shape), nets)
  shapes = lambda tree: {jax.tree_util.keystr(p): x.shape
                         for p, x in jax.tree_util.tree_leaves_with_path(tree)}
  ours, theirs = shapes(networks(like, sides)), shapes(nets)
  for path in sorted(ours.keys() | theirs.keys()):
    if ours.get(path) != theirs.get(path):
      raise UserError(f"--config.train.init_from={workdir} holds networks of other sizes ("
                      f"{path}: {theirs.get(path)} there, {ours.get(path)} here): fine-tune from a "
                      "run with the same model settings.")
  return nets


def warm_start(state, nets):
  """`state` (fresh: step 0, new optimizers and extras) with the networks `nets`."""
  sides = {side: getattr(state, side).replace(params=nets[side][0], collections=nets[side][1])
           for side in nets if side != "g_ema"}
  return state.replace(g_ema=nets["g_ema"], **sides)
