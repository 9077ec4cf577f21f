"""The prepared device check (`benchmarks/device_check.py`) works before it meets a GPU: its dry
run goes through every step on this CPU (on every family with `-m slow`), a spent budget stops
it with what it measured kept, and `render_tables.py` turns its records into README's table."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import device_check  # noqa: E402
import render_tables  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None


def run_check(tmp_path, *flags):
  """The check as a user runs it: on the machine's one CPU device, not the suite's 8 fake ones."""
  out = tmp_path / "check.json"
  env = dict(os.environ)
  xla_flags = [f for f in env.pop("XLA_FLAGS", "").split()
               if not f.startswith("--xla_force_host_platform_device_count")]
  if xla_flags:  # XLA reads a value that is not flags as a file name
    env["XLA_FLAGS"] = " ".join(xla_flags)
  done = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "device_check.py"),
                         f"--out={out}", *flags], capture_output=True, text=True, timeout=600,
                        env=env)
  assert done.returncode == 0, done.stderr[-3000:]
  with open(out) as f:
    return json.load(f), str(out)


# Every family's steps take ~5 minutes on 2 busy cores, so the default run goes through the
# whole check (steps beside the peer in both dtypes, seeds, inference, the gpu tests, the largest
# batch, the table) on DCGAN alone, and `-m slow` through every family.
@pytest.mark.parametrize("families", ["dcgan", pytest.param(None, marks=pytest.mark.slow)],
                         ids=["dcgan", "every_family"])
def test_dry_run_measures_the_families_and_renders(families, tmp_path):
  chosen = [f"--families={families}"] if families else []
  records, path = run_check(tmp_path, "--dry-run", *chosen)
  env, tests = records[0], next(r for r in records if r["kind"] == "tests")
  assert env["kind"] == "environment" and env["dry_run"] and env["backend"] == "cpu"
  assert env["device_count"] == 1 and env["argv"][0] == "--out=" + path
  assert env["flops_probe"] == 2 * 64 ** 3
  # the gpu-marked tests are collected and skip on a CPU
  assert tests["kind"] == "tests" and tests["returncode"] == 0
  assert tests["skipped"] > 0 and "failed" not in tests
  steps = [r for r in records if r["kind"] == "step"]
  # a family's second size (`family@size`) is left out of the dry run
  family_of = {path: family for family, path, *_ in device_check.FAMILIES if "@" not in family}
  assert set(family_of) == set(device_check.DRY_RUN)
  settings = {(family_of[p], b, d) for p, (_, batches, dtypes) in device_check.DRY_RUN.items()
              if families in (None, family_of[p]) for b in batches for d in dtypes}
  for family, batch, dtype in settings:
    ours = [r for r in steps if (r["family"], r["batch"], r["dtype"], r["framework"]) ==
            (family, batch, dtype, "jax")]
    peer = [r for r in steps if (r["family"], r["batch"], r["dtype"], r["framework"]) ==
            (family, batch, dtype, "torch")]
    assert len(ours) == len(peer) == 1, (family, batch, dtype)
    assert ours[0]["imgs_per_sec"] > 0 and ours[0]["compile_s"] > 0
    if HAS_TORCH:
      assert peer[0]["imgs_per_sec"] > 0
      # the peers are the same networks: per network for CycleGAN's two of each
      per_net = 2 if family == "cyclegan" else 1
      assert ours[0]["g_params"] == per_net * peer[0]["g_params"]
    else:
      assert "error" in peer[0]
  seeds = next(r for r in records if r["kind"] == "seeds")
  assert seeds["num_seeds"] == 2 and seeds["median_ratio"] > 0
  largest = next(r for r in records if r["kind"] == "max_batch")
  assert largest["family"] == device_check.DRY_RUN_BIGGEST and largest["batch"] >= 4
  inference = next(r for r in records if r["kind"] == "inference")
  for batch in ("1", "4"):  # the generator in-package and exported, side by side
    sides = inference["configs"]["dcgan64"]["batches"][batch]
    assert sides["in_package"]["imgs_per_sec"] > 0 and sides["artifact"]["imgs_per_sec"] > 0
  assert not any(r["kind"] == "stopped" for r in records)

  table = render_tables.render(records, path)
  assert "dry run" in table.splitlines()[0]
  rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
  assert len(rows) == len(settings) + 1  # and the max-batch probe's own row
  assert f"Largest batch of `dcgan64` in bfloat16: {largest['batch']}" in table


def test_spent_budget_stops_cleanly_and_keeps_what_it_measured(tmp_path):
  records, path = run_check(tmp_path, "--dry-run", "--budget=1")
  kinds = [r["kind"] for r in records]
  assert kinds[0] == "environment" and kinds[-1] == "stopped"
  assert "step" not in kinds and "max_batch" not in kinds and "inference" not in kinds
  assert "Stopped early: the 1 s budget ran out" in render_tables.render(records, path)


def record(framework, imgs, **kw):
  return {"kind": "step", "family": "dcgan", "config": "dcgan64", "batch": 64,
          "dtype": "bfloat16", "framework": framework, "imgs_per_sec": imgs, **kw}


def test_table_quotes_the_median_of_paired_ratios():
  env = {"kind": "environment", "device_kind": "NVIDIA H100 80GB HBM3", "device_count": 1,
         "date": "2026-12-02 10:00 UTC", "jax": "0.11.2", "torch": "2.11.0", "torch_cuda": "13.0",
         "driver": "580.1", "platform_version": "PJRT C API\ncuda 13000", "python": "3.12.1"}
  ours = dict(mfu=0.25, peak_memory_bytes=3 * 2**30, compile_s=12.0)
  records = [env,
             record("jax", 1000, **ours), record("torch", 250), record("torch.compile", 500),
             record("jax", 1200, **ours), record("torch", 400), record("torch.compile", 400),
             record("jax", 900, **ours), record("torch", 300), {**record("torch.compile", 0),
                                                                "error": "out of memory"}]
  table = render_tables.render(records, "gpu.json")
  head, _, _, _, row = table.splitlines()[:5]
  assert "NVIDIA H100 80GB HBM3" in head and "driver 580.1" in head and "cuda 13000" in head
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[4:9] == ["1000.0", "-", "25.0%", "3.00 GiB", "12.0 s"]
  # eager: pairs 4, 3, 3 -> 3; compiled: 2, 3 (the third failed) -> 2.5
  assert cells[9:] == ["300.0", "**3.00x**", "450.0", "**2.50x**"]


def test_cli_needs_a_file():
  done = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "render_tables.py")],
                        capture_output=True, text=True)
  assert done.returncode != 0 and "render_tables.py FILE.json" in done.stderr


@pytest.mark.parametrize("kind,dtype,peak", [("NVIDIA H100 80GB HBM3", "bfloat16", 989e12),
                                              ("NVIDIA H200", "float32", 495e12),
                                              ("TPU v5 lite", "bfloat16", 197e12),
                                              ("cpu", "float32", None)])
def test_peak_flops_by_device_name(kind, dtype, peak):
  import timing
  assert timing.peak_flops(kind, dtype) == peak
