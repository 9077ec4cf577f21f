"""The one exception type the CLI turns into a one-sentence message and exit code 2."""


class UserError(Exception):
  """Bad input the user can fix: the message says what is wrong and how to fix it."""


class TrainingDiverged(Exception):
  """A loss became non-finite; the message names the step and the checkpoint left intact."""
