"""Captioned data (t2i_digits, metadata.jsonl folders, TFDS text), caption embeddings and the
t2i_digits metrics."""
import io
import json
import logging
import os
import re
import shutil
import zlib

import jax

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from gan_jax import config as config_lib, experiment
from gan_jax.data import captions, embedded, pipeline, sources
from gan_jax.data.spec import DataSpec
from gan_jax.errors import UserError
from gan_jax.metrics import digits as digits_lib, text


def data_config(source, resolution=16, channels=3, **data):
  c = config_lib.base_config()
  c.data.update(dict(source=source, resolution=resolution, channels=channels, workers=2, **data))
  return c


class HashEncoder:
  """A deterministic stand-in for a sentence encoder: a sum of seeded random word vectors, unit
  rows. `calls` counts how often it encoded."""

  def __init__(self, name="hash", dim=24):
    self.name, self.dim, self.calls = name, dim, 0

  def encode(self, texts, batch_size=256, progress=False):
    self.calls += 1
    out = np.zeros((len(texts), self.dim), np.float32)
    for i, t in enumerate(texts):
      for w in re.findall(r"\w+", t.lower()):
        seed = zlib.crc32(f"{self.name}:{w}".encode())
        out[i] += np.random.default_rng(seed).standard_normal(self.dim)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def take(iterator, count):
  return [next(iterator) for _ in range(count)]


# --- t2i_digits ---------------------------------------------------------------------------------

def test_held_out_pairs_and_captions_of_every_wording():
  assert captions.HELD_OUT == ((0, 0), (1, 4), (2, 3), (3, 2), (4, 1), (5, 0), (6, 4), (7, 3),
                               (8, 2), (9, 1))
  assert len(captions.SEEN) == 40 and not set(captions.SEEN) & set(captions.HELD_OUT)
  assert captions.prompts([(7, 0)], captions.TEMPLATES[:4]) == [
      "a red seven", "a red 7", "the digit 7 in red", "seven, coloured red"]
  wordings = captions.TEMPLATES + captions.PARAPHRASES
  every = captions.prompts(captions.ALL_PAIRS, wordings)
  assert len(set(every)) == 50 * len(wordings)  # no caption names two pairs
  assert [captions.pair_of(t) for t in every] == [p for p in captions.ALL_PAIRS for _ in wordings]
  with pytest.raises(ValueError, match="no t2i_digits"):
    captions.pair_of("a purple seven")


def test_t2i_digits_draws_train_digits_in_seen_colours_with_matching_captions():
  from gan_jax.metrics.digits import digits_split
  train, _ = digits_split()
  gray, digit_labels = embedded.digits(16)
  source = sources.build(data_config("t2i_digits"))
  assert len(source) == 3 * len(train) == 4311
  assert source.spec == DataSpec((16, 16, 3), "uint8", 50)
  assert set(source.rows[:, 0]) == set(train)  # only train digit images, each in 3 colours
  assert (np.bincount(source.rows[:, 0])[train] == 3).all()
  pairs = {(int(digit_labels[i]), int(c)) for i, c in source.rows}
  assert pairs == set(captions.SEEN)  # every seen pair, no held-out one
  assert not set(source.labels) & {captions.label(p) for p in captions.HELD_OUT}
  assert source.class_names[captions.label((7, 0))] == "7 red"
  pick = np.random.default_rng(0).choice(len(source), 200, replace=False)
  draws = np.random.default_rng(1).random(200)
  batch = source.get(pick, draws)
  assert batch["x"].shape == (200, 16, 16, 3) and batch["x"].dtype == np.uint8
  for x, lab, cap, (i, _) in zip(batch["x"], batch["label"], batch["caption"], source.rows[pick]):
    digit, colour = captions.pair_of(source.captions[cap])
    assert lab == captions.label((digit, colour)) and digit == digit_labels[i]
    lit = captions.PALETTE[colour] > 0  # the caption's colour is the one in the pixels
    np.testing.assert_array_equal(x[..., lit], np.repeat(gray[i], lit.sum(), axis=-1))
    assert (x[..., ~lit] == 0).all()
  assert len({source.captions[c] for c in batch["caption"]}) > 100  # every wording shows up
  assert "caption" not in source.get(pick[:3])  # no draws, no captions


def test_t2i_digits_subset_channels_and_held_out_reals():
  small = sources.build(data_config("t2i_digits", subset=50))
  assert small.captions is not None and len(small) == 50
  batch = small.get(np.arange(4), np.zeros(4))
  assert [captions.pair_of(small.captions[c]) for c in batch["caption"]] == [
      divmod(int(k), 5) for k in batch["label"]]
  assert sources.Subset(sources.build(data_config("digits", channels=1)), 5).captions is None
  with pytest.raises(UserError, match="t2i_digits draws digits in colours"):
    config_lib.validate_data(data_config("t2i_digits", channels=1))
  with pytest.raises(UserError, match="channels=3"):
    sources.build(data_config("t2i_digits", channels=1))
  images, pairs = captions.reals(captions.HELD_OUT[:2], 8)
  assert images.shape == (len(pairs), 8, 8, 3) and 60 <= len(pairs) <= 80  # 36ish test digits each
  assert {tuple(p) for p in pairs} == {(0, 0), (1, 4)}
  assert images[pairs[:, 1] == 0][..., 1:].max() == 0  # red: no green, no blue
  white = images[pairs[:, 1] == 4]
  assert (white[..., 0] == white[..., 2]).all() and white.max() > 200


# --- captioned folders ----------------------------------------------------------------------

def numbered_captioned_folder(root, count=6):
  """Images whose pixels are their number, each captioned 'picture N' (and some more)."""
  os.makedirs(root / "img", exist_ok=True)
  rows = []
  for i in range(count):
    Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(root / "img" / f"{i}.png")
    text = [f"picture {i}", f"image number {i}", ""] if i % 2 else f"picture {i}"
    rows.append(json.dumps({"file_name": f"img/{i}.png", "text": text}))
  return rows


def test_metadata_folder_reads_captions_and_reports_bad_rows(tmp_path, caplog):
  rows = numbered_captioned_folder(tmp_path)
  (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
  rows[3:3] = ["{not json", "[1, 2]", json.dumps({"text": "no file"}),
               json.dumps({"file_name": "img/0.png", "text": "  "}),
               json.dumps({"file_name": "img/1.png", "text": ["", 3]}),
               json.dumps({"file_name": "img/missing.png", "text": "gone"}),
               json.dumps({"file_name": "img/broken.png", "text": "broken"}), ""]
  (tmp_path / "metadata.jsonl").write_text("\n".join(rows) + "\n")
  with caplog.at_level(logging.WARNING, "gan_jax.data"):
    source = sources.build(data_config(f"captions:{tmp_path}", resolution=8))
  assert len(source) == 6 and source.spec == DataSpec((8, 8, 3), "uint8", 0)
  log = caplog.text
  assert "1 of 13 rows of" in log and "that are not JSON: line 4" in log
  assert "that are not JSON objects: line 5" in log and "without a file_name: line 6" in log
  assert "2 of 13 rows" in log and "without a caption (text): line 7, line 8" in log
  assert "naming a missing file: line 9" in log
  assert "1 of 7 image files" in log and "img/broken.png" in log  # as folders report them
  assert [source.table.of(i) for i in (0, 1)] == [["picture 0"], ["picture 1", "image number 1"]]
  batch = source.get(np.arange(6), np.full(6, 0.99))
  assert [b[0, 0, 0] for b in batch["x"]] == [0, 10, 20, 30, 40, 50]
  assert [source.captions[c] for c in batch["caption"]] == [
      "picture 0", "image number 1", "picture 2", "image number 3", "picture 4", "image number 5"]
  assert batch["label"].tolist() == [0] * 6


@pytest.mark.parametrize("content, expected", [
    (None, "has no metadata.jsonl"),
    ('{"file_name": "x.png", "text": "a"}\n', "None of the 1 rows"),
])
def test_metadata_folder_errors(tmp_path, content, expected):
  if content is not None:
    (tmp_path / "metadata.jsonl").write_text(content)
  with pytest.raises(UserError, match=re.escape(expected)):
    sources.build(data_config(f"captions:{tmp_path}"))


def test_a_caption_source_names_a_folder():
  with pytest.raises(UserError, match="names no folder: use captions:PATH"):
    sources.build(data_config("captions:"))
  with pytest.raises(UserError, match="does not exist"):
    sources.build(data_config("captions:/no/such/folder"))
  assert sources.kind("captions:x") == "captions"


def test_a_caption_follows_its_picture_when_one_fails_to_decode(tmp_path):
  rows = numbered_captioned_folder(tmp_path, 3)
  (tmp_path / "metadata.jsonl").write_text("\n".join(rows))
  source = sources.build(data_config(f"captions:{tmp_path}", resolution=8))
  (tmp_path / "img" / "1.png").write_bytes(b"")  # passed the check, fails to decode now
  batch = source.get(np.array([1]), np.zeros(1))
  assert batch["x"][0, 0, 0, 0] == 20 and source.captions[batch["caption"][0]] == "picture 2"


# --- TFDS with a text feature -------------------------------------------------------------------

class CaptionedImages(tfds.core.GeneratorBasedBuilder):
  """coco_captions' layout in small: an image and a sequence of captions (defining it registers
  it in TFDS). Example i is a picture of value 20 i with captions "photo i" and "shot i", but
  example 2 has none."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
        "captions": tfds.features.Sequence({"text": tfds.features.Text()}),
        "title": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for i in range(5):
      picture = io.BytesIO()
      Image.fromarray(np.full((10, 12, 3), 20 * i, np.uint8)).save(picture, "png")
      texts = [] if i == 2 else [f"photo {i}", f"shot {i}"]
      yield i, {"image": io.BytesIO(picture.getvalue()), "captions": {"text": texts},
                "title": f"title {i}"}


def test_tfds_text_feature_through_mock_data(caplog):
  with tfds.testing.mock_data(num_examples=8):
    with caplog.at_level(logging.WARNING, "gan_jax.data"):
      source = sources.build(data_config("tfds:captioned_images", text_key="captions/text"))
    records = [source.pictures.data[i] for i in range(8)]
    batch = source.get(np.arange(len(source)), np.zeros(len(source)))
  expected = [[t.strip() for t in r["captions"]["text"] if t.strip()] for r in records]
  kept = [i for i, t in enumerate(expected) if t]
  assert source.rows.tolist() == kept and len(kept) >= 4
  assert [source.table.of(k) for k in range(len(kept))] == [expected[i] for i in kept]
  assert (f"{8 - len(kept)} of 8 examples" in caplog.text) == (len(kept) < 8)
  assert batch["x"].shape == (len(kept), 16, 16, 3)
  assert [source.captions[c] for c in batch["caption"]] == [expected[i][0] for i in kept]


def test_tfds_text_feature_of_a_prepared_dataset(tmp_path, caplog, monkeypatch):
  from tensorflow_datasets.core.data_sources import array_record
  CaptionedImages(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  config = data_config("tfds:captioned_images", data_dir=str(tmp_path), text_key="captions/text")
  with monkeypatch.context() as m, caplog.at_level(logging.WARNING, "gan_jax.data"):
    # The captions come from the raw records: no picture is decoded to read them.
    m.setattr(array_record.ArrayRecordDataSource, "__getitem__",
              lambda self, i: pytest.fail("a record was decoded"))
    source = sources.build(config)
  assert len(source) == 4 and "1 of 5 examples" in caplog.text
  batch = source.get(np.arange(4), np.full(4, 0.75))
  values = batch["x"][:, 0, 0, 0] // 20
  assert sorted(values) == [0, 1, 3, 4]
  assert [source.captions[c] for c in batch["caption"]] == [f"shot {v}" for v in values]
  title = sources.build(data_config("tfds:captioned_images", data_dir=str(tmp_path),
                                    text_key="title"))
  assert len(title) == 5 and sorted(title.captions) == [f"title {i}" for i in range(5)]


def test_text_key_errors(tmp_path):
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(UserError, match=re.escape(
        "text_key=captions is no text feature of TFDS dataset 'captioned_images' (its text "
        "features: captions/text, title)")):
      sources.build(data_config("tfds:captioned_images", text_key="captions"))
  with pytest.raises(UserError, match="is no TFDS dataset"):
    config_lib.validate_data(data_config("folder:x", text_key="captions/text"))


# --- caption embeddings, cached in the workdir ------------------------------------------------

def test_embeddings_are_computed_once_and_cached_per_encoder(tmp_path):
  source = sources.build(data_config("t2i_digits", resolution=8))
  encoder = HashEncoder()
  embedded_source = captions.embed(source, encoder, str(tmp_path))
  assert encoder.calls == 1 and embedded_source.spec == DataSpec((8, 8, 3), "uint8", 50, 24)
  assert embedded_source.embeddings.shape == (280, 24) and embedded_source.class_names
  np.testing.assert_allclose(np.linalg.norm(embedded_source.embeddings, axis=1), 1, rtol=1e-5)
  captions.save(embedded_source, str(tmp_path))
  again = captions.embed(source, encoder, str(tmp_path))
  assert encoder.calls == 1 and not again.fresh  # read back
  np.testing.assert_array_equal(again.embeddings, embedded_source.embeddings)
  other = HashEncoder("other")
  by_other = captions.embed(source, other, str(tmp_path))
  assert other.calls == 1 and not np.allclose(by_other.embeddings, again.embeddings)
  (tmp_path / "f" / "metadata.jsonl").parent.mkdir()
  rows = numbered_captioned_folder(tmp_path / "f")
  (tmp_path / "f" / "metadata.jsonl").write_text("\n".join(rows))
  pictures = sources.build(data_config(f"captions:{tmp_path / 'f'}", resolution=8))
  assert captions.embed(pictures, encoder, str(tmp_path)).embeddings.shape == (9, 24)
  assert encoder.calls == 2  # other captions: computed
  (tmp_path / captions.EMBEDDINGS).write_bytes(b"damaged")
  captions.embed(source, encoder, str(tmp_path))
  assert encoder.calls == 3


def test_embedding_needs_captions_and_a_text_config(tmp_path):
  digits = sources.build(data_config("digits", channels=1))
  with pytest.raises(UserError, match="this data has none: use --config.data.source=t2i_digits"):
    captions.embed(digits, HashEncoder(), str(tmp_path))
  config = data_config("t2i_digits")
  source = sources.build(config)
  assert captions.for_training(source, config, str(tmp_path)) is source  # no encoder: a cGAN


def test_specs_saved_before_text_load_without_it(tmp_path):
  (tmp_path / "data_spec.json").write_text('{"shape": [8, 8, 3], "dtype": "uint8", '
                                           '"num_classes": 50}')
  assert experiment.load_spec(str(tmp_path)) == DataSpec((8, 8, 3), "uint8", 50, 0)
  experiment.save_spec(DataSpec((8, 8, 3), "uint8", 50, 24), str(tmp_path))
  assert experiment.load_spec(str(tmp_path)).text_dim == 24


# --- one caption per example per step, reproducibly ---------------------------------------------

@pytest.fixture
def text_folder(tmp_path):
  """6 numbered pictures, the odd ones with two captions, embedded by the hash encoder."""
  rows = numbered_captioned_folder(tmp_path)
  (tmp_path / "metadata.jsonl").write_text("\n".join(rows))
  config = data_config(f"captions:{tmp_path}", resolution=8)
  config.train.batch_size, config.train.n_critic = 6, 2
  source = captions.embed(sources.build(config), HashEncoder(), str(tmp_path))
  return config, source


def shown_captions(source, batch):
  """number of the picture -> index of the caption whose embedding it carries, per example."""
  out = []
  for x, t in zip(batch["x"].reshape(-1, 8, 8, 3), batch["text"].reshape(-1, 24)):
    k = int(np.argmax(source.embeddings @ t))
    np.testing.assert_array_equal(source.embeddings[k], t)
    number = int(x[0, 0, 0] // 10)
    assert source.captions[k] in source.source.table.of(number)
    out.append((number, source.captions[k]))
  return out


def test_each_step_draws_one_caption_per_example_from_seed_and_step(text_folder):
  config, source = text_folder
  steps = pipeline.StepBatches(source, 6, 2, seed=0)
  batch = steps[3]
  assert sorted(batch) == ["label", "text", "x"]
  assert batch["text"].shape == (2, 6, 24) and batch["text"].dtype == np.float32
  shown = shown_captions(source, batch)
  assert shown == shown_captions(source, pipeline.StepBatches(source, 6, 2, seed=0)[3])
  assert all(cap == f"picture {n}" for n, cap in shown if n % 2 == 0)
  # Every step shows every picture twice (its two micro-batches: 12 = 2 epochs of 6); over a few
  # steps the odd ones show both of their captions, and the choices change from step to step.
  over_steps = [sorted(shown_captions(source, steps[s])) for s in range(6)]
  assert len({tuple(s) for s in over_steps}) > 1
  assert {cap for s in over_steps for n, cap in s if n == 1} == {"picture 1", "image number 1"}
  other_seed = [sorted(shown_captions(source, pipeline.StepBatches(source, 6, 2, seed=1)[s]))
                for s in range(6)]
  assert other_seed != over_steps


def test_captions_resume_and_split_over_processes_exactly(text_folder):
  config, source = text_folder
  whole = take(pipeline.make_iterator(source, config), 5)
  cut = pipeline.make_iterator(source, config)
  take(cut, 2)
  resumed = pipeline.make_iterator(source, config)
  resumed.set_state(json.loads(json.dumps(cut.get_state())))
  for x, y in zip(take(resumed, 3), whole[2:]):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  single = pipeline.StepBatches(source, 6, 2, 0)
  halves = [pipeline.StepBatches(source, 6, 2, 0, i, 2) for i in range(2)]
  for step in range(3):
    joined = np.concatenate([h[step]["text"] for h in halves], axis=1)
    np.testing.assert_array_equal(joined, single[step]["text"])


# --- metrics: attribute accuracy and R-precision --------------------------------------------------

@pytest.fixture(scope="module")
def classifier():
  return digits_lib.DigitsClassifier.load_or_train()


@pytest.fixture(scope="module")
def dual():
  return text.DualEncoder.load_or_train()


@pytest.fixture(scope="module")
def held_out_reals():
  return captions.reals(captions.ALL_PAIRS, 32)


def recoloured(pairs):
  """The same digits asked for in the next colour: every colour wrong."""
  return np.stack([pairs[:, 0], (pairs[:, 1] + 1) % 5], axis=1)


def test_attributes_of_real_digits_read_right_and_wrong_colours_read_wrong(classifier,
                                                                           held_out_reals):
  images, pairs = held_out_reals
  right = text.attribute_accuracy(images, pairs, classifier)
  assert right["colour"] == 1.0 and right["digit"] > 0.95 and right["both"] > 0.95
  as_float = text.attribute_accuracy(images.astype(np.float32) / 127.5 - 1, pairs, classifier)
  assert as_float == right
  wrong = text.attribute_accuracy(images, recoloured(pairs), classifier)
  assert wrong["colour"] == 0.0 and wrong["both"] == 0.0 and wrong["digit"] == right["digit"]
  assert (text.read_colours(np.zeros((2, 8, 8, 3), np.uint8)) == -1).all()  # nothing inked
  dim = (images[:10].astype(np.float32) * 0.6).astype(np.uint8)  # darker ink, same hue
  np.testing.assert_array_equal(text.read_colours(dim), pairs[:10, 1])


def test_r_precision_ranks_true_captions_first_for_real_digits(dual, held_out_reals):
  images, pairs = held_out_reals
  pool = captions.prompts(captions.ALL_PAIRS)
  truth = [captions.caption(tuple(p), captions.TEMPLATES[i % 7]) for i, p in enumerate(pairs)]
  assert text.r_precision(images, truth, pool, dual) > 0.9
  lies = [captions.caption(tuple(p), captions.TEMPLATES[i % 7])
          for i, p in enumerate(recoloured(pairs))]
  assert text.r_precision(images, lies, pool, dual) < 0.1


def test_prompt_metrics_score_a_generator_against_the_real_reference(classifier, dual):
  reference = text.reference(16, samples_per_pair=7, classifier=classifier, dual=dual)
  assert sorted(reference) == sorted(f"{g}/{w}/{k}" for g in ("seen", "held_out")
                                     for w in ("templates", "paraphrases")
                                     for k in ("digit", "colour", "both", "r_precision"))
  assert min(reference.values()) > 0.85
  real = text.real_generator(16)
  asked = []

  def wrong_colours(prompts):  # draws the asked digit in the next colour
    asked.extend(prompts)
    pairs = recoloured(np.array([captions.pair_of(t) for t in prompts]))
    return real([captions.caption(tuple(p), captions.TEMPLATES[0]) for p in pairs])

  scores = text.prompt_metrics(wrong_colours, samples_per_pair=7, classifier=classifier,
                               dual=dual, batch_size=100)
  assert len(asked) == 50 * 7 * 2 and captions.caption((0, 1), captions.PARAPHRASES[0]) in asked
  assert scores["held_out/templates/digit"] > 0.85 and scores["held_out/templates/both"] == 0
  assert max(v for k, v in scores.items() if k.endswith(("colour", "r_precision"))) < 0.1


def test_the_dual_encoder_is_cached_and_retrained_for_other_words(dual, tmp_path, monkeypatch):
  shutil.copy(text.dual_cache_path(), tmp_path / "dual.npz")
  monkeypatch.setattr(text, "dual_cache_path", lambda: str(tmp_path / "dual.npz"))
  trained = []
  params = jax.tree.map(np.asarray, dual.params)
  monkeypatch.setattr(text, "_train_dual", lambda vocab: trained.append(vocab) or params)
  assert text.DualEncoder.load_or_train().vocab == dual.vocab and not trained  # read back
  monkeypatch.setattr(text, "vocabulary", lambda: dual.vocab + ("crimson",))
  assert text.DualEncoder.load_or_train().vocab[-1] == "crimson" and len(trained) == 1
  assert text.DualEncoder.load_or_train().vocab[-1] == "crimson" and len(trained) == 1  # cached
