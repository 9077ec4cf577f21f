"""Host input pipeline: a seeded, repeating shuffle of a source, one element per train step.

Element s of the grain dataset is the real data for train step s: `n_critic` micro-batches of the
global batch, of which this process keeps its own slice. Because element s is a pure function of
(seed, s), grain's iterator state (a position) restores exactly, and every process agrees on the
global batch whatever the process count. grain computes `data.workers` steps at once in threads
and keeps `data.prefetch` ready; images stay uint8 until the step converts them on the device.
"""
import functools
import os

import grain
import numpy as np
from PIL import Image

FLIP_STREAM = 1  # random flips draw from their own stream, apart from the shuffles
JITTER_STREAM = 2  # and so do the random crops of the jitter
DEGRADE_STREAM = 3  # and the degradations that make SR inputs
CAPTION_STREAM = 4  # and the caption each example of captioned data shows


class StepBatches:
  """Random access: step -> {"x": [n_critic, local_batch, ...], "label": [n_critic, local_batch]}.

  A source with two independent `domains` (unpaired translation data) is read as two sources,
  each with its own shuffle: domain B's keys come back as "y" and "y_label".

  `load_size` > 0 turns on pix2pix's random jitter (`_jitter`) before the flips. `degrade` (a
  `degrade.Degrader`) turns HR images into super-resolution pairs after the flips (`_degrade`).
  A source with caption embeddings (`spec.text_dim` > 0, `captions.TextSource`) adds "text":
  float32 [n_critic, local_batch, text_dim], one caption's embedding per example (`_caption_draws`).
  """

  def __init__(self, source, batch_size, n_critic, seed, process_index=0, process_count=1,
               random_flip=False, load_size=0, degrade=None):
    self.source, self.seed, self.random_flip = source, seed, random_flip
    self.load_size, self.degrade = load_size, degrade
    self.batch_size, self.n_critic = batch_size, n_critic
    local = batch_size // process_count
    self.local = slice(process_index * local, (process_index + 1) * local)

  @functools.lru_cache(maxsize=4)
  def _permutation(self, length, epoch, domain):
    entropy = [self.seed, epoch] + ([domain] if domain else [])  # domain 0: the one-source stream
    return np.random.default_rng(entropy).permutation(length)

  def _indices(self, positions, length, domain):
    epochs, offsets = np.divmod(positions, length)
    indices = np.empty_like(positions)
    for e in np.unique(epochs):
      sel = epochs == e
      indices[sel] = self._permutation(length, int(e), domain)[offsets[sel]]
    return indices

  def _global_to_local(self, values):
    """[n_critic * batch_size] drawn for the global step -> this process's share, flattened."""
    return values.reshape(self.n_critic, -1)[:, self.local].ravel()

  def __getitem__(self, step):
    per_step = self.batch_size * self.n_critic
    positions = self._global_to_local(np.arange(step * per_step, (step + 1) * per_step))
    domains = getattr(self.source, "domains", (self.source,))
    batch = {}
    for domain, source in enumerate(domains):
      indices = self._indices(positions, len(source), domain)
      if source.spec.text_dim:
        part = source.get(indices, self._caption_draws(step, domain))
        part["text"] = source.embeddings[part.pop("caption")]
      else:
        part = source.get(indices)
      if self.load_size:
        part = self._jitter(step, domain, part)
      batch.update({_domain_key(domain, k): v for k, v in part.items()})
    if self.random_flip:
      batch = self._flip(step, batch)
    if self.degrade is not None:
      batch = self._degrade(step, batch)
    return {k: v.reshape((self.n_critic, -1) + v.shape[1:]) for k, v in batch.items()}

  def _caption_draws(self, step, domain):
    """One draw in [0, 1) per example, made per global position from (seed, step, domain), that
    picks which of its captions the example shows: resume and any process count see the same."""
    draws = np.random.default_rng([self.seed, step, CAPTION_STREAM, domain]).random(
        self.n_critic * self.batch_size)
    return self._global_to_local(draws)

  def _flip(self, step, batch):
    """Mirrors each image with probability 1/2, decided per global position from (seed, step),
    so resume and any process count see the same flips. Done here on uint8 rather than in the
    step: a strided copy costs ~0.1 ms a batch next to the milliseconds of decoding, and the step
    stays the same for every source. Both domains of an example flip together (pairs stay
    aligned)."""
    draws = np.random.default_rng([self.seed, step, FLIP_STREAM]).random(
        self.n_critic * self.batch_size)
    flip = self._global_to_local(draws) < 0.5
    out = dict(batch)
    for key, x in batch.items():
      if x.ndim == 4:  # [B, H, W, C] images; labels and 2D points are left alone
        out[key] = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
    return out

  def _jitter(self, step, domain, part):
    """pix2pix's random jitter: each image enlarged to load_size x load_size (bicubic, pillow, on
    uint8) and cropped back to its size at a random offset drawn per global position from (seed,
    step, domain), so resume and any process count see the same crops. All images of one domain's
    example share the crop: both sides of a pair stay aligned. The two domains of an unpaired
    source draw their own crops, as the reference (CycleGAN) crops each image independently.
    Pillow costs ~20 us an image at 32 -> 36 (~3 ms for 64 gray pairs, 6 ms RGB), in the
    pipeline's worker threads."""
    draws = np.random.default_rng([self.seed, step, JITTER_STREAM, domain]).random(
        (self.n_critic * self.batch_size, 2))
    draws = draws.reshape(self.n_critic, -1, 2)[:, self.local].reshape(-1, 2)
    out = dict(part)
    for key, x in part.items():
      if x.ndim != 4 or x.shape[1] >= self.load_size:  # labels, 2D points; nothing to enlarge
        continue
      h, w = x.shape[1:3]
      tops = np.floor(draws[:, 0] * (self.load_size - h + 1)).astype(int)
      lefts = np.floor(draws[:, 1] * (self.load_size - w + 1)).astype(int)
      out[key] = np.stack([_enlarge(image, self.load_size)[t:t + h, l:l + w]
                           for image, t, l in zip(x, tops, lefts)])
    return out

  def _degrade(self, step, batch):
    """SR pairs: the (flipped) HR images become "y" and "label" also "y_label"; "x" becomes their
    degraded LR. Each example draws from its own generator of (seed, step, its place in the
    global step), so resume and any process count see the same LR."""
    places = self._global_to_local(np.arange(self.n_critic * self.batch_size))
    rngs = [np.random.default_rng([self.seed, step, DEGRADE_STREAM, int(p)]) for p in places]
    hr = batch["x"]
    return {**batch, "x": self.degrade(hr, rngs), "y": hr, "y_label": batch["label"]}


def _enlarge(image, size):
  """uint8 [H, W, C] -> [size, size, C], bicubic as pix2pix's loader does (C = 1 or 3)."""
  c = image.shape[-1]
  picture = Image.fromarray(image[..., 0] if c == 1 else image)
  big = np.asarray(picture.resize((size, size), Image.Resampling.BICUBIC))
  return big.reshape(size, size, c)


def _domain_key(domain, key):
  """Domain A keeps its keys; domain B's "x" becomes "y" and its "label" "y_label"."""
  if domain == 0:
    return key
  return "y" if key == "x" else "y_" + key


def worker_count(data_config):
  return data_config.workers or os.cpu_count() or 1


def read_options(data_config):
  threads = worker_count(data_config)
  return grain.ReadOptions(num_threads=threads,
                           prefetch_buffer_size=max(data_config.prefetch, threads))


class SeedBatches:
  """The batches of N one-seed runs (`train.num_seeds`), stacked on a seed axis after the batch
  axis: leaves [n_critic, B, N, ...]. Pipeline i is the one the run of seed config.seed + i
  reads; the state is theirs, in order, so checkpoints resume each exactly."""

  def __init__(self, iterators):
    self.iterators = iterators

  def __iter__(self):
    return self

  def __next__(self):
    batches = [next(it) for it in self.iterators]
    return {k: np.stack([b[k] for b in batches], axis=2) for k in batches[0]}

  def get_state(self):
    return {"seeds": [it.get_state() for it in self.iterators]}

  def set_state(self, state):
    for it, s in zip(self.iterators, state["seeds"], strict=True):
      it.set_state(s)


def _degrader(data_config):
  """The Degrader making LR inputs when data.scale is set, unless the data are pairs already
  (pair:LR,HR folders bring their own "x" and "y"; `config.validate_data` refuses the other
  two-domain sources with a scale)."""
  from gan_jax.data import degrade, sources  # pylint: disable=g-import-not-at-top  (a cycle)
  if not data_config.get("scale", 0) or sources.kind(data_config.source) in sources.TWO_DOMAINS:
    return None
  return degrade.build(data_config)


def make_iterator(source, config, process_index=0, process_count=1):
  """A grain iterator over train steps (`SeedBatches` of them for train.num_seeds > 1);
  `get_state()`/`set_state()` go into checkpoints."""
  n = config.train.get("num_seeds", 1)
  if n > 1:
    from gan_jax import config as config_lib  # pylint: disable=g-import-not-at-top  (a cycle)
    from gan_jax.data import sources  # pylint: disable=g-import-not-at-top
    runs = [config_lib.with_seed(config, config.seed + i) for i in range(n)]
    return SeedBatches([make_iterator(sources.for_seed(source, run), run, process_index,
                                      process_count) for run in runs])
  t = config.train
  steps = StepBatches(source, t.batch_size, t.n_critic, config.seed, process_index, process_count,
                      random_flip=config.data.random_flip, load_size=config.data.load_size,
                      degrade=_degrader(config.data))
  ds = grain.MapDataset.range(1 << 40).map(steps.__getitem__)
  return iter(ds.to_iter_dataset(read_options(config.data)))
