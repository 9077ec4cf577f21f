"""The sparse video game (StyleGAN-V's recipe): its frame times, continuous motion codes, jit ==
pmap, bitwise resume, clips of any length and frame rate, and bad input."""
import jax
import numpy as np
import pytest
from PIL import Image

from conftest import config_path
from runs import assert_resumed_as, stopped_copy
from test_cli import assert_one_clear_error
from test_games import assert_close_to_scale
from test_video import assert_r1_reaches_d
from test_step import load_config, run
from gan_jax import api, cli
from gan_jax.errors import UserError
from gan_jax.games import video_sparse
from gan_jax.models import video_sparse as models


def test_frame_times_are_sparse_increasing_and_within_reach():
  times = np.asarray(video_sparse.sample_times(jax.random.key(0), 4000, 16, 3, 10))
  assert times.shape == (4000, 3) and times.dtype == np.int32
  assert (np.diff(times, axis=1) > 0).all() and times.min() == 0 and times.max() == 15
  span = times[:, -1] - times[:, 0]
  np.testing.assert_array_equal(np.unique(span), np.arange(2, 11))  # every span K - 1 .. 10
  # the middle frame is any frame strictly inside the span
  assert set(times[span == 4, 1] - times[span == 4, 0]) == {1, 2, 3}
  pairs = np.asarray(video_sparse.sample_times(jax.random.key(1), 500, 4, 2, 16))
  assert (pairs[:, 0] < pairs[:, 1]).all() and pairs.max() == 3  # spans end at the clip's end


def test_motion_codes_are_continuous_and_start_segments_at_their_aligners():
  model = models.MotionCode(spacing=4, waves=6, max_period=64.0, kernel=3)
  noise = jax.random.normal(jax.random.key(0), (2, models.grid_size(20.0, 4, 3), 5))
  t = np.array([[7.999, 8.0, 8.001, 13.0]] * 2, np.float32)
  params = model.init(jax.random.key(1), noise, t)
  codes = np.asarray(model.apply(params, noise, t))
  assert codes.shape == (2, 4, 12)
  np.testing.assert_allclose(codes[:, 0], codes[:, 1], atol=0.02)  # across the grid point
  np.testing.assert_allclose(codes[:, 2], codes[:, 1], atol=0.02)
  assert np.abs(codes[:, 1] - codes[:, 3]).max() > 0.1  # and it moves
  # more noise to the right (a longer clip) leaves the codes of earlier times as they were
  longer = jax.random.normal(jax.random.key(0), (2, noise.shape[1] + 4, 5))
  longer = longer.at[:, :noise.shape[1]].set(noise)
  np.testing.assert_allclose(model.apply(params, longer, t), codes, atol=1e-6)


@pytest.mark.parametrize("classes", [0, 10])
def test_modulated_g_takes_its_layout_from_motion_and_its_shape_from_content(classes):
  """`model.g_content=modulation`: the content code (and the class) reach G only through the
  gains and biases of its norms, which start at zero, so at first every content draws the same
  frames; motion feeds G's input, so other motion draws other frames. Once the gains move,
  content changes the frames."""
  g = models.Generator(16, 1, spacing=4, waves=4, max_period=32.0, width=4,
                       num_classes=classes, content="modulation")
  content = jax.random.normal(jax.random.key(0), (2, 2, 6))  # two draws of 2 clips' codes
  motion = jax.random.normal(jax.random.key(1), (2, 2, 8, 5))
  t, labels = np.array([[0.0, 3.5]] * 2, np.float32), np.array([1, 7])
  variables = g.init(jax.random.key(2), content[0], motion[0], t, labels)
  draw = lambda v, c, m: np.asarray(g.apply(v, c, m, t, labels, mutable=["batch_stats"])[0])
  frames = draw(variables, content[0], motion[0])
  assert frames.shape == (2, 2, 16, 16, 1) and np.isfinite(frames).all()
  np.testing.assert_array_equal(draw(variables, content[1], motion[0]), frames)
  assert np.abs(draw(variables, content[0], motion[1]) - frames).max() > 1e-3
  params = jax.tree.map(  # the gains' and biases' kernels, the only all-zero matrices
      lambda x: jax.random.normal(jax.random.key(3), x.shape) * 0.1
      if x.ndim == 2 and not np.any(x) else x, variables["params"])
  moved = {**variables, "params": params}
  assert np.abs(draw(moved, content[1], motion[0]) - draw(moved, content[0], motion[0])).max() > 1e-3


def test_jit_and_pmap_agree_with_r1():
  config = load_config("video_digits_sparse", **{"loss.r1_weight": 1.0})
  config.parallel.strategy = "jit"
  jitted, metrics = run(config, "jit", steps=2)
  for key in ("d_loss", "g_loss", "d_real", "d_fake"):
    assert np.isfinite(metrics[key]), key
  assert metrics["r1_penalty"] > 0
  config.parallel.strategy = "pmap"
  mapped, _ = run(config, "pmap", steps=2)
  assert int(jitted.step) == int(mapped.step) == 2
  assert_close_to_scale(mapped, jitted, 2e-4)
  assert_r1_reaches_d(config, jitted)


def train(workdir, *flags):
  return cli.main(["train", f"--config={config_path('video_digits_sparse')}",
                   f"--workdir={workdir}", "--noprogress", *flags])


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("video_sparse")
  assert train(workdir / "whole") == 0
  return workdir


def test_resume_is_bitwise_equal(sparse_run):
  split = sparse_run / "split"
  assert stopped_copy(sparse_run / "whole", split) == 2
  assert train(split) == 0
  assert assert_resumed_as(split, sparse_run / "whole")[0] == 4
  grid = Image.open(sparse_run / "whole" / "samples" / "step_000004.gif")
  assert grid.n_frames == 8  # the sample grid plays clips of the training clips' 8 frames


def test_clips_of_any_length_and_frame_rate(sparse_run, tmp_path):
  model = api.load(str(sparse_run / "whole"))
  game, state = model.game, model.state
  fast, labels = game.generate(state, 3, seed=5, frames=7, fps=2)
  assert fast.shape == (3, 7, 16, 16, 1) and fast.dtype == np.float32 and labels.shape == (3,)
  assert -1 <= fast.min() and fast.max() <= 1
  plain, _ = game.generate(state, 3, seed=5, frames=4)
  np.testing.assert_allclose(fast[:, ::2], plain, rtol=0, atol=1e-6)  # time 2t / 2 = t
  assert np.abs(fast[:, 1] - fast[:, 0]).max() > 0  # the half-frame times are frames of their own
  slow, _ = game.generate(state, 3, seed=5, frames=3, fps=0.5)  # times 0, 2, 4
  assert slow.shape == (3, 3, 16, 16, 1)
  np.testing.assert_allclose(slow[:, :2], plain[:, ::2], rtol=0, atol=1e-6)
  out = tmp_path / "long.npz"
  assert cli.main(["sample", f"--workdir={sparse_run / 'whole'}", "--num=3", f"--out={out}",
                   "--seed=5", "--frames=40"]) == 0
  with np.load(out) as f:
    long = f["samples"]
  assert long.shape == (3, 40, 16, 16, 1)
  np.testing.assert_allclose(long[:, :4], plain, rtol=0, atol=1e-6)  # longer clips continue
  assert game.discriminate(state, long[:, :8], labels).shape == (3,)


@pytest.mark.parametrize("fps", [0, -1.5, float("nan")])
def test_bad_frame_rate_is_one_sentence(sparse_run, fps):
  model = api.load(str(sparse_run / "whole"))
  with pytest.raises(UserError, match=r"^--fps=.* must be a positive multiple of the training "):
    model.game.generate(model.state, 2, fps=fps)


@pytest.mark.parametrize("flags,expected", [
    (("--config.model.frames_per_clip=9",), "frames_per_clip=9 must be between 2 and the clip's 8"),
    (("--config.model.frames_per_clip=1",), "frames_per_clip=1 must be between 2"),
    (("--config.model.max_distance=1",), "max_distance=1 must be at least frames_per_clip - 1"),
    (("--config.model.concat_resolution=32",), "concat_resolution=32 must be a power of two"),
    (("--config.model.max_period=2",), "max_period=2 must be at least motion_spacing=4"),
    (("--config.data.source=digits",), "holds images, and the video_sparse game learns clips"),
    (("--config.model.name=mocogan",), "is not a model of the video_sparse game"),
])
def test_bad_settings_are_one_sentence(tmp_path, capsys, flags, expected):
  assert train(tmp_path / "run", *flags) == 2
  assert_one_clear_error(capsys, expected)
  assert not (tmp_path / "run").exists()


def test_unknown_config_arg_is_apply_args_error():
  with pytest.raises(UserError, match="Unknown config arg 'tiny': the only arg is 'smoke'"):
    load_config("video_digits_sparse", arg="tiny")
