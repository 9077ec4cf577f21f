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
