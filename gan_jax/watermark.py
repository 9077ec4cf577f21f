"""The learned watermark: 32 bits from a key hidden in a picture's brightness by the encoder the
watermark game trained (`configs/watermark.py`, `games/watermark.py`), read back by its decoder,
tuned afterwards on the real operations the game trains through as stand-ins (`tune_decoder`).

  wm = watermark.Watermark()                    # the weights shipped in the package
  marked = wm.mark(pictures, key="my-run")      # uint8 [N, H, W, C] or [H, W, C], any size
  wm.check(marked, key="my-run")                # bits read, bit accuracy, p-value, detected

The message is the first `bits` bits of SHA-256(key). A picture counts as marked with a key when
the bits read agree with the key's message more often than chance allows at `P_VALUE` (the
binomial tail); the decoder is trained to read chance from clean pictures (`loss.clean_weight`),
and `benchmarks/watermark.py` measures the false positives on clean pictures. The decoder reads
the mark's cells by position, so `check` also reads the picture put back where a crop would have
cut it from (`REFRAMES`: a crop keeping 90% or 80% of each side, at 5 x 5 offsets), and takes the
best read with its p-value multiplied by the reads tried (Bonferroni): half of P_VALUE goes to the
picture as it is (24 of 32 bits), half to the reframed reads (27 of 32). The weights file is an
npz of arrays (no pickle): the networks' parameters by path and the model's settings as JSON.
"""
import contextlib
import functools
import hashlib
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gan_jax import attacks, npz
from gan_jax.errors import UserError
from gan_jax.games.common import to_model_input
from gan_jax.models import watermark as nets

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "watermark.npz")
DEFAULT_KEY = "gan_jax"
P_VALUE = 0.01  # detected: fewer than 1 in 100 clean pictures agree this well by chance
REFRAMES = ((0.9, 0.8), 5)  # the crops `check` undoes: shares of each side kept, offsets a side
SETTINGS = ("bits", "side", "width", "strength")
TUNE_STEPS = 4000  # the decoder's fine-tuning on the real operations (`tune_decoder`)
TUNE_SIDES = (32, 48, 64, 96, 128, 192, 256)  # the picture sides it is tuned on
TUNE_PER_SIDE = 2000  # random crops of each side

_key = DEFAULT_KEY  # what pictures written now are marked with; None: not marked (--no-watermark)


def use(key):
  """Marks what the library writes from now on with `key` (None: nothing); returns the one
  before. `gan-jax`'s --watermark_key and --no-watermark set it for one command."""
  global _key
  if key is not None:
    message(key, 1)  # a bad key fails here, before anything is drawn
  previous, _key = _key, key
  return previous


@contextlib.contextmanager
def marking(key):
  """`use(key)` for the `with` block (`marking(None)`: write unmarked pictures)."""
  previous = use(key)
  try:
    yield
  finally:
    use(previous)


@functools.lru_cache(maxsize=1)
def shipped():
  return Watermark()


def apply(pictures):
  """uint8 pictures [..., H, W, C] (one, or frames) marked with the key in use; as they are
  where none is, or where they are not grey or RGB (`reporting` calls this on every labelled
  picture and clip it writes)."""
  pictures = np.asarray(pictures)
  if _key is None or pictures.dtype != np.uint8 or pictures.ndim not in (2, 3, 4):
    return pictures
  if pictures.ndim == 2:
    return apply(pictures[..., None])[..., 0]
  if pictures.shape[-1] not in (1, 3):
    return pictures
  return shipped().mark(pictures, _key)


def message(key, bits):
  """The `bits` bits a key stands for: SHA-256 of its UTF-8 bytes, most significant first."""
  if not isinstance(key, str) or not key:
    raise UserError(f"A watermark key must be a non-empty string, got {key!r}.")
  digest = hashlib.sha256(key.encode()).digest()
  return np.unpackbits(np.frombuffer(digest, np.uint8))[:bits].astype(np.float32)


def p_value(agree, bits):
  """P(at least `agree` of `bits` fair coin flips come up right): the chance a clean picture's
  bits agree this well with a key's message."""
  return sum(math.comb(bits, k) for k in range(agree, bits + 1)) / 2 ** bits


def save(path, settings, encoder, decoder):
  """The weights file: `settings` (SETTINGS) as JSON and each network's params by path."""
  arrays = {"settings": np.array(json.dumps({k: settings[k] for k in SETTINGS})),
            **npz.flatten(encoder, "encoder"), **npz.flatten(decoder, "decoder")}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(path, **arrays)
  return path


def from_run(workdir, out=WEIGHTS, tune_steps=TUNE_STEPS, strength=None, progress=False):
  """Writes a trained watermark run's networks as the weights file `out`: the encoder marking at
  RMS `strength` (default the run's model.strength), the decoder then fine-tuned for
  `tune_steps` on the real operations at that strength (`tune_decoder`; 0: as trained)."""
  from gan_jax import api  # pylint: disable=g-import-not-at-top  (api loads the whole engine)
  if strength is not None and strength <= 0:
    raise UserError(f"--strength={strength} would hide nothing: give the residual's RMS, "
                    "e.g. 0.024.")
  model = api.load(workdir)
  if model.config.game != "watermark":
    raise UserError(f"{workdir} trained the {model.config.game} game, not the watermark: give a "
                    "run of configs/watermark.py.")
  params, settings = model.state.g.params, dict(model.config.model)
  if strength is not None:
    settings["strength"] = strength
  decoder = params["decoder"]
  if tune_steps:
    decoder = tune_decoder(Watermark.of(settings, params["encoder"], decoder), tune_steps,
                           progress=progress)
  return save(out, settings, params["encoder"], decoder)


def tune_decoder(wm, steps, seed=0, progress=False):
  """`wm`'s decoder parameters fine-tuned for `steps` on the real operations a picture meets
  (pillow's resize, blur, JPEG, and noise: `attacks.random_chain`), which the game can train
  through only as differentiable stand-ins. The encoder stays as it is, so pictures marked before
  read the same. Pool: TUNE_PER_SIDE random crops of each of TUNE_SIDES from the train photos,
  marked with random messages, and the same crops clean, each after its own draw of the chain;
  the decoder's cross-entropy on the marked ones and, toward 1/2, on the clean ones (as in the
  game: clean pictures read as chance)."""
  from gan_jax.data import embedded  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  photos = embedded.photos("train", 3)[1]
  seen = jax.jit(nets.decoder_input, static_argnums=1)
  look = lambda picture: np.asarray(seen(to_model_input(jnp.asarray(picture[None])),
                                         wm.decoder.side))[0]
  marked, clean, messages = [], [], []
  bar = _bar(progress, total=len(TUNE_SIDES) * TUNE_PER_SIDE, desc="marking and attacking",
             unit="picture")
  for side in TUNE_SIDES:
    crops = embedded.crops(photos, side, TUNE_PER_SIDE, seed=seed + side)
    m = rng.integers(0, 2, (TUNE_PER_SIDE, wm.bits)).astype(np.float32)
    for i in range(0, TUNE_PER_SIDE, 64):
      out = wm.hide(crops[i:i + 64], m[i:i + 64])
      marked += [look(attacks.random_chain(p, rng)) for p in out]
      clean += [look(attacks.random_chain(p, rng)) for p in crops[i:i + 64]]
      bar.update(len(out))
    messages.append(m)
  bar.close()
  marked, clean, messages = np.stack(marked), np.stack(clean), np.concatenate(messages)

  tx = optax.adam(1e-4)
  read = lambda p, x: wm.decoder.apply({"params": p}, x, prepared=True)

  @jax.jit
  def step(params, opt_state, x, m, c):
    def loss_fn(p):
      return (optax.sigmoid_binary_cross_entropy(read(p, x), m).mean()
              + optax.sigmoid_binary_cross_entropy(read(p, c), 0.5).mean())
    updates, opt_state = tx.update(jax.grad(loss_fn)(params), opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  params = wm.decoder_params
  opt_state = tx.init(params)
  bar = _bar(progress, total=steps, desc="tuning the decoder", unit="step")
  for _ in range(steps):
    i, j = rng.integers(0, len(marked), 64), rng.integers(0, len(clean), 64)
    params, opt_state = step(params, opt_state, marked[i], messages[i], clean[j])
    bar.update()
  bar.close()
  return jax.device_get(params)


class Watermark:
  """The encoder and decoder of a weights file (default: the shipped one)."""

  def __init__(self, path=WEIGHTS):
    try:
      with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
      settings = json.loads(str(arrays.pop("settings")))
    except (OSError, ValueError, KeyError) as e:
      raise UserError(f"The watermark weights {path} could not be read ({e}): give a file "
                      "`gan-jax watermark-weights` wrote.") from None
    self._build(settings, npz.unflatten(arrays, "encoder"), npz.unflatten(arrays, "decoder"))

  @classmethod
  def of(cls, settings, encoder_params, decoder_params):
    """A Watermark of networks in memory (a run's, before they are written)."""
    wm = cls.__new__(cls)
    wm._build(settings, encoder_params, decoder_params)
    return wm

  def _build(self, settings, encoder_params, decoder_params):
    self.bits = settings["bits"]
    self.encoder = nets.Encoder(settings["bits"], settings["side"], settings["width"],
                                settings["strength"])
    self.decoder = nets.Decoder(settings["bits"], settings["side"], settings["width"])
    self.encoder_params, self.decoder_params = encoder_params, decoder_params

  def mark(self, pictures, key=DEFAULT_KEY):
    """uint8 pictures [N, H, W, C] (or one [H, W, C]) with `key`'s message hidden in them."""
    pictures, one = _batch(pictures)
    out = self.hide(pictures, np.broadcast_to(message(key, self.bits), (len(pictures), self.bits)))
    return out[0] if one else out

  def hide(self, pictures, messages):
    """uint8 pictures [N, H, W, C] with messages [N, bits] (0/1) hidden in them, one each."""
    marked = _encode(self.encoder, self.encoder_params, to_model_input(jnp.asarray(pictures)),
                     jnp.asarray(messages, jnp.float32))
    return np.asarray(jnp.round((marked + 1.0) * 127.5)).astype(np.uint8)

  def read(self, pictures):
    """The decoder's logits [N, bits] (> 0: bit 1) of uint8 pictures [N, H, W, C] or one."""
    pictures, one = _batch(pictures)
    inputs = to_model_input(jnp.asarray(pictures))
    logits = np.asarray(_decode(self.decoder, self.decoder_params, inputs))
    return logits[0] if one else logits

  def check(self, picture, key=DEFAULT_KEY):
    """What one uint8 picture [H, W, C] says about `key`'s mark: `verdict` of the picture as it
    is, or of the best of its reframed reads (`reframed`) where that is stronger, each p-value
    multiplied by its share of the tries."""
    as_is = self.verdict(self.read(picture) > 0, key, tries=2)
    bits = np.concatenate([self.read(batch) for batch in reframed(picture)]) > 0
    agree = np.sum(bits == (message(key, self.bits) > 0.5), axis=1)
    best = self.verdict(bits[np.argmax(agree)], key, tries=2 * len(bits))
    return as_is if as_is["p_value"] <= best["p_value"] else {**best, "reframed": True}

  def verdict(self, bits, key=DEFAULT_KEY, tries=1):
    """{"bits" read (0/1 text), "bit_accuracy" against `key`'s message, "p_value" of that
    agreement by chance (times `tries`, the reads it was the best of, at most 1), "detected" at
    P_VALUE} of bits read [bits] (booleans)."""
    bits = np.asarray(bits).astype(np.float32)
    agree = int(np.sum(bits == message(key, self.bits)))
    p = min(1.0, tries * p_value(agree, self.bits))
    return {"bits": "".join(str(int(b)) for b in bits), "bit_accuracy": agree / self.bits,
            "p_value": p, "detected": bool(p < P_VALUE)}


def reframed(picture):
  """Batches of `picture` put back where a crop would have cut it from (REFRAMES), one batch a
  share kept: the picture at each offset in a frame 1 / share its size, edges extended."""
  keeps, steps = REFRAMES
  h, w = picture.shape[:2]
  for keep in keeps:
    big_h, big_w = round(h / keep), round(w / keep)
    batch = []
    for fy in np.linspace(0, 1, steps):
      for fx in np.linspace(0, 1, steps):
        top, left = round(fy * (big_h - h)), round(fx * (big_w - w))
        batch.append(np.pad(picture, ((top, big_h - h - top), (left, big_w - w - left), (0, 0)),
                            mode="edge"))
    yield np.stack(batch)


def _bar(shown, **kwargs):
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  return tqdm(disable=not shown, **kwargs)


def _batch(pictures):
  pictures = np.asarray(pictures)
  if pictures.dtype != np.uint8 or pictures.ndim not in (3, 4) or pictures.shape[-1] not in (1, 3):
    raise UserError(f"The watermark takes uint8 pictures [H, W, 1 or 3] or a batch of them, got "
                    f"{pictures.dtype} {pictures.shape}.")
  return (pictures[None], True) if pictures.ndim == 3 else (pictures, False)


@functools.partial(jax.jit, static_argnums=0)
def _encode(encoder, params, images, m):
  return encoder.apply({"params": params}, images, m, train=False)


@functools.partial(jax.jit, static_argnums=0)
def _decode(decoder, params, images):
  return decoder.apply({"params": params}, images, train=False)
