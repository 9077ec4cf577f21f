"""What every game's step repeats, written once.

- `Devices`: the pmap axis, or none under jit: averages over it, this device's rows of a draw made
  for the global batch (so pmap reproduces jit), the global batch gathered.
- `apply`: a train-mode forward that threads Flax's other collections (batch statistics).
- `Devices.update`: grads -> mean over the devices -> optax update -> new NetState.
- `ema`: the EMA of G's parameters, with TF's warm-up.
- `d_accuracy`: D's accuracy on reals and fakes, for the health monitor.
- `check_one_image_domain`: the first checks of a game of one model family on one image domain.
- `init_net`, `init_side`: parameters, other collections and optax state of one network, or of
  several networks on one side of a game.
- `g_params`, `infer`: the weights inference uses; a network in inference mode, jitted;
  `in_chunks` runs it over a large batch. `apply_inference`, `image_generator`: the same forward
  unjitted, as the pure function a game's `generator` gives (`gan_jax.api`, `export-model`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax.data import sources
from gan_jax.errors import UserError
from gan_jax.state import NetState


def to_model_input(x):
  """uint8 images -> float32 in [-1, 1]; done on the device so the host ships 4x fewer bytes."""
  if x.dtype == jnp.uint8:
    return x.astype(jnp.float32) / 127.5 - 1.0
  return x.astype(jnp.float32)


class Devices:
  """The data-parallel axis a step runs over: `axis_name` under pmap, None under jit (where the
  global mean is implied by the global batch)."""

  def __init__(self, axis_name=None):
    self.axis_name = axis_name

  def mean(self, tree):
    return jax.lax.pmean(tree, self.axis_name) if self.axis_name else tree

  def count(self):
    return jax.lax.axis_size(self.axis_name) if self.axis_name else 1

  def global_size(self, local_size):
    return local_size * self.count()

  def local(self, x):
    """This device's rows of a draw made for the global batch (identity under jit)."""
    if self.axis_name is None:
      return x
    n = x.shape[0] // self.count()
    return jax.lax.dynamic_slice_in_dim(x, self.offset(n), n)

  def offset(self, local_size):
    """The global index of this device's first row (0 under jit)."""
    if self.axis_name is None:
      return 0
    return jax.lax.axis_index(self.axis_name) * local_size

  def gather(self, x):
    """The global batch of per-device rows `x` (identity under jit)."""
    if self.axis_name is None:
      return x
    return jax.lax.all_gather(x, self.axis_name, tiled=True)

  def update(self, net, grads, tx, collections):
    """One optax step of `net` on grads averaged over the devices; returns (net, those grads)."""
    grads = self.mean(grads)
    updates, opt_state = tx.update(grads, net.opt_state, net.params)
    return NetState(optax.apply_updates(net.params, updates), collections, opt_state), grads


def check_one_image_domain(config, game, family):
  """One UserError unless `config` names `game`'s model (of the same name) and reads one image
  domain; `family` names the model in the message."""
  if config.model.name != game:
    raise UserError(f"--config.model.name={config.model.name!r} is not a model of the {game} "
                    f"game: use {game}.")
  if sources.kind(config.data.source) in sources.TWO_DOMAINS + ("ring2d", "grid2d"):
    raise UserError(f"--config.data.source={config.data.source} is not one image domain: "
                    f"{family} learns images (digits, stacked_digits, folder:PATH, tfds:NAME).")


def d_accuracy(real_logits, fake_logits, threshold=0.0):
  """D's accuracy on one batch: the share of reals it scores above `threshold` (its decision
  boundary) and of fakes below it. Near 1 on both, D wins outright (`gan_jax/health.py`)."""
  return {"d_acc_real": jnp.mean(real_logits > threshold),
          "d_acc_fake": jnp.mean(fake_logits < threshold)}


def apply(model, params, collections, *inputs, rngs=None, train=True, **kwargs):
  """Train-mode forward (`kwargs`: the module's other arguments, or `method=`); returns (output,
  updated collections)."""
  variables = {"params": params, **collections}
  if not collections:
    return model.apply(variables, *inputs, train=train, rngs=rngs, **kwargs), collections
  return model.apply(variables, *inputs, train=train, rngs=rngs, mutable=list(collections),
                     **kwargs)


def ema(g_ema, params, step, decay, start=0):
  """EMA of G's params. Warm-up (as TF's ExponentialMovingAverage with num_updates): early on the
  average would otherwise be mostly the random init. Before step `start` the EMA is a copy of
  G (BigGAN's EMA start, as StudioGAN's g_ema_start), and its warm-up counts from there."""
  if g_ema is None:
    return None
  t = (step - start).astype(jnp.float32)
  decay = jnp.where(t < 0, 0.0, jnp.minimum(decay, (1.0 + t) / (10.0 + t)))
  return ema_update(g_ema, params, decay)


def ema_update(g_ema, params, decay):
  """decay x the average + (1 - decay) x the params."""
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, g_ema, params)


def split_variables(variables):
  variables = dict(variables)
  return variables.pop("params"), variables


def _init_variables(model, key, inputs):
  """(params, other collections) of `model` initialised in train mode on `inputs`; with a
  dropout stream too, for networks that drop out in train mode (pix2pix's U-Net)."""
  return split_variables(model.init({"params": key, "dropout": key}, *inputs, train=True))


def init_net(model, key, tx, *inputs):
  """A NetState for `model`, initialised in train mode on `inputs`."""
  params, collections = _init_variables(model, key, inputs)
  return NetState(params, collections, tx.init(params))


def init_side(tx, **nets):
  """One side of a game with several networks (CycleGAN's two Gs): name=(model, key, inputs)
  -> a NetState whose params and collections are dicts by name, under one optax state."""
  params, collections = {}, {}
  for name, (model, key, inputs) in nets.items():
    params[name], collections[name] = _init_variables(model, key, inputs)
  return NetState(params, collections, tx.init(params))


def copy_params(params, enabled):
  """The EMA's starting point: a copy (no aliasing: the state is donated), or None when off."""
  return jax.tree.map(jnp.copy, params) if enabled else None


def g_params(state, ema):
  """The weights inference uses: G's EMA when asked for and kept, else G's."""
  return state.g_ema if ema and state.g_ema is not None else state.g.params


def apply_inference(model, params, collections, *inputs, **kwargs):
  """`model` in inference mode (running batch statistics, no dropout); `kwargs`: the module's
  other arguments (truncation, noise mode) or `method=` (a method's name). Not jitted: a game's
  `generator` is built on it for callers that jit or export it as they need."""
  return model.apply({"params": params, **collections}, *inputs, train=False, **kwargs)


# One jit for every network's inference: it caches a compiled program per model and shapes.
infer = jax.jit(apply_inference, static_argnums=0, static_argnames=("method", "noise_mode"))


def image_generator(model, params, collections):
  """(fn, variables) of an image-to-image G: fn(variables, images) -> images, pure and jittable
  (float NHWC in [-1, 1] both ways), and the Flax variables it takes."""
  def fn(variables, images):
    return apply_inference(model, *split_variables(variables), images)
  return fn, {"params": params, **collections}


def in_chunks(fn, *inputs, chunk):
  """fn over `inputs` (arrays of one length) `chunk` rows at a time, as one numpy array."""
  n = len(inputs[0])
  return np.concatenate([np.asarray(fn(*(x[i:i + chunk] for x in inputs)))
                         for i in range(0, n, chunk)])
