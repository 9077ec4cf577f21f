"""The exceptions the CLI turns into one sentence, UserError (bad input, exit code 2) and
RunStopped (a run stopped by a fault, exit code 1), and helpers for the sentences they say."""


class UserError(Exception):
  """Bad input the user can fix: the message says what is wrong and how to fix it."""


class RunStopped(Exception):
  """A fault stopped the run; the message names the step and the checkpoint left intact."""


class TrainingDiverged(RunStopped):
  """A loss became non-finite."""


class CheckpointWriteFailed(RunStopped):
  """Writing a checkpoint failed (disk full, permission denied), at once or in the background."""


class PeerLost(RunStopped):
  """A collective with the other processes of a multi-process run failed: one has likely died.
  The CLI exits at once instead of waiting for the dead process at shutdown."""


def brief(error):
  """An error's type and first line, short enough for the one line the user reads."""
  if isinstance(error, str):
    return error
  text = str(error).strip().splitlines()[0] if str(error).strip() else ""
  text = text if len(text) <= 100 else text[:97] + "..."
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


class HealthAlarm(RunStopped):
  """The health monitor saw a failing run (D winning, mode collapse, ...) under
  `train.health=stop`."""


def checkpoint_left(step):
  """What a stopped run leaves to resume from: the checkpoint of `step`, or None yet."""
  return (f"the checkpoint of step {step} is intact" if step is not None
          else "no checkpoint had been written yet")
