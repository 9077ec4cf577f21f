"""`gan-jax sample`: draw from a trained run into a PNG grid or an .npz of arrays, a
style-mixing grid (models with per-layer styles), or a walk between latents as an animated GIF
and a PNG strip."""
import os

import numpy as np
from PIL import Image

from gan_jax import api, reporting
from gan_jax.errors import UserError

GIF_MIN_SIDE = 128  # small images are enlarged (nearest neighbour) so the animation is visible
GIF_FRAME_MS = 40


def open_run(workdir, label, truncation, truncation_cutoff, seed_index=0):
  """(experiment, latest state of run `seed_index` (of a train.num_seeds run), number of
  classes, truncation arguments) of a run to draw from, opened by `api.load`; one UserError for
  a request the run cannot serve."""
  model = api.load(workdir, seed_index=seed_index, needs="sample")
  model.check_labels(label)
  truncate = api.truncation_args(model.exp, workdir, truncation, truncation_cutoff)
  return model.exp, model.state, model.num_classes, truncate


def sample(workdir, num, out, label=None, seed=0, ema=True, truncation=None,
           truncation_cutoff=None, seed_index=0):
  """Writes `num` samples of the latest checkpoint to `out` (.png or .npz); returns `out`.
  `truncation` (as the game defines it) and `truncation_cutoff` (per-layer styles);
  `seed_index`: which run of a train.num_seeds run."""
  exp, state, classes, truncate = open_run(workdir, label, truncation, truncation_cutoff,
                                        seed_index)
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


def parse_styles(text, groups, num_ws):
  """`coarse`, `middle`, `fine` (a game's `style_groups`) or ws `I-J` / `I` -> a list of ws."""
  first, _, last = text.partition("-")
  if text in groups:
    picked = list(groups[text])
  elif first.isdigit() and (last.isdigit() or not last):
    picked = list(range(int(first), int(last or first) + 1))
  else:
    picked = None
  if not picked or picked[-1] >= num_ws:
    raise UserError(f"--mix={text} names no styles of this generator's {num_ws} ws: use coarse, "
                    f"middle, fine or ws I-J with 0 <= I <= J <= {num_ws - 1} (fine needs 64 "
                    "pixels or more).")
  return picked


def style_mix(workdir, out, styles="coarse", num=5, seed=0, label=None, ema=True,
              truncation=None, truncation_cutoff=None, seed_index=0):
  """The StyleGAN papers' style-mixing figure as a PNG: the top row shows `num` column sources
  (latents of seed + 1), the left column `num` row sources (latents of seed, the first `num`
  images of `sample --seed`); each cell is its row's source with the ws of `styles` taken from
  its column's. Returns `out`."""
  exp, state, _, truncate = open_run(workdir, label, truncation, truncation_cutoff, seed_index)
  game = exp.game
  if not game.style_groups():
    raise UserError(f"--mix swaps per-layer styles, and {workdir}'s {exp.config.model.name} "
                    "has none: drop --mix.")
  rows, _ = game.latents(state, num, seed, label, ema, **truncate)
  picked = parse_styles(styles, game.style_groups(), rows.shape[1])
  cols, _ = game.latents(state, num, seed + 1, label, ema, **truncate)
  cells = np.repeat(rows[:, None], num, axis=1)
  cells[:, :, picked] = cols[None, :, picked]
  images = game.render(state, np.concatenate([cols, rows, cells.reshape((-1,) + rows.shape[1:])]),
                       ema=ema)
  col_images, row_images, cell_images = np.split(images, [num, 2 * num])
  tiles = [np.ones_like(images[0])] + list(col_images)  # a blank corner
  for r in range(num):
    tiles += [row_images[r]] + list(cell_images[r * num:(r + 1) * num])
  reporting.save_picture(out, reporting.image_grid(np.stack(tiles), cols=num + 1))
  return out


def interpolation(workdir, out, frames=16, num=4, seed=0, label=None, ema=True,
                  truncation=None, truncation_cutoff=None, seed_index=0):
  """A closed walk through `num` latents of `seed` (the first `num` images of `sample --seed`),
  `frames` frames from each to the next (as the game's `interpolate` draws them), as an
  animated GIF at `out` and a PNG strip beside it, one row per leg. Returns both paths."""
  exp, state, _, truncate = open_run(workdir, label, truncation, truncation_cutoff, seed_index)
  if len(exp.spec.shape) != 3:
    raise UserError(f"--interpolate animates images, and {workdir} learned 2D points: drop it.")
  game = exp.game
  codes, labels = game.latents(state, num, seed, label, ema, **truncate)
  t = (np.arange(frames) / frames).reshape((frames,) + (1,) * (codes.ndim - 1))
  walk = np.concatenate([game.interpolate(codes[i][None], codes[(i + 1) % num][None], t)
                         for i in range(num)])
  images = game.render(state, walk, np.repeat(labels, frames), ema=ema)
  pixels = reporting.to_uint8(images)
  pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
  scale = max(1, -(-GIF_MIN_SIDE // max(pixels.shape[1:3])))
  pictures = [Image.fromarray(p).resize((p.shape[1] * scale, p.shape[0] * scale), Image.NEAREST)
              for p in pixels]
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=GIF_FRAME_MS, loop=0)
  strip = os.path.splitext(out)[0] + ".png"
  reporting.save_picture(strip, reporting.image_grid(images, cols=frames))
  return out, strip
