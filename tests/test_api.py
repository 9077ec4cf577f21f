"""`gan_jax.load` and its Model: README's example as written, the same numbers as the verbs, and
every bad request as one sentence."""
import os
import re

import jax
import numpy as np
import pytest
from PIL import Image

import gan_jax
from conftest import REPO
from runs import trained
from gan_jax import cli

SECTION = "## Using a trained model"


def readme_blocks():
  """The python blocks of README's section on using a trained model, in order."""
  with open(os.path.join(REPO, "README.md")) as f:
    text = f.read()
  section = text[text.index(SECTION):]
  section = section[:section.index("\n## ", len(SECTION))]
  return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def psnr(tmp_path_factory):
  return trained(tmp_path_factory, "rrdb_psnr")


def assert_one_sentence(error, *expected):
  message = str(error.value)
  for text in expected:
    assert text in message, message
  assert "\n" not in message and message.endswith("."), message


def test_readme_example_runs_as_written(cgan, pix2pix, monkeypatch, capsys):
  monkeypatch.chdir(cgan.parent.parent)  # where runs/cgan_digits and runs/pix2pix_digits are
  code = readme_blocks()[0]
  assert 'gan_jax.load("runs/cgan_digits")' in code and ".translate(" in code
  scope = {}
  exec(compile(code, "README.md", "exec"), scope)  # pylint: disable=exec-used
  assert scope["images"].shape == (16, 16, 16, 1) and scope["images"].dtype == np.float32
  assert scope["sevens"].dtype == np.uint8 and scope["sevens"].shape == (8, 16, 16, 1)
  assert scope["digits"].shape == (4, 30, 30, 1)
  out = capsys.readouterr().out
  assert "holds a paired run, which translates images" in out and "step 4" in out


def test_sample_is_what_the_sample_verb_writes(cgan, tmp_path):
  model = gan_jax.load(cgan)
  assert (model.kind, model.step, model.num_classes, model.channels) == ("sample", 4, 10, 1)
  assert cli.main(["sample", f"--workdir={cgan}", "--num=12", "--seed=3", "--label=5",
                   f"--out={tmp_path / 's.npz'}"]) == 0
  np.testing.assert_array_equal(model.sample(12, seed=3, labels=5),
                                np.load(tmp_path / "s.npz")["samples"])
  images = model.sample(6, seed=2)
  assert images.dtype == np.float32 and images.shape == (6, 16, 16, 1)
  assert np.abs(images).max() <= 1
  np.testing.assert_array_equal(model.sample(6, seed=2, uint8=True),
                                np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8))
  per_sample = model.sample(3, seed=2, labels=[4, 0, 9])
  # the same draw (a batch of another size may round its sums otherwise)
  np.testing.assert_allclose(per_sample[0], model.sample(1, seed=2, labels=4)[0], atol=1e-6)
  assert not np.array_equal(per_sample[1], model.sample(3, seed=2, labels=4)[1])


def test_generator_fn_is_pure_and_draws_what_sample_draws(cgan):
  model = gan_jax.load(cgan)
  z, labels = model.noise(5, seed=7, labels=[1, 2, 3, 4, 5])
  assert z.shape == (5, model.config.model.latent_dim) and labels.tolist() == [1, 2, 3, 4, 5]
  fn, params = model.generator_fn, model.params
  jitted = np.asarray(jax.jit(fn)(params, z, labels))
  np.testing.assert_allclose(jitted, model.sample(5, seed=7, labels=[1, 2, 3, 4, 5]), atol=1e-6)
  # vmap over a leading axis of inputs: the same images, one call.
  stacked = jax.vmap(fn, in_axes=(None, 0, 0))(params, z.reshape(5, 1, -1), labels.reshape(5, 1))
  np.testing.assert_allclose(np.asarray(stacked)[:, 0], jitted, atol=1e-5)
  assert set(params) == {"params", "batch_stats"}


def test_ema_false_and_an_earlier_step(cgan):
  ema, raw = gan_jax.load(cgan), gan_jax.load(cgan, ema=False)
  assert not np.array_equal(ema.sample(4), raw.sample(4))  # the warmed-up EMA is near G, not G
  earlier = gan_jax.load(cgan, step=2)
  assert earlier.step == 2 and not np.array_equal(earlier.sample(4), ema.sample(4))


def test_translate_arrays_paths_and_the_verb_agree(pix2pix, tmp_path):
  model = gan_jax.load(pix2pix)
  assert model.kind == "translate" and model.directions == ("AtoB",)
  pixels = np.random.default_rng(0).integers(0, 256, (3, 21, 19, 1), np.uint8)  # not multiples
  as_float = pixels.astype(np.float32) / 127.5 - 1
  out = model.translate(pixels)
  assert out.shape == (3, 21, 19, 1) and out.dtype == np.float32
  np.testing.assert_array_equal(out, model.translate(as_float))
  np.testing.assert_array_equal(model.translate(pixels[1])[None], out[1:2])
  for i, p in enumerate(pixels):
    Image.fromarray(p[..., 0]).save(tmp_path / f"{i}.png")
  assert cli.main(["translate", f"--workdir={pix2pix}", f"--input={tmp_path}",
                   f"--out={tmp_path / 'out'}", "--noprogress", "--no-watermark"]) == 0
  paths = [tmp_path / f"{i}.png" for i in range(3)]
  from_files = model.translate(paths, uint8=True)
  for i, image in enumerate(from_files):
    written = np.asarray(Image.open(tmp_path / "out" / f"{i}.png"))
    np.testing.assert_array_equal(image[..., 0], written)
  np.testing.assert_array_equal(model.translate(str(paths[0]), uint8=True), from_files[0])


def test_upscale_arrays_pictures_and_the_verb_agree(psnr, tmp_path):
  model = gan_jax.load(psnr)
  assert (model.kind, model.scale, model.channels) == ("upscale", 4, 3)
  pixels = np.random.default_rng(1).integers(0, 256, (2, 9, 11, 3), np.uint8)
  out = model.upscale(pixels, tile=6, tile_pad=2)
  assert out.shape == (2, 36, 44, 3) and out.dtype == np.float32
  Image.fromarray(pixels[0]).save(tmp_path / "a.png")
  assert cli.main(["upscale", f"--workdir={psnr}", f"--input={tmp_path / 'a.png'}",
                   f"--out={tmp_path / 'out'}", "--tile=6", "--tile_pad=2", "--noprogress",
                   "--no-watermark"]) == 0
  written = np.asarray(Image.open(tmp_path / "out" / "a.png"))
  np.testing.assert_array_equal(model.upscale(tmp_path / "a.png", uint8=True, tile=6, tile_pad=2),
                                written)
  np.testing.assert_array_equal(model.upscale(pixels[0], uint8=True, tile=6, tile_pad=2), written)
  with Image.open(tmp_path / "a.png") as picture:  # a PIL picture with alpha keeps it
    rgba = picture.convert("RGBA")
  assert model.upscale(rgba, uint8=True, tile=6, tile_pad=2).shape == (36, 44, 4)


def test_seed_index_picks_a_run_of_a_num_seeds_run(tmp_path_factory, tmp_path):
  workdir = trained(tmp_path_factory, "dcgan_two_seeds", "--config.train.num_seeds=2",
                    config="dcgan_digits")
  first, second = gan_jax.load(workdir), gan_jax.load(workdir, seed_index=1)
  assert not np.array_equal(first.sample(4), second.sample(4))
  assert cli.main(["sample", f"--workdir={workdir}", "--num=4", "--seed_index=1",
                   f"--out={tmp_path / 's.npz'}"]) == 0
  np.testing.assert_array_equal(second.sample(4), np.load(tmp_path / "s.npz")["samples"])
  with pytest.raises(gan_jax.UserError) as e:
    gan_jax.load(workdir, seed_index=2)
  assert_one_sentence(e, "--seed_index=2 is out of range")


def test_every_bad_request_is_one_sentence(cgan, pix2pix, psnr, tmp_path, tmp_path_factory):
  noise, translator, upscaler = gan_jax.load(cgan), gan_jax.load(pix2pix), gan_jax.load(psnr)
  (tmp_path / "not_an_image.png").write_text("text")
  cases = {
      "no run": (lambda: gan_jax.load(tmp_path / "nothing"), "holds no training run"),
      "no such step": (lambda: gan_jax.load(cgan, step=3), "step=3", "keeps steps 2, 4"),
      "sample a translator": (lambda: translator.sample(2), "gan-jax translate",
                              "model.translate(images)"),
      "translate with a noise run": (lambda: noise.translate(np.zeros((8, 8, 1))),
                                     "draws from noise rather than translating images"),
      "upscale with a translator": (lambda: translator.upscale(np.zeros((8, 8, 1))),
                                    "translates images rather than upscaling"),
      "sample an upscaler": (lambda: upscaler.sample(2), "gan-jax upscale"),
      "label out of range": (lambda: noise.sample(2, labels=10), "--label=10 is out of range"),
      "negative label": (lambda: noise.sample(2, labels=[0, -1]), "--label=-1 is out of range"),
      "labels of another count": (lambda: noise.sample(3, labels=[1, 2]), "2 labels", "3 samples"),
      "labels not classes": (lambda: noise.sample(2, labels="seven"), "not a class index"),
      "no samples": (lambda: noise.sample(0), "num=0"),
      "colour images, gray model": (lambda: translator.translate(np.zeros((8, 8, 3), np.uint8)),
                                    "3 channels", "takes 1"),
      "not images": (lambda: translator.translate(np.zeros((8, 8))), "shape (8, 8)"),
      "floats out of range": (lambda: translator.translate(np.full((8, 8, 1), 255.0)),
                              "[255, 255]", "[-1, 1]"),
      "integers not pixels": (lambda: translator.translate(np.zeros((8, 8, 1), np.int64)),
                              "dtype int64"),
      "no such direction": (lambda: translator.translate(np.zeros((8, 8, 1)), direction="BtoA"),
                            "--direction=AtoB"),
      "no such file": (lambda: translator.translate(str(tmp_path / "none.png")), "not a file"),
      "unreadable file": (lambda: translator.translate(str(tmp_path / "not_an_image.png")),
                          "could not be read"),
      "bad tile": (lambda: upscaler.upscale(np.zeros((8, 8, 3)), tile=0), "--tile=0"),
      "direction of a noise run": (lambda: noise.generator(direction="AtoB"),
                                   "--direction", "drop it"),
      "space of a translator": (lambda: translator.generator(space="w"), "--space",
                                "reads none"),
      "no such space": (lambda: noise.generator(space="w"), "--space=w", "use z"),
  }
  for name, (call, *expected) in cases.items():
    with pytest.raises(gan_jax.UserError) as e:
      call()
    assert_one_sentence(e, *expected)
  unconditional = gan_jax.load(trained(tmp_path_factory, "dcgan_digits"))
  with pytest.raises(gan_jax.UserError) as e:
    unconditional.sample(2, labels=1)
  assert_one_sentence(e, "needs a conditional model")
