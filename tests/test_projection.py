"""`gan-jax project`: generated pictures recovered at smoke size, latent files that render back to
what was written, the verb end to end on a folder, and every bad input as one sentence."""
import os

import numpy as np
import pytest
from PIL import Image

import gan_jax
from runs import trained
from gan_jax import cli, latents as latents_lib, projection
from gan_jax.errors import UserError

STEPS = 60  # enough for the smoke runs' tiny generators; the benchmark runs the defaults


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory):
  return gan_jax.load(trained(tmp_path_factory, "dcgan_digits"))


@pytest.fixture(scope="module")
def cgan(tmp_path_factory):
  return gan_jax.load(trained(tmp_path_factory, "cgan_digits"))


def save_png(path, pixels):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
  return path


def read(path):
  with Image.open(path) as image:
    return np.asarray(image)


def test_recovers_generated_pictures_and_renders_them_back(dcgan):
  targets = dcgan.sample(3, seed=7, uint8=True)
  projector = projection.Projector(dcgan, "z", projection.Settings(steps=STEPS))
  result = projector.project(targets)
  assert result.psnr.min() >= 30, result.psnr
  assert result.latents.space == "z" and result.latents.codes.shape == (3, 8)
  np.testing.assert_array_equal(dcgan.render(result.latents), result.images)
  frames = result.frames[0]  # the target beside the image, then the result last
  assert frames.shape[1:] == (16, 33, 1) and 10 < len(frames) <= projection.FRAMES + 1
  np.testing.assert_array_equal(frames[:, :, :16],
                                np.broadcast_to(targets[0], (len(frames), 16, 16, 1)))
  assert (frames[:, :, 16] == 255).all()
  assert not np.array_equal(frames[0, :, 17:], frames[-1, :, 17:])
  np.testing.assert_array_equal(frames[-1, :, 17:], dcgan.render(result.latents, uint8=True)[0])


def test_conditional_run_tries_every_class_or_the_one_given(cgan):
  targets = cgan.sample(2, seed=3, labels=[3, 7], uint8=True)
  every = projection.Projector(cgan, "z", projection.Settings(steps=STEPS, starts=1))
  found = every.project(targets)
  assert found.psnr.min() >= 30, found.psnr
  np.testing.assert_array_equal(found.latents.labels, [3, 7])
  # 10 starts of one class: as many candidates as 1 start of each class, so no new compile.
  one = projection.Projector(cgan, "z", projection.Settings(steps=STEPS, starts=10))
  np.testing.assert_array_equal(one.project(targets, label=5).latents.labels, [5, 5])


@pytest.mark.slow  # ~40 s on 2 cores: a StyleGAN2 smoke run and its projection's compile
def test_stylegan2_noise_buffers_are_handed_back(tmp_path_factory):
  """The optimised noise buffers help the search but a latent file carries none: what is written
  must be what the latent renders to with the run's own buffers."""
  model = gan_jax.load(trained(tmp_path_factory, "stylegan2_digits"))
  targets = np.clip(model.sample(2, seed=1, uint8=True).astype(int) + 40, 0, 255).astype(np.uint8)
  settings = projection.Settings(steps=20, starts=2)
  projector = projection.Projector(model, "w+", settings)
  assert "noise buffers optimised" in projector.distance
  result = projector.project(targets)
  assert result.latents.codes.shape == (2,) + model.game.code_shapes()["w+"]
  np.testing.assert_allclose(model.render(result.latents), result.images, atol=1e-5)
  start = model.render(latents_lib.Latents("w+", projector.starts[0, :1], [0]))
  assert result.psnr.min() > projection.psnr(start, targets / 127.5 - 1).max()


def test_noise_regularizer_is_zero_for_white_noise_and_large_for_a_picture():
  rng = np.random.default_rng(0)
  white = projection.noise_regularizer(rng.standard_normal((32, 32)).astype(np.float32))
  ramp = np.linspace(-1.7, 1.7, 32, dtype=np.float32)
  smooth = projection.noise_regularizer(np.add.outer(ramp, ramp))
  assert float(white) < 1e-2 and float(smooth) > 1.0


def test_cli_projects_a_folder(dcgan, tmp_path, capsys):
  pictures = dcgan.sample(2, seed=11, uint8=True)
  save_png(str(tmp_path / "in" / "a.png"), pictures[0])
  big = Image.fromarray(pictures[1][..., 0]).resize((40, 40), Image.BICUBIC)
  os.makedirs(tmp_path / "in" / "sub")
  big.save(tmp_path / "in" / "sub" / "b.jpg")
  out = tmp_path / "out"
  assert cli.main(["project", f"--workdir={dcgan.workdir}", f"--image={tmp_path / 'in'}",
                   f"--out={out}", f"--steps={STEPS}", "--noprogress", "--no-watermark"]) == 0
  line = capsys.readouterr().out.strip()
  assert f"wrote 2 projections to {out}" in line and "D features" in line and "dB" in line
  assert sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out)
                for f in fs) == ["a.gif", "a.npz", "a.png", "sub/b.gif", "sub/b.npz", "sub/b.png"]
  for stem in ("a", "sub/b"):
    codes = latents_lib.load(str(out / f"{stem}.npz"))
    assert codes.space == "z" and len(codes) == 1
    np.testing.assert_array_equal(dcgan.render(codes, uint8=True)[0][..., 0],
                                  read(out / f"{stem}.png"))
    with np.load(out / f"{stem}.npz") as f:
      assert int(f["step"]) == dcgan.step and str(f["source"]).endswith(stem.split("/")[-1]
                                                                        + (".png" if stem == "a"
                                                                           else ".jpg"))
    with Image.open(out / f"{stem}.gif") as gif:
      assert gif.n_frames > 2
  np.testing.assert_array_less(np.abs(read(out / "a.png").astype(int)
                                      - pictures[0][..., 0].astype(int)), 12)


BAD = {
    "missing workdir": ("{missing}", "{image}", [], "holds no training run"),
    "missing image": ("{dcgan}", "{missing}", [], "does not exist"),
    "unreadable image": ("{dcgan}", "{garbled}", [], "could not be read"),
    "colour picture": ("{dcgan}", "{colour}", [], "draws grayscale images"),
    "translator": ("{pix2pix}", "{image}", [], "translates images rather than drawing"),
    "space": ("{dcgan}", "{image}", ["--space=w"], "--space=w is not a latent space"),
    "steps": ("{dcgan}", "{image}", ["--steps=0"], "--steps=0 must be a positive"),
    "label": ("{dcgan}", "{image}", ["--label=3"], "needs a conditional model"),
    "no image flag": ("{dcgan}", None, [], "project needs --image"),
    "2D points": ("{ring}", "{image}", [], "learned 2D points"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_sentence(case, dcgan, tmp_path_factory, tmp_path, capsys):
  workdir, image, flags, expected = BAD[case]
  fill = dict(missing=tmp_path / "none", dcgan=dcgan.workdir,
              image=save_png(str(tmp_path / "x.png"), dcgan.sample(1, uint8=True)[0]),
              garbled=tmp_path / "bad.png",
              colour=save_png(str(tmp_path / "c.png"), np.zeros((16, 16, 3), np.uint8)))
  (tmp_path / "bad.png").write_bytes(b"not a picture")
  if "{pix2pix}" in workdir:
    fill["pix2pix"] = trained(tmp_path_factory, "pix2pix_digits")
  if "{ring}" in workdir:
    fill["ring"] = trained(tmp_path_factory, "gan_ring2d")
  argv = ["project", f"--workdir={workdir.format(**fill)}", f"--out={tmp_path / 'out'}", *flags]
  if image:
    argv.append(f"--image={image.format(**fill)}")
  assert cli.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: ") and expected in err and err.endswith("."), err
  assert not (tmp_path / "out").exists()


def test_library_errors_name_the_fix(dcgan, cgan, tmp_path):
  image = save_png(str(tmp_path / "x.png"), dcgan.sample(1, uint8=True)[0])
  with pytest.raises(UserError, match="out of range"):
    projection.project(cgan, image, str(tmp_path / "o"), label=12)
  with pytest.raises(UserError, match="--out=.* is a file"):
    projection.project(dcgan, image, image)
  os.makedirs(tmp_path / "two")
  save_png(str(tmp_path / "two" / "d.png"), dcgan.sample(1, uint8=True)[0])
  Image.fromarray(dcgan.sample(1, uint8=True)[0][..., 0]).save(tmp_path / "two" / "d.jpg")
  with pytest.raises(UserError, match="would both be projected"):
    projection.project(dcgan, str(tmp_path / "two"), str(tmp_path / "o"))
  assert not (tmp_path / "o").exists()
