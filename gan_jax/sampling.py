"""`gan-jax sample` and `gan-jax interpolate`: draw from a trained run into a PNG grid or an .npz
(images and the codes behind them), a style-mixing grid (models with per-layer styles), a walk
between latents as an animated GIF, a PNG strip or an .npz, or (video runs) clips as a GIF, an
MP4 or an .npz. Every picture and clip carries its provenance (`provenance.of_model`), every
.npz a `provenance` entry (JSON of the same fields)."""
import json
import os

import numpy as np

from gan_jax import api, directions as directions_lib, latents as latents_lib, provenance
from gan_jax import reporting
from gan_jax.errors import UserError
from gan_jax.latents import Latents

GIF_MIN_SIDE = 128  # small images are enlarged (nearest neighbour) so the animation is visible
GIF_FRAME_MS = 40
WALK_FORMATS = (".gif", ".png", ".npz")
CLIP_FORMATS = (".gif", ".mp4")  # what clips are written as, beside .npz


def open_run(workdir, label, truncation, truncation_cutoff, seed_index=0, ema=True):
  """(the run's Model, truncation arguments) of a run to draw from, opened by `api.load`; one
  UserError for a request the run cannot serve."""
  model = api.load(workdir, ema=ema, seed_index=seed_index, needs="sample")
  model.check_labels(label)
  return model, api.truncation_args(model.exp, workdir, truncation, truncation_cutoff)


def sample(workdir, num, out, label=None, seed=0, ema=True, truncation=None,
           truncation_cutoff=None, seed_index=0, latent=None, direction=None, strength=1.0,
           texts=None, frames=None, fps=None):
  """Writes `num` samples of the latest checkpoint to `out` (.png or .npz, which also holds the
  codes behind them: a latent file); returns `out`. `truncation` (as the game defines it) and
  `truncation_cutoff` (per-layer styles); `seed_index`: which run of a train.num_seeds run.
  latent: a latent file (`project`, `sample --out=X.npz`) to draw instead of `num` new codes.
  direction: "dirs.npz:I", moved along by `strength` sigmas. texts: captions of a text-to-image
  run, `num` samples each (a row each in the PNG, captioned; the .npz's `texts` names each
  sample's). Video runs write clips (`sample_clips`), `frames` frames long."""
  model, truncate = open_run(workdir, label, truncation, truncation_cutoff, seed_index, ema)
  if model.frames or frames is not None or fps is not None or out.endswith(CLIP_FORMATS):
    if model.frames and (latent or direction or texts):
      raise UserError(f"{workdir} draws clips from new codes: drop --latent, --direction and "
                      "--text.")
    return sample_clips(model, num, out, label, seed, frames, fps, **truncate)
  if model.text_dim and not (texts or latent):
    raise UserError(f"{workdir} draws from captions: say what to draw with --text='a red seven' "
                    "(or --text_file=prompts.txt, a caption a line).")
  embeddings = model.encode(texts) if texts else None  # one UserError on a run without captions
  if latent:
    codes = latents_lib.load(latent)
    model.check_latents(codes)
  else:
    labels = label if embeddings is None else np.repeat(embeddings, num, axis=0)
    codes = model.latents(num * len(texts) if texts else num, seed, labels, **truncate)
  if direction:
    codes = directions_lib.move(model, codes, *directions_lib.parse(direction), strength)
  samples = model.render(codes)
  made = provenance.of_model(model, None if latent else seed)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  if out.endswith(".npz"):
    codes.save(out, samples=samples, workdir=os.path.abspath(workdir), step=model.step,
               texts=np.repeat(texts, num) if texts else None, provenance=json.dumps(made))
  elif texts:
    reporting.save_picture(out, reporting.captioned_grid(samples, texts, num), made)
  else:
    reporting.save_picture(out, reporting.sample_picture(samples), made)
  return out


def sample_clips(model, num, out, label=None, seed=0, frames=None, fps=None, **truncate):
  """`num` clips of a video run to `out`: an .npz of `samples` (float32 [N, T, H, W, C] in
  [-1, 1]) and `labels`, or a GIF / MP4 of their grid playing at `reporting.FPS` (times `fps`,
  so a clip rendered at a higher frame rate plays at the same speed)."""
  if not model.frames:
    raise UserError(f"--out={out} writes clips, and {model.workdir} draws images: use .png or "
                    ".npz." if out.endswith(CLIP_FORMATS) else
                    f"--frames and --fps shape clips, and {model.workdir} draws images: drop "
                    "them.")
  if not out.endswith(CLIP_FORMATS + (".npz",)):
    raise UserError(f"--out={out} must end in .gif or .mp4 (the clips playing in a grid) or .npz "
                    "(arrays) for a video run.")
  clips = model.sample(num, seed, label, frames=frames, fps=fps, **truncate)
  made = provenance.of_model(model, seed)
  if out.endswith(".npz"):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    labels = model.game.noise(num, seed, label)[-1]
    np.savez(out, samples=clips, labels=labels, workdir=os.path.abspath(model.workdir),
             step=model.step, seed=seed, provenance=json.dumps(made))
  else:
    reporting.save_animation(out, reporting.clip_grid(clips), reporting.FPS * (fps or 1), made)
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
  model, truncate = open_run(workdir, label, truncation, truncation_cutoff, seed_index, ema)
  game, state = model.game, model.state
  if not game.style_groups():
    raise UserError(f"--mix swaps per-layer styles, and {workdir}'s {model.config.model.name} "
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
  reporting.save_picture(out, reporting.image_grid(np.stack(tiles), cols=num + 1),
                         provenance.of_model(model, (seed, seed + 1)))  # rows, columns
  return out


def walk(model, keyframes, steps, space=None, closed=False):
  """The frames of a walk through `keyframes` (Latents), `steps` frames from each to the next
  (the last keyframe ends it, or with `closed` the walk returns to the first): codes in `space`
  (default the model's furthest; codes from further spaces move it on), slerp in z, lerp in w
  and w+; labels that differ are walked as class weights. Returns (images, the frames' Latents)."""
  space = latents_lib.furthest(space or model.spaces[-1], keyframes.space)
  keyframes = model.to_space(keyframes, space)
  ends = np.arange(len(keyframes) if closed else len(keyframes) - 1)
  t = (np.arange(steps) / steps).reshape((steps,) + (1,) * (keyframes.codes.ndim - 1))
  step = latents_lib.slerp if space == "z" else latents_lib.lerp
  points, labels = keyframes.codes, keyframes.labels
  walking = model.num_classes and (labels.ndim == 2 or len(set(labels.tolist())) > 1)
  if walking and labels.ndim == 1:
    labels = np.eye(model.num_classes, dtype=np.float32)[labels]
  codes, walked = [], []
  for i in ends:
    j = (i + 1) % len(keyframes)
    codes.append(step(points[i][None], points[j][None], t))
    walked.append(latents_lib.lerp(labels[i], labels[j], t.reshape(-1, 1)) if walking
                  else np.repeat(labels[i:i + 1], steps, 0))
  if not closed:  # the walk ends on its last keyframe
    codes.append(points[-1:])
    walked.append(labels[-1:])
  frames = Latents(space, np.concatenate(codes), np.concatenate(walked))
  return model.render(frames), frames


def save_walk(out, images, frames, steps, made=None, **info):
  """A walk's frames as an animated GIF (small images enlarged), a PNG strip with a row per leg
  of `steps` frames (an open walk's rows end on the next leg's first frame), or an .npz of the
  images and their codes, by `out`'s ending; `made`: the `provenance.label` fields the file
  carries."""
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  if out.endswith(".npz"):
    frames.save(out, samples=images, provenance=json.dumps(made) if made else None, **info)
  elif out.endswith(".png"):
    cols = steps + len(images) % steps  # open walks: one more frame, the last keyframe
    rows = [images[i:i + cols] for i in range(0, len(images) - cols + 1, steps)]
    reporting.save_picture(out, reporting.image_grid(np.concatenate(rows), cols=cols), made)
  else:
    reporting.save_animation(out, enlarged(reporting.to_uint8(images)), 1000 / GIF_FRAME_MS, made)
  return out


def enlarged(frames):
  """uint8 frames [F, H, W, C] enlarged (nearest neighbour, by a whole factor) until their longer
  side is GIF_MIN_SIDE or more, so an animation of small images is visible."""
  scale = max(1, -(-GIF_MIN_SIDE // max(frames.shape[1:3])))
  return frames.repeat(scale, 1).repeat(scale, 2)


def interpolation(workdir, out, frames=16, num=4, seed=0, label=None, ema=True,
                  truncation=None, truncation_cutoff=None, seed_index=0):
  """`sample --interpolate`: a closed walk through `num` latents of `seed` (the first `num`
  images of `sample --seed`), `frames` frames from each to the next, as an animated GIF at
  `out` and a PNG strip beside it, one row per leg. Returns both paths."""
  model, truncate = open_run(workdir, label, truncation, truncation_cutoff, seed_index, ema)
  _require_images(model)
  images, codes = walk(model, model.latents(num, seed, label, **truncate), frames, closed=True)
  strip = os.path.splitext(out)[0] + ".png"
  made = provenance.of_model(model, seed)
  for path in (out, strip):
    save_walk(path, images, codes, frames, made)
  return out, strip


def interpolate(workdir, seeds, out, steps=16, space=None, label=None, labels=None, ema=True,
                truncation=None, seed_index=0):
  """`gan-jax interpolate`: a walk through `seeds` (ints: the first sample of `sample --seed=S`;
  paths: every code of a latent file), `steps` frames from each to the next, written to `out`
  (.gif, .png strip with a row per leg, or .npz). label: one class for every keyframe;
  labels: one per keyframe, walked between. Returns `out`."""
  if not out.endswith(WALK_FORMATS):
    raise UserError(f"--out={out} must end in .gif (an animation), .png (a strip) or .npz "
                    "(images and codes).")
  if steps < 1:
    raise UserError(f"--steps={steps} must be a positive number of frames per leg.")
  if label is not None and labels is not None:
    raise UserError("--label gives every keyframe one class and --labels one each: give one.")
  model, truncate = open_run(workdir, label, truncation, None, seed_index, ema)
  _require_images(model)
  if space:
    model.check_space(space)
  keyframes = _keyframes(model, seeds, label, truncate, space)
  if len(keyframes) < 2:
    raise UserError(f"--seeds={','.join(map(str, seeds))} gives one latent: a walk needs two "
                    "or more (--seeds=A,B).")
  if labels is not None:
    if len(labels) != len(keyframes):
      raise UserError(f"--labels gives {len(labels)} classes for {len(keyframes)} keyframes: "
                      "give one per keyframe.")
    model.check_labels(labels)
    keyframes = Latents(keyframes.space, keyframes.codes, np.asarray(labels, np.int32))
  images, frames = walk(model, keyframes, steps, space)
  ints = [int(s) for s in seeds if not isinstance(s, str) or s.lstrip("-").isdigit()]
  made = provenance.of_model(model, ints if len(ints) == len(seeds) else None)  # files: no seed
  return save_walk(out, images, frames, steps, made, workdir=os.path.abspath(workdir),
                   step=model.step)


def _keyframes(model, seeds, label, truncate, space):
  """The codes `seeds` name, carried into one space."""
  found = []
  for seed in seeds:
    if isinstance(seed, str) and not seed.lstrip("-").isdigit():
      codes = latents_lib.load(seed)
      model.check_latents(codes)
      if label is not None:
        codes = Latents(codes.space, codes.codes, np.full(len(codes), label, np.int32))
    else:
      codes = model.latents(1, int(seed), label, space=space, **truncate)
    found.append(codes)
  space = latents_lib.furthest(*(c.space for c in found))
  return latents_lib.concatenate([model.to_space(c, space) for c in found])


def _require_images(model):
  if len(model.exp.spec.shape) != 3:
    raise UserError(f"A walk animates images, and {model.workdir} learned {model.learned}: "
                    "sample them instead.")
