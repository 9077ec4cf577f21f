"""`gan-jax report`: one PNG, a panel per series the run has, alarm marks, the latest samples."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import config_path
from gan_jax import cli, run_report
from gan_jax.errors import UserError
from gan_jax.run_report import ALARM, COLORS, COLS, PANEL_W


def write_run(workdir, records, grids=()):
  """A workdir as train leaves it, by hand: config.json, metrics.jsonl, samples/step_N.png."""
  workdir.mkdir(exist_ok=True)
  (workdir / "config.json").write_text(json.dumps({"name": "handmade"}))
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  for step, grid in grids:
    (workdir / "samples").mkdir(exist_ok=True)
    Image.fromarray(grid).save(workdir / "samples" / f"step_{step:06d}.png")
  return workdir


def training(steps, **extra):
  rng = np.random.default_rng(0)
  return [{"step": s, "d_loss": 1.4 - s / 200 + 0.1 * rng.random(), "g_loss": 0.7 + s / 300,
           "d_real": 0.1 + s / 100, "d_fake": -s / 100, "d_grad_norm": 5 - s / 50,
           "g_grad_norm": 1 + s / 100, **{k: v(s) for k, v in extra.items()}} for s in steps]


def pixels(path):
  return np.asarray(Image.open(path).convert("RGB"))


def count(img, box, color):
  l, t, r, b = box
  return int((img[t:b, l:r] == color).all(-1).sum())


def test_a_panel_per_series_and_the_latest_samples(tmp_path):
  grid = np.random.default_rng(1).integers(0, 256, (21, 31, 3), np.uint8)
  records = training(range(2, 201, 2), l1=lambda s: 1 / s) + [
      {"step": s, "eval/fid": 200 - s / 2, "eval/kid": 0.1} for s in (50, 100, 150, 200)]
  run = write_run(tmp_path / "run", records,
                  [(200, grid), (100, np.zeros((21, 31, 3), np.uint8))])
  result = run_report.report(str(run))
  assert result.path == str(run / "report.png") and result.step == 200
  assert result.steps == (2, 200) and result.alarms == () and result.left_out == ()
  names = [p.name for p in result.panels]
  assert names == ["losses", "D(real) / D(fake)", "gradient norms", "l1", "eval/fid", "eval/kid",
                   "samples"]
  img = pixels(result.path)
  assert img.shape[1] == COLS * PANEL_W and img.shape[0] > 2 * 250
  for panel in result.panels[:3]:  # both series of a pair are drawn in their plot area
    assert min(count(img, panel.box, c) for c in COLORS) > 100, panel.name
  for panel in result.panels[3:6]:
    assert count(img, panel.box, COLORS[0]) > 20 and count(img, panel.box, COLORS[1]) == 0
  assert not (img == ALARM).all(-1).any()  # no health keys, no alarm marks
  samples = result.panels[-1]
  assert samples.keys == (str(run / "samples" / "step_000200.png"),)  # the highest step, not 100
  l, t, r, b = samples.box
  k = (r - l) // grid.shape[1]
  assert k > 1 and (r - l, b - t) == (k * grid.shape[1], k * grid.shape[0])
  np.testing.assert_array_equal(img[t:b:k, l:r:k], grid)  # enlarged pixel for pixel


def test_no_eval_scores_no_eval_panel_no_samples_no_samples_panel(tmp_path):
  run = write_run(tmp_path / "run", training(range(1, 5)))
  names = [p.name for p in run_report.report(str(run), str(tmp_path / "r.png")).panels]
  assert names == ["losses", "D(real) / D(fake)", "gradient norms"]
  assert pixels(tmp_path / "r.png").shape == (34 + 250, COLS * PANEL_W, 3)


def test_health_alarms_are_marked_where_they_happened(tmp_path):
  records = training(range(0, 101), **{"health/alarm": lambda s: float(s == 30),
                                       "health/d_accuracy": lambda s: 0.5 + s / 400})
  result = run_report.report(str(write_run(tmp_path / "run", records)))
  assert result.alarms == (30,)
  assert [p.name for p in result.panels][3:] == ["health/d_accuracy"]  # the alarm key is the marks
  img = pixels(result.path)
  for panel in result.panels:
    l, t, r, b = panel.box
    x = round(l + 0.3 * (r - l))
    assert count(img, (x - 2, t, x + 3, b), ALARM) > (b - t), panel.name
    assert count(img, (l, t, x - 3, b), ALARM) == count(img, (x + 3, t, r, b), ALARM) == 0


def test_other_series_are_capped_and_named(tmp_path):
  extra = {f"term_{i}": (lambda s, i=i: i + s) for i in range(9)}
  result = run_report.report(str(write_run(tmp_path / "run", training(range(3), **extra))))
  assert [p.name for p in result.panels][3:] == [f"term_{i}" for i in range(6)]
  assert result.left_out == ("term_6", "term_7", "term_8")


def test_a_half_written_sample_grid_is_passed_over(tmp_path):
  """While the run trains, the newest PNG may be cut short: the one before it is shown."""
  grid = np.full((8, 8, 3), 77, np.uint8)
  run = write_run(tmp_path / "run", training(range(3)), [(4, grid), (8, grid)])
  data = (run / "samples" / "step_000008.png").read_bytes()
  (run / "samples" / "step_000008.png").write_bytes(data[:len(data) // 2])
  assert run_report.report(str(run)).panels[-1].keys[0].endswith("step_000004.png")


def test_resumed_and_cut_short_metrics(tmp_path):
  """A resumed run logs steps again (the later value wins); a killed run's last line is partial;
  per-seed copies are left to their mean."""
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "d_loss": 5.0}\n{"step": 2, "d_loss": 6.0, "d_loss/seed_0": 1}\n'
                  '{"step": 1, "d_loss": 7.0}\n{"step": 3, "d_lo')
  steps, values = run_report.load_metrics(str(path))["d_loss"]
  assert list(steps) == [1, 2] and list(values) == [7.0, 6.0]
  assert list(run_report.load_metrics(str(path))) == ["d_loss"]


def test_smoothing_and_ticks():
  np.testing.assert_allclose(run_report.ema(np.full(500, 3.0)), 3.0)  # debiased: no ramp from 0
  noisy = np.random.default_rng(0).standard_normal(500)
  assert run_report.ema(noisy).std() < 0.5 * noisy.std()
  np.testing.assert_allclose(run_report.nice_ticks(0.03, 0.97), [0.2, 0.4, 0.6, 0.8])
  assert run_report.nice_ticks(2, 400, 6) == [100, 200, 300, 400]


def test_cli_on_a_real_smoke_run(tmp_path, capsys):
  """The 2D ring (it compiles in seconds; its samples are a scatter plot, shrunk to fit)."""
  workdir = tmp_path / "cgan"
  assert cli.main(["train", f"--config={config_path('gan_ring2d')}", f"--workdir={workdir}",
                   "--config.train.steps=8", "--noprogress"]) == 0
  capsys.readouterr()
  assert cli.main(["report", f"--workdir={workdir}"]) == 0
  assert capsys.readouterr().out.strip() == str(workdir / "report.png")
  result = run_report.report(str(workdir), str(tmp_path / "again.png"))
  assert [p.name for p in result.panels] == [  # r1_penalty: the ring's; health: see test_health
      "losses", "D(real) / D(fake)", "gradient norms", "D accuracy", "r1_penalty",
      "health/diversity", "health/g_grad_share", "samples"]
  assert result.alarms == ()  # 8 steps are too few to judge a collapse
  assert result.step == 8 and result.panels[-1].keys[0].endswith("step_000008.png")
  np.testing.assert_array_equal(pixels(workdir / "report.png"), pixels(tmp_path / "again.png"))


@pytest.mark.parametrize("case", ["no run", "no metrics", "empty metrics", "jpg", "no workdir"])
def test_bad_input_is_one_sentence(tmp_path, capsys, case):
  workdir = tmp_path / "run"
  workdir.mkdir()
  if case != "no run":
    (workdir / "config.json").write_text("{}")
  if case == "empty metrics":
    (workdir / "metrics.jsonl").write_text("")
  argv = {"jpg": [f"--workdir={workdir}", f"--out={tmp_path / 'r.jpg'}"],
          "no workdir": []}.get(case, [f"--workdir={workdir}"])
  assert cli.main(["report", *argv]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("gan-jax: error: ") and "\n" not in err and err.endswith(".")
  assert not (workdir / "report.png").exists() and not (tmp_path / "r.jpg").exists()
  if case != "no workdir":
    with pytest.raises(UserError):
      run_report.report(*[a.split("=", 1)[1] for a in argv])
