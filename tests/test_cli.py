"""`gan-jax` verbs end to end, and every bad input: one sentence, exit code 2, workdir untouched."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, config_path
from gan_jax import cli


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("cgan")
  assert cli.main(["train", f"--config={config_path('cgan_digits')}", f"--workdir={workdir}",
                   "--noprogress"]) == 0
  return workdir


def sample(workdir, *flags):
  return cli.main(["sample", f"--workdir={workdir}", *flags])


def test_sample_png_and_npz(cgan_run, tmp_path):
  from PIL import Image
  assert sample(cgan_run, "--num=10", f"--out={tmp_path / 'grid.png'}") == 0
  assert Image.open(tmp_path / "grid.png").size[0] > 16
  assert sample(cgan_run, "--num=10", f"--out={tmp_path / 'a.npz'}", "--seed=3") == 0
  a = np.load(tmp_path / "a.npz")
  assert a["samples"].shape == (10, 16, 16, 1) and a["samples"].dtype == np.float32
  assert -1.0 <= a["samples"].min() and a["samples"].max() <= 1.0
  np.testing.assert_array_equal(a["labels"], np.arange(10) % 10)


def test_same_seed_same_samples(cgan_run, tmp_path):
  for name, seed in (("a", 1), ("b", 1), ("c", 2)):
    assert sample(cgan_run, "--num=8", f"--out={tmp_path / name}.npz", f"--seed={seed}") == 0
  a, b, c = (np.load(tmp_path / f"{n}.npz")["samples"] for n in "abc")
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 1e-3


def test_sample_label_and_ema_switch(cgan_run, tmp_path):
  assert sample(cgan_run, "--num=6", "--label=3", f"--out={tmp_path / 'l.npz'}") == 0
  np.testing.assert_array_equal(np.load(tmp_path / "l.npz")["labels"], [3] * 6)
  assert sample(cgan_run, "--num=6", "--label=3", "--no-ema", f"--out={tmp_path / 'r.npz'}") == 0
  raw, ema = np.load(tmp_path / "r.npz")["samples"], np.load(tmp_path / "l.npz")["samples"]
  assert not np.array_equal(raw, ema)  # after 4 steps the warmed-up EMA is close to G, not equal


def test_a_walk_between_latents(cgan_run, tmp_path):
  """Arcs in z between the first samples of a seed, as a GIF and a PNG strip (one row a leg)."""
  from PIL import Image
  from gan_jax.reporting import to_uint8
  from test_style import grid_tiles
  assert sample(cgan_run, "--num=3", f"--out={tmp_path / 's.npz'}") == 0
  keyframes = np.load(tmp_path / "s.npz")["samples"]
  assert sample(cgan_run, "--interpolate=4", "--num=3", f"--out={tmp_path / 'w.gif'}",
                "--no-watermark") == 0
  with Image.open(tmp_path / "w.gif") as movie:
    assert movie.n_frames == 12 and movie.size == (128, 128)
  strip = grid_tiles(tmp_path / "w.png", 3, 4, keyframes.shape[1:])
  for leg in range(3):
    np.testing.assert_array_equal(strip[leg, 0], to_uint8(keyframes[leg]))
    assert not np.array_equal(strip[leg, 2], strip[leg, 0])  # and moves


def test_init_from_a_run_of_other_sizes_is_one_sentence(cgan_run, tmp_path, capsys):
  workdir = tmp_path / "tuned"
  assert cli.main(["train", f"--config={SMOKE}", f"--workdir={workdir}", "--noprogress",
                   f"--config.train.init_from={cgan_run}"]) == 2
  assert_one_clear_error(capsys, "other sizes")
  assert not workdir.exists()


def test_python_dash_m_runs_the_cli():
  out = subprocess.run([sys.executable, "-m", "gan_jax", "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0 and "gan-jax train" in out.stdout


def snapshot(path):
  if not os.path.exists(path):
    return None
  return sorted((os.path.relpath(os.path.join(d, f), path), os.path.getmtime(os.path.join(d, f)))
                for d, _, files in os.walk(path) for f in files)


SMOKE = config_path("dcgan_digits")
BAD_TRAIN = {
    "unknown key": ([f"--config={SMOKE}", "--config.train.stepz=3"], "Unknown config key 'stepz'"),
    "wrong type": ([f"--config={SMOKE}", "--config.train.steps=many"], "--config.train.steps=many"),
    "missing file": (["--config=configs/nope.py"], "does not exist"),
    "unknown loss": ([f"--config={SMOKE}", "--config.loss.adversarial=bce"], "loss.adversarial"),
    "unknown model": ([f"--config={SMOKE}", "--config.model.name=resnet50"], "model.name"),
    "model without its settings": ([f"--config={SMOKE}", "--config.model.name=resnet"],
                                   "sngan_cifar32"),
    "resnet size": ([f"--config={config_path('sngan_cifar32')}", "--config.data.resolution=48"],
                    "ResNet GAN size"),
    "hierarchical z": ([f"--config={config_path('biggan_cifar32')}", "--config.model.latent_dim=10"],
                       "equal chunks"),
    "attention side": ([f"--config={config_path('sagan_cifar32')}", "--config.model.attention_res=32"],
                       "8, 16"),
    "late ema": ([f"--config={SMOKE}", "--config.train.ema_start=-1"], "ema_start"),
    "indivisible batch": ([f"--config={SMOKE}", "--config.train.batch_size=12"], "8 devices"),
    "unknown source": ([f"--config={SMOKE}", "--config.data.source=imagenet"], "data source"),
    "bad resolution": ([f"--config={SMOKE}", "--config.data.resolution=24"], "power of two"),
    "bad arg": ([f"--config={config_path('dcgan_digits', 'huge')}"], "only arg is 'smoke'"),
    "stray argument": ([f"--config={SMOKE}", "steps=3"], "Unexpected argument 'steps=3'"),
    "init_from nothing": ([f"--config={SMOKE}", "--config.train.init_from=/nonexistent"],
                          "init_from=/nonexistent: /nonexistent holds no training run"),
}


def assert_one_clear_error(capsys, expected):
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1, err
  assert "Traceback" not in err and expected in err, err
  assert err.startswith("gan-jax: error: ") and err.endswith((".", ")", "?")), err


@pytest.mark.parametrize("case", sorted(BAD_TRAIN))
def test_bad_train_input(case, tmp_path, capsys):
  argv, expected = BAD_TRAIN[case]
  workdir = tmp_path / "run"
  assert cli.main(["train", f"--workdir={workdir}", "--noprogress", *argv]) == 2
  assert_one_clear_error(capsys, expected)
  assert not workdir.exists()


def test_workdir_of_another_config_is_refused_untouched(cgan_run, capsys):
  before = snapshot(cgan_run)
  assert cli.main(["train", f"--config={SMOKE}", f"--workdir={cgan_run}", "--noprogress"]) == 2
  assert_one_clear_error(capsys, "holds a run of a different config")
  assert snapshot(cgan_run) == before


BAD_SAMPLE = {
    "no run": (["--workdir={missing}"], "holds no training run"),
    "no workdir flag": ([], "needs --workdir"),
    "label out of range": (["--workdir={run}", "--label=10"], "out of range"),
    "bad extension": (["--workdir={run}", "--out=x.jpg"], "must end in .png"),
    "bad num": (["--workdir={run}", "--num=0"], "positive number"),
    "mix without styles": (["--workdir={run}", "--mix=coarse"], "drop --mix"),
    "mix and walk": (["--workdir={run}", "--mix=coarse", "--interpolate=3"], "give one of them"),
    "walk to a png": (["--workdir={run}", "--interpolate=3", "--out=w.png"], "must end in .gif"),
    "walk of one": (["--workdir={run}", "--interpolate=3", "--num=1", "--out=w.gif"], "at least 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLE))
def test_bad_sample_input(case, cgan_run, tmp_path, capsys):
  argv, expected = BAD_SAMPLE[case]
  argv = [a.format(missing=tmp_path / "missing", run=cgan_run) for a in argv]
  before = snapshot(cgan_run)
  assert cli.main(["sample", *argv, f"--out={tmp_path / 'o.png'}"] if "--out" not in str(argv)
                  else ["sample", *argv]) == 2
  assert_one_clear_error(capsys, expected)
  assert snapshot(cgan_run) == before and not (tmp_path / "missing").exists()


def test_sampling_a_run_without_checkpoint(tmp_path, capsys):
  from gan_jax.config import save_json
  from gan_jax.experiment import save_spec
  from gan_jax.data.sources import DataSpec
  import ml_collections
  tmp_path.joinpath("config.json")
  save_json(ml_collections.ConfigDict({"train": {"keep_checkpoints": 1, "checkpoint_every": 9}}),
            tmp_path / "config.json")
  save_spec(DataSpec((2,), "float32", 8), str(tmp_path))
  assert sample(tmp_path) == 2
  assert_one_clear_error(capsys, "has no checkpoint yet")


def test_label_on_unconditional_model(tmp_path, capsys):
  assert cli.main(["train", f"--config={config_path('gan_ring2d')}", f"--workdir={tmp_path}",
                   "--noprogress"]) == 0
  assert sample(tmp_path, "--label=1") == 2
  assert_one_clear_error(capsys, "needs a conditional model")


def test_unknown_verb(capsys):
  assert cli.main(["fit"]) == 2
  assert_one_clear_error(capsys, "Unknown verb 'fit'")
