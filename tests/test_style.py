"""The stylegan2 game: lazy regularizers on their steps, ADA's p in the state, NVIDIA's presets,
EMA by half-life and the lazy Adam correction, jit == pmap, bitwise resume, truncation, and its
bad settings."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from gan_jax import cli, evaluate, experiment
from gan_jax.reporting import to_uint8
from gan_jax.games import style
from runs import assert_resumed_as, stopped_copy
from test_cli import assert_one_clear_error
from test_games import assert_close_to_scale
from test_step import load_config, run, under_jit_and_pmap
from test_train import assert_bitwise_equal, final_state, train

# stacked_digits: 3 channels, ADA's colour transforms on real colour data; no download.
SMOKE = {"data.source": "stacked_digits"}


FLAGS = ("--config.data.source=stacked_digits",)


def test_a_short_run(tmp_path):
  """One 6-step smoke run (a compile is most of a test's time here, so one run serves all):
  the lazy phases on their steps, ADA's p adapting, kimg, bitwise resume, sampling with
  truncation."""
  whole, split = tmp_path / "whole", tmp_path / "split"
  flags = ("--config.train.log_every=1",) + FLAGS
  assert train("stylegan2", whole, "--config.train.steps=6", *flags) == 0

  # smoke: R1 and the path-length penalty every 2 steps (0, 2, 4); p moves after step 3
  m = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in m] == [1, 2, 3, 4, 5, 6]
  for key in ("r1_penalty", "pl_penalty", "pl_mean"):
    values = [r[key] for r in m]
    assert values[0] > 0 and values[1] == values[0] and values[2] != values[1]
    assert values[3] == values[2] and values[4] != values[3] and values[5] == values[4]
  signs = np.mean([r["d_real_sign"] for r in m[:4]])
  moved = float(np.clip(np.sign(signs - 0.6) * 32 / 100, 0, 1))  # 4 steps x 8 images / 0.1 kimg
  assert [r["augment_p"] for r in m] == pytest.approx([0, 0, 0, moved, moved, moved], abs=1e-6)
  assert [r["kimg"] for r in m] == pytest.approx([0.008 * (i + 1) for i in range(6)])
  assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in m)

  # resume: p, the path-length mean, w_avg, the EMA and both Adam states, bit for bit
  assert stopped_copy(whole, split) == 4
  assert train("stylegan2", split, "--config.train.steps=6", *flags) == 0
  step, a = assert_resumed_as(split, whole)
  assert step == 6

  # sampling: the fixed noise buffers repeat; truncation pulls toward the average w
  out = tmp_path / "s.npz"
  args = ["sample", f"--workdir={whole}", "--num=6", f"--out={out}"]
  draw = lambda *extra: (cli.main(args + list(extra)), np.load(out)["samples"])[1]
  full = draw()
  np.testing.assert_array_equal(draw(), full)
  half, average = draw("--truncation=0.5"), draw("--truncation=0")
  np.testing.assert_allclose(average, np.broadcast_to(average[:1], average.shape), atol=1e-5)
  assert np.std(full, axis=0).mean() > np.std(half, axis=0).mean() > 1e-4
  # truncating only the first 2 ws (the coarse styles) keeps some of the spread
  assert np.std(draw("--truncation=0", "--truncation_cutoff=2"), axis=0).mean() > 1e-5
  check_pictures(whole, tmp_path, full)
  check_fine_tuning(whole, tmp_path / "tuned", a)


def check_pictures(workdir, tmp_path, samples):
  """Style mixing, a walk between latents, and evaluation with truncation, on a trained run
  whose first samples of seed 0 are `samples`."""
  game = experiment.load(str(workdir))[0].game
  mix, groups = tmp_path / "mix.png", game.style_groups()
  assert list(groups["coarse"]) == [0, 1, 2] and list(groups["fine"]) == []  # 8x8: 4 ws
  assert cli.main(["sample", f"--workdir={workdir}", "--mix=coarse", "--num=3",
                   f"--out={mix}", "--no-watermark"]) == 0
  tiles = grid_tiles(mix, 4, 4, samples.shape[1:])
  np.testing.assert_array_equal(tiles[1, 0], to_uint8(samples[0]))  # row sources: seed 0's
  np.testing.assert_array_equal(tiles[2, 0], to_uint8(samples[1]))
  # each cell differs from its row source (coarse styles swapped in) and from its column source
  for r, c in ((1, 1), (2, 3), (3, 2)):
    assert np.abs(tiles[r, c].astype(int) - tiles[r, 0]).mean() > 1
    assert np.abs(tiles[r, c].astype(int) - tiles[0, c]).mean() > 1
  # ws 0-3 are all of them: the cells are the column sources
  assert cli.main(["sample", f"--workdir={workdir}", "--mix=0-3", "--num=3",
                   f"--out={mix}", "--no-watermark"]) == 0
  tiles = grid_tiles(mix, 4, 4, samples.shape[1:])
  assert cli.main(["sample", f"--workdir={workdir}", "--mix=fine", f"--out={mix}"]) == 2
  for c in range(1, 4):
    for r in range(1, 4):
      np.testing.assert_array_equal(tiles[r, c], tiles[0, c])

  gif = tmp_path / "walk.gif"
  assert cli.main(["sample", f"--workdir={workdir}", "--interpolate=5", "--num=3",
                   f"--out={gif}", "--no-watermark"]) == 0
  with Image.open(gif) as movie:
    assert movie.n_frames == 15 and movie.size == (128, 128)  # 8 px enlarged 16x
  strip = grid_tiles(tmp_path / "walk.png", 3, 5, samples.shape[1:])
  for leg in range(3):  # each leg starts at a sample of seed 0 (keyframes are exact)
    np.testing.assert_array_equal(strip[leg, 0], to_uint8(samples[leg]))
  assert np.abs(strip[0, 1].astype(int) - strip[0, 0]).mean() > 0.1  # and moves

  result = evaluate.evaluate(str(workdir), num_samples=12, truncation=0.5, truncation_cutoff=2)
  assert result["truncation"] == 0.5 and result["truncation_cutoff"] == 2
  assert 1 <= result["modes_captured"] <= 12


def check_fine_tuning(source, workdir, source_state):
  """`init_from` starts from the source run's networks (fresh step, optimizers and p); FreezeD
  keeps D's first block (FromRGB and the 8 px block) at the source's weights."""
  assert train("stylegan2", workdir, "--config.train.steps=2", f"--config.train.init_from={source}",
               "--config.train.freeze_d=1", *FLAGS) == 0
  _, tuned = final_state(workdir)
  assert int(tuned.step) == 2
  for name, theirs in source_state.d.params.items():
    mine = tuned.d.params[name]
    if name.startswith("b8_"):
      assert_bitwise_equal(mine, theirs)
    else:
      assert max(np.abs(x - y).max() for x, y in zip(jax.tree.leaves(mine),
                                                    jax.tree.leaves(theirs))) > 0
  # G moved two small Adam steps from the source's weights, not from a fresh init
  gap = max(float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(tuned.g.params),
                                                       jax.tree.leaves(source_state.g.params)))
  assert 0 < gap < 0.05


def grid_tiles(path, rows, cols, shape):
  """The tiles of an `image_grid` picture as uint8 [rows, cols, H, W, C]."""
  h, w, c = shape
  pixels = np.asarray(Image.open(path)).reshape((rows * (h + 1) + 1, cols * (w + 1) + 1, c))
  return np.stack([np.stack([pixels[1 + r * (h + 1):1 + r * (h + 1) + h,
                                    1 + q * (w + 1):1 + q * (w + 1) + w] for q in range(cols)])
                   for r in range(rows)])


def test_a_conditional_run_draws_the_asked_class(tmp_path):
  """Class-conditional StyleGAN2 (label embedding in the mapping, projection D) on the digits:
  `--label` picks the class, and the class changes the image of the same latent."""
  assert train("stylegan2", tmp_path, "--config.train.steps=2", "--config.model.conditional=True",
               "--config.data.source=digits", "--config.data.channels=1",
               "--config.augment.kind=none") == 0
  draws = {}
  for label in (3, 7):
    out = tmp_path / f"{label}.npz"
    assert cli.main(["sample", f"--workdir={tmp_path}", "--num=4", f"--label={label}",
                     f"--out={out}"]) == 0
    draws[label] = np.load(out)
    np.testing.assert_array_equal(draws[label]["labels"], [label] * 4)
  assert draws[3]["samples"].shape == (4, 8, 8, 1)
  assert np.abs(draws[3]["samples"] - draws[7]["samples"]).max() > 1e-4
  # Synthetic data from it, kept by its projection D's scores per class.
  out = tmp_path / "export"
  assert cli.main(["export", f"--workdir={tmp_path}", f"--out={out}", "--num=3", "--per_class",
                   "--labels=3,7", "--filter=discriminator:0.5", "--format=npz",
                   "--noprogress"]) == 0
  arrays = np.load(out / "synthetic.npz")
  assert arrays["images"].shape == (6, 8, 8, 1) and sorted(arrays["labels"]) == [3] * 3 + [7] * 3


def test_pmap_matches_jit_over_the_mesh():
  """jit over the mesh runs the game as one device does (`tests/test_step.py` holds that to one
  device's results); pmap runs its own means over the devices (`games.common.Devices`)."""
  # 4 images per device: the minibatch-stddev groups of 4 stay on one device. Without ADA (its
  # draws are held to pmap == jit in test_augment.py), which saves a third of the compile time.
  config = load_config("stylegan2", **SMOKE, **{"train.batch_size": 32, "augment.kind": "none"})
  states = under_jit_and_pmap(config)
  for state, metrics in states.values():
    assert int(state.step) == 2 and np.isfinite(metrics["g_loss"]).all()
  for side in ("g", "d", "g_ema", "extras"):
    assert_close_to_scale(getattr(states["pmap"][0], side), getattr(states["jit"][0], side), 2e-4)


def test_r3gans_loss_on_stylegan2s_networks():
  """R3GAN's config-B ablation: RpGAN + R1 + R2 on StyleGAN2's networks. One step (Dreg runs at
  step 0): the same D before Dreg gives the same R1 with or without R2, R2 is logged beside it
  and its gradient moves D, not G (Gmain runs before it)."""
  base = {**SMOKE, "augment.kind": "none", "loss.adversarial": "relativistic_pairing",
          "loss.pl_weight": 0.0, "loss.style_mixing": 0.0}
  with_r2, m2 = run(load_config("stylegan2", **base, **{"loss.r2": True}), "single", steps=1)
  without, m1 = run(load_config("stylegan2", **base), "single", steps=1)
  assert float(m2["r1_penalty"]) == pytest.approx(float(m1["r1_penalty"]), rel=1e-5)
  assert float(m2["r2_penalty"]) > 0 and "r2_penalty" not in m1
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(with_r2.d.params),
                                               jax.tree.leaves(without.d.params))]
  assert max(moved) > 0
  for a, b in zip(jax.tree.leaves(with_r2.g.params), jax.tree.leaves(without.g.params)):
    np.testing.assert_array_equal(a, b)
  assert np.isfinite(float(m2["g_loss"])) and np.isfinite(float(m2["d_loss"]))


@pytest.mark.parametrize("flags,expected", [
    (("--truncation_cutoff=2",), "give --truncation"),
    (("--truncation=0.5", "--truncation_cutoff=0"), "positive"),
])
def test_bad_sample_flags_are_one_sentence(tmp_path, capsys, flags, expected):
  assert cli.main(["sample", f"--workdir={tmp_path}", f"--out={tmp_path}/s.png", *flags]) == 2
  assert_one_clear_error(capsys, expected)


def test_truncation_of_a_dcgan_bounds_z(tmp_path, capsys):
  """Plain-z models truncate z itself (BigGAN's trick); a cutoff of per-layer styles or a
  threshold of 0 are one sentence each."""
  assert train("dcgan_digits", tmp_path) == 0
  exp, ckpt = experiment.load(str(tmp_path))
  ckpt.close()
  z, _ = exp.game.latents(None, 500, seed=1, truncation=0.5)
  assert np.abs(z).max() <= 0.5 and np.abs(z).max() > 0.45
  assert cli.main(["sample", f"--workdir={tmp_path}", "--truncation=0.5",
                   f"--out={tmp_path}/s.png"]) == 0
  capsys.readouterr()
  assert cli.main(["sample", f"--workdir={tmp_path}", "--truncation=0.5", "--truncation_cutoff=2",
                   f"--out={tmp_path}/s.png"]) == 2
  assert_one_clear_error(capsys, "per-layer styles")
  assert cli.main(["sample", f"--workdir={tmp_path}", "--truncation=0",
                   f"--out={tmp_path}/s.png"]) == 2
  assert_one_clear_error(capsys, "threshold > 0")


def test_ema_half_life_and_ramp_up():
  # beta ** (images in a half-life / batch) = 1/2
  beta = style.ema_beta(jnp.int32(10 ** 6), 32, ema_kimg=10, rampup=0.0)
  assert float(beta) ** (10_000 / 32) == pytest.approx(0.5, rel=1e-4)
  assert float(style.ema_beta(jnp.int32(0), 32, 10, 0.05)) == 0.0  # the average starts at G
  # ramp-up: at step 100 the half-life is 0.05 x 3200 images
  assert float(style.ema_beta(jnp.int32(100), 32, 10, 0.05)) == pytest.approx(0.5 ** (32 / 160))


def test_lazy_adam_correction():
  config = load_config("stylegan2", **SMOKE)
  params = {"w": jnp.array([1.0, -2.0])}
  grads = [{"w": jnp.array([0.3, 0.1])}, {"w": jnp.array([-0.2, 0.4])}]
  c = 16 / 17
  ours = style.lazy_optimizer(config.optim.d, 100, 16)
  reference = optax.adam(config.optim.d.lr * c, b1=0.0, b2=0.99 ** c)
  for tx in (ours, reference):
    state = tx.init(params)
    for g in grads:
      updates, state = tx.update(g, state, params)
    tx.result = updates["w"]
  np.testing.assert_allclose(ours.result, reference.result, rtol=1e-6)


@pytest.mark.parametrize("arg,expected", [
    # NVIDIA's auto for one GPU at 256: batch 16, gamma 0.0002 * 256^2 / 16, EMA 5 kimg
    ("auto", dict(resolution=256, batch=16, mbstd=4, channel_base=16384, lr=0.0025,
                  gamma=0.8192, ema=5.0, mapping=2)),
    ("auto,1024", dict(resolution=1024, batch=4, mbstd=4, channel_base=32768, lr=0.002,
                       gamma=52.4288, ema=1.25, mapping=2)),
    ("paper256", dict(resolution=256, batch=64, mbstd=8, channel_base=16384, lr=0.0025,
                      gamma=1.0, ema=20, mapping=8)),
    ("stylegan2", dict(resolution=1024, batch=32, mbstd=4, channel_base=32768, lr=0.002,
                       gamma=10.0, ema=10, mapping=8)),
    ("cifar", dict(resolution=32, batch=64, mbstd=32, channel_base=32768, lr=0.0025, gamma=0.01,
                   ema=500, mapping=2)),
])
def test_presets_are_nvidias(arg, expected):
  c = load_config("stylegan2", arg=arg)
  got = dict(resolution=c.data.resolution, batch=c.train.batch_size, mbstd=c.model.mbstd_group,
             channel_base=c.model.channel_base, lr=c.optim.g.lr, gamma=c.loss.r1_gamma,
             ema=c.train.ema_kimg, mapping=c.model.mapping_layers)
  assert got == pytest.approx(expected)
  assert (c.loss.pl_weight, c.loss.style_mixing) == ((0.0, 0.0) if arg == "cifar" else (2.0, 0.9))


@pytest.mark.parametrize("flags,expected", [
    (("--config.data.resolution=24",), "power of two"),
    (("--config.train.n_critic=2",), "n_critic"),
    (("--config.loss.adversarial=hinge",), "logistic"),
    (("--config.loss.r2=True", "--config.loss.r1_gamma=0"), "gamma > 0"),
    (("--config.loss.adversarial=relativistic_pairing",), "augment.target=0"),
    (("--config.augment.kind=mixup",), "augment"),
    (("--config.loss.style_mixing=1.5",), "probability"),
    (("--config.data.source=ring2d",), "image"),
    (("--config.train.freeze_d=2",), "freeze 0 to 1"),
])
def test_bad_settings_are_one_sentence(tmp_path, capsys, flags, expected):
  assert train("stylegan2", tmp_path, "--config.data.source=stacked_digits", *flags) == 2
  assert_one_clear_error(capsys, expected)


@pytest.mark.parametrize("arg,expected", [("paper128", "preset"), ("auto,big", "resolution")])
def test_unknown_preset_is_one_sentence(tmp_path, capsys, arg, expected):
  assert train("stylegan2", tmp_path, arg=arg) == 2
  assert_one_clear_error(capsys, expected)
