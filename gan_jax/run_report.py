"""`gan-jax report`: a run's curves and latest samples as one PNG, for people who would rather look
than read metrics.jsonl. Drawn with PIL (matplotlib is not a dependency)."""
import dataclasses
import functools
import glob
import json
import math
import os
import re

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gan_jax.errors import UserError
from gan_jax.reporting import save_picture

# What the games log, drawn two to a panel where a run has them (D accuracy: the games that draw
# from noise); any other scalar gets a panel of its own.
STANDARD = (("losses", ("d_loss", "g_loss")), ("D(real) / D(fake)", ("d_real", "d_fake")),
            ("gradient norms", ("d_grad_norm", "g_grad_norm")),
            ("D accuracy", ("d_acc_real", "d_acc_fake")))
SMOOTH_FROM = 60  # points in a training series before an EMA is drawn over it
CAPS = {"": 6, "eval/": 6, "health/": 3}  # panels for other training series, scores, health
COLS, PANEL_W, PANEL_H, SAMPLES_H, TITLE_H = 3, 420, 250, 560, 34
PAD = (56, 24, 14, 24)  # a chart's plot area inside its cell: left, top, right, bottom
COLORS = ((31, 119, 180), (214, 39, 40))
ALARM = (255, 140, 0)  # steps where a `health/alarm...` key is non-zero
AXIS, GRID, TEXT = (90, 90, 90), (232, 232, 232), (30, 30, 30)


@dataclasses.dataclass
class Panel:
  name: str    # a STANDARD title ("losses", ...), a key ("l1", "eval/fid"), samples
  keys: tuple  # the metrics.jsonl keys drawn; samples: the PNG shown
  box: tuple   # (left, top, right, bottom) of the data: a chart's plot area, the sample picture


@dataclasses.dataclass
class Report:
  path: str
  step: int         # the last step logged
  steps: tuple      # (first, last): every chart's x range
  panels: list
  left_out: tuple   # series over the caps, not drawn
  alarms: tuple     # steps marked as health alarms


def load_metrics(path):
  """metrics.jsonl -> {key: (steps, values)}, sorted by step. A resumed run logs steps again (the
  later line wins); a line cut short by a killed run is skipped; a num_seeds run's `/seed_i`
  copies and `/std` spreads are left to their mean."""
  by_key = {}
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
        step = int(record["step"])
      except (ValueError, KeyError, TypeError):
        continue
      for k, v in record.items():
        if (k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
            and not re.search(r"/(seed_\d+|std)$", k)):
          by_key.setdefault(k, {})[step] = float(v)
  return {k: (np.array(sorted(d), np.int64), np.array([d[s] for s in sorted(d)], np.float64))
          for k, d in by_key.items()}


def ema(values, fraction=0.02):
  """Debiased exponential moving average over about `fraction` of the points: light enough to
  lag the raw line by little."""
  beta = 1.0 - min(1.0, 1 / (fraction * max(len(values), 1)))
  out, avg, weight = np.empty_like(values), 0.0, 0.0
  for i, v in enumerate(values):
    if np.isfinite(v):
      avg, weight = beta * avg + (1 - beta) * v, beta * weight + (1 - beta)
    out[i] = avg / weight if weight else np.nan
  return out


def nice_ticks(lo, hi, n=5):
  """About n round values within [lo, hi], 1, 2 or 5 times a power of ten apart."""
  raw = (hi - lo) / max(n - 1, 1)
  base = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
  step = min((base * m for m in (1, 2, 5, 10)), key=lambda s: abs(math.log(s / raw)))
  return [t for t in np.arange(math.ceil(lo / step), math.floor(hi / step) + 1) * step]


def _label(v):
  return f"{v / 1000:g}k" if abs(v) >= 10000 and v % 1000 == 0 else f"{v:.4g}"


@functools.lru_cache(None)
def font(size=12):
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, ImportError, OSError):  # an old Pillow, or none built with FreeType
    return ImageFont.load_default()


def chart(draw, cell, title, series, xlim, alarms=(), smooth=False):
  """Line chart in `cell` of `series` [(name, steps, values)], with an EMA over the raw (light)
  line when `smooth`; returns its plot area."""
  small = font()
  area = (cell[0] + PAD[0], cell[1] + PAD[1], cell[2] - PAD[2], cell[3] - PAD[3])
  values = np.concatenate([v for _, _, v in series])
  values = values[np.isfinite(values)]
  lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
  margin = (hi - lo) * 0.06 or max(abs(hi) * 0.1, 1e-3)
  lo, hi, (x0, x1) = lo - margin, hi + margin, xlim

  def x_of(s):
    return area[0] + (np.asarray(s, np.float64) - x0) / max(x1 - x0, 1) * (area[2] - area[0])

  def y_of(v):
    return area[3] - (np.asarray(v, np.float64) - lo) / (hi - lo) * (area[3] - area[1])
  for t in nice_ticks(lo, hi):
    draw.line([(area[0], y_of(t)), (area[2], y_of(t))], fill=GRID)
    draw.text((area[0] - 4, y_of(t)), _label(t), fill=TEXT, font=small, anchor="rm")
  for t in [t for t in nice_ticks(x0, x1, 6) if t == int(t)] if x1 > x0 else [x0]:
    draw.line([(x_of(t), area[3]), (x_of(t), area[3] + 3)], fill=AXIS)
    draw.text((x_of(t), area[3] + 5), _label(int(t)), fill=TEXT, font=small, anchor="mt")
  for s in alarms:
    if x0 <= s <= x1:
      draw.line([(x_of(s), area[1]), (x_of(s), area[3])], fill=ALARM, width=2)
  draw.rectangle(area, outline=AXIS)
  draw.text((area[0], cell[1] + 5), title, fill=TEXT, font=font(13))
  legend_x = area[2]
  for (name, steps, v), color in reversed(list(zip(series, COLORS))):
    light = tuple(int(c + (255 - c) * 0.6) for c in color)
    for ys, fill, width in [(v, light, 1), (ema(v), color, 2)] if smooth else [(v, color, 2)]:
      finite = np.isfinite(ys)  # a non-finite value breaks the line
      points = np.stack([x_of(steps), y_of(np.where(finite, ys, 0))], 1)
      for run in np.split(np.arange(len(ys)), np.flatnonzero(np.diff(finite)) + 1):
        if finite[run[0]] and len(run) > 1:
          draw.line([tuple(p) for p in points[run]], fill=fill, width=width)
      if not smooth and len(ys) <= 30:  # few points (scores): show each
        for x, y in points[finite]:
          draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=fill)
    if len(series) > 1:
      legend_x -= draw.textlength(name, font=small) + 18
      draw.line([(legend_x, cell[1] + 12), (legend_x + 12, cell[1] + 12)], fill=color, width=3)
      draw.text((legend_x + 15, cell[1] + 12), name, fill=TEXT, font=small, anchor="lm")
  return area


def latest_samples(workdir):
  """The readable sample grid of the highest step in samples/ (the newest may be half written
  while the run trains; a video run's GIF shows its first frame) and its path, or (None, None)."""
  found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(workdir, "samples", "step_*"))
           if (m := re.search(r"step_(\d+)\.(png|gif)$", p))]
  for _, path in sorted(found, reverse=True):
    try:
      return Image.open(path).convert("RGB"), path
    except OSError:
      continue
  return None, None


def report(workdir, out=None):
  """Draws the run in `workdir` as one PNG (default `workdir/report.png`); returns a `Report`."""
  out = out or os.path.join(workdir, "report.png")
  if not out.lower().endswith(".png"):
    raise UserError(f"--out={out} must end in .png: the report is one PNG picture.")
  if not os.path.isfile(os.path.join(workdir, "config.json")):
    raise UserError(f"{workdir} holds no run (no config.json): pass the --workdir of a "
                    "`gan-jax train` run.")
  path = os.path.join(workdir, "metrics.jsonl")
  metrics = load_metrics(path) if os.path.isfile(path) else {}
  if not metrics:
    raise UserError(f"{workdir} has no metrics yet: let the run log a step (train.log_every) "
                    "and run report again.")
  with open(os.path.join(workdir, "config.json")) as f:
    name = json.load(f).get("name") or os.path.basename(os.path.normpath(workdir))

  alarm_keys = [k for k in metrics if k.startswith("health/alarm")]
  alarms = sorted({int(s) for k in alarm_keys for s, v in zip(*metrics[k]) if v})
  groups = [(title, [k for k in keys if k in metrics], True) for title, keys in STANDARD]
  groups = [g for g in groups if g[1]]
  standard = {k for _, keys in STANDARD for k in keys}
  left_out = []
  for prefix in ("", "eval/", "health/"):  # other training series, then scores, then health
    keys = sorted(k for k in metrics if k not in standard and k not in alarm_keys
                  and next(p for p in ("eval/", "health/", "") if k.startswith(p)) == prefix)
    groups += [(k, [k], not prefix) for k in keys[:CAPS[prefix]]]
    left_out += keys[CAPS[prefix]:]
  xlim = (min(int(s[0]) for s, _ in metrics.values()), max(int(s[-1]) for s, _ in metrics.values()))

  grid, sample_path = latest_samples(workdir)
  rows = math.ceil(len(groups) / COLS)
  width = COLS * PANEL_W
  if grid:  # enlarged by a whole factor (pixels stay sharp) or shrunk to fit
    scale = min((width - 2 * PAD[0]) / grid.width, SAMPLES_H / grid.height)
    size = [int(d * (math.floor(scale) if scale >= 1 else scale)) for d in grid.size]
    grid = grid.resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)
  height = TITLE_H + rows * PANEL_H + (grid.height + PAD[1] + 10 if grid else 0)
  img = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(img)
  notes = ([f"{len(alarms)} health alarms (orange)"] if alarms else []) + (
      [f"{len(left_out)} more series not drawn"] if left_out else [])
  draw.text((12, TITLE_H // 2), "   ".join([f"{name}   step {xlim[1]}", *notes,
                                            os.path.normpath(workdir)]),
            fill=TEXT, font=font(16), anchor="lm")
  panels = []
  for i, (title, keys, smooth) in enumerate(groups):
    r, c = divmod(i, COLS)
    cell = (c * PANEL_W, TITLE_H + r * PANEL_H, (c + 1) * PANEL_W, TITLE_H + (r + 1) * PANEL_H)
    series = [(k, *metrics[k]) for k in keys]
    smooth = smooth and len(series[0][1]) >= SMOOTH_FROM
    area = chart(draw, cell, title, series, xlim, alarms, smooth)
    panels.append(Panel(title, tuple(keys), area))
  if grid:
    top = TITLE_H + rows * PANEL_H
    draw.text((PAD[0], top + 5), f"samples: {os.path.basename(sample_path)}", fill=TEXT,
              font=font(13))
    left, top = (width - grid.width) // 2, top + PAD[1]
    img.paste(grid, (left, top))
    draw.rectangle((left - 1, top - 1, left + grid.width, top + grid.height), outline=AXIS)
    panels.append(Panel("samples", (sample_path,),
                        (left, top, left + grid.width, top + grid.height)))
  save_picture(out, np.asarray(img))
  return Report(out, xlim[1], xlim, panels, tuple(left_out), tuple(alarms))
