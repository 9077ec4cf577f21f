"""The learned detector of generated pictures: its scores, its training, its weights file and the
shipped weights."""
import os

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from test_cli import assert_one_clear_error
from gan_jax import cli, detector
from gan_jax.data import embedded
from gan_jax.errors import UserError


def upsampled(pictures):
  """Pictures drawn at half size and brought up by repeating pixels: the blocky trace of an
  up-convolution, which both scores should learn to see."""
  return np.repeat(np.repeat(pictures[:, ::2, ::2], 2, axis=1), 2, axis=2)


@pytest.fixture(scope="module")
def trained():
  real = embedded.photo_crops("train", 32, 400, seed=1)
  fake = upsampled(embedded.photo_crops("train", 32, 400, seed=3))
  return detector.train(real, fake, steps=100)


def test_both_scores_tell_upsampled_pictures_from_real_ones(trained):
  real = embedded.photo_crops("test", 32, 100, seed=2)  # photos neither side trained on
  fake = upsampled(embedded.photo_crops("test", 32, 100, seed=4))
  r, f = trained.scores(real), trained.scores(fake)
  labels = np.r_[np.zeros(100), np.ones(100)]
  for score in ("cnn", "spectral"):
    assert r[score].shape == (100,) and np.all((r[score] >= 0) & (r[score] <= 1))
    assert average_precision_score(labels, np.r_[r[score], f[score]]) >= 0.85, score
  # a picture in a white frame, as a sample grid pads it, scores as the picture alone
  framed = np.pad(fake[:1], ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=255)
  assert trained.score(framed) == trained.score(fake[:1])


def test_weights_file_round_trip(trained, tmp_path):
  pictures = embedded.photo_crops("test", 32, 8, seed=5)
  loaded = detector.Detector.load(trained.save(str(tmp_path / "d.npz")))
  assert loaded.steps == 100
  for score, values in trained.scores(pictures).items():
    np.testing.assert_allclose(loaded.scores(pictures)[score], values, rtol=1e-6)
  (tmp_path / "bad.npz").write_bytes(b"not an npz")
  with pytest.raises(UserError, match="could not be read"):
    detector.Detector.load(str(tmp_path / "bad.npz"))


def test_score_takes_any_size_and_clips(trained):
  big = embedded.photo_crops("test", 100, 1)
  s = trained.score(big)
  assert 0 <= s["cnn"] <= 1 and 0 <= s["spectral"] <= 1
  # a 100 px picture's spectral score is the mean logit of its 9 centred 32 px tiles
  tiles = detector.tiles_of(big[0])
  assert tiles.shape == (9, 32, 32, 3)
  np.testing.assert_array_equal(tiles[0], big[0, 2:34, 2:34])
  expected = 1 / (1 + np.exp(-trained.spectral_logits(tiles).mean()))
  assert s["spectral"] == pytest.approx(expected)
  assert trained.score(big[:, :20, :20])["spectral"] is None  # smaller than a tile
  huge = np.pad(big, ((0, 0), (500, 500), (480, 480), (0, 0)), mode="reflect")
  np.testing.assert_array_equal(detector.centre(huge, 512), huge[:, 294:806, 274:786])
  assert trained.score(huge) == trained.score(huge[:, 294:806, 274:786])  # scored on its centre
  grey = trained.score(big[..., :1])  # grey pictures are read as RGB
  assert grey["cnn"] == pytest.approx(trained.score(np.repeat(big[..., :1], 3, -1))["cnn"])
  clip = trained.score(np.concatenate([big, big[:, ::-1]]))  # frames scored together
  assert 0 <= clip["cnn"] <= 1
  with pytest.raises(UserError, match="uint8 pictures"):
    trained.score(big.astype(np.float32))


def test_spectrum_rings():
  rng = np.random.default_rng(0)
  noise = rng.integers(0, 256, (64, 32, 32, 3)).astype(np.uint8)
  flat = detector.spectrum(noise).mean(axis=0)
  assert flat.shape == (23,)  # rings 1 .. round(16 * sqrt(2)) = 23 cycles per tile
  # white noise: the same power at every frequency, but for the last ring, which holds only the
  # corner frequency (half a cycle a pixel both ways), whose coefficient is real: less on average
  assert np.ptp(flat[:-1]) < 0.3
  smooth = detector.spectrum(embedded.photo_crops("train", 32, 64)).mean(axis=0)
  assert smooth[0] - smooth[-1] > 3  # photographs: power falls with frequency


def test_augment_blurs_and_compresses_about_half():
  pictures = embedded.photo_crops("train", 32, 400)
  out = detector.augment(pictures, np.random.default_rng(0))
  assert out.shape == pictures.shape and out.dtype == np.uint8
  changed = np.mean(np.any(out != pictures, axis=(1, 2, 3)))
  assert 0.65 < changed < 0.85  # 1 - 1/2 * 1/2: blurred or compressed (a blur of sigma ~0 may
  # leave a picture as it was)


def test_unframed_trims_rings_of_one_colour_only():
  picture = embedded.photo_crops("test", 32, 1)
  padded = np.pad(picture, ((0, 0), (3, 3), (3, 3), (0, 0)), constant_values=255)
  np.testing.assert_array_equal(detector.unframed(padded), picture)
  np.testing.assert_array_equal(detector.unframed(picture), picture)  # a photo has no frame
  flat = np.zeros((2, 20, 20, 3), np.uint8)
  assert detector.unframed(flat).shape == (2, 8, 8, 3)  # a blank picture stops at 8 x 8


def test_detect_reads_bad_detector_weights_as_one_sentence(tmp_path, capsys):
  picture = tmp_path / "p.png"
  from PIL import Image
  Image.fromarray(embedded.photo_crops("test", 32, 1)[0]).save(picture)
  assert cli.main(["detect", str(picture), "--detector_weights=/nonexistent.npz"]) == 2
  assert_one_clear_error(capsys, "could not be read")


def test_shipped_detector_tells_generated_samples_from_held_out_photos():
  """tests/data/detector_samples.npz: 32 of the test samples benchmarks/detector.py drew from
  each of its DCGAN (trained on), StyleGAN2 and BigGAN (held out) runs; real: crops of the four
  held-out photos at a seed the benchmark did not use."""
  shipped = detector.Detector.load()
  real = shipped.cnn(embedded.photo_crops("test", 32, 96, seed=7))
  assert np.mean(real < 0.5) >= 0.9
  labels = np.r_[np.zeros(96), np.ones(32)]
  with np.load(os.path.join(os.path.dirname(__file__), "data", "detector_samples.npz")) as f:
    for family, bar in (("dcgan", 0.95), ("stylegan2", 0.95), ("biggan", 0.7)):
      fake = shipped.cnn(f[family])
      assert average_precision_score(labels, np.r_[real, fake]) >= bar, family
