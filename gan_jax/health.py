"""Training health: alarms for the ways a GAN fails quietly, from what the loop already has.

- D wins: D tells reals from fakes apart almost every time (`d_acc_real`, `d_acc_fake`, which the
  noise and StyleGAN2 steps log) at every logged step for hundreds of steps: G is not catching
  up. A D that wins for a while is no alarm: on small data a healthy DCGAN's D is often right
  about every sample of a batch, and G, under the non-saturating loss, learns from it and
  catches up.
- G's gradients vanish, whatever D does: their norm stays a tiny share of its peak (a saturated
  D, dead units): G has stopped learning.
- Mode collapse: samples from fixed latents lie much closer together than real examples do (mean
  pairwise distance, the real data's measured once at the start) or, on the digits, the digits
  classifier finds few of the 10 digits among them; only for games that draw from noise, and
  only at the first logged step past each `train.sample_every`, so it stays cheap.
- Loss spike: a loss jumps far above its recent median, in robust standard deviations.
- Non-finite: a logged value other than the losses (which `step.make_multi_step` watches and
  `train` stops or rolls back on) is inf or NaN.

The detectors are pure functions of a history (numpy arrays, oldest first). Under
`train.num_seeds` each logged value is an [N] array and every detector answers per seed.
`Monitor` keeps the history, runs the detectors at each logged step, returns the `health/...`
keys for metrics.jsonl and TensorBoard (`gan-jax report` marks steps where a `health/alarm_...`
key is non-zero), writes one line when an alarm starts and, under `train.health=stop`, ends the
run with `HealthAlarm`.
"""
import collections

import jax
import numpy as np
from jax.experimental import multihost_utils

from gan_jax.errors import HealthAlarm, checkpoint_left
from gan_jax.games.common import to_model_input
from gan_jax.metrics.digits import NUM_CLASSES as NUM_DIGITS, DigitsClassifier
from gan_jax.metrics.scores import mean_pairwise_distance

# D wins when its balanced accuracy (the mean of those on reals and on fakes) has stayed at or above
# D_WINS_ACCURACY at every logged step of the last D_WINS_STEPS steps (and at least WINDOW of
# them). Healthy runs: the 2D ring's D at 0.51 (median; at most 0.65, 0.79 in a short run); a
# healthy DCGAN on the digits (1797 images, which its D learns well) at 0.98 (median), at or above
# 0.95 at 21 of 40 logged steps, yet for at most 150 steps in a row before G catches up (were the
# logged steps independent, 21 in a row, 1000 steps at log_every=50, would come once in ~1e6).
# Runs where G never caught up: 550 to 1100 steps in a row when they ended.
D_WINS_ACCURACY = 0.95
D_WINS_STEPS = 1000
# G's gradients have vanished when their norm stays at or below this share of its peak for
# WINDOW logged steps in a row: exactly 0 in runs whose G's (or D's) units died; healthy runs go
# no lower than 2.7% (the ring, as its learning rate decays), 9.8% (digits DCGAN), 26% (WGAN-GP).
G_VANISHED_SHARE = 1e-3
WINDOW = 5
# Samples from fixed latents whose mean pairwise distance falls below this share of the real
# data's: the generator covers a small part of the data. Healthy runs: the ring 0.95-1.19, the
# digits DCGAN 0.87-0.96 (0.73 at step 250), WGAN-GP 0.95-0.98. Failing: 0.00 (G 500x faster than
# D: one point), 0.24-0.47 (a tiny G against D at lr 0.1: a few modes), 0.30 (G never trained).
COLLAPSE_RATIO = 0.5
# A fresh G draws everything close together: the collapse check starts at this share of the run,
# and not before COLLAPSE_MIN_STEPS (a smoke test's few steps are no collapse). The ring's healthy
# runs spread over the whole ring by step 100, the digits' DCGAN reaches 0.73 by step 250.
COLLAPSE_FROM = 0.1
COLLAPSE_MIN_STEPS = 100
# A loss this many robust standard deviations above the median of the SPIKE_HISTORY logged
# values before it spikes; the spread is floored at SPIKE_FLOOR x |median| so that a nearly flat
# loss's small wobbles do not count. Healthy runs score at most 0.1 (ring), 4.1 (digits DCGAN),
# 1.7 (WGAN-GP); a tiny G's g_loss jumping from 1.2 to 2.3 scores 18.5.
SPIKE_SIGMAS = 10.0
SPIKE_HISTORY = 20
SPIKE_MIN_HISTORY = 8
SPIKE_FLOOR = 0.05
# On the digits the classifier reads the same samples: a collapse onto a few digits shows as
# digits missing, even where the pixel spread stays high (a ring run covering 3 of 8 modes kept
# 0.49-0.54 of the real spread). A digit counts when it holds at least MIN_CLASS_SHARE of its
# fair share; the alarm needs fewer than CLASSES_COVERED of them at two checks in a row. Healthy
# digits DCGANs (2000 steps; 600 with G's lr at 100x and 500x) find 4-6 of 10 at step 100, 9-10
# from step 200 on.
MIN_CLASS_SHARE = 0.25
CLASSES_COVERED = 0.8
DIVERSITY_SEED = 7919    # of their fixed latents: other than the sample grid's, any fixed one does
POOL_SIDE = 32           # images are averaged down to at most this side first: cheap, and a
                         # collapse shows at any scale
HISTORY = D_WINS_STEPS + 1  # logged steps kept: D_WINS_STEPS of them even when logging every step


def _all_last(condition):
  """[T, ...] booleans -> whether the last WINDOW all hold (False until there are WINDOW)."""
  return np.all(condition[-WINDOW:], axis=0) & (len(condition) >= WINDOW)


def d_wins(steps, acc_real, acc_fake):
  """[T] logged steps, [T, ...] accuracies on reals and fakes -> whether D's balanced accuracy
  stayed at or above D_WINS_ACCURACY at every logged step of the last D_WINS_STEPS (and at least
  WINDOW of them)."""
  steps = np.asarray(steps)
  balanced = (np.asarray(acc_real, np.float64) + np.asarray(acc_fake, np.float64)) / 2
  won = np.moveaxis(balanced >= D_WINS_ACCURACY, 0, -1)  # [..., T]
  # The first step of the streak that ends now: the one after the last loss (the first if none).
  lost = np.where(~won, np.arange(len(steps)), -1).max(-1)
  first = np.minimum(lost + 1, len(steps) - 1)
  return won[..., -1] & (steps[-1] - steps[first] >= D_WINS_STEPS) & (len(steps) - first >= WINDOW)


def share_of_peak(values):
  """[T, ...] -> each value as a share of the largest up to it (NaN once one is not finite)."""
  values = np.asarray(values, np.float64)
  with np.errstate(invalid="ignore"):
    return values / np.maximum(np.maximum.accumulate(values, axis=0), 1e-30)


def g_vanished(g_grad_norms):
  """[T, ...] G's gradient norms -> whether they stayed at or below G_VANISHED_SHARE of their
  peak at each of the last WINDOW points."""
  return _all_last(share_of_peak(g_grad_norms) <= G_VANISHED_SHARE)


def spike_score(values):
  """[T, ...] -> how far the last value lies above the median of the SPIKE_HISTORY before it, in
  robust standard deviations (1.4826 x the median absolute deviation, floored at SPIKE_FLOOR x
  |median|); 0 until SPIKE_MIN_HISTORY values precede it."""
  values = np.asarray(values, np.float64)
  before = values[:-1][-SPIKE_HISTORY:]
  if len(before) < SPIKE_MIN_HISTORY:
    return np.zeros(values.shape[1:])
  median = np.median(before, axis=0)
  spread = np.maximum(1.4826 * np.median(np.abs(before - median), axis=0),
                      np.maximum(SPIKE_FLOOR * np.abs(median), 1e-6))
  return np.maximum((values[-1] - median) / spread, 0.0)


def collapsed(diversity_ratio):
  return np.asarray(diversity_ratio) < COLLAPSE_RATIO


def nonfinite(metrics):
  """(names of the metrics holding a non-finite value, per seed: whether any of its values is)."""
  bad = {k: ~np.isfinite(np.asarray(v, np.float64)) for k, v in metrics.items()}
  names = sorted(k for k, b in bad.items() if b.any())
  return names, np.logical_or.reduce([b for b in bad.values()]) if bad else np.zeros((), bool)


def pooled(samples):
  """Images averaged down to at most POOL_SIDE a side (2D points as they are), one row each."""
  x = np.asarray(samples, np.float32)
  if x.ndim == 4:
    n, h, w, c = x.shape
    f = max(1, h // POOL_SIDE, w // POOL_SIDE)
    x = x[:, :h // f * f, :w // f * f].reshape(n, h // f, f, w // f, f, c).mean((2, 4))
  return x.reshape(len(x), -1)


def diversity(samples):
  """The mean pairwise distance of a sample set (floats in the model's range)."""
  return mean_pairwise_distance(pooled(samples))


def real_diversity(source, seed, num):
  """`diversity` of `num` real examples of `source`, a fixed random choice."""
  pick = np.random.default_rng(seed).choice(len(source), min(num, len(source)), replace=False)
  return diversity(to_model_input(source.get(np.sort(pick))["x"]))


def classes_covered(predicted, num_classes):
  """The share of classes found among samples' predicted labels at no less than a quarter of
  their fair share (1 / num_classes): 1.0 for uniform digits, 0.1 for one digit."""
  counts = np.bincount(np.asarray(predicted), minlength=num_classes)
  return float(np.mean(counts >= MIN_CLASS_SHARE / num_classes * len(predicted)))


def _first(value, fired):
  """The value of the first seed an alarm fired for (the value itself for one seed)."""
  value = np.asarray(value, np.float64)
  return float(value[np.argmax(fired)] if value.ndim else value)


def _per_seed(values):
  """One value a seed: [N] under train.num_seeds, else the value."""
  return np.array(values) if len(values) > 1 else values[0]


def _which(fired):
  fired = np.asarray(fired)
  return f" (seeds {', '.join(map(str, np.flatnonzero(fired)))})" if fired.ndim else ""


# One alarm's verdict: `fired` (a bool, or [N] for N seeds), what was seen and what users usually
# try, each a clause for the log line.
Alarm = collections.namedtuple("Alarm", "fired seen advice")


class Monitor:
  """Watches one run's logged metrics and samples (see the module docstring)."""

  def __init__(self, exp, source, reporter, start_step):
    t = exp.config.train
    self.mode = t.get("health", "warn")
    self.exp, self.reporter = exp, reporter
    self.sample_every, self.steps = t.sample_every, t.steps
    self.num_samples = t.health_samples
    self.history = []        # (step, metrics) of the logged steps, oldest first
    self.measured_at = start_step
    self.active = set()      # alarms on at their last check: a line is written when one starts
    self.stopping = None     # (step, what was seen) once train.health=stop has to end the run
    self.real = (real_diversity(source, exp.config.seed, self.num_samples)
                 if self.mode != "off" and exp.game.can_generate else None)
    self.classifier = (DigitsClassifier.load_or_train() if self.real is not None
                       and exp.config.data.source == "digits" else None)
    self.covered = 1.0  # the share of digits found at the last collapse check
    penalty = getattr(exp.game, "d_penalty_hint", None)  # its own key; translators have none
    self.add_penalty = f"add {penalty}, " if penalty else ""
    self.add_critic_steps = ("more D steps per G step (--config.train.n_critic), "
                             if getattr(exp.game, "multi_critic", False) else "")

  def check(self, step, metrics, host_state):
    """The `health/...` keys of logged step `step` with `metrics` (host values); `host_state()`
    gives the train state when the diversity is due."""
    if self.mode == "off":
      return {}
    # A rollback returns to an earlier step: what was logged after it did not happen.
    self.history = [h for h in self.history if h[0] < step][-HISTORY + 1:]
    self.measured_at = min(self.measured_at, self.history[-1][0] if self.history else step)
    self.history.append((step, dict(metrics)))
    keys, alarms = {}, {}
    detectors = [self._nonfinite, self._loss_spike, self._d_wins, self._g_vanished]
    every = self.sample_every
    if self.real is not None and (step // every > self.measured_at // every or step >= self.steps):
      self.measured_at = step
      detectors.append(lambda m: self._collapse(step, host_state()))
    for detect in detectors:
      found = detect(metrics)
      if found:
        name, alarm, series = found
        keys.update(series)
        keys[f"health/alarm_{name}"], alarms[name] = alarm.fired, alarm
    self._report(step, alarms)
    return keys

  # Each detector returns (alarm name, Alarm, health series to log) or None when it cannot judge.

  def _series(self, key):
    return np.stack([np.asarray(m[key], np.float64) for _, m in self.history])

  def _nonfinite(self, metrics):
    names, fired = nonfinite(metrics)
    return "nonfinite", Alarm(fired, f"{', '.join(names)} became non-finite", (
        "lower the learning rates, clip gradients (--config.optim.g.grad_clip, "
        "--config.optim.d.grad_clip) or train in float32")), {}

  def _loss_spike(self, metrics):
    scores = {k: spike_score(self._series(k)) for k in ("d_loss", "g_loss") if k in metrics}
    if not scores or len(self.history) <= SPIKE_MIN_HISTORY:
      return None
    worst = np.max(list(scores.values()), axis=0)
    fired = worst > SPIKE_SIGMAS
    name = max(scores, key=lambda k: _first(scores[k], fired))
    return "loss_spike", Alarm(fired, (
        f"{name} jumped to {_first(metrics[name], fired):.4g}, {_first(scores[name], fired):.0f} "
        "robust standard deviations above its recent median"), (
            "lower the learning rates, add a warm-up (--config.optim.d.warmup_steps) or clip "
            "gradients (--config.optim.d.grad_clip)")), {"health/loss_spike": worst}

  def _d_wins(self, metrics):
    if not {"d_acc_real", "d_acc_fake", "d_real", "d_fake", "g_grad_norm"} <= metrics.keys():
      return None
    steps = [s for s, _ in self.history]
    fired = d_wins(steps, self._series("d_acc_real"), self._series("d_acc_fake"))
    gap = np.subtract(metrics["d_real"], metrics["d_fake"])
    share = share_of_peak(self._series("g_grad_norm"))[-1]
    return "d_wins", Alarm(fired, (
        f"D is winning: it has told reals from fakes apart for {D_WINS_STEPS} steps or more (now "
        f"{_first(metrics['d_acc_real'], fired):.0%} of reals, "
        f"{_first(metrics['d_acc_fake'], fired):.0%} of fakes; D(real) - D(fake) = "
        f"{_first(gap, fired):.3g}; G's gradient norm at {_first(share, fired):.0%} of its peak): "
        "G is not catching up"), (
            "lower D's learning rate or raise G's (--config.optim.d.lr, --config.optim.g.lr), "
            f"{self.add_penalty}use the non_saturating loss if G's gradients fade, or, on small "
            "data, augmentation (--config.augment.kind=diffaugment)")), {}

  def _g_vanished(self, metrics):
    if "g_grad_norm" not in metrics:
      return None
    norms = self._series("g_grad_norm")
    fired = g_vanished(norms)
    return "g_vanished", Alarm(fired, (
        f"G's gradient norm has stayed at or below {G_VANISHED_SHARE:.1%} of its peak for {WINDOW} "
        f"logged steps (now {_first(metrics['g_grad_norm'], fired):.3g}): G has stopped "
        "learning"), (
            f"lower the learning rates (D's first), {self.add_penalty}or use the non_saturating "
            "loss")), {"health/g_grad_share": share_of_peak(norms)[-1]}

  def _collapse(self, step, state):
    samples = self._samples(state)
    ratio = _per_seed([diversity(x) for x in samples]) / self.real
    fired, series = collapsed(ratio), {"health/diversity": ratio}
    seen = (f"sample diversity dropped to {_first(ratio, fired):.0%} of the real data's (mean "
            f"pairwise distance of {self.num_samples} samples from fixed latents)")
    if self.classifier is not None:
      covered = _per_seed([classes_covered(self.classifier.predict(x), NUM_DIGITS)
                           for x in samples])
      # Twice in a row: early on a healthy G draws some digits rarely for a while.
      fired = fired | ((covered < CLASSES_COVERED) & (self.covered < CLASSES_COVERED))
      self.covered = covered
      series["health/classes_covered"] = covered
      seen += (f"; the digits classifier finds {_first(covered, fired) * NUM_DIGITS:.0f} of "
               f"{NUM_DIGITS} digits among them")
    fired = fired & (step >= max(COLLAPSE_FROM * self.steps, COLLAPSE_MIN_STEPS))
    return "collapse", Alarm(fired, seen + ": likely mode collapse", (
        f"lower the learning rates (G's first), {self.add_penalty}{self.add_critic_steps}or a "
        "larger batch")), series

  def _samples(self, state):
    """G's samples (the trained weights, not their EMA) from the fixed latents, one set a seed."""
    return [self.exp.game.generate(self.exp.seed_state(state, i), self.num_samples,
                                   seed=DIVERSITY_SEED, ema=False)[0]
            for i in range(self.exp.num_seeds)]

  def _report(self, step, alarms):
    """One line per alarm that starts; under train.health=stop, the decision to end the run."""
    firing = {name: alarm for name, alarm in alarms.items() if np.any(alarm.fired)}
    for name, alarm in firing.items():
      if name not in self.active:
        self.reporter.message(f"Health alarm at step {step}: {alarm.seen}{_which(alarm.fired)}. "
                              f"Usually tried: {alarm.advice}.")
    self.active = (self.active - alarms.keys()) | firing.keys()
    if self.mode == "stop":
      stop = bool(firing)
      if jax.process_count() > 1:  # every process ends the run, or none: process 0 decides
        stop = bool(multihost_utils.broadcast_one_to_all(np.int32(stop)))
      if stop:
        self.stopping = (step, next(iter(firing.values())).seen if firing
                         else "an alarm on process 0")

  def raise_if_stopping(self, last_checkpoint):
    """Under train.health=stop, after an alarm: HealthAlarm naming the step and the checkpoint
    left (`last_checkpoint`: its step, or None)."""
    if self.stopping:
      step, seen = self.stopping
      raise HealthAlarm(f"Training stopped at step {step} by the health monitor: {seen}; "
                        f"{checkpoint_left(last_checkpoint)} (--config.train.health=warn logs "
                        "alarms and trains on).")
