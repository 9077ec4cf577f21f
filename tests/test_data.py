"""Data sources and the input pipeline: fitting images, folders, pairs, TFDS, sharding, resume."""
import json
import logging
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from gan_jax import config as config_lib
from gan_jax.data import folder, images, pipeline, sources, tfds_source
from gan_jax.errors import UserError
from gan_jax.games.noise import NoiseGame

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import input_pipeline  # noqa: E402


def data_config(source, resolution=8, channels=3, batch_size=4, n_critic=1, **data):
  c = config_lib.base_config()
  c.data.update(dict(source=source, resolution=resolution, channels=channels, workers=2, **data))
  c.train.batch_size, c.train.n_critic = batch_size, n_critic
  return c


def save(path, array, **kw):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path, **kw)


def numbered_folder(root, count, size=8, classes=None, ext="png"):
  """Images whose every pixel is their number (so a batch tells which files it holds)."""
  for i in range(count):
    sub = classes[i % len(classes)] if classes else ""
    save(os.path.join(root, sub, f"{i:03d}.{ext}"), np.full((size, size, 3), i, np.uint8))
  return str(root)


def numbers(x):
  return x.reshape(len(x), -1)[:, 0].astype(int).tolist()


# --- fitting any picture to the config's resolution and channels -----------------------------

def test_center_crop_pad_and_stretch():
  picture = np.full((20, 40, 3), 255, np.uint8)  # 40 wide, 20 high: red | white | blue
  picture[:, :10] = (255, 0, 0)
  picture[:, 30:] = (0, 0, 255)
  image = Image.fromarray(picture)
  crop = images.fit(image, 8, 3, "center_crop")
  assert crop.shape == (8, 8, 3) and crop.min() > 200  # the centered square: white (a tinge of
  # red and blue at its edges: the filter reads past the crop box, as a crop then resize would not)
  pad = images.fit(image, 8, 3, "pad")
  assert (pad[:2] == 0).all() and (pad[6:] == 0).all()  # 8x4 picture centered on black
  assert pad[4, 0, 0] > 200 and pad[4, 0, 2] < 50 and pad[4, 7, 2] > 200
  stretch = images.fit(image, 8, 3, "stretch")
  assert stretch[0, 0, 0] > 200 and stretch[0, 0, 2] < 50 and stretch[7, 7, 2] > 200
  assert (stretch[:, 3:5] > 200).all()
  with pytest.raises(ValueError):
    images.fit(image, 8, 3, "zoom")


def test_enlarging_and_exact_sizes():
  gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
  big = images.fit(Image.fromarray(gray), 8, 1, "center_crop")
  assert big.shape == (8, 8, 1) and big[0, 0, 0] < big[7, 7, 0]
  same = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
  np.testing.assert_array_equal(images.fit_array(same, 8, 3, "center_crop"), same)
  np.testing.assert_array_equal(images.fit_array(same[..., :1], 8, 1, "pad"), same[..., :1])


def test_every_mode_becomes_gray_or_rgb():
  rgb = np.zeros((6, 6, 3), np.uint8)
  rgb[..., 0] = 200
  fit = lambda image, c: images.fit(image, 6, c, "center_crop")
  gray = fit(Image.fromarray(rgb), 1)
  assert gray.shape == (6, 6, 1) and gray[0, 0, 0] == round(200 * 0.299)  # ITU-R 601 luma
  three = fit(Image.fromarray(np.full((6, 6), 77, np.uint8)), 3)
  assert (three == 77).all()
  rgba = np.zeros((6, 6, 4), np.uint8)
  rgba[:3] = (0, 0, 255, 255)  # opaque blue on top, transparent below
  composed = fit(Image.fromarray(rgba), 3)
  assert (composed[0, 0] == (0, 0, 255)).all() and (composed[5, 5] == 255).all()  # over white
  palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
  assert fit(palette, 3)[0, 0, 0] == 200
  palette.info["transparency"] = palette.getpixel((0, 0))
  assert (fit(palette, 3) == 255).all()
  deep = Image.fromarray(np.full((6, 6), 257 * 100, np.uint16))  # 16-bit gray
  assert deep.mode.startswith("I") and (fit(deep, 1) == 100).all()


# --- folders ----------------------------------------------------------------------------------

def test_folder_classes_nested_folders_and_formats(tmp_path, caplog):
  arrays = {"zebras/a.png": (9, 7, 3), "cats/deep/er/b.jpg": (12, 12, 3), "cats/c.webp": (5, 9, 3),
            "cats/d.bmp": (8, 8, 3), "dogs/e.PNG": (8, 8, 4), "cats/g.png": (8, 8)}
  for rel, shape in arrays.items():
    save(str(tmp_path / rel), np.full(shape, 100, np.uint8))
  (tmp_path / "cats" / "notes.txt").write_text("not an image")
  save(str(tmp_path / ".hidden" / "x.png"), np.zeros((8, 8, 3), np.uint8))
  save(str(tmp_path / "loose.png"), np.zeros((8, 8, 3), np.uint8))
  with caplog.at_level(logging.WARNING, "gan_jax.data"):
    source = sources.build(data_config(f"folder:{tmp_path}"))
  assert "1 images in" in caplog.text and "loose.png" in caplog.text  # beside the class folders
  assert source.class_names == ["cats", "dogs", "zebras"]
  assert source.relpaths == ["cats/c.webp", "cats/d.bmp", "cats/deep/er/b.jpg", "cats/g.png",
                             "dogs/e.PNG", "zebras/a.png"]
  assert source.spec.shape == (8, 8, 3) and source.spec.num_classes == 3
  batch = source.get(np.arange(6))
  assert batch["x"].shape == (6, 8, 8, 3) and batch["x"].dtype == np.uint8
  assert batch["label"].tolist() == [0, 0, 0, 0, 1, 2]
  sources.write_labels(source, str(tmp_path))
  assert json.loads((tmp_path / "labels.json").read_text()) == {"cats": 0, "dogs": 1, "zebras": 2}


def test_folder_without_subfolders_is_unlabelled(tmp_path):
  source = sources.build(data_config(f"folder:{numbered_folder(tmp_path, 3)}", channels=1))
  assert source.spec.num_classes == 0 and source.class_names is None
  assert source.get(np.arange(3))["label"].tolist() == [0, 0, 0]
  sources.write_labels(source, str(tmp_path))
  assert not (tmp_path / "labels.json").exists()


def test_unreadable_files_are_left_out_and_reported(tmp_path, caplog):
  numbered_folder(tmp_path, 3)
  for i in range(5):
    (tmp_path / f"broken{i}.jpg").write_bytes(b"not a jpeg")
  (tmp_path / "empty.png").write_bytes(b"")
  with caplog.at_level(logging.WARNING, "gan_jax.data"):
    source = sources.build(data_config(f"folder:{tmp_path}"))
  assert len(source) == 3 and numbers(source.get(np.arange(3))["x"]) == [0, 1, 2]
  assert "6 of 9 image files" in caplog.text and "broken0.jpg, broken1.jpg, broken2.jpg, ..." in (
      caplog.text)


def test_a_file_that_fails_to_decode_is_replaced_by_the_next(tmp_path, caplog):
  numbered_folder(tmp_path, 3, classes="abc")
  jpeg = input_pipeline.synthetic_jpeg(np.random.default_rng(0), 64)
  (tmp_path / "b" / "001.png").unlink()
  (tmp_path / "b" / "001.jpg").write_bytes(jpeg[:len(jpeg) // 2])  # passes the header check only
  source = sources.build(data_config(f"folder:{tmp_path}"))
  assert source.relpaths == ["a/000.png", "b/001.jpg", "c/002.png"]
  with caplog.at_level(logging.WARNING, "gan_jax.data"):
    batch = source.get(np.array([1, 0, 1]))
  assert numbers(batch["x"]) == [2, 0, 2] and batch["label"].tolist() == [2, 0, 2]
  assert numbers(source.get(np.array([1]))["x"]) == [2]
  assert caplog.text.count("Could not decode example 1") == 1
  for i in (0, 2):  # now nothing decodes: one clear error, not an endless search
    (tmp_path / "abc"[i] / f"00{i}.png").write_bytes(b"")
  with pytest.raises(UserError, match="3 images in a row from example 0 .* could not be decoded"):
    source.get(np.array([0]))


# --- the pipeline: shuffling, flips, sharding, exact resume ---------------------------------

def take(iterator, count):
  return [next(iterator) for _ in range(count)]


def assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_epochs_cover_the_folder_in_seeded_orders(tmp_path):
  config = data_config(f"folder:{numbered_folder(tmp_path, 8)}", batch_size=4)
  source = sources.build(config)
  run = lambda: [numbers(b["x"][0]) for b in take(pipeline.make_iterator(source, config), 4)]
  first = run()
  assert first == run()  # same seed, same order
  assert sorted(first[0] + first[1]) == sorted(first[2] + first[3]) == list(range(8))
  assert first[:2] != first[2:]  # each epoch has its own shuffle
  config.seed = 1
  assert run() != first


def test_resumed_iterator_sees_the_same_batches(tmp_path):
  config = data_config(f"folder:{numbered_folder(tmp_path, 10, classes='ab')}", batch_size=4,
                       n_critic=2, random_flip=True)
  source = sources.build(config)
  whole = take(pipeline.make_iterator(source, config), 7)
  cut = pipeline.make_iterator(source, config)
  take(cut, 3)
  state = json.loads(json.dumps(cut.get_state()))  # as the checkpoint stores it
  resumed = pipeline.make_iterator(source, config)
  resumed.set_state(state)
  assert_same_batches(take(resumed, 4), whole[3:])


def test_random_flip_mirrors_about_half_and_is_seeded(tmp_path):
  root = tmp_path / "f"
  for i in range(64):
    picture = np.zeros((8, 8, 3), np.uint8)
    picture[:, 0] = i + 1  # a marked left column tells a flipped image from the original
    save(str(root / f"{i:03d}.png"), picture)
  plain = data_config(f"folder:{root}", batch_size=64)
  flipped = data_config(f"folder:{root}", batch_size=64, random_flip=True)
  source = sources.build(plain)
  a = take(pipeline.make_iterator(source, plain), 2)
  b = take(pipeline.make_iterator(source, flipped), 2)
  for x, y in zip(a, b):
    x, y = x["x"][0], y["x"][0]
    mirrored = (y[:, :, 0, 0] == 0).all(axis=1)
    np.testing.assert_array_equal(y[mirrored], x[mirrored][:, :, ::-1])
    np.testing.assert_array_equal(y[~mirrored], x[~mirrored])
    assert 16 <= mirrored.sum() <= 48
  again = take(pipeline.make_iterator(source, flipped), 2)
  assert_same_batches(b, again)


@pytest.mark.parametrize("flip", [False, True])
def test_process_slices_concatenate_to_the_global_batch(tmp_path, flip):
  config = data_config(f"folder:{numbered_folder(tmp_path, 12)}", batch_size=8, n_critic=2,
                       random_flip=flip)
  source = sources.build(config)
  steps = lambda index, count: pipeline.StepBatches(source, 8, 2, config.seed, index, count, flip)
  single = steps(0, 1)
  halves = (steps(0, 2), steps(1, 2))
  for step in range(3):
    joined = {k: np.concatenate([h[step][k] for h in halves], axis=1) for k in single[step]}
    assert_same_batches([joined], [single[step]])
    assert halves[0][step]["x"].shape == (2, 4, 8, 8, 3)


# --- two domains ---------------------------------------------------------------------------

def test_pairs_match_by_relative_name(tmp_path, caplog):
  for i in range(6):
    save(str(tmp_path / "A" / "s" / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    if i != 4:
      save(str(tmp_path / "B" / "s" / f"{i}.jpg"), np.full((8, 8, 3), 100 + 10 * i, np.uint8),
           quality=100)
  save(str(tmp_path / "B" / "s" / "extra.png"), np.zeros((8, 8, 3), np.uint8))
  config = data_config(f"pair:{tmp_path / 'A'},folder:{tmp_path / 'B'}", batch_size=5)
  with caplog.at_level(logging.WARNING, "gan_jax.data"):
    source = sources.build(config)
  assert "s/4.png" in caplog.text and "s/extra.png" in caplog.text
  assert len(source) == 5
  batch = pipeline.StepBatches(source, 5, 1, 0, random_flip=True)[0]
  assert sorted(batch) == ["label", "x", "y", "y_label"]
  a, b = np.array(numbers(batch["x"][0])), np.array(numbers(batch["y"][0]))
  assert sorted(a) == [0, 1, 2, 3, 5]
  np.testing.assert_allclose(b, 100 + 10 * a, atol=2)  # JPEG rounding


def test_unpaired_domains_shuffle_independently(tmp_path):
  a = numbered_folder(tmp_path / "A", 4)
  b = numbered_folder(tmp_path / "B", 6)
  config = data_config(f"unpaired:{a},{b}", batch_size=2)
  source = sources.build(config)
  steps = pipeline.StepBatches(source, 2, 1, 0)
  xs = [numbers(steps[s]["x"][0]) for s in range(6)]
  ys = [numbers(steps[s]["y"][0]) for s in range(6)]
  assert sorted(sum(xs[:2], [])) == sorted(sum(xs[2:4], [])) == list(range(4))  # A's epochs
  assert sorted(sum(ys[:3], [])) == sorted(sum(ys[3:], [])) == list(range(6))   # B's epochs
  assert steps[0]["y_label"].shape == (1, 2)


@pytest.mark.parametrize("text, expected", [
    ("pair:{a}", "needs two domains: pair:A,B"),
    ("unpaired:{a},{b},{a}", "needs two domains: unpaired:A,B"),
    ("pair:{a},", "needs two domains"),
    ("pair:{a},tfds:mnist", "pairs two folders by file name"),
    ("pair:{a},{other}", "has a partner of the same relative name"),
    ("unpaired:{a},{tmp}/missing", "missing does not exist"),
])
def test_two_domain_errors(tmp_path, text, expected):
  a, b = numbered_folder(tmp_path / "A", 2), numbered_folder(tmp_path / "B", 3)
  other = tmp_path / "other"
  save(str(other / "x.png"), np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(UserError, match=re.escape(expected)):
    sources.build(data_config(text.format(a=a, b=b, other=other, tmp=tmp_path)))


def test_tfds_dataset_without_images_is_refused():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(UserError, match="'imdb_reviews' has no image feature"):
      sources.build(data_config("tfds:imdb_reviews"))


def test_unpaired_tfds_reads_the_cycle_gan_layout():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=6):
    source = sources.build(data_config("unpaired:tfds:cycle_gan/horse2zebra"))
    batch = pipeline.StepBatches(source, 4, 1, 0)[0]
  assert [d.data.split for d in source.domains] == ["trainA", "trainB"]
  assert batch["x"].shape == batch["y"].shape == (1, 4, 8, 8, 3)


# --- TFDS ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def prepared_tfds(tmp_path_factory):
  """A really prepared TFDS dataset (ArrayRecord, written without TensorFlow): its data_dir."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  input_pipeline.write_tfds(data_dir, num_images=12, size=20)
  return data_dir


def test_prepared_tfds_dataset_reads_without_tensorflow(prepared_tfds):
  # The test environment has no TensorFlow: this is the real read path users get.
  config = data_config("tfds:synthetic_images:test", resolution=16, data_dir=prepared_tfds)
  source = sources.build(config)
  assert len(source) == 3 and source.spec == sources.DataSpec((16, 16, 3), "uint8", 2)
  assert source.class_names == ["a", "b"]
  batch = take(pipeline.make_iterator(source, config), 1)[0]
  assert batch["x"].shape == (1, 4, 16, 16, 3) and set(batch["label"].ravel()) <= {0, 1}
  assert batch["x"].std() > 5  # real decoded pictures, not blank


def test_tfds_names_splits_and_versions_parse():
  assert tfds_source.parse("mnist") == ("mnist", "train")
  assert tfds_source.parse("mnist:test") == ("mnist", "test")
  assert tfds_source.parse("mnist:3.0.1") == ("mnist:3.0.1", "train")
  assert tfds_source.parse("cycle_gan/horse2zebra:3.*.*:trainB") == (
      "cycle_gan/horse2zebra:3.*.*", "trainB")
  assert tfds_source.parse("celeb_a:train[:90%]") == ("celeb_a", "train[:90%]")


@pytest.mark.parametrize("text, expected", [
    ("tfds:synthetic_images:validation", "has no split 'validation': use one of test, train"),
    ("tfds:mnist", "tfds build mnist --file_format=array_record --data_dir="),
    ("tfds:no_such_dataset_here", "TFDS has no dataset named 'no_such_dataset_here'"),
    ("tfds:", "needs a dataset name"),
])
def test_tfds_errors(prepared_tfds, text, expected):
  with pytest.raises(UserError, match=re.escape(expected)):
    sources.build(data_config(text, data_dir=prepared_tfds))


# --- embedded datasets through the same `source` ------------------------------------------

def test_embedded_sources_keep_working():
  digits = sources.build(data_config("digits", resolution=16, channels=1))
  assert len(digits) == 1797 and digits.spec == sources.DataSpec((16, 16, 1), "uint8", 10)
  stacked = sources.build(data_config("stacked_digits", resolution=8))
  batch = stacked.get(np.arange(5))
  assert stacked.spec.num_classes == 1000 and batch["x"].shape == (5, 8, 8, 3)
  expected = (digits.labels[stacked.table[:5]] * [100, 10, 1]).sum(axis=1)
  np.testing.assert_array_equal(batch["label"], expected)
  for name, modes in (("ring2d", 8), ("grid2d", 25)):
    source = sources.build(data_config(name))
    assert source.spec == sources.DataSpec((2,), "float32", modes)
  assert [sources.kind(s) for s in ("digits", "folder:x", "tfds:m", "unpaired:a,b")] == [
      "digits", "folder", "tfds", "unpaired"]
  for unknown in ("img:x", "x", "digits:x", "folders"):
    with pytest.raises(UserError, match="Unknown data source"):
      sources.kind(unknown)


def test_a_subset_is_a_fixed_random_choice():
  full = sources.build(data_config("digits", resolution=8, channels=1))
  small = sources.build(data_config("digits", resolution=8, channels=1, subset=180))
  again = sources.build(data_config("digits", resolution=8, channels=1, subset=180))
  assert len(small) == 180 and small.spec == full.spec
  np.testing.assert_array_equal(small.indices, again.indices)
  batch = small.get(np.arange(180))
  np.testing.assert_array_equal(batch["x"], full.x[small.indices])
  assert len(set(batch["label"])) == 10  # 180 random digits hold every class
  with pytest.raises(UserError, match="more than the 1797 examples"):
    sources.build(data_config("digits", resolution=8, channels=1, subset=2000))
  with pytest.raises(UserError, match="one-domain data"):
    config_lib.validate_data(data_config("digit_edges", subset=10))


def test_digits_are_scikit_learns_read_without_importing_it():
  from sklearn.datasets import load_digits
  from gan_jax.data import embedded
  images, labels = embedded.digits_8x8()
  theirs = load_digits()
  np.testing.assert_array_equal(images, theirs.images)
  np.testing.assert_array_equal(labels, theirs.target)


# --- embedded translation tasks ------------------------------------------------------------

def test_digit_edges_pairs_train_digits_with_their_edges():
  from gan_jax.data import embedded
  from gan_jax.metrics.digits import digits_split
  train, test = digits_split()
  digits, labels = embedded.digits(32)
  source = sources.build(data_config("digit_edges", resolution=32, channels=1))
  assert len(source) == len(train) and source.spec == sources.DataSpec((32, 32, 1), "uint8", 10)
  batch = pipeline.StepBatches(source, 8, 1, 0)[0]
  assert sorted(batch) == ["label", "x", "y", "y_label"]
  np.testing.assert_array_equal(source.y, digits[train])  # only the train digits
  np.testing.assert_array_equal(source.x, embedded.digit_edges(digits[train]))
  np.testing.assert_array_equal(batch["label"], batch["y_label"])
  edges = source.x
  assert set(np.unique(edges)) == {0, 255}
  near = (source.y > 0)  # every edge pixel lies on or just beside a stroke
  assert (edges[~near] == 0).mean() > 0.99 and 0.05 < (edges > 0).mean() < 0.3
  held_out = sources.build(data_config("digit_edges", resolution=32, channels=3), split="test")
  b = held_out.get(np.arange(len(held_out)))
  assert len(held_out) == 360 and b["x"].shape == (360, 32, 32, 3)
  np.testing.assert_array_equal(b["y"][..., :1], digits[test])
  np.testing.assert_array_equal(b["x"][..., 2:], embedded.digit_edges(digits[test]))
  np.testing.assert_array_equal(b["label"], labels[test])


def test_digit_styles_reads_disjoint_halves_and_holds_out_aligned_pairs():
  from gan_jax.data import embedded
  from gan_jax.metrics.digits import digits_split
  train, test = digits_split()
  digits, labels = embedded.digits(16)
  source = sources.build(data_config("digit_styles", resolution=16, channels=1))
  a, b = sources.style_halves(train, labels[train])
  assert not set(a) & set(b) and sorted(np.concatenate([a, b])) == sorted(train)
  assert np.abs(np.bincount(labels[a]) - np.bincount(labels[b])).max() <= 1  # halves per class
  dom_a, dom_b = source.domains
  np.testing.assert_array_equal(dom_a.x, digits[a])
  np.testing.assert_array_equal(dom_b.x, embedded.digit_style_b(digits[b]))  # one rendering
  steps = pipeline.StepBatches(source, 4, 1, 0)
  assert sorted(steps[0]) == ["label", "x", "y", "y_label"]
  assert steps[0]["x"].shape == steps[0]["y"].shape == (1, 4, 16, 16, 1)
  assert dom_b.x[:, :, 0].mean() > 128 > dom_a.x[:, :, 0].mean()  # B: light paper at the border
  held_out = sources.build(data_config("digit_styles", resolution=16, channels=3), split="test")
  pair = held_out.get(np.arange(360))
  np.testing.assert_array_equal(pair["x"][..., :1], digits[test])
  np.testing.assert_array_equal(pair["y"][..., 1:2], embedded.digit_style_b(digits[test]))
  np.testing.assert_array_equal(pair["y_label"], labels[test])


def test_split_and_two_domain_validation():
  assert sources.build(data_config("digits"), split="test") is None
  assert sources.build(data_config("folder:/nowhere"), split="test") is None
  with pytest.raises(ValueError, match="split"):
    sources.build(data_config("digit_edges"), split="val")
  assert [sources.kind(s) for s in ("digit_edges", "digit_styles")] == list(sources.TRANSLATION)
  assert set(sources.TRANSLATION) <= set(sources.TWO_DOMAINS)
  for name in sources.TRANSLATION:
    with pytest.raises(UserError, match="the dcgan model learns one"):
      NoiseGame.validate(data_config(name))
  with pytest.raises(UserError, match="is gray"):
    sources.build(data_config("digit_styles", channels=2))


@pytest.mark.parametrize("settings, expected", [
    (dict(load_size=30), "at least data.resolution=32"),
    (dict(load_size=-1), "must be 0 (off)"),
    (dict(source="ring2d", load_size=36), "holds 2D points"),
])
def test_load_size_validation(settings, expected):
  config = data_config(**{"source": "folder:x", "resolution": 32, **settings})
  with pytest.raises(UserError, match=re.escape(expected)):
    config_lib.validate_data(config)
  config_lib.validate_data(data_config("folder:x", resolution=32, load_size=32))


def random_pairs(count=12, size=8, seed=0):
  """Pairs of unrelated random images, so a crop can be located in either."""
  rng = np.random.default_rng(seed)
  x, y = rng.integers(0, 256, (2, count, size, size, 3), dtype=np.uint8)
  return sources.PairedArrays(x, y, np.arange(count, dtype=np.int32), count)


def crop_offset(out, image, load_size):
  """The (top, left) at which `out` is a window of `image` enlarged to load_size."""
  big = pipeline._enlarge(image, load_size)
  r = out.shape[0]
  found = [(t, l) for t in range(load_size - r + 1) for l in range(load_size - r + 1)
           if np.array_equal(big[t:t + r, l:l + r], out)]
  assert len(found) == 1
  return found[0]


def test_jitter_crops_both_images_of_a_pair_alike():
  source = random_pairs()
  steps = pipeline.StepBatches(source, 12, 1, 0, load_size=12)
  batch = steps[0]
  ids = batch["label"][0]
  offsets = []
  for i, k in enumerate(ids):
    at = crop_offset(batch["x"][0, i], source.x[k], 12)
    assert crop_offset(batch["y"][0, i], source.y[k], 12) == at
    offsets.append(at)
  assert len(set(offsets)) > 3  # each example its own crop
  again = pipeline.StepBatches(source, 12, 1, 0, load_size=12)
  assert_same_batches([again[0], again[1]], [batch, steps[1]])  # a function of (seed, step)
  other = pipeline.StepBatches(source, 12, 1, 1, load_size=12)[0]
  assert not np.array_equal(other["x"], batch["x"])
  plain = pipeline.StepBatches(source, 12, 1, 0)[0]
  np.testing.assert_array_equal(plain["label"], batch["label"])  # the shuffle is untouched


def test_jitter_crops_unpaired_domains_independently():
  image = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 1), dtype=np.uint8)
  same = sources.ArraySource(np.repeat(image, 16, axis=0), np.zeros(16, np.int32), 1)
  batch = pipeline.StepBatches(sources.Unpaired(same, same), 16, 1, 0, load_size=12)[0]
  x, y = batch["x"][0], batch["y"][0]
  offsets = [(crop_offset(a, image[0], 12), crop_offset(b, image[0], 12)) for a, b in zip(x, y)]
  assert sum(a != b for a, b in offsets) > 8


@pytest.mark.parametrize("flip", [False, True])
def test_jittered_process_slices_concatenate_to_the_global_batch(flip):
  source = random_pairs()
  steps = lambda index, count: pipeline.StepBatches(source, 8, 2, 3, index, count, flip, 11)
  single = steps(0, 1)
  halves = (steps(0, 2), steps(1, 2))
  for step in range(3):
    joined = {k: np.concatenate([h[step][k] for h in halves], axis=1) for k in single[step]}
    assert_same_batches([joined], [single[step]])
    assert halves[0][step]["y"].shape == (2, 4, 8, 8, 3)


def test_jitter_through_the_config_and_a_resume():
  config = data_config("digit_edges", resolution=16, channels=1, batch_size=4, n_critic=2,
                       load_size=19, random_flip=True)
  source = sources.build(config)
  whole = take(pipeline.make_iterator(source, config), 5)
  assert whole[0]["x"].shape == (2, 4, 16, 16, 1)
  cut = pipeline.make_iterator(source, config)
  take(cut, 2)
  resumed = pipeline.make_iterator(source, config)
  resumed.set_state(json.loads(json.dumps(cut.get_state())))
  assert_same_batches(take(resumed, 3), whole[2:])


# --- the benchmark --------------------------------------------------------------------------

def test_input_pipeline_benchmark_reports_a_consistent_measurement(tmp_path):
  root = input_pipeline.write_folder(str(tmp_path), 12, size=16)
  assert len(os.listdir(os.path.join(root, "a"))) == 6
  config = data_config(f"folder:{root}", resolution=16, batch_size=4)
  r = input_pipeline.measure(config, steps=3, warmup=1)
  assert r["examples"] == 12 and r["workers"] == 2 and r["steps"] == 3
  assert abs(r["imgs_per_sec"] - 4 / (r["step_ms"] / 1e3)) < 1e-6 * r["imgs_per_sec"]
