"""The translation games: one step under jit, pmap and one device agree; K steps per call = K
calls; the history pool; resume is bitwise; `translate` end to end; their bad inputs."""
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_jax import cli
from gan_jax.games.cycle import query_pool
from runs import assert_resumed_as, stopped_copy
from test_cli import assert_one_clear_error
from test_evaluate import random_inception  # noqa: F401  (a fixture)
from test_step import load_config, run, under_jit_and_pmap
from test_train import train

GAMES = ("pix2pix_digits", "cyclegan_digits")


def assert_close_to_scale(a, b, rel):
  """Each array of `a` equals `b`'s to `rel` of that array's largest value (or 1e-5): float32 sums
  taken in another order (other devices, other fusions) differ by a few 1e-6 of the scale, and
  by more in entries that instance norm's cancellations leave as pure noise."""
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    np.testing.assert_allclose(x, y, rtol=0, atol=rel * np.abs(y).max() + 1e-5)


# Some gradients are rounding noise (instance norm cancels the bias of the conv before it; the
# U-Net's deepest layers see 1x1 and 2x2 maps): Adam scales noise up to steps of +-lr whose signs
# differ between strategies. SGD keeps it noise.
SGD = {"optim.g.optimizer": "sgd", "optim.d.optimizer": "sgd", "optim.g.lr": 1e-3, "optim.d.lr": 1e-3}
# The cycle game at 16 channels (at 4 some die, and instance norm divides their rounding noise by
# sqrt(eps)); its pool of 3 fills and then swaps within the first step's 16 fakes.
CYCLE = {**SGD, "model.g_width": 16, "model.d_width": 16, "train.batch_size": 16}
# unet_64 (6 downsamplings) drops out in its innermost decoder block: masks drawn for the
# global batch and sliced per device.
STEP_CASES = {  # name, overrides, steps
    "pix2pix": ("pix2pix_digits", {}, 2),
    "pix2pix_dropout": ("pix2pix_digits", {"data.resolution": 64, "model.name": "unet_64", **SGD},
                        2),
    # Two Gs through two Ds: sums over 8 devices instead of one move G's gradients by up to ~1%
    # of their scale (0.6% on one host, 1.05% on an AMD EPYC); jit and pmap agree to 1e-6.
    "cyclegan": ("cyclegan_digits", CYCLE, 1),
}


@pytest.mark.parametrize("case", sorted(STEP_CASES))
def test_pmap_matches_jit_over_the_mesh(case):
  """jit over the mesh runs the game as one device does (`tests/test_step.py` holds that to one
  device's results); pmap runs its own means, slices and gathers (`games.common.Devices`)."""
  name, overrides, steps = STEP_CASES[case]
  config = load_config(name, **{"train.batch_size": 8, **overrides})
  states = under_jit_and_pmap(config, steps)
  for got, metrics in states.values():
    assert int(got.step) == steps and np.isfinite(metrics["g_loss"]).all()
  assert_close_to_scale(states["pmap"][0], states["jit"][0], 2e-4)  # pools' fakes included


@pytest.mark.parametrize("name", GAMES)
def test_steps_per_call_equals_separate_calls(name):
  cycle = "cycle" in name  # a scan over 2 steps moves its G's gradients by ~0.1% (see above)
  config = load_config(name, **(CYCLE if cycle else {}))
  steps = 2 if cycle else 3
  one_by_one, _ = run(config, "single", steps=steps, k=1)
  scanned, _ = run(config, "single", steps=steps, k=steps)
  assert_close_to_scale(scanned.g, one_by_one.g, 5e-3 if cycle else 5e-5)
  assert_close_to_scale(scanned.d, one_by_one.d, 5e-5)
  assert_close_to_scale(scanned.extras, one_by_one.extras, 5e-5)


def test_history_pool_fills_then_swaps_half_the_time():
  pool, fill = jnp.zeros((4, 1)), jnp.zeros((), jnp.int32)
  images = jnp.arange(1.0, 5.0)[:, None]
  shown, pool, fill = query_pool(pool, fill, images, jax.random.key(0))
  np.testing.assert_array_equal(shown, images)     # filling: each fake is stored and shown
  np.testing.assert_array_equal(pool, images)
  assert int(fill) == 4
  new = jnp.arange(100.0, 600.0)[:, None]         # full: a stored fake comes back half the time
  shown, after, fill = query_pool(pool, fill, new, jax.random.key(1))
  swapped = np.asarray(shown[:, 0] != new[:, 0])
  assert int(fill) == 4 and 0.4 < swapped.mean() < 0.6
  # every image shown is either the new fake or one the pool held
  assert set(np.asarray(shown[swapped, 0]).tolist()) <= set(range(1, 5)) | set(range(100, 600))
  assert set(np.asarray(after[:, 0]).tolist()) <= set(range(1, 5)) | set(range(100, 600))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A trained smoke run of each translation game and of the noise game."""
  root = tmp_path_factory.mktemp("runs")
  for name in GAMES + ("dcgan_digits",):
    assert train(name, root / name) == 0
  return root


@pytest.mark.parametrize("name", GAMES)
def test_resume_is_bitwise_equal_to_uninterrupted(name, runs, tmp_path):
  whole = runs / name  # 4 smoke steps, checkpoints at 2 and 4
  assert stopped_copy(whole, tmp_path / "split") == 2
  assert train(name, tmp_path / "split") == 0
  assert assert_resumed_as(tmp_path / "split", whole)[0] == 4
  picture = Image.open(whole / "samples" / "step_000004.png")
  # pix2pix: x | G(x) | y, two pairs a row; cycle: A | A->B | A->B->A beside the same from B
  rows = 8 if name.startswith("cycle") else 4
  assert picture.size == (6 * 17 + 1, rows * 17 + 1)


def _images(folder, sizes, mode="L"):
  for i, (h, w) in enumerate(sizes):
    path = folder / ("sub" if i % 2 else "") / f"img{i}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(i).integers(0, 256, (h, w), np.uint8)).convert(mode).save(path)


@pytest.mark.parametrize("name,direction", [("pix2pix_digits", None), ("cyclegan_digits", "BtoA")])
def test_translate_a_folder_with_a_corrupted_file(runs, tmp_path, name, direction, capsys):
  _images(tmp_path / "in", [(16, 16), (37, 21), (40, 64)])
  (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
  flags = [f"--workdir={runs / name}", f"--input={tmp_path / 'in'}", f"--out={tmp_path / 'out'}",
           "--noprogress"] + ([f"--direction={direction}"] if direction else [])
  assert cli.main(["translate", *flags]) == 0
  assert "wrote 3 images" in capsys.readouterr().out
  for rel, size in (("img0.png", (16, 16)), ("sub/img1.png", (21, 37)), ("img2.png", (64, 40))):
    out = Image.open(tmp_path / "out" / rel)
    assert out.size == size and out.mode == "L"


def test_translate_outputs_equal_the_generator_on_the_image(runs, tmp_path):
  from gan_jax import experiment
  _images(tmp_path / "in", [(16, 16)])
  assert cli.main(["translate", f"--workdir={runs / 'pix2pix_digits'}",
                   f"--input={tmp_path / 'in'}", f"--out={tmp_path / 'out'}", "--noprogress",
                   "--no-watermark"]) == 0
  exp, ckpt = experiment.load(str(runs / "pix2pix_digits"))
  state = experiment.restore_latest(exp, ckpt)
  ckpt.close()
  x = np.asarray(Image.open(tmp_path / "in" / "img0.png"), np.float32)[None, ..., None] / 127.5 - 1
  want = np.clip(np.round((exp.game.translate(state, x)[0, ..., 0] + 1) * 127.5), 0, 255)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "img0.png")), want)


def _bad(runs, tmp):
  return {
      "sample a translator": (["sample", f"--workdir={runs / 'pix2pix_digits'}"], "gan-jax translate"),
      "translate a noise run": (["translate", f"--workdir={runs / 'dcgan_digits'}",
                                 f"--input={tmp}", f"--out={tmp}/o"], "gan-jax sample"),
      "no such direction": (["translate", f"--workdir={runs / 'pix2pix_digits'}", f"--input={tmp}",
                             f"--out={tmp}/o", "--direction=BtoA"], "--direction=AtoB"),
      "unknown direction": (["translate", f"--workdir={runs / 'cyclegan_digits'}", f"--input={tmp}",
                             f"--out={tmp}/o", "--direction=sideways"], "--direction=BtoA"),
      "colour image, gray model": (["translate", f"--workdir={runs / 'cyclegan_digits'}",
                                    f"--input={tmp}/rgb", f"--out={tmp}/o"], "rgb"),
      "missing --input": (["translate", f"--workdir={runs / 'cyclegan_digits'}", f"--out={tmp}/o"],
                          "--input"),
  }


@pytest.mark.parametrize("case", sorted(_bad(Path("r"), "t")))
def test_bad_translation_input_is_one_sentence(runs, tmp_path, capsys, case):
  _images(tmp_path, [(16, 16)])
  _images(tmp_path / "rgb", [(16, 16)], mode="RGB")
  argv, expected = _bad(runs, tmp_path)[case]
  assert cli.main(argv) == 2
  assert_one_clear_error(capsys, expected)
  assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override,expected", [
    ("--config.data.source=digits", "aligned pairs"),
    ("--config.loss.adversarial=hinge", "loss.adversarial"),
    ("--config.model.name=unet_64", "multiple of 64"),
    ("--config.model.name=vgg", "unet_256"),
    ("--config.model.d_layers=3", "d_layers <= 2"),
    ("--config.augment.kind=diffaugment", "does not augment"),
])
def test_bad_translation_config_is_one_sentence(tmp_path, capsys, override, expected):
  assert train("pix2pix_digits", tmp_path / "w", override) == 2
  assert_one_clear_error(capsys, expected)
  assert not (tmp_path / "w").exists()


def test_evaluate_scores_translators_on_held_out_digits(runs):
  from gan_jax import evaluate
  paired = evaluate.evaluate(str(runs / "pix2pix_digits"))
  assert paired["split"] == "test" and paired["num_samples"] == 360
  assert 0 <= paired["l1"] <= 2 and 0 < paired["ssim"] <= 1 and paired["psnr"] > 0
  assert 0 <= paired["digit_accuracy"] <= 1
  cycle = evaluate.evaluate(str(runs / "cyclegan_digits"), metrics="digits,l1")
  for direction in ("AtoB", "BtoA"):
    assert 0 <= cycle[f"{direction}/digit_accuracy"] <= 1
    assert 0 <= cycle[f"{direction}/cycle_l1"] <= 2 and 0 <= cycle[f"{direction}/l1"] <= 2
  assert (runs / "cyclegan_digits" / "eval.jsonl").exists()


def test_inception_scores_of_a_translator_against_each_target_domain(runs, tmp_path, monkeypatch,
                                                                      random_inception):
  from gan_jax import evaluate
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  result = evaluate.evaluate(str(runs / "cyclegan_digits"), metrics="fid,kid", num_samples=8,
                             num_reference=8, inception_weights=random_inception)
  for key in ("AtoB/fid", "BtoA/fid", "AtoB/kid", "BtoA/kid"):
    assert np.isfinite(result[key]) and result[key] != 0, key
  cached = sorted(os.listdir(tmp_path / "reference"))  # one reference per target domain
  assert len(cached) == 2 and "test_A" in cached[0] and "test_B" in cached[1], cached
