"""`gan-jax tune-gamma`: R3GAN's gamma found for the user's data, not guessed.

Copies of one R3GAN config that differ only in gamma (and seed: copy i is seed + i) train side by
side in ONE vmapped program (`loss.gamma_sweep`, `games.seeds.Seeds`) for a short budget; a copy
that diverges stops updating while the others go on. Each copy is then scored with the data's
metric (stacked digits: reverse KL of the mode histogram; digits: digits FID; other images: FID)
and read for health signals (D's logit gap, R1 and R2, gradient norms, the health monitor's
alarms). The best-scoring copy without a warning sign is recommended and its override written.
"""
import dataclasses
import json
import math
import os

import numpy as np

from gan_jax import evaluate, experiment, provenance, reporting
from gan_jax.errors import UserError

FACTORS = (0.1, 0.3, 1.0, 3.0, 10.0)  # default values: the config's gamma times these
RANKED_BY = {"modes": "reverse_kl", "digits": "digits_fid", "fid": "fid", "kid": "kid"}  # lower
SIGNALS = ("d_real", "d_fake", "r1_penalty", "r2_penalty", "d_grad_norm", "g_grad_norm")
OVERRIDE = "gamma_override.txt"


@dataclasses.dataclass
class Tuning:
  rows: list          # one dict per gamma: gamma, score, signals, warnings
  metric: str         # the score's name (lower is better)
  best: int | None    # index into rows of the recommended gamma, None when every copy failed
  override: str       # the flags that set it, "" when none
  path: str           # tune_gamma.json

  def table(self):
    lines = [f"{'gamma':>10} {self.metric:>12} {'D gap':>8} {'R1':>9} {'R2':>9}  warnings"]
    for i, r in enumerate(self.rows):
      mark = "  <- recommended" if i == self.best else ""
      lines.append(f"{r['gamma']:>10.4g} {_number(r['score']):>12} {_number(r['d_gap']):>8} "
                   f"{_number(r['r1_penalty']):>9} {_number(r['r2_penalty']):>9}  "
                   f"{', '.join(r['warnings']) or '-'}{mark}")
    return "\n".join(lines)


def _number(v):
  return "nan" if v is None or not math.isfinite(v) else f"{v:.4g}"


def parse_values(text, gamma):
  """"0.01,0.1,1" -> [0.01, 0.1, 1.0]; None -> the config's gamma times FACTORS."""
  if text is None:
    return [gamma * f for f in FACTORS]
  parts = [p.strip() for p in str(text).split(",")]
  try:
    values = [float(p) for p in parts if p]
  except ValueError:
    raise UserError(f"--values={text!r} is not a list of numbers: give gammas separated by "
                    "commas, e.g. --values=0.01,0.05,0.2.") from None
  if not values:
    raise UserError("--values is empty: give gammas separated by commas, e.g. "
                    "--values=0.01,0.05,0.2, or leave it out for the config's gamma x "
                    f"{', '.join(f'{f:g}' for f in FACTORS)}.")
  bad = [v for v in values if not (math.isfinite(v) and v > 0)]
  if bad:
    raise UserError(f"--values holds {bad[0]:g}: gamma weighs the R1 and R2 penalties and must "
                    "be a positive number.")
  if len(set(values)) != len(values):
    raise UserError(f"--values={text} names a gamma twice: give each value once.")
  return values


def check_game(config):
  if config.get("game") != "r3gan":
    raise UserError(f"tune-gamma tunes R3GAN's gamma, and this config plays the "
                    f"{config.get('game', 'noise')!r} game: use an R3GAN config such as "
                    "configs/r3gan_stacked.py.")


def sweep_config(config, values, steps=None):
  """`config` as one program training a copy per gamma of `values` for `steps` steps."""
  check_game(config)
  config = config.copy_and_resolve_references()
  config.loss.gamma_sweep = tuple(float(v) for v in values)
  config.train.num_seeds = len(values)
  if steps is not None:
    if steps < 1:
      raise UserError(f"--steps={steps} trains nothing: give a positive number of steps.")
    config.train.steps = steps
  config.train.sample_every = min(config.train.sample_every, config.train.steps)
  config.train.log_every = min(config.train.log_every, config.train.steps)
  if config.train.health == "stop":  # one copy's alarm must not end the others
    config.train.health = "warn"
  config.eval.every_steps = 0
  return config


def tune_gamma(config, workdir, values=None, steps=None, num_samples=None, progress=True):
  """Trains a copy of `config` per gamma in one program, scores them and recommends one."""
  from gan_jax import train  # pylint: disable=import-outside-toplevel  (jax on demand)
  check_game(config)
  values = parse_values(values, config.loss.gamma)
  config = sweep_config(config, values, steps)
  metric = evaluate.parse_metrics(config.eval.metrics, config.data.source,
                                  (config.data.resolution,) * 2 + (config.data.channels,))[0]
  if metric not in RANKED_BY:
    raise UserError(f"--config.eval.metrics={metric}: tune-gamma ranks by one of "
                    f"{', '.join(RANKED_BY)}; set it to one of them.")
  result = train.train(config, workdir, progress=progress)
  exp, _ = experiment.load(workdir)
  evaluator = evaluate.Evaluator.from_config(exp.config, exp.spec, metrics=metric,
                                             num_samples=num_samples)
  rows, previews = [], []
  for i, gamma in enumerate(values):
    state = exp.seed_state(result.state, i)
    score = evaluator(exp, state)[RANKED_BY[metric]]
    rows.append(_row(gamma, i, result.metrics, float(score)))
    previews.append(exp.game.generate(state, 8, seed=config.seed + 1)[0])
  usable = [i for i, r in enumerate(rows) if not r["warnings"] and math.isfinite(r["score"])]
  best = min(usable, key=lambda i: rows[i]["score"]) if usable else None
  override = ""
  if best is not None:
    g = values[best]
    override = (f"--config.loss.gamma={g:g} "
                f"--config.loss.gamma_final={g * config.loss.gamma_final / config.loss.gamma:g}")
  captions = [f"gamma {r['gamma']:.4g}: {RANKED_BY[metric]} {_number(r['score'])}"
              f"{' (' + ', '.join(r['warnings']) + ')' if r['warnings'] else ''}" for r in rows]
  # One label for every copy's previews: the weights hash is of all copies' G, stacked.
  reporting.save_picture(os.path.join(workdir, "tune_gamma.png"),
                         reporting.captioned_grid(np.concatenate(previews), captions, cols=8),
                         provenance.of_state(exp.config, workdir, result.state, config.seed + 1))
  path = os.path.join(workdir, "tune_gamma.json")
  with open(path, "w") as f:
    json.dump({"metric": RANKED_BY[metric], "steps": result.step, "rows": rows,
               "recommended": None if best is None else values[best], "override": override},
              f, indent=1)
  with open(os.path.join(workdir, OVERRIDE), "w") as f:
    f.write(override + "\n")
  return Tuning(rows, RANKED_BY[metric], best, override, path)


def _row(gamma, i, metrics, score):
  """Copy i's last logged signals and what in them warns."""
  at = lambda key: float(np.asarray(metrics[key]).reshape(-1)[i]) if key in metrics else math.nan
  row = {"gamma": gamma, "score": score, **{k: at(k) for k in SIGNALS}}
  row["d_gap"] = row["d_real"] - row["d_fake"]
  warnings = ["diverged"] if at("diverged") > 0 else []
  warnings += [k[len("health/alarm_"):] for k in sorted(metrics)
               if k.startswith("health/alarm_") and at(k) > 0]
  row["warnings"] = warnings
  return row
