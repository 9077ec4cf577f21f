"""What a new user's mistakes and a machine's faults end in: out-of-range config values stop
before anything is built; a damaged latest checkpoint falls back to the one before; a failed
checkpoint write stops the run naming the checkpoint left intact."""
import errno
import importlib.util
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import REPO, config_path
from runs import assert_bitwise_equal
from gan_jax import cli, config as config_lib, experiment

CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".py"))
ARGS = {"stylegan2": ("auto", "auto,64", "stylegan2", "paper256", "paper512", "paper1024",
                      "cifar"),
        "rrdb_psnr": ("paper",), "esrgan": ("paper",)}


def load_config(name, arg):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_shipped_config_is_valid(name):
  for arg in (None, "smoke", *ARGS.get(name, ())):
    config_lib.validate(load_config(name, arg))


SMOKE = config_path("dcgan_digits")
# (config, override, words the one-line error must hold): each value is out of its range.
BAD_VALUES = [
    (SMOKE, "--config.data.channels=2", "data.channels=2"),
    (SMOKE, "--config.data.channels=0", "1 (gray) or 3 (RGB)"),
    (SMOKE, "--config.data.source=stacked_digits", "set it to 3"),
    (SMOKE, "--config.data.resolution=0", "data.resolution must be a positive integer, got 0"),
    (SMOKE, "--config.optim.d.lr=-1", "optim.d.lr must be > 0, got -1.0"),
    (SMOKE, "--config.optim.g.lr=0", "optim.g.lr must be > 0, got 0.0"),
    (SMOKE, "--config.optim.g.lr=nan", "optim.g.lr must be > 0"),
    (SMOKE, "--config.optim.d.b1=1", "optim.d.b1 must be in [0, 1), got 1.0"),
    (SMOKE, "--config.optim.g.b2=-0.5", "optim.g.b2 must be in [0, 1)"),
    (SMOKE, "--config.optim.d.warmup_steps=-3", "optim.d.warmup_steps must be >= 0, got -3"),
    (SMOKE, "--config.optim.g.grad_clip=-1", "optim.g.grad_clip must be >= 0"),
    (SMOKE, "--config.optim.g.hold_fraction=1", "hold_fraction must be in [0, 1)"),
    (SMOKE, "--config.loss.gp_weight=-10", "loss.gp_weight must be >= 0, got -10.0"),
    (SMOKE, "--config.loss.r1_weight=-1", "loss.r1_weight must be >= 0"),
    (SMOKE, "--config.loss.weight_clip=-0.01", "loss.weight_clip must be >= 0"),
    (SMOKE, "--config.train.ema_decay=1", "train.ema_decay must be in [0, 1) (0 = off), got 1.0"),
    (SMOKE, "--config.train.batch_size=0", "train.batch_size must be a positive integer, got 0"),
    (SMOKE, "--config.train.steps=0", "train.steps must be a positive integer, got 0"),
    (SMOKE, "--config.train.n_critic=0", "train.n_critic must be a positive integer"),
    (SMOKE, "--config.train.checkpoint_every=-2", "train.checkpoint_every must be a positive"),
    (SMOKE, "--config.train.keep_checkpoints=0", "train.keep_checkpoints must be a positive"),
    (SMOKE, "--config.train.health_samples=1",
     "train.health_samples must be >= 2 (a spread needs two samples), got 1"),
    (SMOKE, "--config.model.g_width=0", "model.g_width must be a positive integer, got 0"),
    (SMOKE, "--config.model.latent_dim=-1", "model.latent_dim must be a positive integer"),
    (SMOKE, "--config.model.d_norm=group", "model.d_norm='group' is not supported"),
    (SMOKE, "--config.sample.num=0", "sample.num must be a positive integer"),
    (SMOKE, "--config.augment.p=2", "augment.p must be in [0, 1] (a probability), got 2.0"),
    (config_path("gan_ring2d"), "--config.model.hidden=0", "model.hidden must be a positive"),
    (config_path("pix2pix_digits"), "--config.loss.l1_weight=-100", "loss.l1_weight must be >= 0"),
    (config_path("pix2pix_digits"), "--config.model.dropout=1", "model.dropout must be in [0, 1)"),
    (config_path("cyclegan_digits"), "--config.loss.cycle_weight=-1", "loss.cycle_weight"),
    (config_path("cyclegan_digits"), "--config.train.history_pool=-1", "train.history_pool"),
    (config_path("stylegan2_digits"), "--config.loss.r1_gamma=-1", "loss.r1_gamma must be >= 0"),
    (config_path("stylegan2_digits"), "--config.loss.pl_decay=2",
     "loss.pl_decay must be in [0, 1]"),
    (config_path("stylegan2_digits"), "--config.train.ema_kimg=-1", "train.ema_kimg must be >= 0"),
    (config_path("stylegan2_digits"), "--config.model.mbstd_group=3", "divisor"),
    (config_path("biggan_cifar32"), "--config.loss.ortho_weight=-1", "loss.ortho_weight"),
    (config_path("esrgan"), "--config.loss.perceptual_layers.conv5_4=-1",
     "perceptual_layers.conv5_4 must be >= 0"),
    (config_path("esrgan"), "--config.loss.perceptual_criterion=l3", "perceptual_criterion"),
    # base_config's regularizers where the game has its own or none: refused, not ignored
    (config_path("pix2pix_digits"), "--config.loss.r1_weight=1",
     "loss.r1_weight=1.0 is not read by the paired game: set it 0."),
    (config_path("stylegan2_digits"), "--config.loss.gp_weight=10", "not read by the stylegan2"),
    (config_path("t2i_digits"), "--config.loss.weight_clip=0.01", "not read by the text game"),
    (config_path("video_digits"), "--config.loss.ortho_weight=1e-4", "not read by the video game"),
    # n_critic: only the noise game updates D several times a G update
    (config_path("watermark"), "--config.train.n_critic=2",
     "train.n_critic=2: the watermark game updates D once per G update; set it to 1."),
]


@pytest.mark.parametrize("config,override,expected", BAD_VALUES,
                         ids=[o.removeprefix("--config.") for _, o, _ in BAD_VALUES])
def test_out_of_range_value_is_one_sentence(config, override, expected, tmp_path, capsys):
  workdir = tmp_path / "run"
  assert cli.main(["train", f"--config={config}", f"--workdir={workdir}", "--noprogress",
                   override]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: --config.") and expected in err, err
  assert not (workdir / "checkpoints").exists() and not workdir.exists()


# ---------------------------------------------------------------------------------------------
# A damaged latest checkpoint: reported in one line, the one before it read instead.

RING = config_path("gan_ring2d")  # smoke: 4 steps, a checkpoint every 2, 2 kept


def train(workdir, *flags):
  return cli.main(["train", f"--config={RING}", f"--workdir={workdir}", "--noprogress", *flags])


def read(workdir, step=None):
  """(step read, state) of `workdir`'s latest readable checkpoint, or of `step`."""
  exp, ckpt = experiment.load(str(workdir))
  try:
    if step is None:
      state = experiment.restore_latest(exp, ckpt)
      return ckpt.restored_step, state
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return step, ckpt.restore(exp.abstract_state(sharding), step=step)[0]
  finally:
    ckpt.close()


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
  """A finished run with checkpoints 2 and 4, and the states they hold, read while whole."""
  workdir = tmp_path_factory.mktemp("ring") / "run"
  assert train(workdir) == 0
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
  return workdir, read(workdir, 2)[1], read(workdir, 4)[1]


def _arrays(step_dir):
  """The files holding a checkpoint's arrays: the OCDBT data files orbax reads (state/d/; the
  per-process copies beside them are merged into these when the checkpoint is finalized)."""
  return sorted((step_dir / "state" / "d").iterdir())


def _truncate_data_state(step_dir):
  path = step_dir / "data" / "metadata"  # the data iterator's state, JSON
  path.write_bytes(path.read_bytes()[:5])


def _junk_arrays(step_dir):
  for path in _arrays(step_dir):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _delete_array_file(step_dir):
  _arrays(step_dir)[0].unlink()


DAMAGE = {"truncated data state": _truncate_data_state, "junk in the array files": _junk_arrays,
          "an array file deleted": _delete_array_file}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_latest_checkpoint_falls_back_to_the_one_before(how, ring_run, tmp_path, capsys):
  source, at_2, at_4 = ring_run
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  DAMAGE[how](workdir / "checkpoints" / "4")
  capsys.readouterr()
  # sample / evaluate / export read the one before, exactly as it was written.
  step, state = read(workdir)
  assert step == 2
  assert_bitwise_equal(state, at_2)
  said = capsys.readouterr().err.strip().splitlines()
  assert len(said) == 1 and "checkpoint of step 4" in said[0] and "damaged" in said[0], said
  assert "step 2 instead" in said[0]
  # train resumes from step 2, moves the damaged one aside, and ends where the run ended.
  assert train(workdir) == 0
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "step 2 instead" in err[0] and "checkpoints_damaged" in err[0], err
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
  assert os.listdir(workdir / "checkpoints_damaged") == ["4"]
  step, state = read(workdir)
  assert step == 4
  assert_bitwise_equal(state, at_4)  # resume is exact: what step 2 held is what was restored


def test_small_replicated_arrays_leave_the_devices_once(tmp_path, monkeypatch):
  """orbax's replica-parallel writes would copy each of 8 slices of every replicated array to the
  host (gan_jax/checkpoint.py); a small one is copied once, a large one still in 8 slices."""
  from gan_jax.checkpoint import Checkpointer  # pylint: disable=import-outside-toplevel
  replicated = jax.sharding.NamedSharding(jax.sharding.Mesh(jax.devices(), ("d",)),
                                          jax.sharding.PartitionSpec())
  state = {f"small_{i}": np.full((64, 8), i, np.float32) for i in range(5)}
  state["large"] = np.arange(2048 * 1024, dtype=np.float32).reshape(2048, 1024)  # 1 MiB slices
  state = jax.device_put(state, replicated)
  copies = {}
  array_type = type(state["large"])
  original = array_type.copy_to_host_async

  def counted(self):
    copies[self.shape] = copies.get(self.shape, 0) + 1
    return original(self)
  monkeypatch.setattr(array_type, "copy_to_host_async", counted)
  ckpt = Checkpointer(tmp_path / "checkpoints")
  ckpt.save(1, state, {"position": 0})
  ckpt.close()
  assert len(jax.devices()) == 8 and copies == {(64, 8): 5, (256, 1024): 8}
  restored, _ = ckpt.restore(jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), state))
  assert_bitwise_equal(restored, state)


def snapshot(path):
  return sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                for p in path.rglob("*") if p.is_file())


def test_no_readable_checkpoint_is_one_sentence_and_deletes_nothing(ring_run, tmp_path, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(ring_run[0], workdir)
  for step in ("2", "4"):
    _junk_arrays(workdir / "checkpoints" / step)
  before = snapshot(workdir / "checkpoints")
  capsys.readouterr()
  for argv in (["train", f"--config={RING}", f"--workdir={workdir}", "--noprogress"],
               ["sample", f"--workdir={workdir}", f"--out={tmp_path / 's.png'}"]):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("gan-jax: error: No checkpoint in") and "steps 4, 2" in err, err
  assert snapshot(workdir / "checkpoints") == before
  assert not (workdir / "checkpoints_damaged").exists() and not (tmp_path / "s.png").exists()


# ---------------------------------------------------------------------------------------------
# A checkpoint write that fails stops the run, naming the checkpoint left intact.

def _fail_at_once(monkeypatch):
  """save() itself raises (the step's folder cannot be made: permission denied)."""
  save = ocp.CheckpointManager.save

  def failing(self, step, *args, **kwargs):
    if step == 4:
      raise PermissionError(errno.EACCES, "Permission denied", str(self.directory))
    return save(self, step, *args, **kwargs)
  monkeypatch.setattr(ocp.CheckpointManager, "save", failing)


def _fail_in_background(monkeypatch):
  """orbax's background thread fails writing step 4's data state (disk full): the error can
  only surface when the next save or the final wait looks at that thread."""
  write = ocp.handlers.JsonCheckpointHandler._save_fn  # pylint: disable=protected-access

  async def failing(self, item, directory):
    if os.path.basename(str(directory.parent)).split(".")[0] == "4":
      raise OSError(errno.ENOSPC, "No space left on device")
    return await write(self, item, directory)
  monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "_save_fn", failing)


@pytest.mark.parametrize("fail,steps", [(_fail_at_once, 6), (_fail_in_background, 6),
                                        (_fail_in_background, 4)],
                         ids=["at once", "background, seen at the next save",
                              "background, seen at the last wait"])
def test_failed_checkpoint_write_stops_naming_the_intact_one(fail, steps, tmp_path, capsys,
                                                             monkeypatch):
  workdir = tmp_path / "run"
  with monkeypatch.context() as patch:
    fail(patch)
    assert train(workdir, f"--config.train.steps={steps}") == 1
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert "writing the checkpoint of step 4" in err and "checkpoint of step 2 is intact" in err, err
  assert ("Permission denied" if fail is _fail_at_once else "No space left") in err, err
  assert [d for d in os.listdir(workdir / "checkpoints") if d.isdigit()] == ["2"]
  step, state = read(workdir)
  assert step == 2 and int(state.step) == 2
  # Once the disk is fixed, the same command resumes from step 2.
  assert train(workdir, f"--config.train.steps={steps}") == 0
  assert read(workdir)[0] == steps
