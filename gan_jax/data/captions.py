"""Captioned data for text-to-image games: the offline `t2i_digits` task, users' captioned folders
(`captions:PATH`), TFDS datasets with a text feature (`data.text_key`), and the caption embeddings
a run computes once.

A captioned source is a source (`sources`) with `captions`, its distinct caption strings, and
`get(indices, caption_draws=None)`: given one draw in [0, 1) per example it adds "caption", the id
(into `captions`) of one of that example's captions, chosen by the draw. The pipeline draws from
(seed, step) on a stream of its own (`pipeline.CAPTION_STREAM`), so an example with several
captions shows a different one each epoch and a resumed run sees the same ones.

`embed(source, encoder, workdir)` encodes the distinct captions once with a frozen sentence
encoder (`gan_jax.encoders`: `.name`, `.dim`, `.encode(texts, batch_size, progress)`), reusing the
workdir's text_embeddings.npz when it holds the same captions by the same encoder, and returns a
`TextSource`: the same examples, with `text_dim` in the spec; the pipeline then puts each example's
caption embedding under "text", so the train step sees arrays only.

Users' folders are named as a kind of their own, `captions:PATH`, rather than recognised by a
metadata.jsonl inside `folder:PATH`: a folder of class subfolders that happens to hold such a file
keeps meaning what it meant, and a missing or misnamed metadata file is one clear error instead of
a run that silently ignores the captions.
"""
import dataclasses
import functools
import json
import os
import zipfile

import numpy as np
import tqdm

from gan_jax.data import embedded, folder, images
from gan_jax.data.pipeline import worker_count
from gan_jax.data.spec import DataSpec
from gan_jax.errors import UserError
from gan_jax.metrics.cache import save_npz

EMBEDDINGS = "text_embeddings.npz"  # in the workdir, next to data_spec.json
ENCODE_BATCH = 256
METADATA = "metadata.jsonl"


class Table:
  """The captions of N examples: the distinct `strings`, and for example i the ids (into
  `strings`) ids[offsets[i]:offsets[i + 1]] of its captions, at least one each."""

  def __init__(self, strings, offsets, ids):
    self.strings = list(strings)
    self.offsets, self.ids = np.asarray(offsets, np.int64), np.asarray(ids, np.int32)

  @classmethod
  def from_lists(cls, per_example):
    """From each example's list of caption strings; ids in order of first appearance."""
    index = {}
    ids = [index.setdefault(text, len(index)) for texts in per_example for text in texts]
    return cls(list(index), np.cumsum([0] + [len(t) for t in per_example]), ids)

  def __len__(self):
    return len(self.offsets) - 1

  def of(self, example):
    """Example `example`'s captions."""
    return [self.strings[k] for k in self.ids[self.offsets[example]:self.offsets[example + 1]]]

  def pick(self, examples, draws):
    """One caption id per example of `examples`: the one its draw in [0, 1) falls on."""
    examples = np.asarray(examples, np.int64)
    start = self.offsets[examples]
    count = self.offsets[examples + 1] - start
    chosen = np.minimum((np.asarray(draws) * count).astype(np.int64), count - 1)
    return self.ids[start + chosen]


def with_captions(batch, table, examples, draws):
  """`batch` with "caption" (ids of `table`) for `examples` when there are draws."""
  if draws is not None:
    batch["caption"] = table.pick(examples, draws)
  return batch


# --- t2i_digits: real digits drawn in colours, captioned from templates -----------------------

COLOURS = (("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 0, 255)),
           ("yellow", (255, 255, 0)), ("white", (255, 255, 255)))
COLOUR_NAMES = tuple(name for name, _ in COLOURS)
PALETTE = np.array([rgb for _, rgb in COLOURS], np.uint8)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The wordings of the training captions: each example has all seven.
TEMPLATES = (
    "a {colour} {word}",
    "a {colour} {numeral}",
    "the digit {numeral} in {colour}",
    "{word}, coloured {colour}",
    "the number {word} written in {colour}",
    "a handwritten {colour} {numeral} on black",
    "{colour} ink, the digit {word}",
)
# Wordings no training caption uses, with the same colour names, for evaluation.
PARAPHRASES = (
    "{word} drawn in {colour}",
    "an image of the numeral {numeral} in {colour}",
    "a picture showing a {colour} handwritten {word}",
    "digit: {numeral}, colour: {colour}",
)
ALL_PAIRS = tuple((d, c) for d in range(10) for c in range(len(COLOURS)))  # label = its index
# Held out of training: every (digit, colour) with (digit + colour index) % 5 == 0, one colour per
# digit and two digits per colour, so each word is seen, but not in these combinations.
HELD_OUT = tuple((d, c) for d, c in ALL_PAIRS if (d + c) % 5 == 0)
SEEN = tuple(p for p in ALL_PAIRS if p not in HELD_OUT)
COLOURS_PER_IMAGE = 3  # of its digit's 4 seen colours: 1437 train digits -> 4311 examples
ASSIGN_SEED = 0  # which seen colour each digit image is not drawn in


def label(pair):
  """The class of a (digit, colour) pair: digit * 5 + colour (a cGAN's 50 classes)."""
  digit, colour = pair
  return digit * len(COLOURS) + colour


def caption(pair, template):
  digit, colour = pair
  return template.format(colour=COLOUR_NAMES[colour], word=DIGIT_WORDS[digit], numeral=digit)


def prompts(pairs, templates=TEMPLATES):
  """Every template's caption of every pair: pair by pair, templates in order."""
  return [caption(p, t) for p in pairs for t in templates]


@functools.lru_cache(maxsize=1)
def _pair_by_prompt():
  return {caption(p, t): p for p in ALL_PAIRS for t in TEMPLATES + PARAPHRASES}


def pair_of(text):
  """The (digit, colour) of a template or paraphrase caption."""
  try:
    return _pair_by_prompt()[text]
  except KeyError:
    raise ValueError(f"{text!r} is no t2i_digits template or paraphrase caption") from None


def render(digits, colours):
  """Gray digits uint8 [N, R, R, 1] drawn in `colours` (indices into COLOURS) on black:
  uint8 [N, R, R, 3]. Each channel is the gray ink scaled by the colour's component."""
  scale = PALETTE[np.asarray(colours)].astype(np.float32)[:, None, None, :] / 255.0
  return np.round(digits.astype(np.float32) * scale).astype(np.uint8)


def train_rows(digit_labels, indices, seed=ASSIGN_SEED):
  """(image index, colour) of every t2i_digits example, sorted: each digit image of `indices` in
  COLOURS_PER_IMAGE of its digit's seen colours. The colour left out cycles over a seeded order of
  the digit's images, so each seen pair has the same share of its digit's images."""
  rng = np.random.default_rng(seed)
  rows = []
  for d in range(len(DIGIT_WORDS)):
    seen = [c for c in range(len(COLOURS)) if (d, c) not in HELD_OUT]
    for rank, i in enumerate(rng.permutation(indices[digit_labels[indices] == d])):
      left_out = {seen[(rank + k) % len(seen)] for k in range(len(seen) - COLOURS_PER_IMAGE)}
      rows += [(i, c) for c in seen if c not in left_out]
  return np.array(sorted(rows), np.int64)


def _digit_split(split):
  from gan_jax.metrics.digits import digits_split  # the classifier's split, kept apart from it
  train, test = digits_split()
  return train if split == "train" else test


def reals(pairs, resolution, split="test"):
  """Real examples of (digit, colour) `pairs`: every digit of the digits classifier's `split` of
  the pair's digit, drawn in its colour; (uint8 [N, R, R, 3], int [N, 2] pairs), pair by pair.
  split="test" gives digit images that t2i_digits never trains on, in any colour: the held-out
  pairs' reals for FID-like comparisons."""
  digits, digit_labels = embedded.digits(resolution)
  indices = _digit_split(split)
  out, out_pairs = [], []
  for d, c in pairs:
    mine = indices[digit_labels[indices] == d]
    out.append(render(digits[mine], np.full(len(mine), c)))
    out_pairs.append(np.tile([d, c], (len(mine), 1)))
  return np.concatenate(out), np.concatenate(out_pairs)


class DigitCaptions:
  """`t2i_digits`: the digits classifier's 1437 train digits, each drawn in COLOURS_PER_IMAGE of
  its digit's seen colours on black (4311 examples), label = digit * 5 + colour, captioned by
  every template of its pair. No example shows a HELD_OUT pair."""

  def __init__(self, resolution):
    self.digits, digit_labels = embedded.digits(resolution)
    self.rows = train_rows(digit_labels, _digit_split("train"))
    pairs = np.stack([digit_labels[self.rows[:, 0]], self.rows[:, 1]], axis=1)
    self.labels = (pairs[:, 0] * len(COLOURS) + pairs[:, 1]).astype(np.int32)
    # The captions are the seen pairs' template captions; example i's are its pair's run of them.
    rank = np.full(len(ALL_PAIRS), -1)
    rank[[label(p) for p in SEEN]] = np.arange(len(SEEN))
    t = len(TEMPLATES)
    ids = rank[self.labels][:, None] * t + np.arange(t)
    self.table = Table(prompts(SEEN), np.arange(len(self.rows) + 1) * t, ids.ravel())
    self.captions = self.table.strings
    self.class_names = [f"{d} {COLOUR_NAMES[c]}" for d, c in ALL_PAIRS]
    self.spec = DataSpec((resolution, resolution, 3), "uint8", len(ALL_PAIRS))

  def __len__(self):
    return len(self.rows)

  def get(self, indices, caption_draws=None):
    rows = self.rows[indices]
    batch = {"x": render(self.digits[rows[:, 0]], rows[:, 1]), "label": self.labels[indices]}
    return with_captions(batch, self.table, indices, caption_draws)


# --- a user's captioned folder: PATH/metadata.jsonl ---------------------------------------------

def read_metadata(root):
  """(file names, captions of each) from the rows of root/metadata.jsonl. Rows that are not JSON
  objects, lack a file_name or a non-empty text, or name a missing file are left out and
  reported (count and first line numbers), as unreadable images are."""
  if not os.path.isdir(root):
    what = "is not a folder" if os.path.exists(root) else "does not exist"
    raise UserError(f"Caption folder {root} {what}: pass --config.data.source=captions:PATH with "
                    f"a folder holding images and a {METADATA}.")
  path = os.path.join(root, METADATA)
  if not os.path.isfile(path):
    raise UserError(f"{root} has no {METADATA}: add one with a line "
                    '{"file_name": "0001.png", "text": "a caption"} per image (Hugging Face\'s '
                    "imagefolder layout; text may be a list of captions).")
  relpaths, texts, bad, rows = [], [], {}, 0
  with open(path, encoding="utf-8", errors="replace") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      rows += 1
      row = _metadata_row(line, root)
      if isinstance(row, str):
        bad.setdefault(row, []).append(f"line {number}")
      else:
        relpaths.append(row[0])
        texts.append(row[1])
  if not relpaths:
    raise UserError(f"None of the {rows} rows of {path} names an existing image with a caption: "
                    'write one line {"file_name": "0001.png", "text": "a caption"} per image, '
                    "file names relative to the folder.")
  for reason, lines in bad.items():
    folder.report_left_out(f"{len(lines)} of {rows} rows of {path} {reason}", lines)
  return relpaths, texts


def _metadata_row(line, root):
  """(file name, captions) of one metadata.jsonl line, or why it is left out."""
  try:
    row = json.loads(line)
  except ValueError:
    return "that are not JSON"
  if not isinstance(row, dict):
    return "that are not JSON objects"
  name = row.get("file_name")
  if not isinstance(name, str) or not name.strip():
    return "without a file_name"
  text = row.get("text")
  texts = [text] if isinstance(text, str) else text if isinstance(text, list) else []
  texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
  if not texts:
    return "without a caption (text)"
  if not os.path.isfile(os.path.join(root, name)):
    return "naming a missing file"
  return name, texts


class CaptionFolder:
  """The images named by the rows of PATH/metadata.jsonl, each with its captions. Unlabelled:
  Hugging Face's imagefolder also drops folder labels when a metadata file is present."""

  def __init__(self, root, relpaths, texts, resolution, channels, resize):
    self.root, self.relpaths = root, relpaths
    self.fit = (resolution, channels, resize)
    self.table = Table.from_lists(texts)
    self.captions = self.table.strings
    self.class_names = None
    self.spec = DataSpec((resolution, resolution, channels), "uint8", 0)

  @classmethod
  def scan(cls, root, data_config):
    """Reads the metadata and checks the images it names (`folder.check_readable`)."""
    relpaths, texts = read_metadata(root)
    readable = set(folder.check_readable(root, sorted(set(relpaths)), worker_count(data_config)))
    keep = [i for i, p in enumerate(relpaths) if p in readable]
    d = data_config
    return cls(root, [relpaths[i] for i in keep], [texts[i] for i in keep], d.resolution,
               d.channels, d.resize)

  def __len__(self):
    return len(self.relpaths)

  def get(self, indices, caption_draws=None):
    # A picture that fails to decode is replaced by the next one (`folder.decode_all`): captions
    # are drawn for the pictures shown.
    used, pictures = folder.decode_all(indices, len(self), self.load, self.root)
    batch = {"x": np.stack(pictures), "label": np.zeros(len(used), np.int32)}
    return with_captions(batch, self.table, used, caption_draws)

  def load(self, index):
    return images.load(os.path.join(self.root, self.relpaths[index]), *self.fit, key=index)


# --- TFDS: an image feature and a text feature ------------------------------------------------

class TfdsCaptions:
  """The examples of a TFDS split (`tfds_source.TfdsSource`) with the captions of its text
  feature `text_key`: a path such as "captions/text" (coco_captions' layout: a sequence of texts
  per image) or a single Text feature's name. Examples without a caption are left out and
  reported."""

  def __init__(self, pictures, text_key):
    self.pictures = pictures
    path = text_key.strip("/").split("/")
    if not _is_text_feature(pictures.features, path):
      found = ", ".join(_text_keys(pictures.features)) or "none"
      raise UserError(f"--config.data.text_key={text_key} is no text feature of TFDS dataset "
                      f"{pictures.name!r} (its text features: {found}): name one of those.")
    texts = _read_texts(pictures.data, pictures.features, path, pictures.name)
    keep = [i for i, t in enumerate(texts) if t]
    if not keep:
      raise UserError(f"No example of TFDS dataset {pictures.name!r} has a caption in {text_key}: "
                      "choose another text feature or split.")
    left = [f"example {i}" for i, t in enumerate(texts) if not t]
    if left:
      folder.report_left_out(f"{len(left)} of {len(texts)} examples of TFDS dataset "
                             f"{pictures.name!r} without a caption in {text_key}", left)
    self.rows = np.array(keep, np.int64)
    self.table = Table.from_lists([texts[i] for i in keep])
    self.captions = self.table.strings
    self.spec, self.class_names = pictures.spec, pictures.class_names

  def __len__(self):
    return len(self.rows)

  def get(self, indices, caption_draws=None):
    indices = np.asarray(indices)
    batch = self.pictures.get(self.rows[indices])
    return with_captions(batch, self.table, indices, caption_draws)


def _inside_sequences(feature):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  while isinstance(feature, tfds.features.Sequence):
    feature = feature.feature
  return feature


def _is_text_feature(features, path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  node = features
  for part in path:
    node = _inside_sequences(node)
    if not isinstance(node, tfds.features.FeaturesDict) or part not in node.keys():
      return False
    node = node[part]
  return isinstance(_inside_sequences(node), tfds.features.Text)


def _text_keys(features, prefix=""):
  """Paths of every text feature (inside sequences too), as text_key spells them."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  node = _inside_sequences(features)
  if isinstance(node, tfds.features.Text):
    return [prefix.rstrip("/")]
  if not isinstance(node, tfds.features.FeaturesDict):
    return []
  return [k for name, f in node.items() for k in _text_keys(f, f"{prefix}{name}/")]


def _read_texts(data, features, path, name):
  """Each record's captions (stripped, empty ones dropped). A prepared split's raw records are
  parsed by TFDS's numpy example parser without decoding their pictures (a coco-sized split in
  seconds instead of minutes of JPEG decoding); data sources without raw records
  (tfds.testing.mock_data) through their decoded records."""
  raw = getattr(data, "data_source", None)
  parser = getattr(features, "_example_parser_np", None)  # private to TFDS: used when present
  if parser is not None and len(data) and isinstance(raw[0], (bytes, memoryview)):
    read = lambda i: parser.parse_example(raw[i])
  else:
    read = data.__getitem__
  out = []
  for i in tqdm.tqdm(range(len(data)), desc=f"reading the captions of {name}", unit="example",
                     disable=len(data) < folder.PROGRESS_FROM):
    value = read(i)
    for part in path:
      value = value[part]
    out.append(_strings(value))
  return out


def _strings(value):
  """A text feature's value (str or bytes, or an array of them) -> its non-empty strings."""
  values = np.asarray(value, dtype=object).ravel()
  texts = (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values)
  return [t.strip() for t in texts if t.strip()]


# --- caption embeddings -----------------------------------------------------------------------

class TextSource:
  """A captioned source with its captions embedded: `embeddings[k]` (float32, unit rows) is
  caption `captions[k]`'s, by the encoder named `encoder`; the spec's text_dim is their size.
  The pipeline gives each example the embedding of the caption it draws for it, as "text"."""

  def __init__(self, source, embeddings, encoder, fresh=True):
    self.source, self.embeddings, self.encoder = source, embeddings, encoder
    self.fresh = fresh  # computed now, not read from the workdir: `save` writes them
    self.captions = source.captions
    self.spec = dataclasses.replace(source.spec, text_dim=int(embeddings.shape[1]))
    self.class_names = getattr(source, "class_names", None)

  def __len__(self):
    return len(self.source)

  def get(self, indices, caption_draws=None):
    return self.source.get(indices, caption_draws)


def has_captions(source):
  return getattr(source, "captions", None) is not None


def encoder_name(config):
  """The sentence encoder a config trains with (config.text.encoder; text games), or ""."""
  text = config.get("text")
  return (text.get("encoder", "") if text is not None else "") or ""


def for_training(source, config, workdir, progress=True):
  """What a run of `config` trains on: `source` with its captions embedded by config.text.encoder
  when the config names one (`embed`), else `source` itself (a cGAN on t2i_digits reads its 50
  labels and no text)."""
  name = encoder_name(config)
  if not name:
    return source
  from gan_jax import encoders  # pylint: disable=g-import-not-at-top  (only text runs need one)
  return embed(source, encoders.get(name), workdir, progress)


def embed(source, encoder, workdir, progress=True):
  """A `TextSource` of `source`: its distinct captions encoded once, in batches, or read from the
  workdir's text_embeddings.npz when that holds the same captions by the same encoder."""
  if not has_captions(source):
    raise UserError(f"The {encoder.name} text encoder reads captions, and this data has none: use "
                    "--config.data.source=t2i_digits, captions:PATH (a folder with a "
                    f"{METADATA}) or tfds:NAME with --config.data.text_key.")
  cached = read_embeddings(workdir, encoder.name, source.captions)
  if cached is not None:
    return TextSource(source, cached, encoder.name, fresh=False)
  vectors = np.asarray(encoder.encode(list(source.captions), batch_size=ENCODE_BATCH,
                                      progress=progress), np.float32)
  if vectors.shape != (len(source.captions), encoder.dim):
    raise ValueError(f"encoder {encoder.name} gave embeddings of shape {vectors.shape} for "
                     f"{len(source.captions)} captions of {encoder.dim} dimensions")
  return TextSource(source, vectors, encoder.name)


def _pack(strings):
  """Strings as one uint8 array of their UTF-8 bytes and the end of each (no pickle needed)."""
  encoded = [s.encode("utf-8") for s in strings]
  return np.frombuffer(b"".join(encoded), np.uint8), np.cumsum([len(e) for e in encoded])


def read_embeddings(workdir, encoder, captions):
  """The cached embeddings of `captions` by `encoder` (a name), or None where the workdir holds
  none, other captions, another encoder's, or an unreadable file."""
  path = os.path.join(workdir, EMBEDDINGS)
  if not os.path.exists(path):
    return None
  data, ends = _pack(captions)
  try:
    with np.load(path, allow_pickle=False) as z:
      same = (str(z["encoder"]) == encoder and np.array_equal(z["caption_ends"], ends)
              and np.array_equal(z["caption_bytes"], data))
      return z["embeddings"] if same else None
  except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # damaged: computed again
    return None


def load(workdir):
  """(captions, embeddings, encoder name) of the workdir's text_embeddings.npz, or None where it
  has none (a run without captions) or it cannot be read."""
  path = os.path.join(workdir, EMBEDDINGS)
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      data, ends = z["caption_bytes"].tobytes(), z["caption_ends"]
      texts = [data[a:b].decode("utf-8") for a, b in zip(np.r_[0, ends[:-1]], ends)]
      return texts, z["embeddings"], str(z["encoder"])
  except (OSError, ValueError, KeyError, zipfile.BadZipFile):
    return None


def save(source, workdir):
  """text_embeddings.npz in the workdir for a `TextSource` whose embeddings were computed now:
  the caption strings, their embeddings and the encoder's name."""
  if not isinstance(source, TextSource) or not source.fresh:
    return
  data, ends = _pack(source.captions)
  save_npz(os.path.join(workdir, EMBEDDINGS), {
      "caption_bytes": data, "caption_ends": ends, "embeddings": source.embeddings,
      "encoder": np.array(source.encoder)})
