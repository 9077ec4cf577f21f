"""The learned detector: how likely a picture is generated, for pictures with no watermark (made
by someone else's copy of a model, or written with the mark turned off).

Two scores, each a probability that the picture is generated:
- "cnn": a small fully convolutional classifier (`models.detector`) trained on real pictures
  against generators' samples, half of them blurred and half JPEG-compressed at random, the
  augmentation Wang et al. 2020 ("CNN-generated images are surprisingly easy to spot... for now")
  found to be what lets a detector trained on one GAN recognise others. Its blur range is scaled
  to our 32 px training pictures (sigma up to 1 rather than their 3 at 256 px).
- "spectral": a logistic regression on the azimuthally averaged log power spectrum (Durall et al.
  2020, "Watch your up-convolution"), where upsampling layers leave their excess high frequencies
  (Frank et al. 2020 find the same in the DCT), of each TILE x TILE tile of the picture, averaged.

The shipped weights (gan_jax/weights/detector.npz) are trained by benchmarks/detector.py, which
also measures them (README, "The learned detector").
"""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import special

from gan_jax import attacks, npz
from gan_jax.errors import UserError
from gan_jax.games.common import to_model_input
from gan_jax.models import detector as nets

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "detector.npz")
TILE = 32  # the spectral score's tile side, the training pictures' side
STEPS = 4000
BATCH = 64  # half real, half generated
LEARNING_RATE = 1e-3
MAX_BLUR = 1.0  # Wang et al.'s sigma ~ U[0, 3] at 256 px, scaled down for 32 px pictures
JPEG_QUALITY = (30, 100)  # Wang et al.'s range
MOST_TILES = 64  # a large picture's spectral score reads at most this many tiles
MAX_SIDE = 512  # a larger picture is scored on its centre (the network's activations of a 4K
# picture would take gigabytes)


def augment(pictures, rng):
  """Wang et al.'s "Blur+JPEG (0.5)": each uint8 picture blurred with probability 1/2 (sigma
  uniform in [0, MAX_BLUR]) and then JPEG-compressed with probability 1/2 (quality uniform in
  JPEG_QUALITY), by pillow."""
  out = []
  for p in pictures:
    if rng.random() < 0.5:
      p = attacks.blur(p, rng.uniform(0, MAX_BLUR))
    if rng.random() < 0.5:
      p = attacks.jpeg(p, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    out.append(p)
  return np.stack(out)


def spectrum(tiles):
  """uint8 [N, TILE, TILE, C] -> [N, F] float32: the log power spectrum of each tile's grey
  level (its channels' mean) averaged over rings of equal spatial frequency, 1 to
  round(TILE / sqrt(2)) cycles per tile (F = 23 at 32)."""
  grey = np.asarray(tiles, np.float32).mean(axis=-1)
  grey = grey - grey.mean(axis=(1, 2), keepdims=True)
  power = np.log(np.abs(np.fft.fft2(grey)) ** 2 + 1e-3)
  f = np.fft.fftfreq(TILE) * TILE
  ring = np.round(np.hypot(f[:, None], f[None, :])).astype(np.int64).reshape(-1)
  sums = np.stack([np.bincount(ring, weights=row, minlength=ring.max() + 1)
                   for row in power.reshape(len(power), -1)])
  return (sums / np.bincount(ring))[:, 1:].astype(np.float32)  # ring 0 (the mean) left out


def unframed(frames):
  """uint8 frames [N, H, W, C] without the rings of one colour around them (the padding of a
  sample grid, a border added later): what the picture shows is scored, not its frame. Stops at
  8 x 8."""
  while min(frames.shape[1:3]) > 8:
    ring = np.concatenate([frames[:, 0], frames[:, -1], frames[:, :, 0], frames[:, :, -1]], 1)
    if not np.all(ring == ring[:, :1]):
      break
    frames = frames[:, 1:-1, 1:-1]
  return frames


def centre(frames, side):
  """The central side x side of frames [N, H, W, C] (all of a side that is shorter)."""
  h, w = frames.shape[1:3]
  top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
  return frames[:, top:top + side, left:left + side]


def tiles_of(picture):
  """The TILE x TILE tiles of a uint8 picture [H, W, C] on a centred grid, at most MOST_TILES
  (evenly spread); None when it is smaller than one tile."""
  h, w = picture.shape[:2]
  rows, cols = h // TILE, w // TILE
  if not rows or not cols:
    return None
  top, left = (h - rows * TILE) // 2, (w - cols * TILE) // 2
  tiles = [picture[top + i * TILE:top + (i + 1) * TILE, left + j * TILE:left + (j + 1) * TILE]
           for i in range(rows) for j in range(cols)]
  keep = np.linspace(0, len(tiles) - 1, min(len(tiles), MOST_TILES)).round().astype(int)
  return np.stack([tiles[k] for k in keep])


def _rgb(pictures):
  pictures = np.asarray(pictures)
  if pictures.dtype != np.uint8 or pictures.ndim != 4 or pictures.shape[-1] not in (1, 3):
    raise UserError(f"The detector takes uint8 pictures [N, H, W, 1 or 3], got {pictures.dtype} "
                    f"{pictures.shape}.")
  return np.repeat(pictures, 3, axis=-1) if pictures.shape[-1] == 1 else pictures


@functools.partial(jax.jit, static_argnums=0)
def _logits(net, params, pictures):
  return net.apply({"params": params}, to_model_input(jnp.asarray(pictures)))


def _sigmoid(x):
  return special.expit(np.asarray(x, np.float64))


class Detector:
  """The two scores' weights: the network's params and the spectral regression's (feature mean
  and scale, coefficients, intercept)."""

  def __init__(self, params, spectral, steps):
    self.net = nets.Detector()
    self.params, self.spectral, self.steps = params, spectral, steps

  @classmethod
  def load(cls, path=WEIGHTS):
    try:
      with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
      settings = json.loads(str(arrays.pop("settings")))
      spectral = {k: arrays.pop(f"spectral/{k}") for k in ("mean", "scale", "coef", "intercept")}
    except (OSError, ValueError, KeyError) as e:
      raise UserError(f"The detector weights {path} could not be read ({e}): give a file "
                      "benchmarks/detector.py --weights wrote.") from None
    return cls(npz.unflatten(arrays, "cnn"), spectral, settings["steps"])

  def save(self, path):
    arrays = {"settings": np.array(json.dumps({"steps": self.steps})),
              **{f"spectral/{k}": np.asarray(v) for k, v in self.spectral.items()},
              **npz.flatten(self.params, "cnn")}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, **arrays)
    return path

  def cnn(self, pictures):
    """The network's probabilities [N] that uint8 pictures [N, H, W, C] (one size) are
    generated."""
    return _sigmoid(np.asarray(_logits(self.net, self.params, _rgb(pictures))))

  def spectral_logits(self, tiles):
    s = self.spectral
    x = (spectrum(tiles) - s["mean"]) / s["scale"]
    return x @ s["coef"] + s["intercept"]

  def scores(self, pictures):
    """{"cnn", "spectral"}: probabilities [N] for uint8 pictures [N, H, W, C] of one size; the
    spectral one only for TILE x TILE pictures (None for others)."""
    tiles = pictures.shape[1:3] == (TILE, TILE)
    return {"cnn": self.cnn(pictures),
            "spectral": _sigmoid(self.spectral_logits(pictures)) if tiles else None}

  def score(self, frames):
    """{"cnn", "spectral"} for one picture, or a clip's frames, uint8 [N, H, W, C] of any size,
    their frame trimmed (`unframed`) and at most their central MAX_SIDE x MAX_SIDE: the network's
    logit averaged over the frames, the spectral one over their tiles (None when they are
    smaller than TILE)."""
    frames = centre(unframed(frames), MAX_SIDE)
    cnn = float(_sigmoid(np.asarray(_logits(self.net, self.params, _rgb(frames))).mean()))
    tiles = [t for t in map(tiles_of, frames) if t is not None]
    spectral = (float(_sigmoid(self.spectral_logits(np.concatenate(tiles)).mean())) if tiles
                else None)
    return {"cnn": cnn, "spectral": spectral}


def train(real, fake, steps=STEPS, seed=0, progress=False):
  """A Detector trained on uint8 pictures [N, TILE, TILE, C]: real ones against generated ones.
  The network sees balanced batches of augmented pictures (`augment`, then half of them
  mirrored); the spectral regression is fitted on one augmented copy of each."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  real, fake = _rgb(real), _rgb(fake)
  rng = np.random.default_rng(seed)
  net = nets.Detector()
  params = net.init(jax.random.PRNGKey(seed), to_model_input(jnp.asarray(real[:1])))["params"]
  tx = optax.adam(LEARNING_RATE)
  opt_state = tx.init(params)
  labels = jnp.concatenate([jnp.zeros(BATCH // 2), jnp.ones(BATCH // 2)])

  @jax.jit
  def step(params, opt_state, pictures):
    def loss_fn(p):
      logits = net.apply({"params": p}, to_model_input(jnp.asarray(pictures)))
      return optax.sigmoid_binary_cross_entropy(logits, labels).mean()
    updates, opt_state = tx.update(jax.grad(loss_fn)(params), opt_state)
    return optax.apply_updates(params, updates), opt_state

  loop = range(steps)
  if progress:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    loop = tqdm(loop, desc="detector", unit="step")
  for _ in loop:
    pick = lambda x: x[rng.integers(0, len(x), BATCH // 2)]
    batch = augment(np.concatenate([pick(real), pick(fake)]), rng)
    batch = np.where(rng.random((BATCH, 1, 1, 1)) < 0.5, batch, batch[:, :, ::-1])  # flips
    params, opt_state = step(params, opt_state, batch)
  x = spectrum(augment(np.concatenate([real, fake]), rng))
  y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
  mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
  regression = LogisticRegression(max_iter=1000).fit((x - mean) / scale, y)
  spectral = {"mean": mean, "scale": scale, "coef": regression.coef_[0].astype(np.float32),
              "intercept": np.float32(regression.intercept_[0])}
  return Detector(jax.device_get(params), spectral, steps)

