"""benchmarks/throughput.py measures a real compiled step and reports consistent figures;
compare.py runs ours and the PyTorch peer and reports their ratio."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, config_path
from gan_jax import parallel
from test_step import load_config

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import profile_step  # noqa: E402
import throughput  # noqa: E402


def test_throughput_reports_a_consistent_measurement():
  config = load_config("gan_ring2d", **{"train.batch_size": 64, "train.steps_per_call": 1})
  r = throughput.measure(config, steps=3, warmup=1)
  assert r["backend"] == "cpu" and r["batch_size"] == 64 and r["device_count"] == 8
  assert r["step_ms"]["min"] <= r["step_ms"]["median"] <= r["step_ms"]["max"]
  assert abs(r["imgs_per_sec"] - 64 / (r["step_ms"]["median"] / 1e3)) < 1e-6 * r["imgs_per_sec"]
  # MLP 2 -> 16 -> 16 -> 16 -> 2 (G, latent 2) and 2 -> ... -> 1 (D): 642 and 593 parameters
  assert (r["g_params"], r["d_params"]) == (2 * 16 + 16 + 2 * (16 * 16 + 16) + 16 * 2 + 2,
                                            2 * 16 + 16 + 2 * (16 * 16 + 16) + 16 + 1)
  assert r["flops_per_step"] > 0 and r["compile_s"] > 0 and r["step_temp_bytes"] > 0


def test_profile_attributes_the_steps_operations_to_its_layers():
  config = load_config("dcgan_digits", **{"train.steps_per_call": 1})
  r = profile_step.profile(config, calls=1)
  layers = {row["layer"]: row for row in r["layers"]}
  # G's and D's convolutions, each run forward and differentiated
  for name in ("Generator/ConvTranspose4x4s2_0", "Discriminator/Conv4x4s2_0"):
    assert layers[name]["forward_ms"] > 0 and layers[name]["backward_ms"] > 0, name
  assert sum(row["share"] for row in r["layers"]) == pytest.approx(1)
  shares = [row["share"] for row in r["layers"]]
  assert shares == sorted(shares, reverse=True)
  assert r["operations_ms"] > 0 and r["traced_step_ms"] > 0
  assert profile_step.layer_of("jit(multi_step)/transpose(jvp(Generator))/Dense_0/dot_general") == (
      "Generator/Dense_0", "backward")
  assert profile_step.layer_of("jit(multi_step)/jit(_normal)/jit(_uniform)/rng_bit_generator") == (
      "(rng_bit_generator)", "forward")


def test_state_bytes_per_device_under_each_strategy(monkeypatch):
  monkeypatch.setattr(parallel, "FSDP_MIN_SIZE", 256)  # the ring MLPs' 16x16 kernels split
  config = load_config("gan_ring2d", **{"train.batch_size": 64, "train.steps_per_call": 1})
  whole = throughput.measure(config, steps=1, warmup=0)
  config.parallel.strategy = "pmap"
  assert throughput.measure(config, steps=1, warmup=0)["state_bytes_per_device"] == (
      whole["state_bytes_per_device"])  # a whole copy on each device, as jit
  config.parallel.strategy = "fsdp"
  split = throughput.measure(config, steps=1, warmup=0)
  assert whole["strategy"] == "jit" and split["strategy"] == "fsdp"
  # at least the parameters and Adam's two moments, float32
  assert whole["state_bytes_per_device"] >= 3 * 4 * (whole["g_params"] + whole["d_params"])
  # G's and D's two hidden kernels (256 float32 each), each with its two moments: 1/8 on device 0
  saved = 4 * 3 * 256 * 4 * 7 // 8
  assert whole["state_bytes_per_device"] - split["state_bytes_per_device"] == saved


def test_figures_are_per_step_with_several_steps_per_call():
  one = throughput.measure(load_config("gan_ring2d", **{"train.batch_size": 64}), steps=2, warmup=0)
  five = throughput.measure(load_config("gan_ring2d", **{
      "train.batch_size": 64, "train.steps_per_call": 5, "train.log_every": 5,
      "train.sample_every": 5, "train.checkpoint_every": 5}), steps=2, warmup=0)
  assert five["steps_per_call"] == 5
  assert five["flops_per_step"] == one["flops_per_step"] > 0
  assert abs(five["steps_per_sec"] * five["step_ms"]["median"] / 1e3 - 1) < 1e-6


def test_compare_runs_both_sides_and_reports_their_ratio(tmp_path):
  pytest.importorskip("torch", reason="the PyTorch peer needs torch (pip install torch)")
  out = tmp_path / "cmp.json"
  done = subprocess.run(
      [sys.executable, os.path.join(REPO, "benchmarks", "compare.py"),
       f"--config={config_path('gan_ring2d')}", "--rounds=2", "--steps=2", "--warmup=1",
       f"--json={out}"], cwd=REPO, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  r = json.loads(out.read_text())
  assert r["peer"] == "torch_mlp_gan.py" and len(r["pairs"]) == 2
  for p in r["pairs"]:
    assert p["ours"] > 0 and p["peer"] > 0 and abs(p["ratio"] - p["ours"] / p["peer"]) < 1e-9
  assert min(p["ratio"] for p in r["pairs"]) <= r["median_ratio"] <= max(p["ratio"] for p in r["pairs"])
  assert r["peer_result"]["batch_size"] == r["ours"]["batch_size"] == 16


def test_conv_layers_times_every_layer_in_every_form(tmp_path):
  out = tmp_path / "layers.json"
  done = subprocess.run(
      [sys.executable, os.path.join(REPO, "benchmarks", "conv_layers.py"), "--resolution=16",
       "--width=32", "--batch_size=2", "--steps=1", f"--json={out}"],
      cwd=REPO, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  r = json.loads(out.read_text())
  # 16x16: D 16 -> 8 -> 4, G 4 -> 8 -> 16; G1 and D0 have 3 channels on one side.
  assert list(r["layers"]) == ["D0", "D1", "G0", "G1"]
  assert r["layers"]["D1"]["input"] == [8, 8, 32] and r["layers"]["D1"]["out_channels"] == 64
  assert [r["layers"][k]["auto"] for k in ("D0", "D1", "G0", "G1")] == [
      "im2col", "winograd", "winograd", "im2col"]
  for layer in r["layers"].values():
    assert set(layer["ms"]) == {"conv", "im2col", "winograd"} and min(layer["ms"].values()) > 0


def test_lazy_regularization_times_each_kind_of_step(tmp_path):
  # smoke: both regularizers every 2 steps, so the timed steps 1 and 2 are one of each kind
  out = tmp_path / "lazy.json"
  done = subprocess.run(
      [sys.executable, os.path.join(REPO, "benchmarks", "lazy_regularization.py"),
       f"--config={config_path('stylegan2')}", "--cycles=1", "--config.augment.kind=none",
       f"--json={out}"], cwd=REPO, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  r = json.loads(out.read_text())
  assert r["cycle_steps"] == 2 and r["timed_steps"] == 2
  assert set(r["lazy_conds"]["step_ms"]) == {"main", "main+greg+dreg"}
  assert r["lazy_conds"]["compile_s"] > 0 and r["no_regularizers"]["step_ms"] > 0


def test_checkpoint_stall_times_both_write_modes():
  out = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "checkpoint_stall.py"),
                        "--config=gan_ring2d:smoke", "--steps=110", "--window=5"],
                       capture_output=True, text=True, check=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": REPO})
  r = json.loads(out.stdout.strip().splitlines()[-1])
  for mode in ("async", "sync"):
    assert r[mode]["after_checkpoint_s"] > 0 and r[mode]["after_log_only_s"] > 0
    assert r[mode]["added_s"] == pytest.approx(
        r[mode]["after_checkpoint_s"] - r[mode]["after_log_only_s"], abs=2e-4)


def test_inference_times_every_side_and_their_ratio(tmp_path):
  out = tmp_path / "inference.json"
  subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "inference.py"),
                  "--configs=cgan_digits,pix2pix_digits", "--arg=smoke", "--batches=1,3",
                  "--rounds=2", "--calls=1", "--min_seconds=0", f"--json={out}"],
                 capture_output=True, text=True, check=True, cwd=REPO,
                 env={**os.environ, "PYTHONPATH": REPO})
  r = json.loads(out.read_text())
  assert r["backend"] == "cpu" and list(r["configs"]) == ["cgan_digits", "pix2pix_digits"]
  assert r["configs"]["cgan_digits"]["kind"] == "sample"
  assert r["configs"]["pix2pix_digits"]["kind"] == "translate"
  for config in r["configs"].values():
    assert list(config["batches"]) == ["1", "3"] and config["g_params"] > 0
    for b in config["batches"].values():
      sides = [b[s]["rounds_imgs_per_sec"] for s in ("in_package", "frozen", "artifact",
                                                     "artifact_call", "artifact_fixed")]
      assert all(len(s) == 2 and min(s) > 0 for s in sides)
      assert b["ratios"] == pytest.approx([a / i for a, i in zip(sides[2], sides[0])])
      assert min(b["ratios"]) <= b["ratio"] <= max(b["ratios"])
      assert b["max_abs_diff"] < 1e-4  # the artifact runs the same G


def test_detector_benchmark_trains_generators_and_scores_each_family(tmp_path):
  """The smoke run: one noise family and one translator, trained 4 steps each; every score's
  AP and accuracy are reported per family, as they are, shifted and after JPEG 75."""
  out, weights = tmp_path / "detector.json", tmp_path / "detector.npz"
  subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "detector.py"), "--smoke",
                  f"--workdir={tmp_path / 'work'}", "--families=dcgan,cyclegan",
                  "--train_families=dcgan", f"--weights={weights}", f"--json={out}"],
                 capture_output=True, text=True, check=True, cwd=REPO,
                 env={**os.environ, "PYTHONPATH": REPO})
  r = json.loads(out.read_text())
  assert set(r["families"]) == {"dcgan", "cyclegan"} and r["fake_train"] == 64
  assert r["families"]["dcgan"]["trained_on"] and not r["families"]["cyclegan"]["trained_on"]
  for row in r["families"].values():
    for score, attack in [("cnn", "clean"), ("cnn", "shift1"), ("cnn", "jpeg75"),
                          ("spectral", "clean"), ("spectral", "jpeg75")]:
      assert 0 < row[f"{score}_ap_{attack}"] <= 1 and 0 <= row[f"{score}_accuracy_{attack}"] <= 1
    assert "spectral_ap_shift1" not in row  # 31 x 31 pictures hold no 32 x 32 tile
  from gan_jax import detector
  assert detector.Detector.load(str(weights)).steps == 20
