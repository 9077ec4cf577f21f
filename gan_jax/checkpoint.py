"""Orbax checkpoints of the train state plus the input pipeline's position.

Faults end in one sentence, not a traceback: a damaged checkpoint (truncated, garbled or missing
files) is reported and the one before it read instead; a write that fails (disk full,
permission denied), at once or in orbax's background thread, stops the run naming the last
checkpoint on disk.
"""
import logging
import os
import shutil
import sys

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from gan_jax.errors import CheckpointWriteFailed, UserError, brief

DAMAGED = "_damaged"  # suffix of the folder beside checkpoints/ where train moves damaged ones


def _write_small_arrays_whole():
  """orbax writes an array replicated over N devices as N slices, one per replica, each cut by a
  small device program of its own (replica-parallel writes, which pay for large arrays). A GAN's
  state is hundreds of small arrays: on 8 devices a 4-step smoke run's two checkpoints spent 2.7 s
  of its 26 cutting 1900 slices. Arrays whose slices would be under 1 MiB are written whole by one
  replica (and no per-array metadata files: they serve typed PRNG keys, which no state holds)."""
  absl = logging.getLogger("absl")
  level = absl.level
  absl.setLevel(logging.ERROR)  # orbax warns that its own handler is replaced, which is the point
  try:
    ocp.type_handlers.register_type_handler(jax.Array, ocp.type_handlers.ArrayHandler(
        min_slice_bytes_for_replica_parallel=1 << 20, array_metadata_store=None), override=True)
  finally:
    absl.setLevel(level)


_write_small_arrays_whole()


class Checkpointer:

  def __init__(self, directory, keep=2):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=True, create=True))
    self.restored_step = None  # the step `restore` read last
    self.pending = None        # the step whose background write is not yet confirmed
    self.failed = False        # a write failed and was reported
    _quiet_orbax()

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step, state, data_state):
    """Starts writing `step` in the background, after confirming the write before it."""
    self._confirm()
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)
    except Exception as e:  # pylint: disable=broad-except  (any failure here is a failed write)
      _raise_peer_failure(e)
      raise self._write_failed(step, e) from None
    self.pending = step

  def restore(self, abstract_state, step=None, say=None, set_aside=False):
    """(state, data_state) of `step`, placed as `abstract_state` says; by default of the newest
    checkpoint that reads back whole. Newer damaged ones are reported in one line (`say`,
    default stderr) and, with `set_aside` (a run that will write new ones), moved to
    checkpoints_damaged/ so that their steps can be written again. One UserError, with nothing
    moved, when no checkpoint reads back."""
    steps = [step] if step is not None else sorted(self.manager.all_steps(), reverse=True)
    damaged = []
    for s in steps:
      try:
        restored = self.manager.restore(s, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
      except Exception as e:  # pylint: disable=broad-except  (what a damaged file raises varies)
        damaged.append((s, e))
        continue
      if damaged:
        self._report_damaged(damaged, s, say, set_aside)
      self.restored_step = s
      return restored.state, restored.data
    raise UserError(f"No checkpoint in {self.directory} reads back whole ({_steps(damaged)} "
                    f"damaged; {brief(damaged[0][1])}): restore the folder from a backup, or "
                    "move it aside to train from scratch.")

  def _report_damaged(self, damaged, good, say, set_aside):
    where = ""
    if set_aside:
      target = self.directory + DAMAGED
      for s, _ in damaged if jax.process_index() == 0 else ():  # one host moves the shared files
        os.makedirs(target, exist_ok=True)
        dest, n = os.path.join(target, str(s)), 1
        while os.path.exists(dest):
          dest, n = os.path.join(target, f"{s}.{n}"), n + 1
        shutil.move(os.path.join(self.directory, str(s)), dest)
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices("gan_jax: damaged checkpoints moved")
      self.manager.reload()
      where = f", moved to {target}"
    text = (f"{_steps(damaged).capitalize()} in {self.directory} "
            f"{'is' if len(damaged) == 1 else 'are'} damaged ({brief(damaged[0][1])}){where}; "
            f"using the checkpoint of step {good} instead.")
    (say or (lambda t: print(t, file=sys.stderr)))(text)

  def wait(self):
    """Blocks until the last write is on disk; CheckpointWriteFailed if it did not get there."""
    self._confirm()

  def _confirm(self):
    step, self.pending = self.pending, None
    if step is None:
      return
    try:
      self.manager.wait_until_finished()  # re-raises what failed in the background thread
    except Exception as e:  # pylint: disable=broad-except
      _raise_peer_failure(e)
      raise self._write_failed(step, e) from None
    # orbax writes step.orbax-checkpoint-tmp-* and renames it when every part is committed
    if not os.path.isdir(os.path.join(self.directory, str(step))):
      raise self._write_failed(step, "it was never finalized")

  def _write_failed(self, step, cause):
    self.failed = True
    intact = [s for s in _steps_on_disk(self.directory) if s != step]
    kept = (f"the checkpoint of step {max(intact)} is intact" if intact
            else "no earlier checkpoint was written")
    return CheckpointWriteFailed(
        f"Training stopped: writing the checkpoint of step {step} to {self.directory} failed "
        f"({brief(cause)}); {kept} (free space or fix the folder's permissions, then run the "
        "same command to resume).")

  def close(self):
    """Waits for the last write (a failure is raised unless one was already reported)."""
    try:
      if not self.failed:
        self._confirm()
    finally:
      try:
        self.manager.close()
      except Exception:  # pylint: disable=broad-except  (orbax re-raises the failure reported)
        if not self.failed:
          raise


def _raise_peer_failure(error):
  """A write of a multi-process run fails in a collective when another process has died: that is
  no disk fault, and train reports it as what it is (PeerLost)."""
  if jax.process_count() > 1 and isinstance(error, jax.errors.JaxRuntimeError):
    raise error


def abstract_like(state, sharding):
  """ShapeDtypeStructs of `state` placed by `sharding` (one for every leaf, or a tree of them),
  the restore target."""
  if isinstance(sharding, jax.sharding.Sharding):
    sharding = jax.tree.map(lambda _: sharding, state)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      state, sharding)


def _steps_on_disk(directory):
  """Finalized checkpoints: orbax renames a step's folder to its number once it is whole."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def _steps(damaged):
  listed = ", ".join(str(s) for s, _ in damaged)
  return (f"the checkpoint of step {listed}" if len(damaged) == 1
          else f"the checkpoints of steps {listed}")


def _quiet_orbax():
  """Keeps a fault to the one sentence the Checkpointer says about it. orbax logs each failure
  it raises with a traceback (ERROR on the absl logger); after a failed read or write, the
  operations it abandons still end: asyncio logs the tasks' exceptions ("never retrieved"), and
  tensorstore's callbacks into the event loop orbax has closed raise RuntimeErrors that Python
  prints through sys.unraisablehook, dozens of tracebacks. Those records and only those are
  dropped."""
  for name, drop in (("absl", _orbax_error), ("asyncio", _orbax_task)):
    logger = logging.getLogger(name)
    if not any(getattr(f, "gan_jax_quiet", False) for f in logger.filters):
      drop.gan_jax_quiet = True
      logger.addFilter(drop)
  previous = sys.unraisablehook
  if not getattr(previous, "gan_jax_quiet", False):
    def hook(unraisable):
      if not (isinstance(unraisable.exc_value, RuntimeError)
              and str(unraisable.exc_value) == "Event loop is closed"):
        previous(unraisable)
    hook.gan_jax_quiet = True
    sys.unraisablehook = hook


_ORBAX = os.path.dirname(ocp.__file__)


def _orbax_error(record):
  return not (record.levelno >= logging.ERROR and record.pathname.startswith(_ORBAX))


def _orbax_task(record):
  return not (record.getMessage().startswith("Task exception was never retrieved")
              and _ORBAX in record.getMessage())
