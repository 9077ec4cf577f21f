"""The prepared check for a GPU or TPU machine: is the install right, and how fast is it?

  python benchmarks/device_check.py [--budget=480] [--out=device_check.json] [--dry-run]
      [--frameworks=jax,torch,torch.compile] [--rounds=2] [--skip_tests]

In order, until the budget (seconds) runs out:
  1. the `gpu`-marked tests (`pytest -m gpu`);
  2. each family's benchmark config (DCGAN-64 first, then the newest family) at a few batch
     sizes in float32 and bfloat16: our compiled step (`throughput.py`), the PyTorch peer in eager
     mode and under `torch.compile` (`benchmarks/peers/`, as `compare.py` picks it), alternating
     ours / eager / compiled for `--rounds` rounds, each run a fresh process on the same device;
  3. the largest batch of the biggest model that fits (doubling until a run fails; in bfloat16,
     the dtype people train big models in);
  4. DCGAN-64's generator at batch 1, 64 and 1024, in-package and exported (`inference.py`).
Each record (family, config, batch, dtype, framework, img/s, MFU, peak memory, compile seconds)
is appended to `--out` as soon as it is measured, so a run cut short keeps what it measured;
the first record describes the machine (device, driver, CUDA, jax and torch versions, date).
MFU is XLA's flop count of our step over the measured time over the device's peak for that
dtype (`timing.PEAK_FLOPS`); the peers, doing the same work, are given the same count. XLA counts
both branches of a `lax.cond`, so StyleGAN2's MFU (its lazy regularizers) is an upper bound.
`benchmarks/render_tables.py FILE.json` prints README's GPU table from the file.

`--dry-run` runs the same sequence on this machine's default backend at tiny sizes (the peers
in eager mode only: a torch.compile on CPU alone takes longer than the whole dry run), so the
script is known to work before it meets a GPU. It needs this repo's dependencies and torch; on a
machine that already has CUDA jax and torch, `pip install --no-deps ml-collections grain
tensorflow-datasets tensorboardX ...` (see README) adds the rest.
"""
import argparse
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)
import timing  # noqa: E402

DTYPES = ("float32", "bfloat16")
# StyleGAN2 as its peer plays it: no augmentation; one call is a full 16-step cycle of the lazy
# regularizers, so img/s and sec/kimg include them amortised as in training.
STYLEGAN2 = {"augment.kind": "none", "train.steps_per_call": 16}
# DF-GAN as the paper builds it, the peer's networks and losses (t2i_digits adds options).
PAPER_DFGAN = {"model.g_norm": "none", "model.d_projection": False, "loss.contrastive_weight": 0.0}
# (family, config, overrides, batch sizes, (timed, warm-up) calls), DCGAN-64 and the newest family
# first. Families that land later add a line.
FAMILIES = [
    ("dcgan", "configs/dcgan64.py", {}, (64, 256), (10, 3)),
    ("dfgan", "configs/t2i_digits.py", PAPER_DFGAN, (32,), (10, 3)),
    ("stylegan2", "configs/stylegan2.py", STYLEGAN2, (16,), (3, 1)),  # `auto` at 256x256
    ("cyclegan", "configs/cyclegan_horse2zebra.py", {}, (1, 16), (10, 3)),
    ("pix2pix", "configs/pix2pix_facades.py", {}, (1, 16), (10, 3)),
]
# The family whose largest batch is searched for: the biggest model (unet_256, 54M parameters in
# G); in a dry run the cheapest to compile, since the search only has to be shown to work.
BIGGEST, DRY_RUN_BIGGEST = "pix2pix", "dcgan"
# Tiny sizes the peers still accept (their reference widths, small images; a 70x70 PatchGAN
# needs 32 pixels), and one dtype past the first family: (overrides, batches, dtypes).
DRY_RUN = {
    "dcgan": ({"data.resolution": 16}, (4,), DTYPES),
    "cyclegan": ({"data.resolution": 32, "model.name": "resnet_1blocks"}, (1,), DTYPES[:1]),
    "pix2pix": ({"data.resolution": 32, "model.name": "unet_32"}, (2,), DTYPES[:1]),
    "stylegan2": ({**STYLEGAN2, "data.resolution": 8, "model.channel_base": 64,
                   "model.channel_max": 16, "model.latent_dim": 16, "model.w_dim": 16}, (4,),
                  DTYPES[:1]),
    "dfgan": ({**PAPER_DFGAN, "data.resolution": 16, "model.g_width": 8, "model.d_width": 8},
              (4,), DTYPES[:1]),
}
MAX_BATCH = 1 << 14
RUN_LIMIT_S = 240  # one measurement: a slower one means something is wrong


class Budget:
  def __init__(self, seconds):
    self.deadline = time.monotonic() + seconds

  def left(self):
    return self.deadline - time.monotonic()


class Records:
  """The output file: rewritten whole after each record, so it is valid JSON at every moment."""

  def __init__(self, path):
    self.path, self.items = path, []

  def add(self, record):
    self.items.append(record)
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(self.items, f, indent=1)
    os.replace(tmp, self.path)
    print(json.dumps(record), flush=True)


def run(cmd, budget, env=None):
  """(returncode, stdout, stderr) of `python cmd...`; returncode None if it ran out of time."""
  limit = min(budget.left(), RUN_LIMIT_S)
  if limit < 5:
    return None, "", "budget spent"
  env = {**os.environ, **(env or {})}
  try:
    done = subprocess.run([sys.executable] + cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=limit)
  except subprocess.TimeoutExpired:
    return None, "", f"stopped after {limit:.0f} s"
  return done.returncode, done.stdout, done.stderr


def last_json(text):
  return json.loads(text[text.index("{"):]) if "{" in text else None


def environment():
  """What the table's caption names: device, driver, CUDA, versions, date. jax is asked in a
  child process, so this one never holds the device the measurements need."""
  probe = ("import json, jax; d = jax.devices()[0]; print(json.dumps({'backend': "
           "jax.default_backend(), 'device_kind': d.device_kind, 'device_count': "
           "jax.device_count(), 'jax': jax.__version__, 'platform_version': "
           "getattr(d.client, 'platform_version', '')}))")
  info = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                   check=True).stdout)
  try:
    import torch
    info.update(torch=torch.__version__, torch_cuda=torch.version.cuda)
  except ImportError:
    info["torch"] = None
  if shutil.which("nvidia-smi"):
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip().splitlines()
    if smi:
      info["driver"] = smi[0].split(",")[-1].strip()
  info.update(kind="environment", python=sys.version.split()[0],
              date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
  return info


def gpu_tests(budget):
  """`pytest -m gpu` over the test files that mark tests so (collecting the whole suite would
  take longer than the dry run)."""
  start = time.monotonic()
  files = sorted(glob.glob(os.path.join(REPO, "tests", "test_*.py")))
  files = [f for f in files if "mark.gpu" in open(f).read()]
  code, out, err = run(["-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"] + files,
                       budget)
  counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|deselected)",
                                             out)}
  record = {"kind": "tests", "selection": "-m gpu", "returncode": code,
            "seconds": time.monotonic() - start, **counts}
  if code not in (0, 5):  # 5: nothing collected
    record["tail"] = (out + err)[-2000:]
  return record


def inference(budget, dry_run):
  """`inference.py` on DCGAN-64: the generator's images/s at batch 1, 64 and 1024, in-package
  and exported (`gan-jax export-model`); smoke sizes in a dry run."""
  sizes = (["--arg=smoke", "--batches=1,4", "--rounds=1"] if dry_run
           else ["--batches=1,64,1024", "--rounds=2"])
  code, out, err = run([os.path.join(HERE, "inference.py"), "--configs=dcgan64"] + sizes, budget)
  result = last_json(out) if code == 0 else None
  return ({"kind": "inference", **result} if result is not None
          else {"kind": "inference", "error": _failure(code, err)})


class Check:
  def __init__(self, args, records, budget):
    self.args, self.records, self.budget = args, records, budget
    self.device_flags = [] if args.dry_run else ["--device=cuda"]
    self.flops = {}  # (config, batch, dtype) -> our step's flop count, for the peers' MFU

  def ours(self, family, path, overrides, steps, batch, dtype):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
      cmd = ([os.path.join(HERE, "throughput.py"), f"--config={path}", f"--batch_size={batch}",
              f"--config.train.dtype={dtype}", f"--json={f.name}"] + steps +
             [f"--config.{k}={v}" for k, v in overrides.items()])
      code, out, err = run(cmd, self.budget)
      result = last_json(open(f.name).read()) if code == 0 else None
    return self.record(family, path, batch, dtype, "jax", code, result, err)

  def peer(self, family, path, overrides, steps, batch, dtype, compiled):
    import compare  # here: its absl flags would clash with throughput's in one test process
    config = timing.load_config(path, overrides)
    cmd = compare.peer_command(config, batch) + steps + self.device_flags + [
        f"--dtype={dtype}"] + (["--compile"] if compiled else [])
    code, out, err = run(cmd, self.budget)
    result = last_json(out) if code == 0 else None
    framework = "torch.compile" if compiled else "torch"
    return self.record(family, path, batch, dtype, framework, code, result, err)

  def record(self, family, path, batch, dtype, framework, code, result, err):
    config = os.path.basename(path)[:-3]
    r = {"kind": "step", "family": family, "config": config, "batch": batch, "dtype": dtype,
         "framework": framework}
    if result is None:
      r.update(error=_failure(code, err))
      return self.records.add(r) or r
    key = (config, batch, dtype)
    if framework == "jax":
      self.flops[key] = result.get("flops_per_step", 0.0)
    flops, step_s = self.flops.get(key, 0.0), result["step_ms"]["median"] / 1e3
    peak = timing.peak_flops(result.get("device_kind", ""), dtype)
    r.update(imgs_per_sec=result["imgs_per_sec"], sec_per_kimg=result.get("sec_per_kimg"),
             step_ms=result["step_ms"]["median"],
             mfu=flops / step_s / peak if peak and flops else None,
             peak_memory_bytes=result.get("peak_memory_bytes"),
             compile_s=result.get("compile_s"), device_kind=result.get("device_kind"),
             g_params=result.get("g_params"), d_params=result.get("d_params"))
    self.records.add(r)
    return r

  def families(self):
    for family, path, overrides, batches, calls in FAMILIES:
      dtypes = DTYPES
      if self.args.dry_run:
        (overrides, batches, dtypes), calls = DRY_RUN[family], (2, 1)
      steps = [f"--steps={calls[0]}", f"--warmup={calls[1]}"]
      yield family, path, overrides, steps, batches, dtypes

  def steps_of_every_family(self):
    frameworks = self.args.frameworks.split(",")
    for family, path, overrides, steps, batches, dtypes in self.families():
      for batch in batches:
        for dtype in dtypes:
          for _ in range(self.args.rounds):
            for framework in frameworks:
              if self.budget.left() < 5:
                return False
              if framework == "jax":
                self.ours(family, path, overrides, steps, batch, dtype)
              else:
                self.peer(family, path, overrides, steps, batch, dtype,
                          framework == "torch.compile")
    return True

  def largest_batch(self):
    """Doubles the biggest model's batch, from twice its largest benchmarked one, until a run
    fails (out of memory, or whatever stops it)."""
    biggest = DRY_RUN_BIGGEST if self.args.dry_run else BIGGEST
    family, path, overrides, steps, batches, dtypes = next(
        f for f in self.families() if f[0] == biggest)
    dtype, fits = dtypes[-1], max(batches)
    measured = [r for r in self.records.items if r.get("config") == os.path.basename(path)[:-3]
                and r.get("batch") == fits and r.get("dtype") == dtype]
    if not measured or any("error" in r for r in measured):
      fits = None
    batch, stopped = 2 * max(batches), "over the search's limit"
    limit = 2 * max(batches) if self.args.dry_run else MAX_BATCH
    while batch <= limit:
      if self.budget.left() <= 5:
        stopped = "budget spent"
        break
      r = self.ours(family, path, overrides, steps, batch, dtype)
      if "error" in r:
        stopped = r["error"]
        break
      fits, batch = batch, 2 * batch
    self.records.add({"kind": "max_batch", "family": family, "config": os.path.basename(path)[:-3],
                      "dtype": dtype, "batch": fits, "next": batch, "stopped": stopped})


def _failure(code, err):
  if code is None:
    return err
  if "RESOURCE_EXHAUSTED" in err or "out of memory" in err.lower():
    return "out of memory"
  return err.strip().splitlines()[-1][:300] if err.strip() else f"exit {code}"


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--budget", type=float, default=480, help="seconds for the whole check")
  p.add_argument("--out", default="device_check.json")
  p.add_argument("--dry-run", action="store_true", help="tiny sizes on this machine's backend")
  p.add_argument("--frameworks", default=None,
                 help="comma-separated: jax,torch,torch.compile (dry run: jax,torch)")
  p.add_argument("--rounds", type=int, default=None, help="alternations per setting (dry run: 1)")
  p.add_argument("--skip_tests", action="store_true", help="leave out the gpu-marked tests")
  args = p.parse_args()
  args.frameworks = args.frameworks or ("jax,torch" if args.dry_run else "jax,torch,torch.compile")
  args.rounds = args.rounds or (1 if args.dry_run else 2)
  budget, records = Budget(args.budget), Records(args.out)
  records.add({**environment(), "dry_run": args.dry_run, "budget_s": args.budget})
  if not args.skip_tests:
    records.add(gpu_tests(budget))
  check = Check(args, records, budget)
  if check.steps_of_every_family():
    check.largest_batch()
    records.add(inference(budget, args.dry_run))
  if budget.left() < 5:
    records.add({"kind": "stopped", "reason": f"the {args.budget:.0f} s budget ran out"})


if __name__ == "__main__":
  main()
