"""Offline metrics of text-to-image models on the t2i_digits task (`gan_jax.data.captions`).

- Attribute accuracy: each image is read back. Its digit by the digits classifier
  (`metrics.digits`) on the image's ink, the brightest channel of each pixel, so a blue seven
  reads as a white one does; its colour from the inked pixels (ink above INK_THRESHOLD): their
  mean colour, scaled so its brightest channel is 1, nearest of the five COLOURS. Shares right
  for the digit, the colour and both, over the seen pairs and over the held-out pairs.
- R-precision (Xu et al. 2018, AttnGAN): each image's prompt is ranked among NUM_MISMATCHED random
  prompts of other (digit, colour) pairs in the same wording by a dual encoder's cosine
  similarity; R is the share of images whose own prompt ranks first. The dual encoder is this
  module's own (`DualEncoder`): a small CNN on the image pooled to 8x8 and a bag-of-words encoder
  over the templates' words, trained contrastively on real captioned digits and cached like the
  digits classifier. It is not the sentence encoder the generator is trained with, which would
  grade the generator by the same reading of the text it learned from. As a judge it sees every
  pair, held-out ones too; the generator never does.

Images are float NHWC in [-1, 1] (or uint8), 3 channels, square, a multiple of 8 pixels.
`prompt_metrics(generate)` scores a generator given as a function of prompts (list of str ->
images); `reference()` scores real digits the same way (held-out digit images drawn in the asked
colours): the line a generator is read against.
"""
from __future__ import annotations

import functools
import os
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from gan_jax.cache import cache_dir
from gan_jax.data import captions, embedded
from gan_jax.metrics import digits as digits_lib
from gan_jax.metrics.cache import computing, save_npz

INK_THRESHOLD = 0.5  # of full intensity: a pixel counts as ink (digit_edges thresholds alike)
NUM_MISMATCHED = 99
SAMPLES_PER_PAIR = 28  # images per (digit, colour) pair: 4 per template, 7 per paraphrase
WORDINGS = {"templates": captions.TEMPLATES, "paraphrases": captions.PARAPHRASES}
GROUPS = {"seen": captions.SEEN, "held_out": captions.HELD_OUT}


def _unit(images) -> np.ndarray:
  """uint8 [0, 255] or float [-1, 1] images -> float32 [0, 1], checked: 3 channels, square, a
  multiple of 8 pixels."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] != 3 or (
      images.shape[1] % 8):
    raise ValueError(f"t2i_digits metrics want square RGB NHWC images a multiple of 8 pixels "
                     f"wide, got shape {images.shape}")
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  return np.clip((images.astype(np.float32) + 1.0) / 2.0, 0.0, 1.0)


def read_colours(images) -> np.ndarray:
  """The colour (index into COLOURS) each image is drawn in; -1 where nothing is inked."""
  x = _unit(images)
  inked = x.max(axis=-1) > INK_THRESHOLD  # [N, H, W]
  count = inked.sum(axis=(1, 2))
  mean = (x * inked[..., None]).sum(axis=(1, 2)) / np.maximum(count, 1)[:, None]  # [N, 3]
  hue = mean / np.maximum(mean.max(axis=-1, keepdims=True), 1e-6)
  palette = captions.PALETTE.astype(np.float32) / 255.0
  nearest = np.argmin(((hue[:, None] - palette[None]) ** 2).sum(-1), axis=1)
  return np.where(count > 0, nearest, -1)


def read_digits(images, classifier=None) -> np.ndarray:
  """The digit the digits classifier reads in each image's ink (brightest channel)."""
  ink = _unit(images).max(axis=-1, keepdims=True) * 2.0 - 1.0
  return (classifier or digits_lib.DigitsClassifier.load_or_train()).predict(ink)


def attribute_accuracy(images, pairs, classifier=None) -> dict:
  """Shares of `images` whose digit, colour and both are those of their prompt's (digit, colour)
  `pairs` [N, 2]."""
  pairs = np.asarray(pairs).reshape(-1, 2)
  digit = read_digits(images, classifier) == pairs[:, 0]
  colour = read_colours(images) == pairs[:, 1]
  return {"digit": float(digit.mean()), "colour": float(colour.mean()),
          "both": float((digit & colour).mean())}


# --- the dual encoder -------------------------------------------------------------------------

DUAL_VERSION = "v1"  # bump when the networks, the templates' words or the recipe change
EMBED_DIM = 64
MAX_TOKENS = 12
PAD = 0
_RESOLUTIONS = (16, 32, 64)  # digits are drawn at these sizes, then pooled to 8x8, to train
_BATCH = 1000  # images or texts per forward: one compiled shape


def words(text):
  return re.findall(r"[a-z0-9]+", text.lower())


def vocabulary() -> tuple:
  """"<pad>" and the words of every template caption, sorted."""
  found = {w for text in captions.prompts(captions.ALL_PAIRS) for w in words(text)}
  return ("<pad>",) + tuple(sorted(found))


def tokenize(texts, vocab) -> np.ndarray:
  """int32 [N, MAX_TOKENS]: ids of the words in `vocab`, padded with PAD. Other words are
  dropped: the judge reads a paraphrase by the words it knows (colour, digit, ...) rather than
  by how many it does not."""
  ids = {w: i for i, w in enumerate(vocab)}
  out = np.full((len(texts), MAX_TOKENS), PAD, np.int32)
  for row, text in enumerate(texts):
    tokens = [ids[w] for w in words(text) if w in ids][:MAX_TOKENS]
    out[row, :len(tokens)] = tokens
  return out


def _normalize(x):
  return x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)


class _ImageTower(nn.Module):
  """8x8x3 in [-1, 1] -> unit [EMBED_DIM]: the digits classifier's layout, in colour."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(64, (3, 3))(x))
    x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
    return _normalize(nn.Dense(EMBED_DIM)(x))


class _TextTower(nn.Module):
  """Word ids -> unit [EMBED_DIM]: the mean of their embeddings (a bag of words), an MLP."""
  vocab_size: int

  @nn.compact
  def __call__(self, tokens):
    mask = (tokens != PAD).astype(jnp.float32)[..., None]
    x = (nn.Embed(self.vocab_size, 64)(tokens) * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
    x = nn.relu(nn.Dense(128)(x))
    return _normalize(nn.Dense(EMBED_DIM)(x))


class _DualNet(nn.Module):
  vocab_size: int

  def setup(self):
    self.image = _ImageTower()
    self.text = _TextTower(self.vocab_size)

  def __call__(self, x8, tokens):
    return self.image(x8), self.text(tokens)


@functools.partial(jax.jit, static_argnums=0)
def _encode_images(vocab_size, params, x8):
  return _DualNet(vocab_size).apply({"params": params}, x8, method=lambda m, x: m.image(x))


@functools.partial(jax.jit, static_argnums=0)
def _encode_texts(vocab_size, params, tokens):
  return _DualNet(vocab_size).apply({"params": params}, tokens, method=lambda m, t: m.text(t))


def _chunked(fn, x):
  """fn over x in _BATCH rows at a time, the tail padded to one shape."""
  out = [np.zeros((0, EMBED_DIM), np.float32)]
  for start in range(0, len(x), _BATCH):
    chunk = x[start:start + _BATCH]
    padded = np.pad(chunk, [(0, _BATCH - len(chunk))] + [(0, 0)] * (x.ndim - 1))
    out.append(np.asarray(fn(padded))[:len(chunk)])
  return np.concatenate(out)


def _train_dual(vocab, seed=0, steps=800, batch_size=256, lr=3e-3, temperature=0.1,
                word_dropout=0.15):
  """Contrastive training on the digits classifier's train digits drawn in all five colours,
  captioned by a random template each time; images pooled to 8x8 from each of _RESOLUTIONS and
  shifted by up to a pixel (as the digits classifier is trained). Captions of the same pair in a
  batch are all right answers (soft targets), not negatives. Words are dropped at random
  (`word_dropout`) so that wordings with fewer known words, the paraphrases', still read: with
  it the R-precision of real held-out pairs on paraphrases is 0.97 instead of 0.92, on templates
  0.99 either way."""
  train, _ = digits_lib.digits_split()
  gray = np.stack([digits_lib.to_8x8(embedded.digits(r)[0][train].astype(np.float32) / 255.0)
                   for r in _RESOLUTIONS])  # [R, n, 8, 8, 1] in [0, 1]
  digit_labels = embedded.digits(8)[1][train]
  tokens = tokenize(captions.prompts(captions.ALL_PAIRS), vocab).reshape(
      len(captions.ALL_PAIRS), len(captions.TEMPLATES), MAX_TOKENS)
  palette = captions.PALETTE.astype(np.float32) / 255.0
  rng = np.random.RandomState(seed)
  model = _DualNet(len(vocab))
  params = digits_lib.init_params(model, rng, jnp.zeros((1, 8, 8, 3)),
                                  jnp.zeros((1, MAX_TOKENS), jnp.int32))
  tx = optax.adam(optax.cosine_decay_schedule(lr, steps))
  opt_state = tx.init(params)

  def loss_fn(p, x, t, pair):
    zi, zt = model.apply({"params": p}, x, t)
    logits = zi @ zt.T / temperature
    same = (pair[:, None] == pair[None, :]).astype(jnp.float32)
    targets = same / same.sum(axis=1, keepdims=True)  # symmetric: serves both directions
    return (optax.softmax_cross_entropy(logits, targets).mean()
            + optax.softmax_cross_entropy(logits.T, targets).mean()) / 2

  @jax.jit
  def step(p, o, x, t, pair):
    grads = jax.grad(loss_fn)(p, x, t, pair)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o

  for _ in range(steps):
    pick = rng.randint(len(train), size=batch_size)
    colour = rng.randint(len(captions.COLOURS), size=batch_size)
    x = gray[rng.randint(len(_RESOLUTIONS), size=batch_size), pick] * palette[colour][:, None, None]
    x = digits_lib.shifted(x * 2.0 - 1.0, rng, 1)
    pair = digit_labels[pick] * len(captions.COLOURS) + colour
    t = tokens[pair, rng.randint(len(captions.TEMPLATES), size=batch_size)]
    t = np.where(rng.random_sample(t.shape) < word_dropout, PAD, t)
    params, opt_state = step(params, opt_state, x, t, pair)
  return jax.tree_util.tree_map(np.asarray, params)


def dual_cache_path() -> str:
  return os.path.join(cache_dir(), f"t2i_dual_encoder_{DUAL_VERSION}.npz")


class DualEncoder:
  """Images and captions of t2i_digits in one space (unit vectors): the judge of R-precision."""

  def __init__(self, params, vocab):
    self.params = jax.tree_util.tree_map(jnp.asarray, params)
    self.vocab = tuple(vocab)

  @classmethod
  def load_or_train(cls) -> "DualEncoder":
    """From the cache; trained (about half a minute on 2 CPU cores) and cached when it is absent
    or was trained over other words."""
    vocab, path = vocabulary(), dual_cache_path()
    with computing(path):
      if os.path.exists(path):
        with np.load(path, allow_pickle=False) as z:
          flat = {tuple(k.split("/")): z[k] for k in z.files if k != "vocab"}
          if tuple(str(z["vocab"]).split("\n")) == vocab:
            return cls(traverse_util.unflatten_dict(flat), vocab)
      params = _train_dual(vocab)
      save_npz(path, {"vocab": np.array("\n".join(vocab)),
                      **{"/".join(k): v for k, v in traverse_util.flatten_dict(params).items()}})
    return cls(params, vocab)

  def encode_images(self, images) -> np.ndarray:
    x8 = digits_lib.to_8x8(_unit(images)) * 2.0 - 1.0
    return _chunked(functools.partial(_encode_images, len(self.vocab), self.params), x8)

  def encode_texts(self, texts) -> np.ndarray:
    tokens = tokenize(list(texts), self.vocab)
    return _chunked(functools.partial(_encode_texts, len(self.vocab), self.params), tokens)


def r_precision(images, texts, pool, dual=None, num_mismatched=NUM_MISMATCHED, seed=0) -> float:
  """Share of `images` whose prompt (`texts[i]`, a t2i_digits caption) the dual encoder ranks
  first among itself and `num_mismatched` captions of `pool` drawn at random from those of other
  (digit, colour) pairs. Ties count against the image."""
  dual = dual or DualEncoder.load_or_train()
  pool = list(dict.fromkeys(pool))
  pool_pairs = np.array([captions.label(captions.pair_of(t)) for t in pool])
  own = np.array([captions.label(captions.pair_of(t)) for t in texts])
  z_image = dual.encode_images(images)
  true = (z_image * dual.encode_texts(texts)).sum(-1)
  scores = z_image @ dual.encode_texts(pool).T  # [N, P]
  rng = np.random.default_rng(seed)
  first = np.empty(len(own), bool)
  for i, pair in enumerate(own):
    others = np.flatnonzero(pool_pairs != pair)
    wrong = rng.choice(others, num_mismatched, replace=False)
    first[i] = true[i] > scores[i, wrong].max()
  return float(first.mean())


# --- a generator's scores, and the reference line -----------------------------------------------

def prompt_metrics(generate, samples_per_pair=SAMPLES_PER_PAIR, classifier=None, dual=None,
                   seed=0, batch_size=500) -> dict:
  """Attribute accuracy and R-precision of `generate` (list of prompts -> images [N, R, R, 3],
  called with at most `batch_size` prompts at a time) on `samples_per_pair` prompts of every
  pair, cycling through the wording's templates, for each wording (the training templates, the
  paraphrases no training caption uses) and group of pairs (seen, held out). Flat keys:
  "{group}/{wording}/{digit|colour|both|r_precision}"."""
  classifier = classifier or digits_lib.DigitsClassifier.load_or_train()
  dual = dual or DualEncoder.load_or_train()
  out = {}
  for wording, templates in WORDINGS.items():
    pool = captions.prompts(captions.ALL_PAIRS, templates)
    for group, pairs in GROUPS.items():
      texts = [captions.caption(p, templates[k % len(templates)])
               for p in pairs for k in range(samples_per_pair)]
      images = np.concatenate([np.asarray(generate(texts[s:s + batch_size]))
                               for s in range(0, len(texts), batch_size)])
      scores = attribute_accuracy(images, [captions.pair_of(t) for t in texts], classifier)
      scores["r_precision"] = r_precision(images, texts, pool, dual, seed=seed)
      out.update({f"{group}/{wording}/{k}": v for k, v in scores.items()})
  return out


def real_generator(resolution=32, split="test", seed=0):
  """A `generate` answering each prompt with a real digit of its pair: a random one of the digits
  classifier's `split` digits of its digit ("test": digit images t2i_digits never trains on),
  drawn in its colour (`captions.reals`)."""
  images, pairs = captions.reals(captions.ALL_PAIRS, resolution, split)
  labels = pairs[:, 0] * len(captions.COLOURS) + pairs[:, 1]
  rows = [np.flatnonzero(labels == k) for k in range(len(captions.ALL_PAIRS))]
  rng = np.random.default_rng(seed)

  def generate(texts):
    return images[[rng.choice(rows[captions.label(captions.pair_of(t))]) for t in texts]]
  return generate


def reference(resolution=32, **kwargs) -> dict:
  """`prompt_metrics` of real held-out digit images (`real_generator`): what a generator that
  draws exactly the asked digit in the asked colour scores."""
  return prompt_metrics(real_generator(resolution), **kwargs)
