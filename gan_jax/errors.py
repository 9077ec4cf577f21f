"""The exceptions the CLI turns into one sentence: UserError (bad input, exit code 2) and
RunStopped (a run stopped by a fault, exit code 1)."""


class UserError(Exception):
  """Bad input the user can fix: the message says what is wrong and how to fix it."""


class RunStopped(Exception):
  """A fault stopped the run; the message names the step and the checkpoint left intact."""


class TrainingDiverged(RunStopped):
  """A loss became non-finite."""


class CheckpointWriteFailed(RunStopped):
  """Writing a checkpoint failed (disk full, permission denied), at once or in the background."""


class HealthAlarm(RunStopped):
  """The health monitor saw a failing run (D winning, mode collapse, ...) under
  `train.health=stop`."""


def checkpoint_left(step):
  """What a stopped run leaves to resume from: the checkpoint of `step`, or None yet."""
  return (f"the checkpoint of step {step} is intact" if step is not None
          else "no checkpoint had been written yet")
