"""`gan-jax sample`: draw from a trained run into a PNG grid or an .npz of arrays."""
import os

import numpy as np

from gan_jax import experiment, reporting
from gan_jax.errors import UserError


def sample(workdir, num, out, label=None, seed=0, ema=True, truncation=None,
           truncation_cutoff=None):
  """Writes `num` samples of the latest checkpoint to `out` (.png or .npz); returns `out`.
  `truncation` (psi) and `truncation_cutoff` for games that track an average style."""
  exp, ckpt = experiment.load(workdir)
  try:
    if not exp.game.can_generate:
      raise UserError(f"{workdir} holds a {exp.config.game} run, which maps images to images "
                      f"rather than drawing from noise: use `gan-jax translate --workdir={workdir} "
                      "--input=IMAGES --out=FOLDER`.")
    classes = exp.spec.num_classes if exp.config.model.conditional else 0
    if label is not None and not classes:
      raise UserError(f"--label needs a conditional model, and {workdir} trained an "
                      "unconditional one: drop --label.")
    if label is not None and not 0 <= label < classes:
      raise UserError(f"--label={label} is out of range: this model has classes 0..{classes - 1}.")
    truncate = {}
    if truncation is not None:
      if not getattr(exp.game, "can_truncate", False):
        raise UserError(f"--truncation needs a model with an average style to pull toward "
                        f"(StyleGAN2), and {workdir} trained {exp.config.model.name}: drop it.")
      truncate = dict(truncation_psi=truncation, truncation_cutoff=truncation_cutoff)
    state = experiment.restore_latest(exp, ckpt)
  finally:
    ckpt.close()
  samples, labels = exp.game.generate(state, num, seed=seed, labels=label, ema=ema, **truncate)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  if out.endswith(".npz"):
    arrays = {"samples": samples.astype(np.float32)}
    if classes:
      arrays["labels"] = labels
    np.savez(out, **arrays)
  else:
    reporting.save_picture(out, reporting.sample_picture(samples))
  return out
