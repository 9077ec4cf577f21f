"""benchmarks/throughput.py measures a real compiled step and reports consistent figures."""
import os
import sys

from conftest import REPO
from test_step import load_config

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
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
  assert r["flops_per_step"] > 0 and r["compile_s"] > 0
