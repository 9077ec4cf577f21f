"""README's GPU table from a `device_check.py` result: no hand-typed figures.

  python benchmarks/render_tables.py FILE.json

Prints Markdown: a caption naming the device, date, driver/CUDA and versions; one row per
(config, batch, dtype) with our img/s, MFU, peak memory and compile time, each PyTorch peer's
img/s and the ratio ours/peer (median of the rounds' pairs, as compare.py quotes it); then the
gpu tests' outcome, the largest batch found and whether the budget cut the run short.
"""
import json
import statistics
import sys

FRAMEWORKS = ("jax", "torch", "torch.compile")
PEERS = {"torch": "PyTorch eager", "torch.compile": "torch.compile"}


def _median(values):
  return statistics.median(values) if values else None


def _fmt(value, spec, suffix=""):
  return "-" if value is None else f"{value:{spec}}{suffix}"


def caption(env, path):
  device = f"{env['device_count']} x {env['device_kind']}" if env["device_count"] > 1 else env[
      "device_kind"]
  parts = [f"driver {env['driver']}" if env.get("driver") else None,
           f"CUDA {env['torch_cuda']} (torch)" if env.get("torch_cuda") else None,
           f"jax {env['jax']} ({env['platform_version'].splitlines()[-1]})"
           if env.get("platform_version") else f"jax {env['jax']}",
           f"torch {env['torch']}" if env.get("torch") else None, f"Python {env['python']}"]
  dry = " (dry run: tiny sizes, not a measurement to quote)" if env.get("dry_run") else ""
  flags = " ".join(env.get("argv") or [f"--out={path}"])
  return (f"**{device}**, {env['date']}{dry}: " + ", ".join(p for p in parts if p) +
          f". `python benchmarks/device_check.py {flags}`, "
          f"`python benchmarks/render_tables.py {path}`.")


def rows(records):
  """(family, config, batch, dtype) -> framework -> list of that framework's records, in the
  order they were measured."""
  table = {}
  for r in records:
    if r.get("kind") == "step":
      key = (r["family"], r["config"], r["batch"], r["dtype"])
      table.setdefault(key, {}).setdefault(r["framework"], []).append(r)
  return table


def ratio(ours, peer):
  """Median over the rounds of ours/peer img/s, pairing the i-th run of each."""
  pairs = [a["imgs_per_sec"] / b["imgs_per_sec"] for a, b in zip(ours, peer)
           if "error" not in a and "error" not in b]
  return _median(pairs)


def cell(runs):
  ok = [r for r in runs if "error" not in r]
  if not ok:
    return f"failed: {runs[0]['error']}" if runs else "-"
  return _fmt(_median([r["imgs_per_sec"] for r in ok]), ".1f")


def render(records, path):
  env = next(r for r in records if r.get("kind") == "environment")
  frameworks = [f for f in FRAMEWORKS[1:] if any(
      r.get("framework") == f for r in records if r.get("kind") == "step")]
  head = ["family", "config", "batch", "dtype", "ours img/s", "sec/kimg", "MFU", "peak memory",
          "compile"]
  for f in frameworks:
    head += [f"{PEERS[f]} img/s", f"ours / {PEERS[f]}"]
  lines = [caption(env, path), "", "| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
  for (family, config, batch, dtype), by in rows(records).items():
    ours = [r for r in by.get("jax", []) if "error" not in r]
    memory = _median([r["peak_memory_bytes"] for r in ours if r.get("peak_memory_bytes")])
    mfu = _median([r["mfu"] for r in ours if r.get("mfu") is not None])
    kimg = _median([r["sec_per_kimg"] for r in ours if r.get("sec_per_kimg")])
    row = [family, f"`{config}`", str(batch), dtype, cell(by.get("jax", [])), _fmt(kimg, ".2f"),
           _fmt(None if mfu is None else 100 * mfu, ".1f", "%"),
           _fmt(None if memory is None else memory / 2**30, ".2f", " GiB"),
           _fmt(_median([r["compile_s"] for r in ours]), ".1f", " s")]
    for f in frameworks:
      peer = by.get(f, [])
      r = ratio(by.get("jax", []), peer)
      row += [cell(peer), "-" if r is None else f"**{r:.2f}x**"]
    lines.append("| " + " | ".join(row) + " |")
  notes = []
  for r in records:
    if r.get("kind") == "tests":
      counts = ", ".join(f"{r[k]} {k}" for k in ("passed", "failed", "error", "skipped") if r.get(k))
      notes.append(f"`pytest -m gpu`: {counts or 'nothing ran'} ({r['seconds']:.0f} s).")
    elif r.get("kind") == "max_batch":
      notes.append(f"Largest batch of `{r['config']}` in {r['dtype']}: "
                   f"{r['batch'] or 'none'} (batch {r['next']}: {r['stopped']}).")
    elif r.get("kind") == "stopped":
      notes.append(f"Stopped early: {r['reason']}; the rows above are what it measured.")
  return "\n".join(lines + [""] + notes)


def main(argv):
  if len(argv) != 2:
    sys.exit(__doc__.split("\n\n")[1])
  with open(argv[1]) as f:
    print(render(json.load(f), argv[1]))


if __name__ == "__main__":
  main(sys.argv)
