"""optax transforms from a config block (`optim.g` or `optim.d`): one per side of the game."""
import jax.numpy as jnp
import optax


def cosine_ramp(count, base, final, steps):
  """From `base` at count 0 to `final` at `steps` along half a cosine, then `final`: R3GAN's
  schedules (learning rate, Adam's beta2, gamma, EMA length, augmentation p)."""
  t = jnp.minimum(jnp.asarray(count, jnp.float32) / max(steps, 1), 1.0)
  return base + (final - base) * 0.5 * (1.0 - jnp.cos(jnp.pi * t))


def schedule(c, total_steps):
  """Warm-up over warmup_steps, hold at lr for hold_fraction of the steps, then decay over the
  rest."""
  hold = int(round(c.get("hold_fraction", 0.0) * total_steps))
  decay_steps = max(total_steps - c.warmup_steps - hold, 1)
  if c.schedule == "constant":
    main = optax.constant_schedule(c.lr)
  elif c.schedule == "cosine":  # to lr_final (R3GAN's 2e-4 -> 5e-5), 0 where unset
    main = optax.cosine_decay_schedule(c.lr, decay_steps, alpha=c.get("lr_final", 0.0) / c.lr)
  else:  # linear decay to zero
    main = optax.linear_schedule(c.lr, 0.0, decay_steps)
  parts, starts = [main], []
  if hold and c.schedule != "constant":
    parts, starts = [optax.constant_schedule(c.lr), main], [hold]
  if c.warmup_steps:
    parts = [optax.linear_schedule(0.0, c.lr, c.warmup_steps)] + parts
    starts = [c.warmup_steps] + [c.warmup_steps + s for s in starts]
  return parts[0] if len(parts) == 1 else optax.join_schedules(parts, starts)


def build(c, total_steps):
  lr = schedule(c, total_steps)
  if c.optimizer == "adam" and c.get("b2_final"):  # beta2 moves too, over the same steps (R3GAN)
    b2 = lambda count: cosine_ramp(count, c.b2, c.b2_final, total_steps)
    opt = optax.inject_hyperparams(optax.adam)(lr, b1=c.b1, b2=b2, eps=c.get("eps", 1e-8))
  elif c.optimizer == "adam":
    opt = optax.adam(lr, b1=c.b1, b2=c.b2)
  elif c.optimizer == "rmsprop":
    opt = optax.rmsprop(lr, decay=0.99, eps=1e-8)  # PyTorch's RMSprop defaults, as in WGAN code
  else:
    opt = optax.sgd(lr, momentum=c.b1 or None)
  if c.grad_clip > 0:
    opt = optax.chain(optax.clip_by_global_norm(c.grad_clip), opt)
  return opt
