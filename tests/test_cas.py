"""Classification Accuracy Score: the classifier, `evaluate --metrics=cas`, the augmentation
benchmark's smoke run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, config_path
from gan_jax import cli
from gan_jax.data import embedded
from gan_jax.metrics import cas, digits

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def real(resolution=8):
  images, labels = embedded.digits(resolution)
  return images.astype(np.float32) / 127.5 - 1.0, labels


def test_classifier_reads_real_digits_and_learns_nothing_from_shuffled_labels():
  x, y = real(16)
  train, test = digits.digits_split()
  assert cas.accuracy(x[train], y[train], x[test], y[test]) > 0.95
  few = train[cas.balanced_pick(y[train], 100, seed=0)]  # 10 per class
  assert cas.accuracy(x[few], y[few], x[test], y[test]) > 0.8
  shuffled = np.random.default_rng(0).permutation(y[train])
  assert cas.accuracy(x[train], shuffled, x[test], y[test]) < 0.2  # chance: 0.1
  scores = cas.scores(x[few], y[few], x[test], y[test], num_classes=10)
  per_class = np.array(scores["per_class_accuracy"])
  counts = np.bincount(y[test], minlength=10)
  assert scores["accuracy"] == pytest.approx((per_class * counts).sum() / counts.sum())


def test_features_pool_to_8x8_gray_where_they_can():
  x, _ = real(16)
  rgb = np.repeat(x[:3], 3, axis=-1)
  assert np.allclose(cas.features(rgb), cas.features(x[:3])) and cas.features(x).shape[1] == 64
  assert cas.features(np.zeros((2, 12, 12, 3))).shape == (2, 144)


def test_balanced_pick_is_even_seeded_and_nested():
  labels = np.repeat(np.arange(4), [10, 3, 10, 10])
  pick = cas.balanced_pick(labels, 20, seed=1)
  assert np.all(np.diff(pick) > 0) and list(np.bincount(labels[pick])) == [6, 3, 6, 5]
  assert set(cas.balanced_pick(labels, 8, seed=1)) <= set(pick)
  assert not np.array_equal(pick, cas.balanced_pick(labels, 20, seed=2))
  assert len(cas.balanced_pick(labels, 100)) == len(labels)


def train(workdir, name, *overrides):
  assert cli.main(["train", f"--config={config_path(name)}", f"--workdir={workdir}",
                   "--noprogress", *overrides]) == 0
  return workdir


def write_digits(root, indices, names, resolution=16):
  images, labels = embedded.digits(resolution)
  for i in indices:
    os.makedirs(root / names[labels[i]], exist_ok=True)
    Image.fromarray(images[i, ..., 0]).save(root / names[labels[i]] / f"{i}.png")
  return root


def evaluate(capsys, workdir, *flags):
  code = cli.main(["evaluate", f"--workdir={workdir}", *flags])
  out = capsys.readouterr()
  return code, (json.loads(out.out.strip().splitlines()[-1]) if code == 0 else out.err.strip())


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
  return train(tmp_path_factory.mktemp("cgan"), "cgan_digits")


def check_scores(result, num_test):
  assert result["metrics"] == ["cas"] and 0.0 <= result["cas"] <= 1.0
  assert len(result["cas_per_class"]) == 10 and result["cas_test_size"] == num_test
  assert 0.0 <= result["cas_real"] <= 1.0


def test_cas_on_the_digits_held_out_part_by_default(cgan_run, capsys):
  code, result = evaluate(capsys, cgan_run, "--metrics=cas", "--num_samples=200")
  assert code == 0, result
  check_scores(result, 360)
  assert result["cas_test"] == "digits:test" and result["cas_test_seen_by_g"] is True
  # 200 real training digits, 20 per class: the SVC's ~93% (a 4-step G's samples: ~10%)
  assert result["cas_real_size"] == 200 and result["cas_real"] > 0.85


def test_cas_on_a_test_folder(cgan_run, capsys, tmp_path):
  _, held_out = digits.digits_split()
  folder = write_digits(tmp_path / "test", held_out[:120], [str(c) for c in range(10)])
  code, result = evaluate(capsys, cgan_run, "--metrics=cas", "--num_samples=100",
                          f"--test_dir={folder}")
  assert code == 0, result
  check_scores(result, 120)
  assert result["cas_test"] == str(folder) and "cas_test_seen_by_g" not in result
  assert result["cas_real_size"] == 100


def test_a_folder_run_tests_on_folders_named_as_its_classes(tmp_path, capsys):
  """labels.json maps the test folder's names: a test folder without "eight" numbers its own
  classes differently, which only a correct mapping survives (cas_real stays high)."""
  train_idx, held_out = digits.digits_split()
  _, labels = embedded.digits(8)
  data = write_digits(tmp_path / "data", train_idx[cas.balanced_pick(labels[train_idx], 200)],
                      NAMES)
  test = write_digits(tmp_path / "test", [i for i in held_out if labels[i] != 8], NAMES)
  run = train(tmp_path / "run", "cgan_digits", f"--config.data.source=folder:{data}",
              "--config.eval.every_steps=4", "--config.eval.metrics=cas",
              "--config.eval.num_samples=50", f"--config.eval.test_dir={test}")
  with open(run / "metrics.jsonl") as f:  # evaluated during training, on the same folder
    assert 0.0 <= [json.loads(line) for line in f if "eval/cas" in line][-1]["eval/cas"] <= 1.0
  code, result = evaluate(capsys, run, "--metrics=cas", "--num_samples=100")
  assert code == 0, result
  check_scores(result, 360 - np.sum(labels[held_out] == 8))
  assert result["cas_real"] > 0.8 and result["cas_per_class"][0] is None  # "eight": not tested
  code, err = evaluate(capsys, run, "--metrics=cas", "--test_dir=")
  assert code == 2 and "has no held-out part: pass --test_dir=FOLDER" in err


BAD = {
    "unconditional": ("dcgan", [], "cas needs a class-conditional run"),
    "missing folder": ("cgan", ["--test_dir={tmp}/none"], "is not a folder"),
    "no class subfolders": ("cgan", ["--test_dir={loose}"], "has no class subfolders"),
    "another run's classes": ("cgan", ["--test_dir={named}"], "is not a class of this run"),
    "2D points": ("ring", [], "classifies images, and ring2d holds 2D points"),
}


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, cgan_run):
  tmp = tmp_path_factory.mktemp("bad")
  loose = tmp / "loose"
  loose.mkdir()
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(loose / "a.png")
  return dict(tmp=tmp, loose=loose, named=write_digits(tmp / "named", range(20), NAMES),
              cgan=cgan_run, dcgan=train(tmp / "dcgan", "dcgan_digits"),
              ring=train(tmp / "ring", "gan_ring2d"))


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_cas_input(case, bad_inputs, capsys):
  run, flags, expected = BAD[case]
  log = os.path.join(bad_inputs[run], "eval.jsonl")
  before = open(log).read() if os.path.exists(log) else None
  code, err = evaluate(capsys, bad_inputs[run], "--metrics=cas",
                       *(f.format(**bad_inputs) for f in flags))
  assert code == 2
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: ") and expected in err and err.endswith("."), err
  assert (open(log).read() if os.path.exists(log) else None) == before


def test_augmentation_benchmark_smoke(tmp_path):
  out, plot = tmp_path / "aug.json", tmp_path / "aug.png"
  done = subprocess.run(
      [sys.executable, os.path.join(REPO, "benchmarks", "augmentation.py"), "--smoke",
       f"--workdir={tmp_path / 'runs'}", f"--json={out}", f"--plot={plot}"],
      cwd=REPO, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  r = json.loads(out.read_text())
  assert r["ks"] == [2] and r["seeds"] == 2 and len(r["runs"]) == 2 and r["test_size"] == 360
  for kind in ("real", "real_synthetic", "synthetic"):
    cell = r["table"]["2"][kind]
    values = [run[kind] for run in r["runs"]]
    assert cell["mean"] == pytest.approx(np.mean(values))
    assert cell["std"] == pytest.approx(np.std(values, ddof=1))
  gains = [run["real_synthetic"] - run["real"] for run in r["runs"]]
  assert r["table"]["2"]["gain"]["mean"] == pytest.approx(np.mean(gains))
  assert r["all_real_accuracy"] > 0.95 and Image.open(plot).size == (760, 500)
