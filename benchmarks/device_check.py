"""The prepared check for a GPU or TPU machine: is the install right, and how fast is it?

  python benchmarks/device_check.py [--budget=480] [--out=device_check.json] [--dry-run]
      [--frameworks=jax,torch,torch.compile] [--rounds=2] [--skip_tests] [--families=a,b]

Breadth first, so that a budget (seconds) that runs out leaves every family measured once:
  1. each family's benchmark config (`FAMILIES`) at its first batch size, float32 then
     bfloat16: our compiled step (`throughput.py`), then the PyTorch peer in eager mode
     (`benchmarks/peers/`, as `compare.py` picks it), each run a fresh process on the device;
  2. N seeds of `gan_ring2d` in one program against N runs in turn (`seeds.py`);
  3. DCGAN-64's generator at batch 1, 64 and 1024, in-package and exported (`inference.py`);
  4. the `gpu`-marked tests (`pytest -m gpu`);
  5. the first batches under `torch.compile`, then the other batch sizes (ours / eager /
     compiled), then each further round of `--rounds`;
  6. the largest batch of the biggest model that fits (doubling until a run fails; in bfloat16,
     the dtype people train big models in).
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
# R3GAN's step as its peer plays it: no augmentation, every stage in the config's dtype.
R3GAN = {"augment.kind": "none"}
# MoCoGAN at the paper's widths (the config narrows them for a CPU), 64x64x16 clips.
MOCOGAN = {"model.g_width": 64, "model.d_width": 64, "model.v_width": 64}
# (family, config, overrides, batch sizes, (timed, warm-up) calls, dtypes). Families that land
# later add a line; a family's second size is `family@size`. The ResNet and RRDB peers run
# float32 only.
FAMILIES = [
    ("dcgan", "configs/dcgan64.py", {}, (64, 256), (10, 3), DTYPES),
    ("r3gan", "configs/r3gan_cifar10.py", R3GAN, (512, 64), (10, 3), DTYPES),
    ("stylegan2", "configs/stylegan2.py", STYLEGAN2, (16,), (3, 1), DTYPES),  # `auto`, 256x256
    ("pix2pix", "configs/pix2pix_facades.py", {}, (16, 1), (10, 3), DTYPES),
    ("cyclegan", "configs/cyclegan_horse2zebra.py", {}, (1, 16), (10, 3), DTYPES),
    ("dfgan", "configs/t2i_digits.py", PAPER_DFGAN, (32,), (10, 3), DTYPES),
    ("sngan", "configs/sngan_cifar32.py", {}, (64,), (10, 3), DTYPES[:1]),
    ("esrgan", "configs/esrgan.py:paper", {}, (16,), (5, 2), DTYPES[:1]),
    ("stylegan2@128", "configs/stylegan2.py:auto,128", STYLEGAN2, (32,), (3, 1), DTYPES),
    ("mocogan", "configs/video_digits.py", MOCOGAN, (16,), (5, 2), DTYPES),
    ("mocogan@128", "configs/video_digits.py", {**MOCOGAN, "data.resolution": 128}, (8,), (5, 2),
     DTYPES),
]
# The family whose largest batch is searched for: the biggest model (unet_256, 54M parameters in
# G); in a dry run the cheapest to compile, since the search only has to be shown to work.
BIGGEST, DRY_RUN_BIGGEST = "pix2pix", "dcgan"
# Tiny sizes the peers still accept (their reference widths, small images; a 70x70 PatchGAN
# needs 32 pixels), and one dtype past the first family: (overrides, batches, dtypes), by config.
DRY_RUN = {
    "configs/dcgan64.py": ({"data.resolution": 16}, (4,), DTYPES),
    "configs/r3gan_cifar10.py": ({**R3GAN, "model.widths": (16, 8), "model.cardinality": (2, 2),
                                  "model.blocks": (1, 1), "model.g_class_dim": 8,
                                  "model.d_class_dim": 16, "data.resolution": 8}, (4,),
                                 DTYPES[:1]),
    "configs/cyclegan_horse2zebra.py": ({"data.resolution": 32, "model.name": "resnet_1blocks"},
                                        (1,), DTYPES[:1]),
    "configs/pix2pix_facades.py": ({"data.resolution": 32, "model.name": "unet_32"}, (2,),
                                   DTYPES[:1]),
    "configs/stylegan2.py": ({**STYLEGAN2, "data.resolution": 8, "model.channel_base": 64,
                              "model.channel_max": 16, "model.latent_dim": 16, "model.w_dim": 16},
                             (4,), DTYPES[:1]),
    "configs/t2i_digits.py": ({**PAPER_DFGAN, "data.resolution": 16, "model.g_width": 8,
                               "model.d_width": 8}, (4,), DTYPES[:1]),
    "configs/sngan_cifar32.py": ({"model.g_width": 8, "model.d_width": 8, "train.n_critic": 1},
                                 (2,), DTYPES[:1]),
    "configs/esrgan.py:paper": ({"data.resolution": 32, "model.features": 8, "model.blocks": 1,
                                 "model.d_width": 8}, (2,), DTYPES[:1]),
    "configs/video_digits.py": ({"data.resolution": 16, "data.frames": 4, "model.g_width": 4,
                                 "model.d_width": 4, "model.v_width": 4}, (2,), DTYPES[:1]),
}
# Many seeds in one program (`benchmarks/seeds.py`): (config, seeds, timed calls per run).
SEEDS = ("configs/gan_ring2d.py", 8, 10)
MAX_BATCH = 1 << 14
RUN_LIMIT_S = 180  # one measurement: a slower one means something is wrong


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
  # flops_probe: XLA's flop count of a 64x64 matrix square (2 * 64^3), the count MFU rests on
  probe = ("import json, jax; d = jax.devices()[0]; "
           "c = jax.jit(lambda a: a @ a).lower(jax.numpy.ones((64, 64))).cost_analysis(); "
           "c = c[0] if isinstance(c, (list, tuple)) else c; "
           "print(json.dumps({'backend': "
           "jax.default_backend(), 'device_kind': d.device_kind, 'device_count': "
           "jax.device_count(), 'jax': jax.__version__, 'platform_version': "
           "getattr(d.client, 'platform_version', ''), "
           "'flops_probe': (c or {}).get('flops')}))")
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


def config_name(path):
  """`configs/stylegan2.py:auto,128` -> `stylegan2:auto,128`."""
  return os.path.basename(path).replace(".py", "")


def config_flags(path, overrides):
  """Our scripts' flags for a config file (with its `:arg`) and overrides."""
  import compare  # here: its absl flags would clash with throughput's in one test process
  config = load(path, overrides)
  return ([f"--config={path}"] + [f"--config.{k}={_flag(v)}" for k, v in overrides.items()] +
          compare.perceptual_weights(config))


def load(path, overrides):
  """A config from a path that may end in `:arg`, with overrides."""
  path, _, arg = path.partition(":")
  return timing.load_config(path, overrides, arg or None)


def _flag(value):
  return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


class Check:
  def __init__(self, args, records, budget):
    self.args, self.records, self.budget = args, records, budget
    self.device_flags = [] if args.dry_run else ["--device=cuda"]
    self.flops = {}  # (config, batch, dtype) -> our step's flop count, for the peers' MFU

  def ours(self, family, path, overrides, steps, batch, dtype):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
      cmd = ([os.path.join(HERE, "throughput.py"), f"--batch_size={batch}",
              f"--json={f.name}"] + steps + config_flags(path, overrides) +
             [f"--config.train.dtype={dtype}"])
      code, out, err = run(cmd, self.budget)
      result = last_json(open(f.name).read()) if code == 0 else None
    return self.record(family, path, batch, dtype, "jax", code, result, err)

  def peer(self, family, path, overrides, steps, batch, dtype, compiled):
    import compare  # here: its absl flags would clash with throughput's in one test process
    config = load(path, overrides)
    cmd = compare.peer_command(config, batch) + steps + self.device_flags + (
        [f"--dtype={dtype}"] if dtype != "float32" else []) + (["--compile"] if compiled else [])
    code, out, err = run(cmd, self.budget)
    result = last_json(out) if code == 0 else None
    framework = "torch.compile" if compiled else "torch"
    return self.record(family, path, batch, dtype, framework, code, result, err)

  def record(self, family, path, batch, dtype, framework, code, result, err):
    config = config_name(path)
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
    chosen = self.args.families.split(",") if self.args.families else None
    for family, path, overrides, batches, calls, dtypes in FAMILIES:
      if chosen and family not in chosen and family.split("@")[0] not in chosen:
        continue
      if self.args.dry_run:
        if "@" in family:  # a second size of a family the dry run already measures
          continue
        (overrides, batches, dtypes), calls = DRY_RUN[path], (2, 1)
      steps = [f"--steps={calls[0]}", f"--warmup={calls[1]}"]
      yield family, path, overrides, steps, batches, dtypes

  def settings(self, first_batch):
    """(family, path, overrides, steps, batch, dtype) of one pass: each family's first batch, or
    its other batches; float32 before bfloat16, families in order within each."""
    families = list(self.families())
    for dtype in DTYPES:
      for family, path, overrides, steps, batches, dtypes in families:
        for batch in (batches[:1] if first_batch else batches[1:]):
          if dtype in dtypes:
            yield family, path, overrides, steps, batch, dtype

  def measure(self, setting, frameworks):
    """Ours and each peer framework on one setting; False once the budget is spent."""
    family, path, overrides, steps, batch, dtype = setting
    for framework in frameworks:
      if self.budget.left() < 5:
        return False
      if framework == "jax":
        self.ours(family, path, overrides, steps, batch, dtype)
      else:
        self.peer(family, path, overrides, steps, batch, dtype, framework == "torch.compile")
    return True

  def passes(self):
    """Breadth first, so that a budget that runs out leaves every family measured once: each
    family's first batch against the eager peer (float32, then bfloat16), the seeds, the
    generator's inference and the gpu tests; then torch.compile on the first batches; then the
    other batches, all frameworks; then each further round; then the largest batch."""
    frameworks = self.args.frameworks.split(",")
    eager = [f for f in frameworks if f != "torch.compile"]
    compiled = ["torch.compile"] if "torch.compile" in frameworks else []
    for setting in self.settings(True):
      if not self.measure(setting, eager):
        return
    for extra in (self.seeds, lambda: inference(self.budget, self.args.dry_run), self.tests):
      if self.budget.left() < 5:
        return
      record = extra()
      if record:
        self.records.add(record)
    for round_ in range(self.args.rounds):
      first = [(s, (compiled if round_ == 0 else frameworks)) for s in self.settings(True)]
      rest = [(s, frameworks) for s in self.settings(False)]
      for setting, chosen in first + rest:
        if chosen and not self.measure(setting, chosen):
          return
    self.largest_batch()

  def tests(self):
    return None if self.args.skip_tests else gpu_tests(self.budget)

  def seeds(self):
    """`seeds.py`: SEEDS' config trained as N seeds in one program against the N runs one after
    another (the ResNet issue's GPU goal: >= 0.8 x N x one seed's steps/s)."""
    path, n, calls = SEEDS
    sizes = [f"--num_seeds={n}", f"--steps={calls}", "--rounds=2"]
    if self.args.dry_run:  # the machinery only: 2 runs of 2 calls of 2 steps, one round
      sizes = ["--num_seeds=2", "--steps=2", "--rounds=1", "--config.train.steps_per_call=2"]
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
      code, out, err = run([os.path.join(HERE, "seeds.py"), f"--config={path}", *sizes,
                            "--warmup=1", f"--json={f.name}"], self.budget)
      result = last_json(open(f.name).read()) if code == 0 else None
    return ({"kind": "seeds", "config": config_name(path), **result} if result is not None
            else {"kind": "seeds", "config": config_name(path), "error": _failure(code, err)})

  def largest_batch(self):
    """Doubles the biggest model's batch, from twice its largest benchmarked one, until a run
    fails (out of memory, or whatever stops it)."""
    biggest = DRY_RUN_BIGGEST if self.args.dry_run else BIGGEST
    family, path, overrides, steps, batches, dtypes = next(
        f for f in self.families() if f[0] == biggest)
    dtype, fits = dtypes[-1], max(batches)
    measured = [r for r in self.records.items if r.get("config") == config_name(path)
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
    self.records.add({"kind": "max_batch", "family": family, "config": config_name(path),
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
  p.add_argument("--families", default=None,
                 help="comma-separated families (default: all); `stylegan2` takes both its "
                 "sizes, `stylegan2@128` one")
  args = p.parse_args()
  args.frameworks = args.frameworks or ("jax,torch" if args.dry_run else "jax,torch,torch.compile")
  args.rounds = args.rounds or (1 if args.dry_run else 2)
  budget, records = Budget(args.budget), Records(args.out)
  records.add({**environment(), "dry_run": args.dry_run, "budget_s": args.budget,
               "argv": sys.argv[1:]})
  Check(args, records, budget).passes()
  if budget.left() < 5:
    records.add({"kind": "stopped", "reason": f"the {args.budget:.0f} s budget ran out"})


if __name__ == "__main__":
  main()
