"""`gan-jax train` on TFDS datasets and image folders, exact resume, and every bad data input."""
import json

import numpy as np
import pytest

from conftest import config_path
from gan_jax import cli
from test_cli import assert_one_clear_error
from test_data import numbered_folder, prepared_tfds, save  # noqa: F401 (a fixture)
from test_train import assert_bitwise_equal, final_state

SMOKE = config_path("dcgan_digits")
SHORT = ("--config.train.steps=2", "--config.train.log_every=2", "--config.train.sample_every=2")


def train(workdir, *flags):
  return cli.main(["train", f"--config={SMOKE}", f"--workdir={workdir}", "--noprogress", *flags])


def records(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name, channels, classes", [
    ("mnist", 1, 10),      # 28x28x1
    ("cifar10", 3, 10),    # 32x32x3
    ("celeb_a", 3, 0),     # 218x178x3, no "label" feature: unlabelled
])
def test_tfds_datasets_train(tmp_path, name, channels, classes):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=40):
    assert train(tmp_path, f"--config.data.source=tfds:{name}", f"--config.data.channels={channels}",
                 *SHORT) == 0
  assert all(np.isfinite(r["d_loss"]) for r in records(tmp_path))
  spec = json.loads((tmp_path / "data_spec.json").read_text())
  assert spec == {"shape": [16, 16, channels], "dtype": "uint8", "num_classes": classes, "text_dim": 0}
  assert (tmp_path / "labels.json").exists() == bool(classes)


def test_folder_run_resumes_exactly_and_writes_the_label_mapping(tmp_path):
  root = tmp_path / "images"
  for i in range(24):  # differently sized RGB pictures in two classes
    rng = np.random.default_rng(i)
    save(str(root / ("cats" if i % 3 else "dogs") / f"{i}.png"),
         rng.integers(0, 256, (12 + i, 20, 3), dtype=np.uint8))
  flags = (f"--config.data.source=folder:{root}", "--config.data.random_flip=True",
           "--config.data.resize=pad", "--config.train.checkpoint_every=2")
  assert train(tmp_path / "whole", *flags, "--config.train.steps=4") == 0
  assert train(tmp_path / "split", *flags, "--config.train.steps=2") == 0
  assert train(tmp_path / "split", *flags, "--config.train.steps=4") == 0
  (step_a, a), (step_b, b) = final_state(tmp_path / "whole"), final_state(tmp_path / "split")
  assert step_a == step_b == 4
  assert_bitwise_equal(a, b)
  labels = json.loads((tmp_path / "whole" / "labels.json").read_text())
  assert labels == {"cats": 0, "dogs": 1}


@pytest.fixture
def folders(tmp_path):
  """Named folders for the bad inputs below."""
  (tmp_path / "empty").mkdir()
  (tmp_path / "text").mkdir()
  (tmp_path / "text" / "readme.txt").write_text("no images here")
  (tmp_path / "corrupt").mkdir()
  for i in range(3):
    (tmp_path / "corrupt" / f"{i}.jpg").write_bytes(b"\xff\xd8 truncated")
  (tmp_path / "afile").write_text("a file")
  (tmp_path / "tfds_empty").mkdir()
  numbered_folder(tmp_path / "good", 4)
  return tmp_path


BAD_DATA = {
    "missing folder": (["--config.data.source=folder:{d}/missing"], "does not exist"),
    "not a folder": (["--config.data.source=folder:{d}/afile"], "is not a folder"),
    "empty folder": (["--config.data.source=folder:{d}/empty"], "is empty"),
    "no images": (["--config.data.source=folder:{d}/text"], "holds no png, jpg"),
    "all corrupt": (["--config.data.source=folder:{d}/corrupt"], "None of the 3 image files"),
    "no folder named": (["--config.data.source=folder:"], "names no folder"),
    "unknown prefix": (["--config.data.source=images:{d}/good"], "Unknown data source"),
    "tfds not prepared": (["--config.data.source=tfds:mnist", "--config.data.data_dir={d}/tfds_empty"],
                          "tfds build mnist --file_format=array_record --data_dir="),
    "tfds unknown": (["--config.data.source=tfds:no_such_dataset_here"], "TFDS has no dataset"),
    "tfds no name": (["--config.data.source=tfds:"], "needs a dataset name"),
    "tfds bad split": (["--config.data.source=tfds:synthetic_images:valid",
                        "--config.data.data_dir={tfds}"], "has no split 'valid'"),
    "bad resize": (["--config.data.source=folder:{d}/good", "--config.data.resize=zoom"],
                   "--config.data.resize='zoom'"),
    "bad channels": (["--config.data.source=folder:{d}/good", "--config.data.channels=2"],
                     "data.channels=2"),
    "two domains": (["--config.data.source=pair:{d}/good,{d}/good"], "gives two image domains"),
    "negative workers": (["--config.data.workers=-1"], "data.workers=-1"),
    "no prefetch": (["--config.data.prefetch=0"], "data.prefetch=0"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_input(case, folders, prepared_tfds, capsys):  # noqa: F811
  argv, expected = BAD_DATA[case]
  argv = [a.format(d=folders, tfds=prepared_tfds) for a in argv]
  workdir = folders / "run"
  assert train(workdir, *argv) == 2
  assert_one_clear_error(capsys, expected)
  assert not workdir.exists()


def test_random_flip_of_2d_points_is_refused(tmp_path, capsys):
  assert cli.main(["train", f"--config={config_path('gan_ring2d')}", f"--workdir={tmp_path / 'r'}",
                   "--config.data.random_flip=True"]) == 2
  assert_one_clear_error(capsys, "holds 2D points")
  assert not (tmp_path / "r").exists()
