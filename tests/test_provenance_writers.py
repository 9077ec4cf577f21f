"""Every picture and clip the library writes carries its provenance (`gan_jax.provenance`): sample
grids, clips (GIF, MP4), walks, directions, projections, training grids, translations and
upscales, read back by `provenance.read`, by PIL where it reads XMP (PNG) and by exiftool where it
is installed."""
import functools
import json
import os
import shutil
import subprocess

import av
import numpy as np
import pytest
from PIL import Image

from conftest import config_path
from gan_jax import api, cli, provenance

STEPS = 2


def train(root, name):
  workdir = root / name
  assert cli.main(["train", f"--config={config_path(name)}", f"--workdir={workdir}",
                   "--noprogress", f"--config.train.steps={STEPS}"]) == 0
  return str(workdir)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return tmp_path_factory.mktemp("provenance_runs")


@pytest.fixture(scope="module")
def dcgan(root):
  return train(root, "dcgan_digits")


@pytest.fixture(scope="module")
def video(root):
  return train(root, "video_digits")


@functools.lru_cache()
def run_fields(workdir):
  """What the run's checkpoint labels its pictures with, but the seed."""
  return provenance.of_model(api.load(workdir))


def check(path, workdir, seed=None):
  """The file at `path` says it was drawn by the run's G with `seed` (None: no seed)."""
  found = provenance.read(str(path))
  assert found and found["source_type"] == provenance.SOURCE_TYPE, path
  assert found["tool"].startswith("gan_jax ")
  expected = dict(run_fields(workdir), **({} if seed is None else {"seed": seed}))
  assert {k: v for k, v in found.items() if k in provenance.FIELDS} == {
      k: str(v) for k, v in expected.items()}
  assert expected["run"] == os.path.abspath(workdir) and expected["step"] == STEPS
  return found


def test_samples_walks_and_directions_carry_it(dcgan, tmp_path):
  assert cli.main(["sample", f"--workdir={dcgan}", "--num=4", "--seed=3",
                   f"--out={tmp_path / 's.png'}"]) == 0
  check(tmp_path / "s.png", dcgan, 3)
  with Image.open(tmp_path / "s.png") as picture:  # PIL reads the iTXt chunk itself
    assert provenance.SOURCE_TYPE in picture.info[provenance.PNG_KEY]
  assert cli.main(["sample", f"--workdir={dcgan}", "--num=2", "--seed=3",
                   f"--out={tmp_path / 's.npz'}"]) == 0
  with np.load(tmp_path / "s.npz") as arrays:
    assert json.loads(str(arrays["provenance"]))["seed"] == 3
  assert cli.main(["sample", f"--workdir={dcgan}", "--interpolate=2", "--num=2", "--seed=5",
                   f"--out={tmp_path / 'walk.gif'}"]) == 0
  check(tmp_path / "walk.gif", dcgan, 5)
  check(tmp_path / "walk.png", dcgan, 5)
  with Image.open(tmp_path / "walk.gif") as walk:  # still a GIF pillow plays
    assert walk.n_frames == 4 and walk.info["duration"] == 40
  assert cli.main(["interpolate", f"--workdir={dcgan}", "--seeds=1,2", "--steps=2",
                   f"--out={tmp_path / 'seeds.gif'}"]) == 0
  check(tmp_path / "seeds.gif", dcgan, "1,2")
  assert cli.main(["directions", f"--workdir={dcgan}", "--num=2", "--seed=4",
                   f"--out={tmp_path / 'dirs.npz'}"]) == 0
  check(tmp_path / "dirs.png", dcgan, 4)
  Image.new("L", (16, 16), 128).save(tmp_path / "photo.png")
  assert cli.main(["project", f"--workdir={dcgan}", f"--image={tmp_path / 'photo.png'}",
                   f"--out={tmp_path / 'projected'}", "--steps=4", "--seed=6",
                   "--noprogress"]) == 0
  for name in ("photo.png", "photo.gif"):
    check(tmp_path / "projected" / name, dcgan, 6)


def test_clips_and_training_grids_carry_it(dcgan, video, tmp_path, capsys):
  seed = api.load(video).config.seed + 1  # the preview's latents
  check(os.path.join(dcgan, "samples", f"step_{STEPS:06d}.png"), dcgan, seed)
  check(os.path.join(video, "samples", f"step_{STEPS:06d}.gif"), video, seed)
  for name in ("c.gif", "c.mp4"):
    assert cli.main(["sample", f"--workdir={video}", "--num=2", "--seed=7",
                     f"--out={tmp_path / name}"]) == 0
    check(tmp_path / name, video, 7)
  with av.open(str(tmp_path / "c.mp4")) as container:  # the box after the others plays
    assert len(list(container.decode(video=0))) > 1
  Image.new("L", (4, 4)).save(tmp_path / "real.png")
  capsys.readouterr()
  assert cli.main(["provenance", str(tmp_path)]) == 0
  lines = sorted(capsys.readouterr().out.strip().splitlines())
  assert [os.path.basename(l.split(": ")[0]) for l in lines] == ["c.gif", "c.mp4", "real.png"]
  assert all("trainedAlgorithmicMedia" in l and "seed 7" in l for l in lines[:2])
  assert lines[2].endswith("no provenance")


def test_translations_and_upscales_carry_it(root, tmp_path):
  for name, verb in (("pix2pix_digits", "translate"), ("rrdb_psnr", "upscale")):
    workdir = train(root, name)
    channels = api.load(workdir).channels
    Image.new("L" if channels == 1 else "RGB", (16, 16), 128).save(tmp_path / f"{name}.png")
    assert cli.main([verb, f"--workdir={workdir}", f"--input={tmp_path / name}.png",
                     f"--out={tmp_path / verb}", "--noprogress"]) == 0
    check(tmp_path / verb / f"{name}.png", workdir)  # no seed: nothing was drawn


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed "
                    "(Debian: libimage-exiftool-perl)")
def test_exiftool_reads_them(dcgan, video, tmp_path):
  assert cli.main(["sample", f"--workdir={video}", "--num=1", f"--out={tmp_path / 'c.mp4'}"]) == 0
  paths = [os.path.join(dcgan, "samples", f"step_{STEPS:06d}.png"),
           os.path.join(video, "samples", f"step_{STEPS:06d}.gif"), str(tmp_path / "c.mp4")]
  found = json.loads(subprocess.run(["exiftool", "-j", "-XMP:all", *paths], capture_output=True,
                                    text=True, check=True).stdout)
  assert [(t["DigitalSourceType"], t["Step"]) for t in found] == [
      (provenance.SOURCE_TYPE, STEPS)] * 3
