"""optax transforms from a config block (`optim.g` or `optim.d`): one per side of the game."""
import optax


def schedule(c, total_steps):
  if c.schedule == "constant":
    main = optax.constant_schedule(c.lr)
  elif c.schedule == "cosine":
    main = optax.cosine_decay_schedule(c.lr, max(total_steps - c.warmup_steps, 1))
  else:  # linear decay to zero
    main = optax.linear_schedule(c.lr, 0.0, max(total_steps - c.warmup_steps, 1))
  if not c.warmup_steps:
    return main
  warmup = optax.linear_schedule(0.0, c.lr, c.warmup_steps)
  return optax.join_schedules([warmup, main], [c.warmup_steps])


def build(c, total_steps):
  lr = schedule(c, total_steps)
  if c.optimizer == "adam":
    opt = optax.adam(lr, b1=c.b1, b2=c.b2)
  elif c.optimizer == "rmsprop":
    opt = optax.rmsprop(lr, decay=0.99, eps=1e-8)  # PyTorch's RMSprop defaults, as in WGAN code
  else:
    opt = optax.sgd(lr, momentum=c.b1 or None)
  if c.grad_clip > 0:
    opt = optax.chain(optax.clip_by_global_norm(c.grad_clip), opt)
  return opt
