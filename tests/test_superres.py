"""The super-resolution game: one step under jit, pmap and one device agree; resume is bitwise;
two-stage training; `upscale` and `evaluate` end to end; bad inputs are one sentence."""
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import cli, experiment
from gan_jax.errors import UserError
from runs import assert_resumed_as, stopped_copy
from test_cli import assert_one_clear_error
from test_games import assert_close_to_scale
from test_step import load_config, under_jit_and_pmap
from test_train import final_state, train


@pytest.fixture
def narrow_vgg(monkeypatch):
  """VGG19's layout at 1/16 of its widths with random weights, in place of the converted file
  (`tests/test_vgg.py` tests that): the perceptual term's code path at a test's cost."""
  from gan_jax.metrics import vgg
  rng = np.random.default_rng(0)
  weights, cin = {}, 3
  for name in vgg.CONV_NAMES:
    cout = vgg.weight_shapes()[f"{name}/kernel"][-1] // 16
    weights[f"{name}/kernel"] = rng.normal(0, (2 / (9 * cin)) ** 0.5, (3, 3, cin, cout)).astype(
        np.float32)
    weights[f"{name}/bias"] = np.zeros(cout, np.float32)
    cin = cout
  monkeypatch.setattr(vgg, "load_weights", lambda path: weights)


# ESRGAN's whole step: L1 + perceptual + relativistic GAN through the VGG-style D (batch norm:
# statistics of the global batch under pmap); Real-ESRGAN's U-Net D (spectral norm) with the
# plain GAN loss; SGD, as Adam turns gradients' rounding noise into +-lr steps. The perceptual
# term taps VGG's first block: deeper taps run more of the same layers, and compile longer.
SGD = {"optim.g.optimizer": "sgd", "optim.d.optimizer": "sgd", "optim.g.lr": 1e-2,
       "optim.d.lr": 1e-2, "train.batch_size": 8}
# SRResNet's last biases sum their gradient over every HR pixel of the batch with cancellations
# (results 25x below the array's largest), which 8 partial sums instead of one move by ~0.15% of
# the array's scale: one device is no reference for them, jit over the mesh is.
STEP_CASES = {
    "esrgan": {},
    "unet_d": {"model.d_name": "unet", "loss.adversarial": "non_saturating",
               "model.upsample": "pixel_shuffle", "model.name": "srresnet"},
}


@pytest.mark.parametrize("case", sorted(STEP_CASES))
def test_pmap_matches_jit_over_the_mesh(case, narrow_vgg):
  """jit over the mesh runs the game as one device does (`tests/test_step.py` holds that to one
  device's results); pmap runs its own means over the devices (`games.common.Devices`)."""
  config = load_config("esrgan", **SGD, **{"loss.perceptual_layers": {"conv1_2": 1.0}},
                       **STEP_CASES[case])
  states = under_jit_and_pmap(config)
  for state, metrics in states.values():
    assert int(state.step) == 2
    for key in ("l1", "perceptual", "g_adversarial", "d_loss", "d_real", "d_fake"):
      assert np.isfinite(metrics[key]).all(), key
  (jit, _), (pmap, _) = states["jit"], states["pmap"]
  assert_close_to_scale(pmap, jit, 2e-4)
  if case == "unet_d":  # spectral norm's vectors live in D's collections, compared above
    assert "spectral" in jit.d.collections


@pytest.mark.parametrize("name,flags", [("rrdb_psnr", ()),
                                        ("esrgan", ("--config.model.d_name=unet",))])
def test_resume_is_bitwise_equal_to_uninterrupted(name, flags, tmp_path):
  # the sample grid is compared to the photos it shows: written unmarked
  assert train(name, tmp_path / "whole", "--config.train.steps=4", *flags, "--no-watermark") == 0
  assert stopped_copy(tmp_path / "whole", tmp_path / "split") == 2
  assert train(name, tmp_path / "split", "--config.train.steps=4", *flags, "--no-watermark") == 0
  assert assert_resumed_as(tmp_path / "split", tmp_path / "whole")[0] == 4
  # LR (nearest) | bicubic | output | HR, two examples a row, of 4 held-out photos' centres
  picture = np.asarray(Image.open(tmp_path / "whole" / "samples" / "step_000004.png"))
  assert picture.shape == (2 * 33 + 1, 8 * 33 + 1, 3)
  from gan_jax.data import embedded
  astronaut = embedded.photos("test", 3)[1][0]  # 512 x 512: its centre, as the grid's HR
  np.testing.assert_array_equal(picture[1:33, 1 + 3 * 33:4 * 33], astronaut[240:272, 240:272])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """rrdb_psnr trained, then esrgan fine-tuned from it (ESRGAN's two stages), and a noise run."""
  root = tmp_path_factory.mktemp("sr_runs")
  assert train("rrdb_psnr", root / "psnr") == 0
  assert train("esrgan", root / "esrgan", f"--config.train.init_from={root / 'psnr'}") == 0
  assert train("dcgan_digits", root / "noise") == 0
  return root


def test_esrgan_starts_from_the_psnr_model(runs):
  (_, psnr), (_, gan) = final_state(runs / "psnr"), final_state(runs / "esrgan")
  assert int(gan.step) == 4
  # Fine-tuned for 4 steps at lr 1e-4 from the PSNR model's G: each weight within 4 Adam steps.
  for x, y in zip(jax.tree.leaves(psnr.g.params), jax.tree.leaves(gan.g.params)):
    assert np.abs(np.asarray(x) - np.asarray(y)).max() <= 4.01e-4
  # D starts fresh, as ESRGAN's (the PSNR stage trained none): an ESRGAN of another D width
  # takes the PSNR model's G as training's first step takes it; carrying D over would not fit.
  exp, ckpt = experiment.load(str(runs / "esrgan"))
  ckpt.close()
  config = exp.config.copy_and_resolve_references()
  config.model.d_width = 16
  like = jax.eval_shape(experiment.Experiment.build(config, exp.spec).game.init)
  nets = experiment.load_networks(str(runs / "psnr"), like, sides=exp.game.fine_tune_sides)
  assert set(nets) == {"g", "g_ema"}
  with pytest.raises(UserError, match="networks of other sizes"):
    experiment.load_networks(str(runs / "esrgan"), like, sides=("g", "d"))
  metrics = [json.loads(l) for l in (runs / "esrgan" / "metrics.jsonl").read_text().splitlines()]
  assert "g_adversarial" in metrics[-1] and "d_real" in metrics[-1]
  # No converted VGG19 here: the run said the perceptual term is off, and trained without it.
  assert "perceptual" not in metrics[-1]


def _pictures(folder):
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (37, 21, 3), np.uint8)).save(folder / "odd.png")
  Image.fromarray(rng.integers(0, 256, (16, 16, 4), np.uint8)).save(folder / "alpha.png")
  (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_upscale_a_folder_with_a_corrupted_file_and_an_odd_size(runs, tmp_path, capsys, caplog):
  _pictures(tmp_path / "in")
  argv = ["upscale", f"--workdir={runs / 'esrgan'}", f"--input={tmp_path / 'in'}",
          f"--out={tmp_path / 'out'}", "--tile=16", "--noprogress"]
  assert cli.main(argv) == 0
  out = capsys.readouterr()
  assert "wrote 2 images" in out.out and "skipped 1 unreadable" in out.out
  assert "broken.jpg" in caplog.text  # named in the report of what was left out
  assert Image.open(tmp_path / "out" / "odd.png").size == (21 * 4, 37 * 4)
  assert Image.open(tmp_path / "out" / "alpha.png").mode == "RGBA"


def test_upscale_equals_the_generator_on_the_picture(runs, tmp_path):
  (tmp_path / "in").mkdir()
  pixels = np.random.default_rng(1).integers(0, 256, (20, 18, 3), np.uint8)
  Image.fromarray(pixels).save(tmp_path / "in" / "x.png")
  assert cli.main(["upscale", f"--workdir={runs / 'psnr'}", f"--input={tmp_path / 'in'}",
                   f"--out={tmp_path / 'out'}", "--noprogress", "--no-watermark"]) == 0
  exp, ckpt = experiment.load(str(runs / "psnr"))
  state = experiment.restore_latest(exp, ckpt)
  ckpt.close()
  # One tile: the picture with 16 mirrored pixels of context (--tile_pad) on each side.
  x = np.pad(pixels.astype(np.float32) / 127.5 - 1, ((16, 16), (16, 16), (0, 0)), "reflect")
  y = exp.game.upscale(state, x[None])[0, 64:64 + 80, 64:64 + 72]
  want = np.clip(np.round((y + 1) * 127.5), 0, 255)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "x.png")), want)


def test_evaluate_scores_psnr_and_ssim_beside_bicubic(runs, tmp_path):
  from gan_jax import evaluate
  result = evaluate.evaluate(str(runs / "psnr"), num_samples=1)
  assert result["split"] == "test" and result["num_samples"] == 1
  for key in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y"):
    assert np.isfinite(result[key]), key
  assert 20 < result["bicubic_psnr_y"] < 40 and 0 < result["bicubic_ssim_y"] <= 1
  assert evaluate.evaluate(str(runs / "psnr"), num_samples=5)["num_samples"] == 4  # all 4 photos
  # A folder of HR pictures instead: a flat grey one is upscaled exactly by bicubic.
  hr = tmp_path / "hr"
  hr.mkdir()
  Image.fromarray(np.full((30, 22, 3), 128, np.uint8)).save(hr / "flat.png")
  flat = evaluate.evaluate(str(runs / "psnr"), hr_dir=str(hr))
  assert flat["split"] == str(hr) and flat["num_samples"] == 1
  assert flat["bicubic_psnr_y"] == float("inf") and flat["bicubic_ssim_y"] == 1


def _bad(runs, tmp):
  return {
      "sample an upscaler": (["sample", f"--workdir={runs / 'psnr'}"], "gan-jax upscale"),
      "translate with an upscaler": (["translate", f"--workdir={runs / 'psnr'}",
                                      f"--input={tmp}", f"--out={tmp}/o"], "gan-jax upscale"),
      "upscale a noise run": (["upscale", f"--workdir={runs / 'noise'}", f"--input={tmp}",
                               f"--out={tmp}/o"], "gan-jax sample"),
      "no --out": (["upscale", f"--workdir={runs / 'psnr'}", f"--input={tmp}"], "--out"),
      "bad tile": (["upscale", f"--workdir={runs / 'psnr'}", f"--input={tmp}",
                    f"--out={tmp}/o", "--tile=0"], "--tile=0"),
      "a metric of other runs": (["evaluate", f"--workdir={runs / 'psnr'}", "--metrics=fid"],
                                 "psnr_y"),
      "no such HR folder": (["evaluate", f"--workdir={runs / 'psnr'}", f"--hr_dir={tmp}/none"],
                            "hr_dir"),
  }


@pytest.mark.parametrize("case", sorted(_bad(Path("r"), "t")))
def test_bad_upscale_input_is_one_sentence(runs, tmp_path, capsys, case):
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
  argv, expected = _bad(runs, tmp_path)[case]
  assert cli.main(argv) == 2
  assert_one_clear_error(capsys, expected)
  assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override,expected", [
    ("--config.data.scale=3", "2 or 4"),
    ("--config.loss.adversarial=wasserstein", "loss.adversarial"),
    ("--config.data.resolution=36", "multiple of 32"),
    ("--config.model.name=unet_64", "srresnet or rrdb"),
    ("--config.augment.kind=diffaugment", "does not augment"),
    ("--config.data.source=digit_edges", "pair:LR,HR"),
    ("--config.data.resolution=30", "data.scale=4"),
    ("--config.data.degrade.kind=jpeg", "degrade.kind"),
    ("--config.loss.l1_weight=-1", "l1_weight"),
])
def test_bad_superres_config_is_one_sentence(tmp_path, capsys, override, expected):
  assert train("esrgan", tmp_path / "w", override) == 2
  assert_one_clear_error(capsys, expected)
  assert not (tmp_path / "w").exists()
