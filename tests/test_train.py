"""The training loop end to end: outputs, exact resume, clean stops, divergence handling."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, config_path
from runs import assert_bitwise_equal, final_state, trained
from gan_jax import cli
from gan_jax.errors import TrainingDiverged
from gan_jax.games.noise import NoiseGame
from gan_jax.state import make_key


def train(name, workdir, *flags, arg="smoke"):
  return cli.main(["train", f"--config={config_path(name, arg)}", f"--workdir={workdir}",
                   "--noprogress", *flags])


def test_train_writes_every_output(tmp_path):
  assert train("dcgan_digits", tmp_path) == 0
  config = json.loads((tmp_path / "config.json").read_text())
  assert config["name"] == "dcgan_digits" and config["train"]["steps"] == 4
  records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 4]
  for key in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm", "d_real", "d_fake"):
    assert all(np.isfinite(r[key]) for r in records), key
  assert (tmp_path / "samples" / "step_000004.png").exists()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))


def test_a_run_on_the_digits_loads_neither_torch_nor_scikit_learn(tmp_path):
  """Each would add ~1-1.5 s to every training process: tensorboardX imports torch where it is
  installed, and scikit-learn's digits are a file it ships."""
  script = f"""
import sys
from gan_jax import reporting
from gan_jax.data import embedded
images, labels = embedded.digits(16)
reporter = reporting.Reporter({str(tmp_path)!r}, 0, 1, progress=False)
reporter.log(1, {{"loss/d": 0.5}})
reporter.close()
print(images.shape, len(set(labels)), "torch" in sys.modules, "sklearn" in sys.modules)
"""
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split("\n")[-2] == "(1797, 16, 16, 1) 10 False False"
  events, = os.listdir(tmp_path / "tensorboard")
  assert b"loss/d" in (tmp_path / "tensorboard" / events).read_bytes()


def test_2d_run_draws_a_scatter_plot(tmp_path):
  from PIL import Image
  assert train("gan_ring2d", tmp_path) == 0
  picture = Image.open(tmp_path / "samples" / "step_000004.png")
  assert picture.mode == "RGB" and picture.size == (512, 512)


def test_resume_is_bitwise_equal_to_uninterrupted(tmp_path):
  assert train("dcgan_digits", tmp_path / "whole", "--config.train.steps=6") == 0
  assert train("dcgan_digits", tmp_path / "split", "--config.train.steps=2") == 0
  assert train("dcgan_digits", tmp_path / "split", "--config.train.steps=6") == 0
  (step_a, a), (step_b, b) = final_state(tmp_path / "whole"), final_state(tmp_path / "split")
  assert step_a == step_b == 6 and int(a.step) == 6
  assert_bitwise_equal(a, b)


# Constant schedules: a decaying one is laid out over train.steps, which then may not change.
RESUMABLE = ("--config.train.checkpoint_every=50", "--config.train.log_every=25",
             "--config.optim.g.schedule=constant", "--config.optim.d.schedule=constant")


def _spawn(workdir, steps):
  return subprocess.Popen(
      [sys.executable, "-m", "gan_jax", "train", f"--config={config_path('gan_ring2d')}",
       f"--workdir={workdir}", "--noprogress", f"--config.train.steps={steps}", *RESUMABLE],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(workdir, proc, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    ckpts = workdir / "checkpoints"
    if ckpts.exists() and any(d.isdigit() for d in os.listdir(ckpts)):
      return
    time.sleep(0.2)
  raise AssertionError(f"no checkpoint appeared: {proc.communicate()}")


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_interrupted_run_resumes_exactly(tmp_path, how):
  steps = 30000  # long enough that the signal lands mid-run
  proc = _spawn(tmp_path / "cut", steps)
  _wait_for_checkpoint(tmp_path / "cut", proc)
  proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
  out, err = proc.communicate(timeout=120)
  if how == "sigterm":
    assert proc.returncode == 0, err
    assert "checkpoint saved" in out + err
  else:
    assert proc.returncode == -signal.SIGKILL
  cut_step, _ = final_state(tmp_path / "cut")
  assert 0 < cut_step < steps
  # Finish both runs at the same step; the interrupted one must match bit for bit.
  end = cut_step + 50
  assert train("gan_ring2d", tmp_path / "cut", f"--config.train.steps={end}", *RESUMABLE) == 0
  assert train("gan_ring2d", tmp_path / "whole", f"--config.train.steps={end}", *RESUMABLE) == 0
  (_, a), (_, b) = final_state(tmp_path / "cut"), final_state(tmp_path / "whole")
  assert int(a.step) == end
  assert_bitwise_equal(a, b)


@pytest.fixture
def diverge_at_step_5(monkeypatch):
  """Make the step's outputs non-finite from step 5 on, unless the RNG was changed (rollback)."""
  original = NoiseGame.train_step

  def patched(self, state, batch):
    first_rng = jax.random.key_data(jax.random.split(make_key(self.config.seed), 3)[2])
    new_state, metrics = original(self, state, batch)
    poison = (state.step >= 4) & jnp.all(state.rng == first_rng)
    nan_if = lambda x: jnp.where(poison, jnp.nan, x) if jnp.issubdtype(x.dtype, jnp.floating) else x
    return jax.tree.map(nan_if, new_state), jax.tree.map(nan_if, metrics)

  monkeypatch.setattr(NoiseGame, "train_step", patched)


def test_nonfinite_loss_stops_with_checkpoint_intact(tmp_path, diverge_at_step_5, capsys):
  flags = ("--config.train.steps=8", "--config.train.checkpoint_every=4",
           "--config.train.log_every=2")
  assert train("gan_ring2d", tmp_path, *flags) == 1
  err = capsys.readouterr().err.strip()
  assert "non-finite at step 5" in err and "checkpoint of step 4 is intact" in err
  assert len(err.splitlines()) == 1
  step, state = final_state(tmp_path)
  assert step == 4
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.g.params))


def test_nonfinite_loss_rolls_back_with_new_rng(tmp_path, diverge_at_step_5, capsys):
  flags = ("--config.train.steps=8", "--config.train.checkpoint_every=4",
           "--config.train.log_every=2", "--config.train.nan_policy=rollback")
  assert train("gan_ring2d", tmp_path, *flags) == 0
  assert "rolling back to step 4" in capsys.readouterr().out
  step, state = final_state(tmp_path)
  assert step == 8 and int(state.step) == 8
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state))


def test_training_diverged_is_raised_by_the_library(tmp_path, diverge_at_step_5):
  from gan_jax.config import load_json
  from gan_jax.train import train as train_fn
  assert train("gan_ring2d", tmp_path / "a", "--config.train.steps=2") == 0
  config = load_json(tmp_path / "a" / "config.json")
  config.train.steps = 6
  with pytest.raises(TrainingDiverged, match="step 5"):
    train_fn(config, str(tmp_path / "b"), progress=False)


CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".py"))


def _random_pictures(folder, count=6):
  from PIL import Image
  folder.mkdir(parents=True, exist_ok=True)
  for i in range(count):
    pixels = np.random.default_rng(i).integers(0, 256, (20 + i, 24, 3), np.uint8)
    Image.fromarray(pixels).save(folder / f"{i:04d}.png")


def _stand_in_data(name, tmp_path):
  """For configs whose data is a download or the user's own: (context, flags) training them on
  data of the same kind made here (TFDS's mock data; folders of random pictures, two of them
  paired by name, one captioned; animated GIFs); None for a config on data shipped here."""
  import contextlib
  import tensorflow_datasets as tfds
  if name == "cyclegan_horse2zebra":
    return tfds.testing.mock_data(num_examples=12), ()
  if name == "pix2pix_facades":
    for side in ("labels", "photos"):
      _random_pictures(tmp_path / side)
    return contextlib.nullcontext(), (f"--config.data.source=pair:{tmp_path}/labels,{tmp_path}/photos",)
  if name == "r3gan_cifar10":
    return tfds.testing.mock_data(num_examples=12), ()
  if name in ("stylegan2", "r3gan_ffhq64", "r3gan_ffhq256"):
    folder = "images" if name == "stylegan2" else "ffhq"
    _random_pictures(tmp_path / folder)
    return contextlib.nullcontext(), (f"--config.data.source=folder:{tmp_path}/{folder}",)
  if name == "t2i_folder":
    _random_pictures(tmp_path / "img")
    rows = [{"file_name": f"img/{i:04d}.png", "text": [f"picture {i}", "noise"]} for i in range(6)]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return contextlib.nullcontext(), (f"--config.data.source=captions:{tmp_path}",)
  if name == "video_folder":
    from PIL import Image
    (tmp_path / "videos").mkdir(parents=True)
    for i in range(2):  # animated GIFs of 6 random frames
      frames = [Image.fromarray(np.random.default_rng([i, t]).integers(0, 256, (20, 24, 3),
                                                                       np.uint8)) for t in range(6)]
      frames[0].save(tmp_path / "videos" / f"{i}.gif", save_all=True, append_images=frames[1:])
    return contextlib.nullcontext(), (f"--config.data.source=videos:{tmp_path}/videos",)
  return None


@pytest.mark.parametrize("name", [c for c in CONFIGS if c not in ("dcgan_digits", "gan_ring2d")])
def test_every_config_trains_by_its_file_alone(name, tmp_path, tmp_path_factory):
  # dcgan_digits and gan_ring2d are trained by the tests above. A config on data shipped here
  # trains as `runs.trained` does: once for every test of this process that reads its smoke run.
  stand_in = _stand_in_data(name, tmp_path / "data")
  if stand_in is None:
    workdir = trained(tmp_path_factory, name)
  else:
    context, flags = stand_in
    with context:
      assert train(name, tmp_path / "run", *flags) == 0
    workdir = tmp_path / "run"
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert records and all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in records)
  _, state = final_state(workdir)
  clip = json.loads((workdir / "config.json").read_text())["loss"].get("weight_clip")
  if clip:
    assert max(float(np.abs(x).max()) for x in jax.tree.leaves(state.d.params)) <= clip
