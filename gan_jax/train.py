"""The one host-side loop: init or restore, step, log, sample, checkpoint, stop cleanly.

The loop does not know which GAN it runs: the config picks a game (`gan_jax/games`), which
builds its models, losses and optimizers into one pure train step and says what its sample
grids show.
"""
import dataclasses
import os
import signal

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np

from gan_jax import (config as config_lib, evaluate, experiment, health, parallel, provenance,
                     reporting, step as step_lib)
from gan_jax.checkpoint import Checkpointer
from gan_jax.data import captions, pipeline, sources
from gan_jax.errors import PeerLost, TrainingDiverged, UserError, brief, checkpoint_left
from gan_jax.state import fold_in

MAX_ROLLBACKS = 3


@dataclasses.dataclass
class TrainResult:
  step: int                 # steps done when the loop ended
  state: object             # the final train state (one replicated copy)
  metrics: dict             # the last logged metrics
  interrupted: bool         # stopped early by SIGINT / SIGTERM (a checkpoint was saved)


class _StopRequest:
  """SIGINT / SIGTERM stop the run at the next step, with a checkpoint, in every process.

  One process: a flag. Several: jax.distributed's preemption notifier already catches SIGTERM
  and tells every process; `multihost_utils.reached_preemption_sync_point` then returns True at
  the same call in all of them. SIGINT (Ctrl-C) is turned into that SIGTERM.
  """

  def __init__(self):
    self.requested = False
    self.previous = {}
    self.multi = jax.process_count() > 1

  def __enter__(self):
    handlers = ({signal.SIGINT: self._forward} if self.multi
                else {signal.SIGINT: self._handle, signal.SIGTERM: self._handle})
    try:
      for sig, handler in handlers.items():
        self.previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
      pass
    return self

  def _handle(self, signum, frame):
    self.requested = True

  def _forward(self, signum, frame):
    os.kill(os.getpid(), signal.SIGTERM)

  def poll(self, call):
    """Whether to stop after this loop iteration (`call`, counted alike in every process)."""
    if self.multi and not self.requested:
      self.requested = multihost_utils.reached_preemption_sync_point(call)
    return self.requested

  def __exit__(self, *exc):
    for sig, handler in self.previous.items():
      signal.signal(sig, handler)


def check_workdir(config, workdir):
  """A workdir may only be resumed with a config that computes the same thing."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  differing = config_lib.incompatible_keys(config_lib.load_json(path).to_dict(), config)
  if differing:
    shown = ", ".join(differing[:4]) + (" ..." if len(differing) > 4 else "")
    raise UserError(f"{workdir} holds a run of a different config (differs in {shown}): pass a new "
                    "--workdir, or the config that run used to resume it.")


def train(config, workdir, progress=True):
  """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one."""
  config_lib.validate(config, jax.device_count())
  check_workdir(config, workdir)
  # Text runs: captions embedded once (read back from the workdir on resume), text_dim in the spec.
  source = captions.for_training(sources.build(config), config, workdir,
                                 progress and jax.process_index() == 0)
  exp = experiment.Experiment.build(config, source.spec)
  if isinstance(source, captions.TextSource):  # evaluation and health checks draw its captions
    exp.game.use_captions(source.captions, source.embeddings)
  strategy = parallel.get(config.parallel.strategy)
  multi_step = step_lib.make_multi_step(exp.game_for(strategy.axis_name).train_step)
  compiled = {}  # steps per call -> compiled function (the last call may be shorter)

  main = jax.process_index() == 0
  # Built before anything is written, so a bad metric or missing weights leave no workdir behind.
  evaluator = (evaluate.Evaluator.from_config(config, source.spec)
               if config.eval.every_steps > 0 and main else None)
  t = config.train
  fresh = not os.path.isdir(os.path.join(workdir, "checkpoints"))
  sides = getattr(exp.game, "fine_tune_sides", ("g", "d"))
  warm = (experiment.load_networks(t.init_from, jax.eval_shape(exp.game.init), exp.num_seeds,
                                   sides) if t.init_from and fresh else None)
  if main:
    os.makedirs(workdir, exist_ok=True)
    config_lib.save_json(config, os.path.join(workdir, "config.json"))
    experiment.save_spec(source.spec, workdir)
    sources.write_labels(source, workdir)
    captions.save(source, workdir)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), t.keep_checkpoints)
  data = pipeline.make_iterator(source, config, jax.process_index(), jax.process_count())
  preview_inputs = exp.game.preview_inputs(source, sources.build(config, split="test"))

  def restore_or_init():
    if ckpt.latest_step() is None:
      state = exp.init_state()
      if t.init_from:  # fine-tuning: the networks of another run, all else fresh
        state = experiment.warm_start(
            state, warm or experiment.load_networks(t.init_from, state, exp.num_seeds, sides))
      return state, 0
    # A damaged latest checkpoint is reported and moved aside; the one before it is read.
    state, data_state = ckpt.restore(exp.abstract_state(strategy.state_shardings), set_aside=True)
    data.set_state(data_state)
    return state, ckpt.restored_step

  try:
    state, step = restore_or_init()
  except BaseException:  # none reads back (one UserError): let orbax's threads end first
    ckpt.close()
    raise
  last_good, rollbacks = ckpt.restored_step, 0
  dev_state = strategy.put_state(state)
  reporter = reporting.Reporter(workdir, step, t.steps, enabled=main, progress=progress)
  monitor = health.Monitor(exp, source, reporter, step)
  metrics, first_bad, peer_lost = {}, None, False

  def save(step):
    ckpt.save(step, strategy.host_state(dev_state), data.get_state())

  try:
    with _StopRequest() as stop:
      stopping, calls = False, 0
      while step < t.steps and not stopping:
        k = min(t.steps_per_call, t.steps - step)
        batch = jax.tree.map(lambda *xs: np.stack(xs), *[next(data) for _ in range(k)])
        if k not in compiled:
          compiled[k] = strategy.compile(multi_step)
        dev_state, dev_metrics = compiled[k](dev_state, strategy.put_batch(batch))
        step, calls = step + k, calls + 1
        reporter.advance(k)
        stopping = stop.poll(calls)  # read once: every check below sees the same answer
        first_bad = dev_metrics["nonfinite_step"] if first_bad is None else (
            jnp.minimum(first_bad, dev_metrics["nonfinite_step"]))  # stays on device: no sync
        due = lambda every: step % every == 0 or step == t.steps or stopping
        # Evaluation is slow: not on a stop request, and on a multiple of every_steps passed
        # inside this call's K steps.
        every = config.eval.every_steps
        eval_due = every > 0 and (step == t.steps or step // every > (step - k) // every)
        if not (eval_due or any(due(e) for e in (t.log_every, t.sample_every, t.checkpoint_every))):
          continue
        bad = int(np.asarray(strategy.host_metrics({"b": first_bad})["b"]))
        if bad != step_lib.NEVER:
          if t.nan_policy == "rollback" and rollbacks < MAX_ROLLBACKS:
            rollbacks += 1
            reporter.message(f"Loss became non-finite at step {bad}; rolling back to step "
                             f"{last_good or 0} with a new RNG ({rollbacks}/{MAX_ROLLBACKS}).")
            state, step = restore_or_init()
            state = state.replace(rng=fold_in(state.rng, 1000 + rollbacks))
            dev_state, first_bad = strategy.put_state(state), None
            continue
          raise TrainingDiverged(f"Training stopped: the loss became non-finite at step {bad}; "
                                 f"{checkpoint_left(last_good)} (lower the learning rates or try "
                                 "--config.train.nan_policy=rollback).")
        if due(t.log_every):
          metrics = strategy.host_metrics(dev_metrics)
          metrics.pop("nonfinite_step")
          metrics.update(monitor.check(step, metrics, lambda: strategy.host_state(dev_state)))
          reporter.log(step, metrics)
          monitor.raise_if_stopping(last_good)
        if due(t.sample_every) and main:
          host = strategy.host_state(dev_state)
          # Labelled as drawn: seed 0's G (a num_seeds run shows it), latents of config.seed + 1.
          made = provenance.of_state(config, workdir, exp.seed_state(host, 0),
                                     config.seed + 1 if exp.game.can_generate else None)
          reporter.samples(step, exp.game.preview(host, preview_inputs), made)
        if due(t.checkpoint_every):
          save(step)
          last_good = step
        if eval_due and evaluator is not None:
          result = evaluator.every_seed(exp, strategy.host_state(dev_state), ema=config.eval.ema)
          reporter.log(step, {f"eval/{k}": v for k, v in evaluate.scalars(result).items()})
      if stopping:
        reporter.message(f"Stopped at step {step}; checkpoint saved. Run the same command to resume.")
    ckpt.wait()
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1:
      raise
    peer_lost = True
    raise PeerLost(f"Training stopped near step {step}: a collective with the other processes "
                   f"failed ({brief(e)}), so one of them has likely died; "
                   f"{checkpoint_left(last_good)} (run the same command on every host to "
                   "resume).") from None
  finally:
    if not peer_lost:  # orbax would wait for the dead process
      ckpt.close()
    reporter.close()
  return TrainResult(step, strategy.host_state(dev_state), metrics, stopping)

