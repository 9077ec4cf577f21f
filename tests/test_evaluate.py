"""`gan-jax evaluate`, evaluation during training, and the cached reference statistics."""
import json
import os
import shutil

import ml_collections
import numpy as np
import pytest

from conftest import config_path
from gan_jax import cli, config as config_lib
from gan_jax.data import sources
from gan_jax.metrics import inception, reference


def train(workdir, name, *overrides):
  assert cli.main(["train", f"--config={config_path(name)}", f"--workdir={workdir}",
                   "--noprogress", *overrides]) == 0
  return workdir


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
  return train(tmp_path_factory.mktemp("ring"), "gan_ring2d")


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
  return train(tmp_path_factory.mktemp("cgan"), "cgan_digits")


def evaluate(capsys, workdir, *flags):
  """Runs the verb; returns (exit code, the JSON object of its last stdout line or None)."""
  code = cli.main(["evaluate", f"--workdir={workdir}", *flags])
  lines = capsys.readouterr().out.strip().splitlines()
  return code, (json.loads(lines[-1]) if code == 0 else None)


def eval_log(workdir):
  path = os.path.join(workdir, "eval.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f]


def test_2d_run_gets_mode_metrics_by_default(ring_run, capsys):
  before = len(eval_log(ring_run))
  code, result = evaluate(capsys, ring_run, "--num_samples=300")
  assert code == 0
  assert result["metrics"] == ["modes"] and result["step"] == 4 and result["num_samples"] == 300
  assert result["num_modes"] == 8 and 0 <= result["modes_captured"] <= 8
  assert 0.0 <= result["high_quality"] <= 1.0
  assert eval_log(ring_run)[before:] == [result]  # the printed line is the appended line


def test_digits_metrics_with_labels_and_ema_switch(cgan_run, capsys):
  code, ema = evaluate(capsys, cgan_run, "--num_samples=100")
  assert code == 0 and ema["metrics"] == ["digits"] and ema["ema"] is True
  assert len(ema["class_histogram"]) == 10 and "label_accuracy" in ema and ema["digits_fid"] > 0
  code, raw = evaluate(capsys, cgan_run, "--num_samples=100", "--no-ema")
  assert code == 0 and raw["ema"] is False and raw["digits_fid"] != ema["digits_fid"]
  code, again = evaluate(capsys, cgan_run, "--num_samples=100")
  assert again == ema  # fixed latents: the same checkpoint scores the same


def test_stacked_digits_count_their_1000_modes(tmp_path, capsys):
  run = train(tmp_path, "dcgan64")  # stacked digits, 16x16x3 in the smoke variant
  code, result = evaluate(capsys, run, "--num_samples=50")
  assert code == 0 and result["metrics"] == ["modes"]
  assert result["num_modes"] == 1000 and 1 <= result["modes_captured"] <= 50
  assert "label_accuracy" not in result  # unconditional: no number was asked for


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
  path = tmp_path_factory.mktemp("weights") / "random_inception.npz"
  return inception.save_weights(inception.random_weights(1), str(path))


def test_inception_metrics_end_to_end(cgan_run, random_inception, capsys, tmp_path, monkeypatch):
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  # 8 samples and 8 real images: one batch shape, the one test_metrics_inception compiles.
  flags = ["--metrics=fid,kid,pr,prdc", "--num_samples=8", "--num_reference=8",
           f"--config.eval.inception_weights={random_inception}"]
  code = cli.main(["evaluate", f"--workdir={cgan_run}", *flags])
  out, err = capsys.readouterr()
  assert code == 0, err
  result = json.loads(out.strip().splitlines()[-1])
  for key in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage"):
    assert np.isfinite(result[key]), key
  assert result["fid"] > 0
  cached = os.listdir(tmp_path / "reference")  # reading it back: test_reference_stats_cache_key
  assert len(cached) == 1 and cached[0].startswith("digits_train_16px_inception_v3_fid_")
  # progress bars on stderr: the samples, and the real images while their statistics are made
  bars = [line for line in err.replace("\r", "\n").splitlines() if "8/8" in line]
  assert any(line.startswith("generating and scoring: 100%") for line in bars), err
  assert any(line.startswith("real examples' inception_v3_fid statistics") for line in bars), err
  assert cli.main(["evaluate", f"--workdir={cgan_run}", *flags, "--noprogress"]) == 0
  out, err = capsys.readouterr()
  assert json.loads(out.strip().splitlines()[-1]) == result and "generating" not in err


def test_inception_score_uses_the_generated_samples_logits(cgan_run, monkeypatch, capsys):
  """IS needs 10 samples or more: checked with a stand-in for the network, which is slow on CPU."""
  from gan_jax.metrics import scores
  seen = []

  class Logits:
    name, weights_hash = "stand-in", "0" * 64

    def __init__(self, path):
      del path

    def __call__(self, images):
      seen.append(np.asarray(images))
      flat = np.asarray(images).reshape(len(images), -1)
      return flat[:, :4], flat[:, :12] * 5.0

  monkeypatch.setattr(inception, "InceptionExtractor", Logits)
  code, result = evaluate(capsys, cgan_run, "--metrics=is", "--num_samples=30")
  assert code == 0 and result["metrics"] == ["is"]
  samples = np.concatenate(seen)
  assert samples.shape == (30, 16, 16, 1)
  expected = scores.inception_score(samples.reshape(30, -1)[:, :12] * 5.0, splits=10)
  assert (result["is"], result["is_std"]) == pytest.approx(expected)


class FakeExtractor:
  """Mean pixel per channel as a 'feature': counts how many images it is asked to embed."""

  def __init__(self, name="fake", weights_hash="0" * 64):
    self.name, self.weights_hash, self.seen = name, weights_hash, 0

  def __call__(self, images):
    self.seen += len(images)
    x = np.asarray(images, np.float32)
    return np.stack([x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3))], axis=1), None


def digits_config(resolution=8, **data):
  c = config_lib.base_config()
  c.data.resolution = resolution
  c.data.update(data)
  return c


def test_reference_stats_cache_key(tmp_path, monkeypatch):
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  c = digits_config()
  ex = FakeExtractor()
  first = reference.reference_stats(c, sources.build(c), ex, 100)
  assert ex.seen == 100 and first["features"].shape == (100, 2)
  np.testing.assert_allclose(first["mean"], first["features"].astype(np.float64).mean(0), rtol=1e-6)
  again = reference.reference_stats(c, sources.build(c), ex, 100)
  assert ex.seen == 100  # read from the cache
  for k in first:
    np.testing.assert_array_equal(again[k], first[k])

  changed = {
      "dataset": (digits_config(channels=3), ex),
      "split": (digits_config(split="test"), ex),
      "resolution": (digits_config(16), ex),
      "extractor": (c, FakeExtractor(name="other")),
      "weights": (c, FakeExtractor(weights_hash="1" * 64)),
  }
  for what, (config, extractor) in changed.items():
    seen = extractor.seen
    reference.reference_stats(config, sources.build(config), extractor, 100)
    assert extractor.seen == seen + 100, f"changing the {what} did not recompute"
  seen = ex.seen
  reference.reference_stats(c, sources.build(c), ex, 50)  # fewer real images: another entry
  assert ex.seen == seen + 50
  assert len(os.listdir(tmp_path / "reference")) == 7


def snapshot(path):
  return sorted((os.path.relpath(os.path.join(d, f), path), os.path.getmtime(os.path.join(d, f)))
                for d, _, files in os.walk(path) for f in files)


BAD_EVALUATE = {
    "unknown metric": ("{ring}", ["--metrics=modes,fidd"], "Unknown metric 'fidd'"),
    "fid on points": ("{ring}", ["--metrics=fid"], "2D points: use --metrics=modes"),
    "digits on points": ("{ring}", ["--metrics=digits"], "classifier of the digits"),
    "modes on digits": ("{cgan}", ["--metrics=modes"], "needs data with known modes"),
    "no inception weights": ("{cgan}", ["--metrics=kid", "--inception_weights={missing}"],
                             "download https://github.com/mseitzer/pytorch-fid/releases/download/"
                             "fid_weights/pt_inception-2015-12-05-6726825d.pth"),
    "too few for IS": ("{cgan}", ["--metrics=is", "--num_samples=5",
                                  "--inception_weights={weights}"], "use at least 10"),
    "non-positive count": ("{cgan}", ["--num_samples=0"], "must be a positive number"),
    "no workdir flag": (None, [], "needs --workdir"),
    "not a run": ("{missing}", [], "holds no training run"),
}


@pytest.mark.parametrize("case", sorted(BAD_EVALUATE))
def test_bad_evaluate_input(case, ring_run, cgan_run, random_inception, tmp_path, capsys):
  workdir, flags, expected = BAD_EVALUATE[case]
  fill = dict(ring=ring_run, cgan=cgan_run, missing=tmp_path / "none", weights=random_inception)
  argv = ([f"--workdir={workdir.format(**fill)}"] if workdir else []) + [
      f.format(**fill) for f in flags]
  runs = (ring_run, cgan_run)
  before = [snapshot(r) for r in runs]
  assert cli.main(["evaluate", *argv]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: ") and expected in err and err.endswith("."), err
  assert [snapshot(r) for r in runs] == before and not (tmp_path / "none").exists()


def test_evaluation_during_training(tmp_path, capsys):
  run = train(tmp_path, "gan_ring2d", "--config.eval.every_steps=2",
              "--config.eval.num_samples=200")
  with open(run / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  evals = [r for r in records if "eval/modes_captured" in r]
  assert [r["step"] for r in evals] == [2, 4]
  assert set(evals[0]) == {"step", "eval/modes_captured", "eval/num_modes", "eval/high_quality",
                           "eval/reverse_kl"}
  tensorboard = b"".join(open(os.path.join(run, "tensorboard", f), "rb").read()
                         for f in os.listdir(run / "tensorboard"))
  assert b"eval/high_quality" in tensorboard
  # The last evaluation is what `gan-jax evaluate` reports for the final checkpoint.
  code, result = evaluate(capsys, run, "--num_samples=200")
  assert code == 0
  assert {f"eval/{k}": result[k] for k in ("modes_captured", "high_quality")} == {
      k: pytest.approx(evals[-1][k]) for k in ("eval/modes_captured", "eval/high_quality")}


@pytest.mark.parametrize("flag,expected", [
    ("--config.eval.metrics=fid", "2D points"),
    ("--config.eval.every_steps=-1", "--config.eval.every_steps must be >= 0"),
])
def test_bad_eval_config_stops_training_before_it_writes(flag, expected, tmp_path, capsys):
  workdir = tmp_path / "run"
  every = [] if "every_steps" in flag else ["--config.eval.every_steps=2"]
  assert cli.main(["train", f"--config={config_path('gan_ring2d')}", f"--workdir={workdir}",
                   "--noprogress", flag, *every]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and expected in err, err
  assert not workdir.exists()


def test_old_runs_without_an_eval_block_still_evaluate(ring_run, tmp_path, capsys):
  run = tmp_path / "old"
  shutil.copytree(ring_run, run)
  saved = config_lib.load_json(run / "config.json").to_dict()
  del saved["eval"]
  config_lib.save_json(ml_collections.ConfigDict(saved), run / "config.json")
  code, result = evaluate(capsys, run, "--num_samples=100")
  assert code == 0 and result["metrics"] == ["modes"]
