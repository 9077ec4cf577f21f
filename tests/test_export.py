"""`gan-jax export` and `gan-jax provenance`: every format read back by what consumes it, the
filters' decisions checked on the written files, determinism, and the errors."""
import io
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from runs import trained
from gan_jax import cli, config as config_lib, experiment, provenance
from gan_jax.data import sources


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
  return str(trained(tmp_path_factory, "cgan_digits"))


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
  return str(trained(tmp_path_factory, "dcgan_digits"))


def export(workdir, out, *flags):
  return cli.main(["export", f"--workdir={workdir}", f"--out={out}", "--noprogress", *flags])


def record(out):
  with open(os.path.join(out, "export.json")) as f:
    return json.load(f)


def read_folder(path, resolution=16, channels=1):
  config = config_lib.base_config()
  config.data.source = f"folder:{path}"
  config.data.resolution, config.data.channels = resolution, channels
  source = sources.build(config)
  return source, source.get(np.arange(len(source)))


def files_of(root):
  return sorted(os.path.relpath(os.path.join(d, f), root)
                for d, _, names in os.walk(root) for f in names)


def test_folder_export_reads_back_as_a_folder_source(cgan_run, tmp_path):
  out = tmp_path / "folder"
  assert export(cgan_run, out, "--num=6", "--per_class", "--labels=3,7") == 0
  source, batch = read_folder(out)
  assert source.class_names == ["3", "7"]
  assert np.bincount(batch["label"]).tolist() == [6, 6]
  assert batch["x"].shape == (12, 16, 16, 1) and batch["x"].dtype == np.uint8
  assert record(out)["counts"] == {"3": 6, "7": 6}
  assert record(out)["step"] == 4 and record(out)["config"] == "cgan_digits"


def test_ultralytics_classification_layout(cgan_run, tmp_path):
  out = tmp_path / "cls"
  assert export(cgan_run, out, "--num=10", "--per_class", "--format=ultralytics-cls",
                "--split=0.8") == 0
  assert sorted(os.listdir(out)) == ["export.json", "train", "val"]
  for part, each in (("train", 8), ("val", 2)):
    source, batch = read_folder(out / part)
    assert source.class_names == [str(i) for i in range(10)]
    assert np.bincount(batch["label"]).tolist() == [each] * 10


def test_npz_tfds_and_folder_hold_the_same_pixels(cgan_run, tmp_path):
  for name, fmt in (("npz", "npz"), ("tfds", "tfds"), ("folder", "folder")):
    # the arrays of an npz carry no watermark: the pictures are compared unmarked
    assert export(cgan_run, tmp_path / name, "--num=25", f"--format={fmt}", "--no-watermark") == 0
  arrays = np.load(tmp_path / "npz" / "synthetic.npz")
  assert arrays["images"].shape == (25, 16, 16, 1)
  assert arrays["labels"].tolist() == [i % 10 for i in range(25)]
  assert json.loads(str(arrays["provenance"]))["step"] == 4

  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(str(tmp_path / "tfds" / "gan_jax_synthetic" / "1.0.0"))
  train = builder.as_data_source()["train"]
  assert len(train) == 25
  assert [int(train[i]["label"]) for i in range(25)] == arrays["labels"].tolist()
  np.testing.assert_array_equal(np.stack([train[i]["image"] for i in range(25)]),
                                arrays["images"])
  # The stored PNGs keep their provenance.
  raw = builder.as_data_source(decoders={"image": tfds.decode.SkipDecoding()})["train"][0]
  assert provenance.read(io.BytesIO(raw["image"]))["config"] == "cgan_digits"
  # The project's own tfds: source reads it too.
  config = config_lib.base_config()
  config.data.source, config.data.data_dir = "tfds:gan_jax_synthetic", str(tmp_path / "tfds")
  config.data.resolution = 16
  batch = sources.build(config).get(np.arange(25))
  np.testing.assert_array_equal(batch["x"], arrays["images"])

  for i, label in enumerate(arrays["labels"]):
    picture = np.asarray(Image.open(tmp_path / "folder" / str(label) / f"{i // 10:06d}.png"))
    np.testing.assert_array_equal(picture, arrays["images"][i, ..., 0])


def test_same_flags_same_bytes(cgan_run, tmp_path):
  flags = ("--num=12", "--format=ultralytics-cls", "--image_format=jpg", "--seed=5")
  for name in ("a", "b"):
    assert export(cgan_run, tmp_path / name, *flags) == 0
  assert export(cgan_run, tmp_path / "c", *flags[:-1], "--seed=6") == 0
  names = files_of(tmp_path / "a")
  assert names == files_of(tmp_path / "b") and len(names) == 13
  same = [(tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names]
  assert all(same)
  other = [(tmp_path / "a" / n).read_bytes() == (tmp_path / "c" / n).read_bytes()
           for n in names if n.endswith(".jpg")]
  assert not any(other)


def test_discriminator_filter_keeps_the_top_fraction(cgan_run, tmp_path):
  out = tmp_path / "d"
  assert export(cgan_run, out, "--num=40", "--format=npz", "--filter=discriminator:0.25") == 0
  r = record(out)
  assert 0.15 < r["acceptance"] < 0.35 and sum(r["counts"].values()) == 40
  assert sum(r["generated"].values()) > 100
  # The files hold what was scored: D's scores of them clear their class's threshold.
  exp, state = experiment.load_latest(cgan_run)
  arrays = np.load(out / "synthetic.npz")
  scores = exp.game.discriminate(state, arrays["images"].astype(np.float32) / 127.5 - 1,
                                 arrays["labels"])
  thresholds = np.array([r["thresholds"][str(l)] for l in arrays["labels"]])
  assert np.all(scores >= thresholds - 1e-5)


def test_classifier_filter_with_a_users_scorer(cgan_run, tmp_path):
  scorer = tmp_path / "bright.py"
  scorer.write_text("import numpy as np\n"
                    "def probabilities(images):\n"
                    "  p = (images.mean(axis=(1, 2, 3)) + 1) / 2\n"
                    "  return np.repeat(p[:, None], 10, axis=1)\n")
  out = tmp_path / "c"
  brightness = lambda x: (x.astype(np.float32) / 127.5 - 1).mean(axis=(1, 2, 3))
  # The threshold sits inside the spread of an unfiltered export's brightness.
  assert export(cgan_run, tmp_path / "all", "--num=200", "--format=npz") == 0
  cut = float(np.median((brightness(np.load(tmp_path / "all" / "synthetic.npz")["images"]) + 1)
                        / 2))
  assert export(cgan_run, out, "--num=30", "--format=npz", f"--filter=classifier:{cut}",
                f"--classifier={scorer}:probabilities") == 0
  kept = (brightness(np.load(out / "synthetic.npz")["images"]) + 1) / 2
  assert np.all(kept >= cut - 1e-6)
  assert 0.25 < record(out)["acceptance"] < 0.75


def test_digits_classifier_is_the_default_on_digits(cgan_run, tmp_path, monkeypatch):
  seen = []

  class Fake:
    @classmethod
    def load_or_train(cls):
      return cls()

    def logits(self, images):
      seen.append(images.shape)
      return np.zeros((len(images), 10))

  monkeypatch.setattr("gan_jax.metrics.digits.DigitsClassifier", Fake)
  assert export(cgan_run, tmp_path / "o", "--num=5", "--filter=classifier:0.1") == 0
  assert seen and seen[0][1:] == (16, 16, 1)


def test_every_picture_says_what_made_it(cgan_run, tmp_path, capsys):
  out = tmp_path / "p"
  assert export(cgan_run, out, "--num=3", "--image_format=jpg") == 0
  Image.new("L", (8, 8)).save(out / "real.png")
  capsys.readouterr()
  assert cli.main(["provenance", str(out)]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 4
  made = [l for l in lines if "trainedAlgorithmicMedia" in l]
  assert len(made) == 3 and all("config cgan_digits" in l and "step 4" in l for l in made)
  assert [l for l in lines if l.endswith("real.png: no provenance")]
  found = provenance.read(out / "0" / "000000.jpg")
  assert found["source_type"] == provenance.SOURCE_TYPE
  assert found["run"] == os.path.abspath(cgan_run) and len(found["weights"]) == 16


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed "
                    "(Debian: libimage-exiftool-perl)")
def test_exiftool_reads_the_labels(cgan_run, tmp_path):
  assert export(cgan_run, tmp_path, "--num=1") == 0
  tags = json.loads(subprocess.run(["exiftool", "-j", "-XMP:all", str(tmp_path / "0" /
                                                                       "000000.png")],
                                   capture_output=True, text=True, check=True).stdout)[0]
  assert tags["DigitalSourceType"] == provenance.SOURCE_TYPE and tags["Step"] == 4


def test_unconditional_folder_export(dcgan_run, tmp_path):
  assert export(dcgan_run, tmp_path / "u", "--num=7") == 0
  assert sorted(os.listdir(tmp_path / "u")) == [f"{i:06d}.png" for i in range(7)] + [
      "export.json"]
  source, batch = read_folder(tmp_path / "u")
  assert len(source) == 7 and source.class_names is None


@pytest.mark.parametrize("run, flags, expected", [
    ("dcgan", ["--per_class"], "--per_class needs a class-conditional run"),
    ("dcgan", ["--format=ultralytics-det"], "--format=ultralytics-det (objects need classes)"),
    ("dcgan", ["--filter=classifier:0.5"], "use --filter=discriminator:Q"),
    ("cgan", ["--labels=3,eleven"], "unknown label 'eleven'"),
    ("cgan", ["--format=zip"], "--format=zip is not a format"),
    ("cgan", ["--split=0.5"], "drop --split"),
    ("cgan", ["--filter=discriminator:2"], "is not a filter"),
    ("cgan", ["--filter=classifier:0.5", "--classifier=nowhere:fn"], "could not be loaded"),
    ("cgan", ["--num=0"], "must be a positive number"),
])
def test_bad_requests(run, flags, expected, cgan_run, dcgan_run, tmp_path, capsys):
  workdir = {"cgan": cgan_run, "dcgan": dcgan_run}[run]
  capsys.readouterr()
  flags = flags if any(f.startswith("--num") for f in flags) else ["--num=2", *flags]
  assert export(workdir, tmp_path / "out", *flags) == 2
  err = capsys.readouterr().err.strip()
  assert expected in err and len(err.splitlines()) == 1
  assert not os.path.exists(tmp_path / "out")


def test_out_folder_is_never_clobbered(cgan_run, tmp_path, capsys):
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "notes.txt").write_text("keep")
  capsys.readouterr()
  assert export(cgan_run, mine, "--num=2") == 2
  assert "is not empty" in capsys.readouterr().err
  assert export(cgan_run, mine, "--num=2", "--overwrite") == 2
  assert "not an export" in capsys.readouterr().err
  assert (mine / "notes.txt").read_text() == "keep"
  # An earlier export is replaced whole: no stale files are left among the new ones.
  assert export(cgan_run, tmp_path / "e", "--num=20") == 0
  assert export(cgan_run, tmp_path / "e", "--num=2", "--overwrite") == 0
  assert len(files_of(tmp_path / "e")) == 3


def test_a_filter_that_keeps_nothing_stops_and_leaves_nothing(cgan_run, tmp_path, capsys):
  scorer = tmp_path / "never.py"
  scorer.write_text("import numpy as np\ndef p(images):\n  return np.zeros((len(images), 10))\n")
  capsys.readouterr()
  assert export(cgan_run, tmp_path / "n", "--num=1", "--filter=classifier:0.5",
                f"--classifier={scorer}:p") == 2
  assert "kept 0.00%" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "n")


def test_detection_export_boxes_hold_the_pasted_digits(cgan_run, tmp_path, monkeypatch):
  """A generator that draws real digits (of the labels asked for) makes known objects: every
  label line parses, boxes lie in [0, 1], and on the black canvas the digits' pixels fill their
  boxes to within a pixel."""
  import yaml
  from gan_jax.data import embedded
  from gan_jax.games import noise
  digits, digit_labels = embedded.digits(16)
  by_label = {l: digits[digit_labels == l] for l in range(10)}

  def real_digits(self, state, num, seed=0, labels=None, ema=True, **kw):
    rng = np.random.default_rng(seed)
    picked = np.stack([by_label[int(l)][rng.integers(len(by_label[int(l)]))] for l in labels])
    return picked.astype(np.float32) / 127.5 - 1, np.asarray(labels)

  monkeypatch.setattr(noise.NoiseGame, "generate", real_digits)
  out = tmp_path / "det"
  assert export(cgan_run, out, "--num=10", "--format=ultralytics-det", "--canvas=96",
                "--max_objects=3") == 0
  with open(out / "data.yaml") as f:
    data = yaml.safe_load(f)
  assert data["path"] == str(out) and (data["train"], data["val"]) == ("images/train",
                                                                       "images/val")
  assert data["names"] == {i: str(i) for i in range(10)}
  r = record(out)
  assert sum(r["boxes"].values()) >= 10
  seen = 0
  for split, count in (("train", 9), ("val", 1)):
    names = sorted(os.listdir(out / "images" / split))
    assert len(names) == count
    for name in names:
      canvas = np.asarray(Image.open(out / "images" / split / name))
      lines = (out / "labels" / split / name.replace(".png", ".txt")).read_text().splitlines()
      ink = canvas > 40  # the digits' strokes on black
      covered = np.zeros_like(ink)
      for line in lines:
        label, *values = line.split()
        cx, cy, w, h = map(float, values)
        assert 0 <= int(label) < 10 and all(0 <= v <= 1 for v in (cx, cy, w, h))
        x0, y0 = round((cx - w / 2) * 96), round((cy - h / 2) * 96)
        x1, y1 = round((cx + w / 2) * 96), round((cy + h / 2) * 96)
        inside = np.argwhere(ink[y0:y1, x0:x1])
        assert len(inside)
        assert inside[:, 0].min() <= 1 and inside[:, 1].min() <= 1  # edges touch ink
        assert inside[:, 0].max() >= y1 - y0 - 2 and inside[:, 1].max() >= x1 - x0 - 2
        covered[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
        seen += 1
      assert not np.any(ink & ~covered)  # no ink outside the boxes (give or take a pixel)
  assert seen == sum(r["boxes"].values())


def test_detection_backgrounds_from_pictures_or_another_run(cgan_run, dcgan_run, tmp_path):
  pictures = tmp_path / "scenes"
  pictures.mkdir()
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8)).save(
      pictures / "a.png")
  assert export(cgan_run, tmp_path / "f", "--num=2", "--format=ultralytics-det", "--canvas=32",
                f"--background=folder:{pictures}") == 0
  canvas = np.asarray(Image.open(tmp_path / "f" / "images" / "train" / "000000.png"))
  assert canvas.shape == (32, 32, 3) and canvas.std() > 20  # a crop of the noise picture
  assert export(cgan_run, tmp_path / "r", "--num=3", "--format=ultralytics-det", "--canvas=32",
                f"--background=run:{dcgan_run}", "--no-watermark") == 0
  exp, state = experiment.load_latest(dcgan_run)
  from gan_jax import exporting, reporting
  first, _ = exp.game.generate(state, exporting.BATCH, seed=exporting._batch_seed(0, 4, 0))
  expected = Image.fromarray(reporting.to_uint8(first)[0, ..., 0]).resize((32, 32),
                                                                         Image.Resampling.BICUBIC)
  canvas = np.asarray(Image.open(tmp_path / "r" / "images" / "train" / "000000.png"))
  away = np.ones(canvas.shape, bool)  # away from the objects (and their faint rims)
  for line in (tmp_path / "r" / "labels" / "train" / "000000.txt").read_text().splitlines():
    cx, cy, w, h = (float(v) * 32 for v in line.split()[1:])
    away[max(int(cy - h / 2) - 3, 0):int(cy + h / 2) + 4,
         max(int(cx - w / 2) - 3, 0):int(cx + w / 2) + 4] = False
  assert away.mean() > 0.3
  np.testing.assert_array_equal(canvas[away], np.asarray(expected)[away])


def test_written_samples_carry_the_watermark_npz_arrays_do_not(cgan_run, tmp_path):
  """Folder and TFDS files are the samples marked a batch at a time, the same pixels as marking
  each picture alone; the npz keeps the unmarked arrays."""
  from gan_jax import watermark
  for fmt in ("npz", "tfds", "folder"):
    assert export(cgan_run, tmp_path / fmt, "--num=25", f"--format={fmt}") == 0
  arrays = np.load(tmp_path / "npz" / "synthetic.npz")
  for i, label in enumerate(arrays["labels"]):
    picture = np.asarray(Image.open(tmp_path / "folder" / str(label) / f"{i // 10:06d}.png"))
    np.testing.assert_array_equal(picture, watermark.apply(arrays["images"][i])[..., 0])
    assert np.any(picture != arrays["images"][i, ..., 0])
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(str(tmp_path / "tfds" / "gan_jax_synthetic" / "1.0.0"))
  train = builder.as_data_source()["train"]
  for i, label in enumerate(arrays["labels"]):
    picture = np.asarray(Image.open(tmp_path / "folder" / str(label) / f"{i // 10:06d}.png"))
    np.testing.assert_array_equal(train[i]["image"][..., 0], picture)
