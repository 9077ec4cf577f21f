"""The super-resolution game: a small image -> the large one (SRGAN, Ledig et al. 2017; ESRGAN,
Wang et al. 2018).

G maps a low-resolution input x (`data.scale` times smaller) to y_hat; D judges high-resolution
images alone. One step on {"x": LR, "y": HR} (the pipeline degrades HR crops on the host, or reads
`pair:LR,HR` folders):
  1. G forward once, kept with `jax.vjp` for the G phase;
  2. D phase (skipped when `loss.adversarial_weight` is 0: the PSNR-oriented first stage): real
     HR against sg(y_hat), with `loss.adversarial`'s D loss (ESRGAN's relativistic average by
     default; D's logits are one per image (VGG-style D) or per pixel (U-Net D));
  3. G phase: `loss.l1_weight` * |y_hat - y| + `loss.perceptual_weight` * VGG19 feature distance
     (`metrics/vgg.py`) + `loss.adversarial_weight` * G's adversarial loss through the updated D.
The VGG19 weights are frozen: the step closes over them (they become constants of the compiled
step, ~80 MB; they are read when a step is first built, not for inference). Without the
converted weights file the perceptual term is off, and the run says so once and how to turn it
on.
Inference upscales: `upscale(state, images)` (`gan-jax upscale` tiles large pictures).
"""
import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import models, optim, reporting
from gan_jax.data import degrade
from gan_jax.errors import UserError
from gan_jax.games.common import (Devices, apply, copy_params, ema, g_params, image_generator,
                                  in_chunks, infer, init_net, to_model_input)
from gan_jax.games.paired import PREVIEW_ROWS, validate_image_to_image
from gan_jax.losses import adversarial
from gan_jax.state import GANState, make_key

log = logging.getLogger(__name__)
_said_off = set()  # weights files whose absence was reported: once per process, not per build


def perceptual_network(config):
  """(VGG19 weights, layer weights) for the perceptual term, or None when it is off: weight 0, or
  no converted weights file (said once, with how to get it)."""
  reg = config.loss
  if not reg.perceptual_weight:
    return None
  from gan_jax.metrics import vgg  # pylint: disable=g-import-not-at-top
  path = reg.perceptual_weights or vgg.default_weights_path()
  try:
    weights = vgg.load_weights(path)
  except UserError as e:
    if path not in _said_off:
      _said_off.add(path)
      log.warning("The perceptual loss is off: %s", e)
    return None
  return vgg.frozen(weights), dict(reg.perceptual_layers)


class SuperResGame:
  can_generate = False
  directions = ()  # `gan-jax upscale`, not translate: the output is `scale` times larger
  default_metrics = ("psnr_y", "ssim_y")
  fine_tune_sides = ("g",)  # init_from: ESRGAN's GAN stage takes the PSNR model's G, a fresh D

  def __init__(self, config, spec, axis_name=None):
    self.config, self.spec = config, spec
    self.scale = config.data.scale
    self.g_model, self.d_model = models.build_sr(config, spec.shape[-1], axis_name)
    self.g_tx = optim.build(config.optim.g, config.train.steps)
    self.d_tx = optim.build(config.optim.d, config.train.steps)
    self.multiple = 1  # G takes any size: stride-1 convs and 2x upsamplings
    self.devices = Devices(axis_name)

  @functools.cached_property
  def perceptual(self):
    return perceptual_network(self.config)

  @staticmethod
  def validate(config):
    reg = config.loss
    validate_image_to_image(config, "superres", tuple(adversarial.RELATIVE))
    if not reg.l1_weight + reg.perceptual_weight + reg.adversarial_weight:
      raise UserError("The superres game needs a loss: set loss.l1_weight, "
                      "loss.perceptual_weight or loss.adversarial_weight above 0.")
    if reg.perceptual_weight:
      from gan_jax.metrics import vgg  # pylint: disable=g-import-not-at-top
      try:  # here, not at the step's first trace, after the workdir is written
        vgg.check_layers(tuple(reg.perceptual_layers))
      except UserError as e:
        raise UserError(f"--config.loss.perceptual_layers: {e}") from None
    models.validate_sr(config)  # config.validate_data has checked data.scale and .degrade

  def init(self, seed=None):
    """Fresh state of `seed` (default config.seed; may be traced: `Seeds` vmaps it)."""
    k_g, k_d, rng = jax.random.split(make_key(self.config.seed if seed is None else seed), 3)
    r, c = self.config.data.resolution, self.spec.shape[-1]  # the spec of pair:LR,HR is LR's
    hr = jnp.zeros((1, r, r, c), jnp.float32)
    lr = hr[:, ::self.scale, ::self.scale]
    g = init_net(self.g_model, k_g, self.g_tx, lr)
    return GANState(step=jnp.zeros((), jnp.int32), g=g,
                    d=init_net(self.d_model, k_d, self.d_tx, hr),
                    g_ema=copy_params(g.params, self.config.train.ema_decay > 0),
                    rng=jax.random.key_data(rng), extras={})

  def train_step(self, state, batch):
    dev, reg = self.devices, self.config.loss
    d_loss_fn, g_loss_fn = adversarial.RELATIVE[reg.adversarial]
    x, y = to_model_input(batch["x"][-1]), to_model_input(batch["y"][-1])
    g_fwd = lambda p: apply(self.g_model, p, state.g.collections, x)
    fake, g_vjp, g_cols = jax.vjp(g_fwd, state.g.params, has_aux=True)
    metrics, d = {}, state.d
    adversarial_on = reg.adversarial_weight > 0
    # The relativistic loss averages logits over the batch: the global one under pmap too (its
    # gradient comes back to each device's own logits through the gather).
    both = lambda real, fake: (dev.gather(real), dev.gather(fake))

    if adversarial_on:
      def d_loss(params):
        real_logits, cols = apply(self.d_model, params, d.collections, y)
        fake_logits, cols = apply(self.d_model, params, cols, jax.lax.stop_gradient(fake))
        loss, _ = d_loss_fn(*both(real_logits, fake_logits))
        return loss, (cols, real_logits, fake_logits)
      (d_value, (d_cols, real_logits, fake_logits)), d_grads = (
          jax.value_and_grad(d_loss, has_aux=True)(d.params))
      d, d_grads = dev.update(d, d_grads, self.d_tx, d_cols)
      metrics.update(d_loss=d_value, d_real=jnp.mean(real_logits),
                     d_fake=jnp.mean(fake_logits), d_grad_norm=optax.tree.norm(d_grads))
    else:
      metrics["d_loss"] = jnp.zeros(())

    def g_loss(fake):
      terms, cols = {"l1": jnp.mean(jnp.abs(fake - y))}, d.collections
      total = reg.l1_weight * terms["l1"]
      if self.perceptual is not None:
        from gan_jax.metrics import vgg  # pylint: disable=g-import-not-at-top
        weights, layers = self.perceptual
        terms["perceptual"] = vgg.perceptual_loss(weights, fake, y, layers,
                                                  reg.perceptual_criterion, impl="auto")
        total += reg.perceptual_weight * terms["perceptual"]
      if adversarial_on:
        real_logits, cols = apply(self.d_model, d.params, d.collections, y)
        fake_logits, cols = apply(self.d_model, d.params, cols, fake)
        terms["g_adversarial"], _ = g_loss_fn(*both(jax.lax.stop_gradient(real_logits),
                                                     fake_logits))
        total += reg.adversarial_weight * terms["g_adversarial"]
      return total, (terms, cols)
    (g_value, (terms, d_cols)), d_fake = jax.value_and_grad(g_loss, has_aux=True)(fake)
    d = d.replace(collections=d_cols)  # D's batch statistics also see this pass, as in PyTorch
    (g_grads,) = g_vjp(d_fake)
    g, g_grads = dev.update(state.g, g_grads, self.g_tx, g_cols)

    metrics.update(g_loss=g_value, g_grad_norm=optax.tree.norm(g_grads), **terms)
    new_state = state.replace(step=state.step + 1, g=g, d=d, g_ema=ema(
        state.g_ema, g.params, state.step, self.config.train.ema_decay))
    return new_state, dev.mean(metrics)

  # --- inference ---------------------------------------------------------------------------

  def upscale(self, state, images, ema=True, chunk=16):
    """float NHWC in [-1, 1] -> G's outputs (numpy), `scale` times larger."""
    params = g_params(state, ema)
    run = lambda x: infer(self.g_model, params, state.g.collections, x)
    return in_chunks(run, jnp.asarray(images, jnp.float32), chunk=chunk)

  def generator(self, state, ema=True, direction=None):
    """(fn, variables): G as a pure fn(variables, LR images) -> HR images, `scale` times larger."""
    del direction
    return image_generator(self.g_model, g_params(state, ema), state.g.collections)

  def preview_inputs(self, source, held_out=None):
    """Fixed (LR, HR) pairs: centre crops of the held-out pictures where the data has them,
    else the first training examples; LR by the bicubic degradation of the evaluation."""
    side = self.config.data.resolution
    if held_out is not None and hasattr(held_out, "images"):
      hr = np.stack([_centre_crop(p, side) for p in held_out.images()[:PREVIEW_ROWS]])
      lr = degrade.imresize_batch(hr, 1 / self.scale)
    else:
      batch = source.get(np.arange(min(PREVIEW_ROWS, len(source))))
      hr = batch.get("y", batch["x"])
      lr = batch["x"] if "y" in batch else degrade.imresize_batch(hr, 1 / self.scale)
    return {"x": lr, "y": hr}

  def preview(self, state, inputs):
    """LR (nearest, enlarged) | bicubic | output | HR, two examples a row."""
    lr, hr = np.asarray(inputs["x"]), np.asarray(inputs["y"])
    nearest = lr.repeat(self.scale, 1).repeat(self.scale, 2)
    bicubic = degrade.imresize_batch(lr, self.scale)
    as_float = lambda pixels: np.asarray(to_model_input(pixels))  # the grid's [-1, 1]
    return reporting.side_by_side(as_float(nearest), as_float(bicubic),
                                  self.upscale(state, as_float(lr)), as_float(hr))


def _centre_crop(picture, side):
  """The centre side x side of an image (edge-padded first when it is smaller)."""
  h, w = picture.shape[:2]
  if h < side or w < side:
    picture = np.pad(picture, ((0, max(side - h, 0)), (0, max(side - w, 0)), (0, 0)), mode="edge")
    h, w = picture.shape[:2]
  top, left = (h - side) // 2, (w - side) // 2
  return picture[top:top + side, left:left + side]
