"""`gan-jax project`: a picture put into a trained generator's latent space (GAN inversion by
optimisation), so that it can be sampled, walked and edited like a drawn latent.

The recipe is stylegan2-ada-pytorch's projector's (Karras et al. 2020b), written anew for any
noise-to-image run of ours:
- Adam on the latent, with a learning rate that ramps up over the first 5% of the steps and
  down (cosine) over the last 25%, and Gaussian noise added to the latent that decays to zero at
  75% of the steps (it shakes the search out of poor basins early on).
- StyleGAN2 runs: the per-layer noise buffers ("noise_const") are optimised too, under NVIDIA's
  multi-scale regulariser (neighbouring pixels uncorrelated at every scale, so the buffers cannot
  carry the picture) and renormalised after each step. A latent file carries no buffers, and
  `sample`, `interpolate` and `--direction` render with the run's own, so the optimised buffers
  are handed back to the run's over 75% to 90% of the steps and the last 10% fit the latent alone:
  what is written is exactly what the latent renders to.
- Loss: a perceptual distance plus pixel MSE. The distance is LPIPS (VGG16, v0.1 lin weights;
  `metrics/lpips.py`, NVIDIA's projector's distance) where its converted weights are at hand:
  the file given (`lpips=`), else the one `gan-jax convert-lpips` writes into the cache when it
  is there. Otherwise it is our own: the run's discriminator (inference mode) read at every
  convolutional layer (flax `capture_intermediates`), each position's channel vector scaled to
  unit length (as LPIPS does before its learned weights), squared differences averaged. D has
  learned what the run's images look like, at the run's resolution and channels, and needs no
  download. Which one was used is `Projector.distance`, which `project` prints.
- Several starts at once, kept best (the lowest final loss): for plain models z = 0 and 7
  random z; for mapping-network models the mean w alone by default (`STARTS` says why), more
  being ws of random z pulled halfway to it. Conditional models try every class (the starts
  shared out over them, at least one each) unless a label is given, and keep the class of the
  best: the latent written has an ordinary class label, and the choice is itself a reading of
  the picture. (Optimising a soft label would write a mix of classes that no `--label` names.)
  Every start of every picture of a batch is one row of one jitted step. Steps are dispatched
  one call each (`STEPS_PER_CALL`): in a `lax.scan` body XLA:CPU ran StyleGAN2's step 2.3x
  slower (0.92 vs 0.40 s for 64 candidates at 32 px), and unrolling 2 or 4 steps per call gained
  3-20% for 7-20 s more compile. Every few steps the host draws each picture's leading start
  (the GIF's frames), so no history of every start is kept.

`project(workdir, image, out)` writes, per input picture NAME: OUT/NAME.png (the projection),
OUT/NAME.npz (its `Latents`, with the run, step and source) and OUT/NAME.gif (the target beside
the current image every few steps), each labelled with its provenance (`provenance.of_model`, the
seed the optimisation's). A folder is searched recursively, as `translate` does.
"""
import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from gan_jax import provenance, reporting, sampling, translating
from gan_jax.data import folder, images as images_lib
from gan_jax.errors import UserError
from gan_jax.games.common import apply_inference, split_variables
from gan_jax.latents import Latents
from gan_jax.metrics import lpips as lpips_lib

DEFAULT_STEPS = 500
FRAMES = 25          # GIF frames (about: one every steps / FRAMES steps), plus the result
STEPS_PER_CALL = 1   # optimisation steps per jitted call (unrolled; see the docstring)
BATCH = 8            # pictures optimised together (each with all its starts)
MAP_SAMPLES = 2000   # z mapped per class to find the mean w and its spread
START_PSI = 0.5      # random w starts are pulled this far from the mean w toward their own
# Starts per picture by space. z: z = 0 and 7 random z lift the DCGAN digits' own samples from
# 41.8 to 44.2 dB (4x the time). w: the mean w alone (NVIDIA's one start) gave 35.8 dB against
# 36.7 dB for 8 starts on StyleGAN2 digits, at an eighth of the time (benchmarks/projection.py).
STARTS = {"z": 8, "w": 1, "w+": 1}


@dataclasses.dataclass(frozen=True)
class Settings:
  """The optimisation's knobs. lr is relative to the latent's per-coordinate spread (1 for z;
  the mapped ws' for w), so one value serves models whose ws have different scales. The ramps,
  the latent noise and the noise regulariser's weight are NVIDIA's projector's; the D-feature
  and MSE weights (1 and 1) met the goals on the digits runs as first set
  (`benchmarks/projection.py`)."""
  steps: int = DEFAULT_STEPS
  starts: int = None           # per picture (None: STARTS), shared out over the classes tried
  lr: float = 0.1
  lr_rampup: float = 0.05
  lr_rampdown: float = 0.25
  latent_noise: float = 0.05   # x the latent's spread (its norm), decaying to 0 ...
  noise_ramp: float = 0.75     # ... at this fraction of the steps
  handback: tuple = (0.75, 0.9)  # noise buffers return to the run's between these fractions
  perceptual_weight: float = 1.0  # of the D-feature distance
  # LPIPS at NVIDIA's projector's weight, 1: the noise regulariser's weight, the learning rate
  # and the ramps here are that recipe's, set with LPIPS at 1. LPIPS reads about 0.44x what the
  # D-feature distance reads for the same disagreement of unit feature vectors (it sums 5 taps
  # whose v0.1 lin weights average 0.07-0.11 a channel; D's is a mean over layers), so pixel MSE
  # weighs about twice as much beside LPIPS as beside D's features.
  lpips_weight: float = 1.0
  mse_weight: float = 1.0
  noise_reg_weight: float = 1e5


@dataclasses.dataclass
class Projection:
  """One batch's results: `latents` (one per picture), `images` (float32 NHWC in [-1, 1], what
  the latents render to), `frames` (per picture: uint8 frames, target beside current), `psnr`
  (dB vs the target, peak-to-peak 2), the final `perceptual` distance and `mse`, and how many
  `candidates` (starts x classes) each picture had."""
  latents: Latents
  images: np.ndarray
  frames: list
  psnr: np.ndarray
  perceptual: np.ndarray
  mse: np.ndarray
  candidates: int


@dataclasses.dataclass
class Report:
  """What `project` wrote: the PNG paths, the input relpaths skipped as unreadable, the
  distance used (in words), the space, and each picture's PSNR vs its target."""
  written: list
  skipped: list
  distance: str
  space: str
  psnr: list

  @property
  def mean_psnr(self):
    return float(np.mean(self.psnr)) if self.psnr else float("nan")

  def summary(self, out):
    return (f"wrote {len(self.written)} projections to {out} ({self.space} space; distance: "
            f"{self.distance}); mean PSNR vs target {self.mean_psnr:.2f} dB"
            + (f"; skipped {len(self.skipped)} unreadable" if self.skipped else ""))


# --- the library function -----------------------------------------------------------------------

def project(workdir_or_model, image, out, steps=DEFAULT_STEPS, space=None, label=None, seed=0,
            progress=True, starts=None, batch=BATCH, ema=True, settings=None, lpips=None):
  """Projects the picture `image` (or every picture under the folder) into the run's latent
  space and writes NAME.png, NAME.npz and NAME.gif under `out` (sub-folders kept). Returns a
  `Report`. `lpips` is `Projector`'s. One UserError, before anything is written, for input the
  user can fix."""
  model = _open(workdir_or_model, ema)
  space = _check_args(model, space, label, steps, starts, batch)
  settings = settings or Settings()
  settings = dataclasses.replace(settings, steps=int(steps), starts=starts or settings.starts)
  root, relpaths = find_pictures(image, out)
  colours = [translating.is_colour(os.path.join(root, p)) for p in relpaths]
  skipped = [p for p, c in zip(relpaths, colours) if c is None]
  if len(skipped) == len(relpaths):
    translating.none_readable(image, skipped, "read")
  translating.check_channels(root, relpaths, colours, model.channels, does="draws")
  projector = Projector(model, space, settings, seed, lpips)
  todo = [p for p, c in zip(relpaths, colours) if c is not None]
  targets, todo, bad = _read_all(root, todo, model)
  skipped += bad
  if not todo:
    translating.none_readable(image, skipped, "decoded")
  written, psnr = [], []
  made = provenance.of_model(model, seed)  # the optimisation's seed
  batch = min(batch, len(todo))
  with tqdm.tqdm(total=len(todo) * settings.steps, desc=f"projecting {len(todo)}", unit="step",
                 disable=not progress) as bar:
    for i in range(0, len(todo), batch):
      result = projector.project(_padded(targets[i:i + batch], batch), label,
                                 lambda n, k=len(targets[i:i + batch]): bar.update(n * k // batch))
      for j, relpath in enumerate(todo[i:i + batch]):
        written.append(_write(out, relpath, result, j, model, os.path.join(root, relpath),
                              made))
        psnr.append(float(result.psnr[j]))
  if skipped:
    folder.report_left_out(f"{len(skipped)} of {len(relpaths)} image files in {image} that "
                           "pillow cannot read", sorted(skipped))
  return Report(written, sorted(skipped), projector.distance, space, psnr)


def _padded(pixels, batch):
  """The last, short batch filled up with copies of its last picture: one shape, one compile."""
  extra = batch - len(pixels)
  return np.concatenate([pixels, np.repeat(pixels[-1:], extra, 0)]) if extra else pixels


def _open(workdir_or_model, ema):
  from gan_jax import api  # pylint: disable=g-import-not-at-top  (api imports this package's peers)
  if isinstance(workdir_or_model, api.Model):
    workdir_or_model.require("sample")
    return workdir_or_model
  return api.load(workdir_or_model, ema=ema, needs="sample")


def _check_args(model, space, label, steps, starts, batch):
  """The space to work in; one UserError for arguments this run cannot take."""
  if len(model.exp.spec.shape) != 3:
    raise UserError(f"project fits images, and {model.workdir} learned {model.learned}: "
                    "project into a run that draws images.")
  space = model.check_space(space or ("w" if "w" in model.spaces else "z"))
  if label is not None:
    if np.ndim(label):
      raise UserError(f"--label={label!r} must be one class for every picture.")
    model.check_labels(label)
  for name, value in (("steps", steps), ("starts", starts), ("batch", batch)):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                              or value < 1):
      raise UserError(f"--{name}={value!r} must be a positive whole number.")
  return space


def find_pictures(image, out):
  """(root, sorted relpaths of the pictures to project): the file itself, or every picture under
  the folder outside `out`, as `translate` finds them; refuses outputs that would collide."""
  root, relpaths = translating.find_inputs(image, out, flag="image")
  translating.check_outputs(root, relpaths, [translating.output_path(out, p) for p in relpaths],
                            out, "Projecting", "projected")
  return root, relpaths


def fit_picture(pixels, model):
  """uint8 pixels [H, W, C] of the model's channels -> [R, R, C], fitted as the run's training
  pictures were (its data.resize; a random crop becomes the centre crop)."""
  resize = model.config.data.get("resize", "center_crop")
  resize = "center_crop" if resize == "random_crop" else resize
  return images_lib.fit_array(pixels, model.exp.spec.shape[0], model.channels, resize)


def _read_all(root, relpaths, model):
  """(uint8 [N, R, R, C] targets fitted as the run's training pictures were, the relpaths read,
  the relpaths that did not decode)."""
  resolution, channels = model.exp.spec.shape[0], model.channels
  pixels, done, bad = [], [], []
  for relpath in relpaths:
    try:
      picture = translating.read_pixels(os.path.join(root, relpath), channels)
    except Exception:  # pylint: disable=broad-except  (passed the header check, does not decode)
      bad.append(relpath)
      continue
    pixels.append(fit_picture(picture, model))
    done.append(relpath)
  shape = (0, resolution, resolution, channels)
  return (np.stack(pixels) if pixels else np.zeros(shape, np.uint8)), done, bad


def _write(out, relpath, result, j, model, source, made):
  """NAME.png, NAME.npz and NAME.gif of picture j of `result`, carrying the `provenance.label`
  fields `made`; returns the PNG's path."""
  png = translating.output_path(out, relpath)
  stem = os.path.splitext(png)[0]
  translating.save_png(png, reporting.to_uint8(result.images[j]), made)
  result.latents[j].save(stem + ".npz", workdir=os.path.abspath(model.workdir), step=model.step,
                         source=os.path.abspath(source), psnr=result.psnr[j],
                         provenance=json.dumps(made))
  save_gif(stem + ".gif", result.frames[j], made)
  return png


def save_gif(path, frames, made=None):
  """uint8 frames [F, H, W, C] as an animated GIF, enlarged as `sample --interpolate` enlarges
  small images; the last frame held longer. made: `provenance.label` fields it carries."""
  durations = [sampling.GIF_FRAME_MS * 2] * (len(frames) - 1) + [1000]
  reporting.save_animation(path, sampling.enlarged(frames), provenance=made, durations=durations)


# --- the optimisation ---------------------------------------------------------------------------

def psnr(images, targets):
  """PSNR in dB of float images vs targets in [-1, 1] (peak-to-peak 2), one per image; images
  clipped to [-1, 1] first, as their pixels are (StyleGAN2's have no tanh)."""
  images = np.clip(np.asarray(images, np.float64), -1.0, 1.0)
  mse = np.mean((images - np.asarray(targets, np.float64)) ** 2,
                axis=(1, 2, 3))
  return 10 * np.log10(4.0 / np.maximum(mse, 1e-12))


def lpips_weights(lpips, side):
  """(LPIPS's weights as device arrays, their path), or (None, None) for D's features. `lpips`:
  a file `gan-jax convert-lpips` wrote (it must be readable, and the pictures large enough for
  LPIPS), None for the cache's file where it exists and the pictures are large enough, or False
  for D's features."""
  if lpips is False:
    return None, None
  path = lpips or lpips_lib.default_weights_path()
  if lpips is None and (not os.path.exists(path) or side < lpips_lib.MIN_SIDE):
    return None, None
  lpips_lib.check_size(side, side)
  return jax.tree.map(jnp.asarray, lpips_lib.load_weights(path)), path


def noise_regularizer(buffer):
  """NVIDIA's projector's penalty on one noise image [r, r]: the squared correlation of each
  pixel with its right and lower neighbours (wrapping), at every scale down to 8x8 (2x2
  average pooling between scales); zero for white noise, large for a buffer carrying a picture."""
  total = 0.0
  while True:
    total += jnp.mean(buffer * jnp.roll(buffer, 1, 0)) ** 2
    total += jnp.mean(buffer * jnp.roll(buffer, 1, 1)) ** 2
    if buffer.shape[0] <= 8:
      return total
    r = buffer.shape[0] // 2
    buffer = buffer.reshape(r, 2, r, 2).mean((1, 3))


def _ramps(step, steps, s):
  """(learning-rate factor, latent-noise factor, hand-back fraction) at `step` of `steps`."""
  t = step / steps
  lr = jnp.minimum(1.0, (1.0 - t) / s.lr_rampdown)
  lr = (0.5 - 0.5 * jnp.cos(lr * jnp.pi)) * jnp.minimum(1.0, t / s.lr_rampup)
  noise = jnp.square(jnp.maximum(0.0, 1.0 - t / s.noise_ramp))
  start, end = s.handback
  back = jnp.clip((t - start) / (end - start), 0.0, 1.0)
  return lr, noise, back


class Projector:
  """Projects batches of pictures into one run's `space` (see the module's docstring). The
  networks' variables are arguments of the jitted programs, not constants baked into them.
  `lpips`: a converted LPIPS file, None for the cache's where it exists, False for D's features
  (`lpips_weights`)."""

  def __init__(self, model, space, settings=Settings(), seed=0, lpips=None):
    settings = dataclasses.replace(settings, starts=settings.starts or STARTS[space])
    self.model, self.space, self.settings, self.seed = model, space, settings, seed
    lpips_params, self.lpips_path = lpips_weights(lpips, model.exp.spec.shape[0])
    self.render_fn, g_vars = model.generator(space=space)
    self.nets = (g_vars, {"params": model.state.d.params, **model.state.d.collections},
                 lpips_params)
    self.has_noise = "noise_const" in g_vars
    classes = list(range(model.num_classes)) if model.num_classes else [0]
    self.starts, self.spread = _starts(model, space, classes, settings.starts, seed)
    noise = "; noise buffers optimised" if self.has_noise else ""
    if self.lpips_path:
      self.perceptual_weight = settings.lpips_weight
      what = f"LPIPS (VGG16, v0.1 lin weights, from {self.lpips_path})"
    else:
      self.perceptual_weight = settings.perceptual_weight
      shape = (1,) + tuple(model.exp.spec.shape)
      layers = len(jax.eval_shape(self._features, self.nets, jnp.zeros(shape)))
      what = f"the run's D features ({layers} conv layers, unit-normalised)"
    self.distance = (f"{what} x {self.perceptual_weight:g} + pixel MSE x "
                     f"{settings.mse_weight:g}{noise}")
    self._steps = jax.jit(self._run_steps, static_argnums=0)
    self._final = jax.jit(jax.vmap(self._losses, in_axes=(None, 0, None, 0, 0, 0)))
    self._target_features = jax.jit(jax.vmap(lambda nets, x: self._features(nets, x[None]),
                                             in_axes=(None, 0)))
    self._snapshot = jax.jit(self._render_best)

  # --- pure pieces, each for one candidate (vmapped over candidates) ---

  def _features(self, nets, image):
    """The distance's features of one image [1, H, W, C]: LPIPS's taps, or D's conv features,
    D in inference mode and alone in its batch (minibatch-stddev then sees no other candidate);
    each position's channel vector scaled to unit length."""
    if self.lpips_path:
      return lpips_lib.features(nets[2], image)
    params, cols = split_variables(nets[1])
    _, found = apply_inference(self.model.game.d_model, params, cols, image,
                               jnp.zeros((1,), jnp.int32), capture_intermediates=True,
                               mutable=["intermediates"])
    return [lpips_lib.unit_normalize(x) for x in jax.tree.leaves(found) if x.ndim == 4]

  def _render_one(self, nets, code, noise, label):
    """[1, H, W, C] of one code, with `noise` as the noise buffers (None: the run's own)."""
    variables = dict(nets[0])
    if noise is not None:
      variables["noise_const"] = noise
    return self.render_fn(variables, code[None], label[None])

  def _losses(self, nets, code, noise, label, target, target_features):
    """(perceptual distance, pixel MSE) of one code against its target."""
    image = self._render_one(nets, code, noise, label)
    features = self._features(nets, image)
    if self.lpips_path:
      perceptual = lpips_lib.distance_of_features(nets[2], features, target_features)[0]
    else:
      perceptual = sum(jnp.mean(jnp.sum(jnp.square(a - b), -1))
                       for a, b in zip(features, target_features)) / len(features)
    return perceptual, jnp.mean(jnp.square(image[0] - target))

  def _loss(self, opt, key, factors, nets, label, target, target_features):
    s, (_, noise_scale, back) = self.settings, factors
    code = opt["code"] + noise_scale * s.latent_noise * self.spread * jax.random.normal(
        key, opt["code"].shape)
    noise = None
    if self.has_noise:  # the optimised buffers, handed back to the run's late in the run
      noise = jax.tree.map(lambda o, c: c + (1 - back) * (o - c), opt["noise"],
                           nets[0]["noise_const"])
    perceptual, mse = self._losses(nets, code, noise, label, target, target_features)
    fit = self.perceptual_weight * perceptual + s.mse_weight * mse
    if not self.has_noise:
      return fit, fit
    reg = sum(noise_regularizer(b) for b in jax.tree.leaves(opt["noise"]))
    return fit + s.noise_reg_weight * reg, fit

  def _run_steps(self, length, carry, first, steps, key, nets, labels, targets, features):
    """`length` optimisation steps from step `first` (those past `steps` change nothing);
    returns the new carry and each candidate's fit (the loss less the noise regulariser) at the
    last step."""
    s, tx = self.settings, optax.scale_by_adam()
    per_coordinate = self.spread / math.sqrt(self.starts.shape[-1])
    grad = jax.vmap(jax.grad(self._loss, has_aux=True), in_axes=(0, 0, None, None, 0, 0, 0))

    def step(carry, i):
      opt, adam = carry
      factors = _ramps(i.astype(jnp.float32), steps.astype(jnp.float32), s)
      keys = jax.random.split(jax.random.fold_in(key, i), len(labels))
      grads, fit = grad(opt, keys, factors, nets, labels, targets, features)
      updates, new_adam = tx.update(grads, adam)
      lr = s.lr * factors[0]
      new = {"code": opt["code"] - lr * per_coordinate * updates["code"]}
      if self.has_noise:
        new["noise"] = jax.tree.map(lambda p, u: _normalized(p - lr * u), opt["noise"],
                                    updates["noise"])
      keep = i < steps
      return jax.tree.map(lambda a, b: jnp.where(keep, a, b), (new, new_adam), (opt, adam)), fit

    fits = []
    for k in range(length):  # unrolled: XLA:CPU runs StyleGAN2's convs slower in a scan body
      carry, fit = step(carry, first + k)
      fits.append(fit)
    return carry, jnp.stack(fits)[jnp.clip(steps - 1 - first, 0, length - 1)]

  def _render_best(self, nets, opt, best, labels, back):
    """Images [B, H, W, C] of candidates `best` as the loss sees them (noise buffers `back` of the
    way handed back), for the GIF."""
    noise = None
    if self.has_noise:
      noise = jax.tree.map(lambda o, c: c + (1 - back) * (o[best] - c), opt["noise"],
                           nets[0]["noise_const"])
    render = jax.vmap(self._render_one, in_axes=(None, 0, 0, 0))
    return render(nets, opt["code"][best], noise, labels[best])[:, 0]

  # --- the host side ---

  def project(self, pixels, label=None, on_steps=None):
    """Projects uint8 pictures [B, H, W, C] (the run's size and channels); returns a
    `Projection`. on_steps(n) is told of every n steps done (a progress bar)."""
    s, n = self.settings, len(pixels)
    targets = pixels.astype(np.float32) / 127.5 - 1.0
    classes = [label] if label is not None else list(range(len(self.starts)))
    per_class = -(-s.starts // len(classes))
    per_picture = len(classes) * per_class
    codes = np.concatenate([self.starts[c, :per_class] for c in classes])  # [per_picture, ...]
    codes = np.tile(codes, (n,) + (1,) * (codes.ndim - 1))
    labels = jnp.asarray(np.tile(np.repeat(np.asarray(classes, np.int32), per_class), n))
    cand_targets = jnp.asarray(np.repeat(targets, per_picture, axis=0))
    features = self._target_features(self.nets, cand_targets)
    opt = {"code": jnp.asarray(codes)}
    if self.has_noise:
      opt["noise"] = jax.tree.map(lambda b: jnp.broadcast_to(b, (len(codes),) + b.shape),
                                  self.nets[0]["noise_const"])
    carry = (opt, optax.scale_by_adam().init(opt))
    every = -(-max(1, -(-s.steps // FRAMES)) // STEPS_PER_CALL) * STEPS_PER_CALL
    key, drawn, reported = jax.random.key(self.seed), [], 0
    for first in range(0, s.steps, STEPS_PER_CALL):
      carry, fit = self._steps(STEPS_PER_CALL, carry, jnp.int32(first), jnp.int32(s.steps), key,
                               self.nets, labels, cand_targets, features)
      done = min(first + STEPS_PER_CALL, s.steps)
      if done % every and done < s.steps:
        continue
      leading = np.arange(n) * per_picture + np.argmin(np.reshape(fit, (n, per_picture)), 1)
      back = _ramps(done, s.steps, s)[2]
      drawn.append(np.asarray(self._snapshot(self.nets, carry[0], leading, labels, back)))
      if on_steps:
        on_steps(n * (done - reported))
      reported = done
    final = carry[0]["code"]
    perceptual, mse = map(np.asarray, self._final(self.nets, final, None, labels, cand_targets,
                                                  features))
    score = (self.perceptual_weight * perceptual + s.mse_weight * mse).reshape(n, per_picture)
    best = np.arange(n) * per_picture + np.argmin(score, axis=1)
    latents = Latents(self.space, np.asarray(final)[best], np.asarray(labels)[best])
    images = self.model.render(latents)
    frames = [_frames(targets[j], [d[j] for d in drawn] + [images[j]]) for j in range(n)]
    return Projection(latents, images, frames, psnr(images, targets), perceptual[best],
                      mse[best], per_picture)


def _frames(target, drawn):
  """uint8 GIF frames: the target beside each image of `drawn`, a white pixel column between."""
  drawn = reporting.to_uint8(np.stack(drawn))
  left = np.broadcast_to(reporting.to_uint8(target), drawn.shape)
  gap = np.full(drawn.shape[:2] + (1,) + drawn.shape[3:], 255, np.uint8)
  return np.concatenate([left, gap, drawn], 2)


def _normalized(buffers):
  """Noise buffers [..., r, r] back to zero mean and unit variance (NVIDIA's projector does so after
  every step, so the regulariser cannot be dodged by shrinking them)."""
  mean = jnp.mean(buffers, (-2, -1), keepdims=True)
  var = jnp.mean(jnp.square(buffers - mean), (-2, -1), keepdims=True)
  return (buffers - mean) * jax.lax.rsqrt(var + 1e-12)


def _starts(model, space, classes, starts, seed):
  """(start codes [classes, starts, *code shape], the latent's spread: the RMS norm of a drawn
  code's distance from the mean, which scales the latent noise and the learning rate)."""
  rng = np.random.default_rng(seed)
  z_dim = model.game.code_shapes()["z"][0]
  if space == "z":
    z = rng.standard_normal((len(classes), starts, z_dim)).astype(np.float32)
    z[:, 0] = 0.0  # the centre of the prior first
    return z, math.sqrt(z_dim)
  out, spreads = [], []
  for c in classes:
    z = rng.standard_normal((MAP_SAMPLES, z_dim)).astype(np.float32)
    ws = model.game.map(model.state, z, np.full(MAP_SAMPLES, c, np.int32), model.ema)[:, 0]
    mean = ws.mean(0)
    spreads.append(np.mean(np.sum((ws - mean) ** 2, -1)))
    chosen = mean + START_PSI * (ws[:starts] - mean)
    chosen[0] = mean
    out.append(chosen)
  codes = np.stack(out).astype(np.float32)
  if space == "w+":
    num_ws = model.game.code_shapes()["w+"][0]
    codes = np.repeat(codes[:, :, None], num_ws, axis=2)
  return codes, math.sqrt(float(np.mean(spreads)))
