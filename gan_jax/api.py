"""A trained run from Python: `gan_jax.load(workdir)` gives a `Model`.

    import gan_jax
    model = gan_jax.load("runs/dcgan_digits")   # the latest checkpoint, G's EMA weights
    images = model.sample(16, seed=0)            # numpy float32 NHWC in [-1, 1]

A `Model` is a run's game and one checkpoint's state (run `seed_index` of a train.num_seeds run).
What it can do is its game's: noise runs `sample`, translators `translate`, super-resolution runs
`upscale`; asking for another is one UserError naming what the run does. These methods are the
verbs' own code: `gan-jax sample`, `translate` and `upscale` open runs through `load` and call the
same game and file functions. `generator_fn` and `params` are G in inference mode as a pure,
jittable function of (params, inputs), for `jax.jit`, `vmap` or `jax.export` (`gan-jax
export-model` exports exactly that function).
"""
import os

import numpy as np
from PIL import Image

from gan_jax import experiment, latents as latents_lib, reporting, translating, upscaling
from gan_jax.errors import UserError
from gan_jax.latents import Latents

# What a run does, by its game: in words, as the alternative, the verb and the method that do it.
KINDS = {
    "sample": ("draws from noise", "drawing from noise", "gan-jax sample --workdir={}",
               "model.sample(num)"),
    "translate": ("translates images", "translating images",
                  "gan-jax translate --workdir={} --input=IMAGES --out=FOLDER",
                  "model.translate(images)"),
    "upscale": ("upscales pictures", "upscaling pictures",
                "gan-jax upscale --workdir={} --input=PICTURES --out=FOLDER",
                "model.upscale(picture)"),
    "watermark": ("hides and reads watermarks", "hiding watermarks",
                  "gan-jax watermark-weights --workdir={} --out=FILE.npz",
                  "gan_jax.watermark.Watermark(FILE.npz)"),
}


def kind(game):
  """What a game's runs do: "sample", "translate", "upscale" or, where the game says so, its own
  (`kind`: the watermark's)."""
  if game.can_generate:
    return "sample"
  return getattr(game, "kind", None) or ("upscale" if getattr(game, "scale", 0) else "translate")


def require(workdir, exp, wanted):
  """One UserError when the run does not do `wanted` (a key of KINDS), naming what it does."""
  have = kind(exp.game)
  if have == wanted:
    return
  does, _, verb, method = KINDS[have]
  raise UserError(f"{workdir} holds a {exp.config.get('game', 'noise')} run, which {does} rather "
                  f"than {KINDS[wanted][1]}: use `{verb.format(workdir)}` (or {method} from "
                  "Python).")


def truncation_args(exp, workdir, truncation, truncation_cutoff):
  """`generate`'s truncation arguments ({} for none); what `truncation` means is the game's (a
  threshold on z, psi toward the average w). One UserError for a run that cannot take them."""
  if truncation is None:
    return {}
  if not getattr(exp.game, "can_truncate", False):  # translators have no latents
    raise UserError(f"--truncation needs a model with a truncation trick, and {workdir} trained "
                    f"{exp.config.model.name}, which has none: drop it.")
  if truncation_cutoff is None:
    return dict(truncation=truncation)
  if not exp.game.style_groups():
    raise UserError(f"--truncation_cutoff truncates the first N per-layer styles, and {workdir} "
                    f"trained {exp.config.model.name}, which has one z for all layers: drop it.")
  return dict(truncation=truncation, truncation_cutoff=truncation_cutoff)


def load(workdir, step=None, ema=True, seed_index=0, needs=None):
  """The `Model` of checkpoint `step` of `workdir` (default: the latest that reads back).

  ema: use G's EMA weights where the run keeps them (False: the raw G). seed_index: which run of a
  train.num_seeds run. needs: "sample", "translate" or "upscale" to fail before the checkpoint is
  read when the run does not do that. One UserError for a missing run, step or seed index.
  """
  workdir = os.fspath(workdir)
  exp, ckpt = experiment.load(workdir)
  try:
    exp.check_seed_index(seed_index)
    if needs:
      require(workdir, exp, needs)
    state = exp.seed_state(experiment.restore(exp, ckpt, step), seed_index)
  finally:
    ckpt.close()
  return Model(workdir, exp, state, ema, seed_index)


class Model:
  """A trained run's G, ready to use. Attributes: `workdir`, `config` (the run's resolved
  config), `step` (the checkpoint's), `kind` ("sample", "translate" or "upscale"), `ema`,
  `seed_index`, `channels`, `num_classes` (0 unless conditional), `spaces` (the latent spaces of
  noise models: "z", and "w", "w+" behind a mapping network), `directions` (translators),
  `scale` (super-resolution); `exp` and `state` are the Experiment and GANState underneath."""

  def __init__(self, workdir, exp, state, ema=True, seed_index=0):
    self.workdir, self.exp, self.state = workdir, exp, state
    self.ema, self.seed_index = ema, seed_index
    self.kind = kind(exp.game)

  @property
  def config(self):
    return self.exp.config

  @property
  def game(self):
    return self.exp.game

  @property
  def step(self):
    return int(self.state.step)

  @property
  def channels(self):
    return self.exp.spec.shape[-1]

  @property
  def num_classes(self):
    return self.exp.spec.num_classes if self.config.model.get("conditional", False) else 0

  @property
  def text_dim(self):
    """Width of the caption embeddings a text-to-image run reads (0: not one)."""
    return self.exp.spec.text_dim

  @property
  def directions(self):
    return tuple(self.game.directions)

  @property
  def spaces(self):
    return tuple(getattr(self.game, "spaces", ())) if self.kind == "sample" else ()

  @property
  def scale(self):
    return getattr(self.game, "scale", 0)

  @property
  def learned(self):
    """What the run draws, in words: "images", "clips" or "2D points" (for messages)."""
    return {1: "2D points", 3: "images", 4: "clips"}[len(self.exp.spec.shape)]

  @property
  def frames(self):
    """Frames of a training clip (video runs; 0 for images)."""
    return getattr(self.game, "frames", 0)

  def __repr__(self):
    return (f"Model({self.workdir!r}: {self.config.get('name') or 'run'}, "
            f"{self.config.get('game', 'noise')} game, step {self.step}"
            f"{', EMA' if self.ema else ''})")

  def require(self, wanted):
    require(self.workdir, self.exp, wanted)

  # --- G as a pure function ------------------------------------------------------------------

  def generator(self, direction=None, space="z"):
    """(fn, params): G in inference mode as a pure, jittable fn(params, *inputs), and the Flax
    variables it takes (G's EMA weights unless loaded with ema=False). Noise runs:
    fn(params, codes, labels=None), codes of `space` (one of `spaces`; z float32
    [N, latent_dim] from a standard normal, `noise`), labels int32 [N] (or float32 [N, classes],
    a mix of classes); translators (`direction`, default the first) and super-resolution:
    fn(params, images), float32 NHWC in [-1, 1]. The output is float32 NHWC in [-1, 1] (2D
    runs: points [N, 2]). Differentiable in the codes and the params (`project`). Video runs:
    fn(params, content, motion[, times][, labels]) -> clips float32 [N, T, H, W, C], the inputs
    `noise` draws: MoCoGAN's motion noise has T frames; where G renders any time (video_sparse),
    the times [N, T] say which and the motion noise lies on a grid that covers them."""
    if direction is not None and self.kind != "translate":
      raise UserError(f"--direction picks a translator's G, and {self.workdir} holds a "
                      f"{self.config.get('game', 'noise')} run, which has one: drop it.")
    if space != "z" and not self.spaces:
      raise UserError(f"--space picks the latent codes G reads, and {self.workdir} holds a "
                      f"{self.config.get('game', 'noise')} run, whose G reads none: drop it.")
    if self.frames:
      return self.game.generator(self.state, self.ema)
    if self.kind == "translate":
      direction = self.check_direction(direction)
      return self.game.generator(self.state, self.ema, direction)
    if self.kind == "sample":
      self.check_space(space)
      return self.game.generator(self.state, self.ema, space=space)
    if self.kind == "upscale":
      return self.game.generator(self.state, self.ema)
    does, _, verb, method = KINDS[self.kind]
    raise UserError(f"{self.workdir} {does} and has no generator: use "
                    f"`{verb.format(self.workdir)}` (or {method} from Python).")

  @property
  def generator_fn(self):
    return self.generator()[0]

  @property
  def params(self):
    return self.generator()[1]

  def noise(self, num, seed=0, labels=None, frames=None, fps=None):
    """(z, labels): the inputs `generator_fn` takes to draw what `sample(num, seed, labels)`
    draws (untruncated). Video runs: (content, motion[, times], labels), for clips of `frames`
    frames at `fps` as `sample` takes them."""
    self.require("sample")
    self.check_labels(labels, num)
    return self.game.noise(num, seed, labels, **self.clip_args(frames, fps))

  # --- latent codes (`gan_jax.latents`) ------------------------------------------------------

  def latents(self, num, seed=0, labels=None, space=None, truncation=None,
              truncation_cutoff=None):
    """The `Latents` behind `sample(num, seed, labels, truncation, truncation_cutoff)`, in
    `space` (default: the furthest of `spaces`, which carries every truncation)."""
    self.require("sample")
    space = self.check_space(space or self.spaces[-1])
    self.check_labels(labels, num)
    truncate = truncation_args(self.exp, self.workdir, truncation, truncation_cutoff)
    if space != self.spaces[-1] and truncate:
      # z cannot carry a truncation made in w; w cannot carry one of the first N ws only.
      if space == "z" or truncation_cutoff is not None:
        raise UserError(f"--truncation{'_cutoff' if space == 'w' else ''} acts in "
                        f"{self.spaces[-1]}, and {space} codes cannot carry it: drop it, or use "
                        f"--space={self.spaces[-1]}.")
    if space == "z" and len(self.spaces) > 1:
      codes, labels = self.game.noise(num, seed, labels)
    else:
      codes, labels = self.game.latents(self.state, num, seed, labels, self.ema, **truncate)
      codes = codes[:, 0] if space == "w" else codes
    return Latents(space, codes, labels)

  def to_space(self, latents, space):
    """`latents` carried into `space` (z -> w -> w+: forward only; z through the mapping
    network, untruncated)."""
    self.check_latents(latents)
    self.check_space(space)
    have, want = latents_lib.SPACES.index(latents.space), latents_lib.SPACES.index(space)
    if want < have:
      raise UserError(f"{latents.space} codes cannot be taken back to {space}: the mapping "
                      f"network has no inverse; work in {latents.space} (--space="
                      f"{latents.space}).")
    codes = latents.codes
    if latents.space == "z" and want > have:
      codes = self.game.map(self.state, codes, latents.labels, self.ema)[:, 0]
    if space == "w+" and codes.ndim == 2:
      codes = np.repeat(codes[:, None], self.game.code_shapes()["w+"][0], axis=1)
    return Latents(space, codes, latents.labels)

  def render(self, latents, uint8=False):
    """The images of `latents` (any of `spaces`): float32 NHWC in [-1, 1], or uint8 pixels."""
    self.check_latents(latents)
    codes = self.to_space(latents, self.spaces[-1]).codes
    return self._output(self.game.render(self.state, codes, latents.labels, self.ema), uint8)

  # --- what the verbs do ---------------------------------------------------------------------

  def sample(self, num, seed=0, labels=None, truncation=None, truncation_cutoff=None,
             uint8=False, frames=None, fps=None):
    """`num` samples from the latents of `seed` (the same as `gan-jax sample --seed`): float32
    NHWC in [-1, 1], or uint8 pixels with uint8=True (2D runs: points [N, 2]). labels: one class
    or one per sample (conditional runs; default: 0, 1, 2, ... cycling). truncation,
    truncation_cutoff: as `gan-jax sample` takes them. Video runs: clips float32
    [N, T, H, W, C], T the training clips' length or `frames`; `fps`: frames per frame of the
    training data (runs whose G renders any time, video_sparse; 2 = twice the frame rate)."""
    self.require("sample")
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
      raise UserError(f"num={num!r} must be a positive number of samples.")
    self.check_labels(labels, num)
    truncate = truncation_args(self.exp, self.workdir, truncation, truncation_cutoff)
    samples, _ = self.game.generate(self.state, int(num), seed=seed, labels=labels, ema=self.ema,
                                    **truncate, **self.clip_args(frames, fps))
    return self._output(samples, uint8)

  def translate(self, images, direction=None, uint8=False):
    """Translated images (`gan-jax translate`'s function): `images` uint8 pixels or floats in
    [-1, 1], one [H, W, C] or a batch [N, H, W, C] of any height and width (padded to G's
    multiple and cropped back), gives the same shape back; an image path gives one [H, W, C']
    array, a list of paths a list of them. float32 in [-1, 1], or uint8 with uint8=True."""
    self.require("translate")
    fn = self.image_fn(direction)
    run = lambda x: translating.translate_batch(x, fn, self.game.multiple)
    paths = _paths(images)
    if paths is None:
      x, one = self._batch(images)
      out = run(x)
      return self._output(out[0] if one else out, uint8)
    colours = [translating.is_colour(p) for p in paths]
    for path, colour in zip(paths, colours):
      if colour is None:
        translating.none_readable(path, [path], "read")
    translating.check_channels("", paths, colours, self.channels)
    outs = []
    for path in paths:
      try:
        pixels = translating.read_pixels(path, self.channels)
      except Exception:  # pylint: disable=broad-except  (passed the header check, does not decode)
        translating.none_readable(path, [path], "decoded")
      outs.append(self._output(run(_to_float(pixels)[None])[0], uint8))
    return outs[0] if isinstance(images, (str, os.PathLike)) else outs

  def upscale(self, images, uint8=False, tile=512, tile_pad=16):
    """Upscaled pictures (`gan-jax upscale`'s function, tiled: `tile` x `tile` input pixels with
    `tile_pad` of context): `images` uint8 pixels or floats in [-1, 1], one [H, W, C] or a batch
    [N, H, W, C], gives [.., H * scale, W * scale, C]; a picture path or PIL image (any mode: a
    colour picture through a gray model, alpha kept) gives one array, a list of paths a list.
    float32 in [-1, 1], or uint8 with uint8=True."""
    self.require("upscale")
    upscaling.check_tiling(tile, tile_pad)
    fn, scale = self.image_fn(), self.scale
    if isinstance(images, Image.Image):
      return self._output(self._upscale_picture(images, fn, tile, tile_pad), uint8)
    paths = _paths(images)
    if paths is None:
      x, one = self._batch(images)
      out = np.stack([upscaling.upscale_float(i, fn, scale, tile, tile_pad) for i in x])
      return self._output(out[0] if one else out, uint8)
    outs = []
    for path in paths:
      try:
        picture = upscaling.read_picture(path)
      except Exception:  # pylint: disable=broad-except  (pillow raises many types for bad files)
        translating.none_readable(path, [path], "read")
      outs.append(self._output(self._upscale_picture(picture, fn, tile, tile_pad), uint8))
    return outs[0] if isinstance(images, (str, os.PathLike)) else outs

  def image_fn(self, direction=None):
    """The image -> image function of a translator (`direction`) or an SR G, on float32 NHWC
    numpy batches in [-1, 1]: what `translate` and `upscale`, methods and verbs, run."""
    if self.kind == "upscale":
      return lambda x: self.game.upscale(self.state, x, ema=self.ema)
    self.require("translate")
    direction = self.check_direction(direction)
    return lambda x: self.game.translate(self.state, x, direction, ema=self.ema)

  # --- checks --------------------------------------------------------------------------------

  def encode(self, texts):
    """Caption embeddings [N, D] of `texts` (a string or a list of them) by the sentence encoder
    the run trained with: what a text-to-image run takes where others take labels."""
    if not self.text_dim:
      raise UserError(f"--text needs a text-to-image run, and {self.workdir} trained "
                      f"{self.config.model.name}, which reads no captions: drop --text.")
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
      raise UserError("Give at least one caption, and no empty ones (e.g. --text='a red seven').")
    if getattr(self, "_encoder", None) is None:
      from gan_jax import encoders  # pylint: disable=g-import-not-at-top  (text runs only)
      self._encoder = encoders.get(self.config.text.encoder)
    return np.asarray(self._encoder.encode(texts), np.float32)

  def check_labels(self, labels, num=None):
    """One UserError for labels this run cannot take: any on an unconditional run, classes out of
    range, or a list of other than `num` labels. Text runs take caption embeddings [N, D] or one
    [D] for all (`encode`)."""
    if labels is None:
      return
    if self.text_dim:
      shape = np.shape(labels)
      if shape[-1:] != (self.text_dim,) or len(shape) > 2 or (
          num is not None and len(shape) == 2 and shape[0] != num):
        raise UserError(f"{self.workdir} draws from captions: give texts (--text, or "
                        "model.encode(texts) as labels), not class labels.")
      return
    if not self.num_classes:
      raise UserError(f"--label needs a conditional model, and {self.workdir} trained an "
                      "unconditional one: drop --label.")
    values = np.asarray(labels)
    if values.dtype.kind not in "iu" or values.ndim > 1:
      raise UserError(f"labels={labels!r} is not a class index or a list of them: pass an int "
                      f"in 0..{self.num_classes - 1} or one per sample.")
    if num is not None and values.ndim == 1 and len(values) != num:
      raise UserError(f"{len(values)} labels were given for {num} samples: give one label per "
                      "sample, or one int for all.")
    bad = values[(values < 0) | (values >= self.num_classes)]
    if bad.size:
      raise UserError(f"--label={int(bad.flat[0])} is out of range: this model has classes "
                      f"0..{self.num_classes - 1}.")

  def clip_args(self, frames, fps):
    """`frames` and `fps` as a video game's `generate` and `noise` take them (those given)."""
    args = {}
    if frames is not None:
      args["frames"] = self.check_frames(frames)
    if fps is not None:
      args["fps"] = self.check_fps(fps)
    return args

  def check_frames(self, frames):
    """`frames` as the clip length to render; one UserError for a run that cannot."""
    if not self.frames:
      raise UserError(f"--frames sets the length of clips, and {self.workdir} draws images: "
                      "drop it.")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
      raise UserError(f"--frames={frames!r} must be a positive number of frames.")
    return int(frames)

  def check_fps(self, fps):
    """`fps` for a run whose G renders frames at any time; one UserError for one that cannot."""
    if not getattr(self.game, "renders_any_time", False):
      raise UserError(f"--fps renders frames between the training frames, and {self.workdir}'s "
                      f"{self.config.model.name} draws one frame after another: drop it (train "
                      "configs/video_digits_sparse.py for a G that renders any time).")
    return fps

  def check_space(self, space):
    """`space` if this model reads codes of it; else one UserError."""
    self.require("sample")
    if space not in self.spaces:
      raise UserError(f"--space={space} is not a latent space of {self.workdir}'s "
                      f"{self.config.model.name}: use {' or '.join(self.spaces)}.")
    return space

  def check_latents(self, latents):
    """One UserError for codes of another space or shape than this model reads, or labels it
    cannot take."""
    self.check_space(latents.space)
    want = self.game.code_shapes()[latents.space]
    if latents.codes.shape[1:] != want:
      raise UserError(f"These {latents.space} codes have shape {latents.codes.shape[1:]} and "
                      f"{self.workdir}'s {self.config.model.name} reads {want}: they were made "
                      "for another model; project or sample them with this one.")
    labels = latents.labels
    if self.text_dim:
      self.check_labels(labels, len(latents.codes))
      return
    if self.num_classes and labels.ndim == 2 and labels.shape[1] != self.num_classes:
      raise UserError(f"These codes mix {labels.shape[1]} classes and {self.workdir} has "
                      f"{self.num_classes}: they were made for another model.")
    if self.num_classes and labels.ndim == 1:
      self.check_labels(labels)

  def check_direction(self, direction):
    """`direction` (default: the first) if this translator has it; else one UserError."""
    directions = self.directions
    direction = direction or directions[0]
    if direction not in directions:
      choices = " or ".join(f"--direction={d}" for d in directions)
      raise UserError(f"--direction={direction} is not a direction of this "
                      f"{self.config.get('game', 'noise')} run: use {choices}.")
    return direction

  def _batch(self, images):
    """(float32 [N, H, W, C] in [-1, 1], whether one [H, W, C] image was given) of uint8 pixels
    or floats; one UserError for arrays that are not such images of this run's channels."""
    x = np.asarray(images)
    if x.ndim not in (3, 4) or x.shape[-1] not in (1, 3, 4) or 0 in x.shape:
      raise UserError(f"An array of shape {x.shape} is not images: pass [H, W, C] or "
                      f"[N, H, W, C] (C = {self.channels} for this model), or image paths.")
    if x.shape[-1] != self.channels:
      raise UserError(f"The images have {x.shape[-1]} channels and this model takes "
                      f"{self.channels}: convert them (gray = 1, RGB = 3), or pass their paths, "
                      "which are converted as the training data were.")
    if x.dtype == np.uint8:
      x = _to_float(x)
    elif x.dtype.kind == "f":
      x = x.astype(np.float32)
      if not np.isfinite(x).all() or np.abs(x).max() > 1 + 1e-3:
        raise UserError(f"The images hold values in [{np.nanmin(x):.4g}, {np.nanmax(x):.4g}]: "
                        "pass floats in [-1, 1], or uint8 pixels in [0, 255].")
    else:
      raise UserError(f"Images of dtype {x.dtype} are not pixels: pass uint8 in [0, 255] or "
                      "floats in [-1, 1].")
    return (x[None], True) if x.ndim == 3 else (x, False)

  def _upscale_picture(self, picture, fn, tile, tile_pad):
    """A pillow picture of any mode -> float32 [H * scale, W * scale, C] (alpha kept)."""
    out = upscaling.upscale_picture(picture, fn, self.scale, self.channels, tile, tile_pad)
    pixels = np.asarray(out)
    return _to_float(pixels.reshape(out.height, out.width, -1))

  def _output(self, images, uint8):
    images = np.asarray(images, np.float32)
    if not uint8:
      return images
    if len(self.exp.spec.shape) == 1:
      raise UserError(f"uint8=True gives pixels, and {self.workdir} learned 2D points: drop it.")
    return reporting.to_uint8(images)


def _to_float(pixels):
  return pixels.astype(np.float32) / 127.5 - 1.0


def _paths(images):
  """The paths `images` names (one path, or a list of them), or None for arrays."""
  if isinstance(images, (str, os.PathLike)):
    paths = [images]
  elif (isinstance(images, (list, tuple)) and images
        and all(isinstance(p, (str, os.PathLike)) for p in images)):
    paths = list(images)
  else:
    return None
  paths = [os.fspath(p) for p in paths]
  for path in paths:
    if not os.path.isfile(path):
      raise UserError(f"{path} is not a file: pass image paths, or images as arrays.")
  return paths
