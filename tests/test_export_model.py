"""`gan-jax export-model`: every game's artifact equals the in-package G at any batch, README's
reader runs in a Python without gan_jax or flax, each platform gets its own form of G, the card
says what the run recorded, and every bad flag is one sentence with nothing written."""
import hashlib
import json
import os
import shutil
import site
import subprocess
import sys

import jax
import numpy as np
import pytest

import gan_jax
from gan_jax import cli, provenance
from runs import trained
from test_api import readme_blocks
from test_cli import assert_one_clear_error

PLATFORMS = ("cpu", "cuda", "tpu")  # the default


def export(workdir, out, *flags):
  return cli.main(["export-model", f"--workdir={workdir}", f"--out={out}", *flags])


def read(path):
  with open(path, "rb") as f:
    return jax.export.deserialize(bytearray(f.read()))


def card(path):
  with open(os.path.splitext(path)[0] + ".json") as f:
    return json.load(f)


def images(n, h, w, c, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (n, h, w, c)).astype(np.float32)


@pytest.mark.parametrize("name", ["dcgan_digits", "cgan_digits", "pix2pix_digits",
                                  "cyclegan_digits", "rrdb_psnr", "video_digits",
                                  "video_digits_sparse"])
def test_artifact_equals_the_in_package_generator(name, tmp_path_factory, tmp_path):
  workdir = trained(tmp_path_factory, name)
  model = gan_jax.load(workdir)
  side = model.config.data.resolution
  for direction in model.directions or (None,):
    out = tmp_path / f"{name}_{direction}.jax"
    assert export(workdir, out, *([f"--direction={direction}"] if direction else [])) == 0
    artifact = read(out)
    assert artifact.platforms == PLATFORMS
    if model.frames:
      described = card(out)
      assert described["output"]["layout"] == "NTHWC"
      assert described["output"]["shape"] == ["b", "t", side, side, 1]
      assert [i["name"] for i in described["inputs"]] == list(model.game.inputs)
    for n in (1, 5):  # one artifact, any batch
      if model.frames:  # and clips of any length (the sparse G: at any frame rate)
        clip = dict(frames=2 + n, **({"fps": 2} if "times" in model.game.inputs else {}))
        got = artifact.call(*model.noise(n, seed=n, **clip)[:-1])
        expected = model.sample(n, seed=n, **clip)
        assert got.shape == (n, 2 + n, side, side, 1)
      elif model.kind == "sample":
        z, labels = model.noise(n, seed=n)
        got = artifact.call(z, labels) if model.num_classes else artifact.call(z)
        expected = model.sample(n, seed=n)
      elif model.kind == "translate":
        x = images(n, side, side, model.channels, seed=n)
        got, expected = artifact.call(x), model.translate(x, direction=direction)
      else:  # super-resolution: any height and width too
        x = images(n, 5 + n, 7, model.channels, seed=n)
        got, expected = artifact.call(x), model.image_fn()(x)
        assert got.shape == (n, 4 * (5 + n), 28, 3)
      np.testing.assert_allclose(np.asarray(got), expected, atol=2e-5)


def test_readme_reader_runs_without_gan_jax_or_flax(tmp_path_factory, tmp_path):
  """README's lines in `python -I -S` (no PYTHONPATH, no current folder, no site hooks) with only
  site-packages on the path: an editable install of gan_jax is a `.pth` hook, which is not run;
  flax, optax and orbax, which are there, are blocked."""
  workdir = trained(tmp_path_factory, "cgan_digits")
  assert export(workdir, tmp_path / "cgan_digits.jax") == 0
  code = readme_blocks()[1]
  assert "cgan_digits.jax" in code and "gan_jax" not in code.replace("no gan_jax", "")
  dirs = [d for d in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(d)]
  prelude = (f"import sys\nsys.path.extend({dirs!r})\n"
             "sys.modules.update(flax=None, optax=None, orbax=None)\n"
             "try:\n  import gan_jax\n  sys.exit('gan_jax is importable here')\n"
             "except ModuleNotFoundError:\n  pass\n")
  epilogue = ("\nnp.save('images.npy', images)\n"
              "loaded = [m for m in sys.modules if m.split('.')[0] in ('gan_jax', 'flax', 'optax',"
              " 'orbax') and sys.modules[m] is not None]\n"
              "assert not loaded, loaded\n")
  done = subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code + epilogue],
                        cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  model = gan_jax.load(workdir)
  z = np.random.default_rng(0).standard_normal((16, model.config.model.latent_dim)).astype(
      np.float32)
  expected = jax.jit(model.generator_fn)(model.params, z, np.arange(16, dtype=np.int32) % 10)
  np.testing.assert_allclose(np.load(tmp_path / "images.npy"), expected, atol=2e-5)


def test_each_platform_gets_its_own_form_of_g(tmp_path_factory, tmp_path):
  """DCGAN's convs are matrix products on XLA:CPU and native convolutions elsewhere."""
  workdir = trained(tmp_path_factory, "dcgan_digits")
  assert export(workdir, tmp_path / "cpu.jax", "--platforms=cpu") == 0
  assert export(workdir, tmp_path / "all.jax") == 0
  assert export(workdir, tmp_path / "gpu.jax", "--platforms=cuda") == 0
  convs = {p: read(tmp_path / f"{p}.jax").mlir_module().count("stablehlo.convolution")
           for p in ("cpu", "all", "gpu")}
  assert convs["cpu"] == 0 and convs["all"] >= convs["gpu"] > 0
  # The weights are stored once, not per platform.
  sizes = {p: os.path.getsize(tmp_path / f"{p}.jax") for p in ("cpu", "all")}
  weights = sum(x.nbytes for x in jax.tree.leaves(gan_jax.load(workdir).params))
  assert sizes["all"] - sizes["cpu"] < weights


def test_a_fixed_batch(tmp_path_factory, tmp_path):
  workdir = trained(tmp_path_factory, "dcgan_digits")
  assert export(workdir, tmp_path / "g.jax", "--batch=4", "--platforms=cpu") == 0
  artifact, model = read(tmp_path / "g.jax"), gan_jax.load(workdir)
  assert artifact.in_avals[0].shape == (4, model.config.model.latent_dim)
  assert card(tmp_path / "g.jax")["inputs"][0]["shape"] == [4, model.config.model.latent_dim]
  z, _ = model.noise(4, seed=1)
  np.testing.assert_allclose(np.asarray(artifact.call(z)), model.sample(4, seed=1), atol=2e-5)
  with pytest.raises(ValueError):
    artifact.call(z[:3])


def test_the_card(tmp_path_factory, tmp_path):
  workdir = tmp_path / "cgan"
  shutil.copytree(trained(tmp_path_factory, "cgan_digits"), workdir)
  with open(workdir / "eval.jsonl", "w") as f:
    f.write(json.dumps({"step": 2, "digits_fid": 9.5}) + "\n")
    f.write(json.dumps({"step": 4, "digits_fid": 7.25}) + "\n")
    f.write('{"step": 4, "digits_f')  # cut short by a killed evaluation
  out = tmp_path / "g.jax"
  assert export(workdir, out) == 0
  c, model = card(out), gan_jax.load(workdir)
  blob = out.read_bytes()
  assert c["file"] == "g.jax" and c["bytes"] == len(blob)
  assert c["sha256"] == hashlib.sha256(blob).hexdigest() and c["platforms"] == list(PLATFORMS)
  latent = model.config.model.latent_dim
  assert [(i["name"], i["shape"], i["dtype"]) for i in c["inputs"]] == [
      ("z", ["b", latent], "float32"), ("labels", ["b"], "int32")]
  assert c["inputs"][1]["range"] == [0, 9] and c["inputs"][1]["classes"] == list("0123456789")
  assert c["output"]["shape"] == ["b", 16, 16, 1] and c["output"]["range"] == [-1.0, 1.0]
  assert c["run"]["config"] == "cgan_digits" and c["run"]["step"] == 4 and c["run"]["ema"]
  assert c["data"] == {"source": "digits", "shape": [16, 16, 1], "num_classes": 10}
  assert c["metrics"] == {"step": 4, "digits_fid": 7.25}
  assert c["provenance"]["weights"] == provenance.weights_hash(model.params["params"])
  assert c["provenance"]["step"] == 4 and c["provenance"]["config"] == "cgan_digits"
  # --no-ema and --step: the raw G of an earlier checkpoint
  assert export(workdir, tmp_path / "raw.jax", "--no-ema", "--step=2") == 0
  raw = card(tmp_path / "raw.jax")
  assert not raw["run"]["ema"] and raw["run"]["step"] == 2
  earlier = gan_jax.load(workdir, step=2, ema=False)
  assert raw["provenance"]["weights"] == provenance.weights_hash(earlier.params["params"])
  z, labels = earlier.noise(3, seed=5)
  np.testing.assert_allclose(np.asarray(read(tmp_path / "raw.jax").call(z, labels)),
                             earlier.sample(3, seed=5), atol=2e-5)


def _bad(run, translator, tmp):
  return {
      "no --out": (["export-model", f"--workdir={run}"], "--out"),
      "no run": (["export-model", f"--workdir={tmp}/none", f"--out={tmp}/o.jax"],
                 "holds no training run"),
      "out exists": (["export-model", f"--workdir={run}", f"--out={tmp}/exists.jax"],
                     "--overwrite"),
      "out is a folder": (["export-model", f"--workdir={run}", f"--out={tmp}"], "is a folder"),
      "out is the card": (["export-model", f"--workdir={run}", f"--out={tmp}/o.json"],
                          "JSON card"),
      "batch 0": (["export-model", f"--workdir={run}", f"--out={tmp}/o.jax", "--batch=0"],
                  "--batch=0"),
      "batch not a number": (["export-model", f"--workdir={run}", f"--out={tmp}/o.jax",
                              "--batch=many"], "dynamic"),
      "unknown platform": (["export-model", f"--workdir={run}", f"--out={tmp}/o.jax",
                            "--platforms=cpu,gpu"], "'gpu'"),
      "platform twice": (["export-model", f"--workdir={run}", f"--out={tmp}/o.jax",
                          "--platforms=cpu,cpu"], "once"),
      "direction of a noise run": (["export-model", f"--workdir={run}", f"--out={tmp}/o.jax",
                                    "--direction=AtoB"], "drop it"),
      "no such direction": (["export-model", f"--workdir={translator}", f"--out={tmp}/o.jax",
                             "--direction=BtoA"], "--direction=AtoB"),
      "no such step": (["export-model", f"--workdir={run}", f"--out={tmp}/o.jax", "--step=3"],
                       "step=3"),
  }


@pytest.mark.parametrize("case", sorted(_bad("r", "t", "x")))
def test_bad_input_is_one_sentence_and_writes_nothing(case, tmp_path_factory, tmp_path, capsys):
  run = trained(tmp_path_factory, "dcgan_digits")
  translator = trained(tmp_path_factory, "pix2pix_digits")
  (tmp_path / "exists.jax").write_bytes(b"earlier")
  argv, expected = _bad(run, translator, tmp_path)[case]
  assert cli.main(argv) == 2
  assert_one_clear_error(capsys, expected)
  assert sorted(os.listdir(tmp_path)) == ["exists.jax"]
  assert (tmp_path / "exists.jax").read_bytes() == b"earlier"


def test_overwrite_replaces_artifact_and_card(tmp_path_factory, tmp_path):
  workdir = trained(tmp_path_factory, "dcgan_digits")
  assert export(workdir, tmp_path / "g.jax", "--platforms=cpu") == 0
  assert export(workdir, tmp_path / "g.jax", "--overwrite") == 0
  assert read(tmp_path / "g.jax").platforms == PLATFORMS == tuple(card(tmp_path / "g.jax")[
      "platforms"])
  assert sorted(os.listdir(tmp_path)) == ["g.jax", "g.json"]  # no temporary file left
