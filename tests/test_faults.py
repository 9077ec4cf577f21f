"""What a new user's mistakes and a machine's faults end in: out-of-range config values stop
before anything is built; a damaged latest checkpoint falls back to the one before; a failed
checkpoint write stops the run naming the checkpoint left intact."""
import importlib.util
import os

import pytest

from conftest import REPO, config_path
from gan_jax import cli, config as config_lib

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
    (SMOKE, "--config.model.g_width=0", "model.g_width must be a positive integer, got 0"),
    (SMOKE, "--config.model.latent_dim=-1", "model.latent_dim must be a positive integer"),
    (SMOKE, "--config.model.d_norm=group", "model.d_norm='group' is not supported"),
    (SMOKE, "--config.sample.num=0", "sample.num must be a positive integer"),
    (SMOKE, "--config.augment.p=2", "augment.p must be in [0, 1], got 2.0"),
    (config_path("gan_ring2d"), "--config.model.hidden=0", "model.hidden must be a positive"),
    (config_path("pix2pix_digits"), "--config.loss.l1_weight=-100", "loss.l1_weight must be >= 0"),
    (config_path("pix2pix_digits"), "--config.model.dropout=1", "model.dropout must be in [0, 1)"),
    (config_path("cyclegan_digits"), "--config.loss.cycle_weight=-1", "loss.cycle_weight"),
    (config_path("cyclegan_digits"), "--config.train.history_pool=-1", "train.history_pool"),
    (config_path("stylegan2_digits"), "--config.loss.r1_gamma=-1", "loss.r1_gamma must be >= 0"),
    (config_path("stylegan2_digits"), "--config.loss.pl_decay=2", "loss.pl_decay must be in [0, 1]"),
    (config_path("stylegan2_digits"), "--config.train.ema_kimg=-1", "train.ema_kimg must be >= 0"),
    (config_path("stylegan2_digits"), "--config.model.mbstd_group=3", "divisor"),
    (config_path("biggan_cifar32"), "--config.loss.ortho_weight=-1", "loss.ortho_weight"),
    (config_path("esrgan"), "--config.loss.perceptual_layers.conv5_4=-1",
     "perceptual_layers.conv5_4 must be >= 0"),
    (config_path("esrgan"), "--config.loss.perceptual_criterion=l3", "perceptual_criterion"),
]


@pytest.mark.parametrize("config,override,expected", BAD_VALUES,
                         ids=[o.removeprefix("--config.") for _, o, _ in BAD_VALUES])
def test_out_of_range_value_is_one_sentence(config, override, expected, tmp_path, capsys):
  workdir = tmp_path / "run"
  assert cli.main(["train", f"--config={config}", f"--workdir={workdir}", "--noprogress",
                   override]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: --config.") or "data.source" in override, err
  assert expected in err, err
  assert not (workdir / "checkpoints").exists() and not workdir.exists()
