"""The cycle game: two image domains without pairs (CycleGAN, Zhu et al. 2017).

The G side holds G_ab (A -> B) and G_ba, the D side D_a and D_b (each judges its own domain), all
under one optax state per side. One step on {"x": images of A, "y": images of B}:
  1. G phase, through the current Ds: fool D_b with G_ab(a) and D_a with G_ba(b) (weighted by
     `loss.adversarial_weight`), plus
     `loss.cycle_weight` * (|G_ba(G_ab(a)) - a| + |G_ab(G_ba(b)) - b|), plus
     `loss.identity_weight` * cycle_weight * (|G_ab(b) - b| + |G_ba(a) - a|);
  2. D phase: reals against fakes drawn from a history pool of `train.history_pool` earlier fakes
     per domain (Shrivastava et al. 2017), each D's loss halved.
The pools and their fill count live in `state.extras`, drawn from the step's own key, so resume
is bitwise exact. Inference translates images either way: `translate(state, images, direction)`.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import reporting
from gan_jax.games.common import (apply, copy_params, ema, g_params, image_generator, in_chunks,
                                  infer, init_side, to_model_input)
from gan_jax.games.paired import PREVIEW_ROWS, Translator, validate_translation
from gan_jax.losses import adversarial
from gan_jax.state import GANState, as_key, make_key

NETS = {"AtoB": "ab", "BtoA": "ba"}


def query_pool(pool, fill, images, key):
  """CycleGAN's image pool over a batch, one image at a time: while the pool fills, each fake is
  stored and used; then, with probability 1/2, a fake replaces a random stored one, which D sees
  instead. Returns (images D sees, pool, fill)."""
  size = pool.shape[0]

  def one(carry, inputs):
    pool, fill = carry
    image, key = inputs
    k_swap, k_index = jax.random.split(key)
    filling = fill < size
    swap = jax.random.uniform(k_swap) > 0.5
    index = jnp.where(filling, fill, jax.random.randint(k_index, (), 0, size))
    stored = pool[index]
    shown = jnp.where(filling | ~swap, image, stored)
    pool = pool.at[index].set(jnp.where(filling | swap, image, stored))
    return (pool, fill + filling.astype(fill.dtype)), shown

  keys = jax.random.split(key, images.shape[0])
  (pool, fill), shown = jax.lax.scan(one, (pool, fill), (images, keys))
  return shown, pool, fill


def _two_domains(data, rows):
  """The first `rows` images of each domain (aligned when the data pairs them)."""
  domains = getattr(data, "domains", None)
  if domains is None:
    batch = data.get(np.arange(min(rows, len(data))))
    return batch["x"], batch["y"]
  return tuple(d.get(np.arange(min(rows, len(d))))["x"] for d in domains)


class CycleGame(Translator):
  directions = tuple(NETS)

  @staticmethod
  def validate(config):
    validate_translation(config, "cycle", needs_pairs=False)

  def init(self, seed=None):
    """Fresh state of `seed` (default config.seed; may be traced: `Seeds` vmaps it)."""
    keys = jax.random.split(make_key(self.config.seed if seed is None else seed), 5)
    x = jnp.zeros((1,) + tuple(self.spec.shape), jnp.float32)
    g = init_side(self.g_tx, ab=(self.g_model, keys[0], (x,)), ba=(self.g_model, keys[1], (x,)))
    d = init_side(self.d_tx, a=(self.d_model, keys[2], (x,)), b=(self.d_model, keys[3], (x,)))
    pool = jnp.zeros((self.config.train.history_pool,) + tuple(self.spec.shape), jnp.float32)
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d,
                    g_ema=copy_params(g.params, self.config.train.ema_decay > 0),
                    rng=jax.random.key_data(keys[4]),
                    extras={"pool_a": pool, "pool_b": jnp.copy(pool),
                            "pool_fill": jnp.zeros((), jnp.int32)})

  def train_step(self, state, batch):
    dev, reg = self.devices, self.config.loss
    d_loss_fn, g_loss_fn = adversarial.get_targets(reg.adversarial)
    a, b = to_model_input(batch["x"][-1]), to_model_input(batch["y"][-1])
    k_drop, k_pool_a, k_pool_b = jax.random.split(
        jax.random.fold_in(as_key(state.rng), state.step), 3)

    def run(model, params, collections, name, x):
      out, collections[name] = apply(model, params[name], collections[name], x,
                                     rngs={"dropout": k_drop})
      return out

    def g_loss(params):
      g_cols, d_cols = dict(state.g.collections), dict(state.d.collections)
      G = lambda name, x: run(self.g_model, params, g_cols, name, x)
      D = lambda name, x: run(self.d_model, state.d.params, d_cols, name, x)
      fake_b, fake_a = G("ab", a), G("ba", b)
      cycle = jnp.mean(jnp.abs(G("ba", fake_b) - a)) + jnp.mean(jnp.abs(G("ab", fake_a) - b))
      identity = (jnp.mean(jnp.abs(G("ab", b) - b)) + jnp.mean(jnp.abs(G("ba", a) - a))
                  if reg.identity_weight > 0 else jnp.zeros(()))
      adv = g_loss_fn(D("b", fake_b))[0] + g_loss_fn(D("a", fake_a))[0]
      loss = (reg.adversarial_weight * adv
              + reg.cycle_weight * (cycle + reg.identity_weight * identity))
      return loss, ({"g_adversarial": adv, "cycle": cycle, "identity": identity},
                    g_cols, d_cols, fake_a, fake_b)

    (g_value, (g_aux, g_cols, d_cols, fake_a, fake_b)), g_grads = (
        jax.value_and_grad(g_loss, has_aux=True)(state.g.params))
    g, g_grads = dev.update(state.g, g_grads, self.g_tx, g_cols)

    # The pools see the global batch in one order, so every device keeps the same pool.
    ex = state.extras
    shown_a, pool_a, fill = query_pool(ex["pool_a"], ex["pool_fill"],
                                       dev.gather(jax.lax.stop_gradient(fake_a)), k_pool_a)
    shown_b, pool_b, _ = query_pool(ex["pool_b"], ex["pool_fill"],
                                    dev.gather(jax.lax.stop_gradient(fake_b)), k_pool_b)
    shown_a, shown_b = dev.local(shown_a), dev.local(shown_b)

    def d_loss(params):
      cols = dict(d_cols)
      D = lambda name, x: run(self.d_model, params, cols, name, x)
      real_a, real_b, seen_a, seen_b = D("a", a), D("b", b), D("a", shown_a), D("b", shown_b)
      loss = d_loss_fn(real_a, seen_a)[0] + d_loss_fn(real_b, seen_b)[0]
      return loss, (cols, (jnp.mean(real_a) + jnp.mean(real_b)) / 2,
                    (jnp.mean(seen_a) + jnp.mean(seen_b)) / 2)

    (d_value, (d_cols, d_real, d_fake)), d_grads = (
        jax.value_and_grad(d_loss, has_aux=True)(state.d.params))
    d, d_grads = dev.update(state.d, d_grads, self.d_tx, d_cols)

    metrics = {"d_loss": d_value, "g_loss": g_value, **g_aux, "d_real": d_real, "d_fake": d_fake,
               "d_grad_norm": optax.tree.norm(d_grads), "g_grad_norm": optax.tree.norm(g_grads)}
    new_state = state.replace(
        step=state.step + 1, g=g, d=d,
        g_ema=ema(state.g_ema, g.params, state.step, self.config.train.ema_decay),
        extras={"pool_a": pool_a, "pool_b": pool_b, "pool_fill": fill})
    return new_state, dev.mean(metrics)

  # --- inference ---------------------------------------------------------------------------

  def translate(self, state, images, direction="AtoB", ema=True, chunk=64):
    """float NHWC in [-1, 1] -> G_ab's (AtoB) or G_ba's (BtoA) outputs, numpy."""
    name = NETS[direction]
    params = g_params(state, ema)[name]
    run = lambda x: infer(self.g_model, params, state.g.collections[name], x)
    return in_chunks(run, jnp.asarray(images, jnp.float32), chunk=chunk)

  def generator(self, state, ema=True, direction="AtoB"):
    """(fn, variables): G_ab (AtoB) or G_ba (BtoA) as a pure fn(variables, images) -> images."""
    name = NETS[direction]
    return image_generator(self.g_model, g_params(state, ema)[name], state.g.collections[name])

  def preview_inputs(self, source, held_out=None):
    a, b = _two_domains(source if held_out is None else held_out, PREVIEW_ROWS)
    return {"a": to_model_input(a), "b": to_model_input(b)}

  def preview(self, state, inputs):
    """Rows of A | A->B | A->B->A beside B | B->A | B->A->B."""
    triplets = []
    for x, there, back in ((inputs["a"], "AtoB", "BtoA"), (inputs["b"], "BtoA", "AtoB")):
      x = np.asarray(x)
      out = self.translate(state, x, there)
      triplets.append((x, out, self.translate(state, out, back)))
    n = min(len(triplets[0][0]), len(triplets[1][0]))
    return reporting.side_by_side(*(np.stack([a[:n], b[:n]], 1).reshape((-1,) + a.shape[1:])
                                    for a, b in zip(*triplets)))
