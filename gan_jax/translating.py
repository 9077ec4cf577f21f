"""`gan-jax translate`: a trained translator applied to a user's images, one PNG per image out.

`translate` loads a run and asks its game for the image -> image function; `translate_images`,
the file side, knows nothing of models: it is given `fn`, a jitted image -> image function
(float32 NHWC in [-1, 1] both ways). It scans and checks every input before writing anything:

- Input: one file (any format pillow reads), or a folder searched recursively like a training
  folder (hidden entries skipped, extensions from `images.EXTENSIONS`).
- Output: `out_dir/<relative sub-folders>/<stem>.png`, at the input's own size. An `out_dir`
  inside the input folder is fine: the folder is scanned first and files under `out_dir` are left
  out (so a rerun does not translate the last run's outputs). Refused before writing: an output
  that would overwrite an input (e.g. `out_dir` = the input folder), and two inputs that map to one
  output (`x.jpg` and `x.png` side by side).
- Channels: converted like the training data (`images._to_channels`: palette expanded, alpha over
  white, 16-bit gray scaled). A colour file for a 1-channel model, or a gray one for a 3-channel
  model, is refused for all files at once. Gray = modes 1, L, LA, I*, F, and palettes (P, PA)
  whose every entry has R = G = B; everything else (RGB, RGBA, CMYK, colour palettes...) is colour.
- Unreadable files are left out and reported (count, first paths); none readable is an error.
- EXIF orientation is applied, so an output is oriented as viewers show its input (the PNG
  written carries no EXIF to rotate it back).
- Provenance: `translate` labels every PNG with the run's (`provenance.of_model`, no seed).
"""
import concurrent.futures
import dataclasses
import os

import numpy as np
import tqdm
from PIL import Image, ImageOps

from gan_jax import reporting
from gan_jax.data import folder, images
from gan_jax.errors import UserError

WORKERS = 8  # threads opening headers: pillow's header reads are mostly I/O
GRAY_MODES = ("1", "L", "LA", "La", "F")  # plus every "I..." mode (16/32-bit gray)


def translate(workdir, input_path, out_dir, direction=None, ema=True, progress=True,
              seed_index=0):
  """Translates `input_path` (an image or a folder) with the latest checkpoint of `workdir`
  (run `seed_index` of a train.num_seeds run)."""
  from gan_jax import api, provenance  # pylint: disable=g-import-not-at-top  (jax is slow)
  model = api.load(workdir, ema=ema, seed_index=seed_index, needs="translate")
  fn = model.image_fn(direction)
  return translate_images(input_path, out_dir, fn, model.channels, model.game.multiple, progress,
                          provenance.of_model(model))


@dataclasses.dataclass
class Report:
  """What a `translate_images` call did: output paths written, input relpaths skipped."""
  written: list
  skipped: list


def translate_images(input_path, out_dir, fn, channels, multiple, progress=True,
                     provenance=None):
  """Translates the image `input_path` (or every image in the folder) into PNGs in `out_dir`,
  each carrying the `provenance.label` fields `provenance` (None: none).

  `fn` maps float32 [1, H, W, channels] in [-1, 1] to float32 [1, H, W, 1 or 3] in [-1, 1], with
  H and W multiples of `multiple`: each image is padded up to them and the result cropped back.
  Returns a `Report`; raises `UserError` (nothing written) on input the user can fix.
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, not {channels!r}")
  root, relpaths = find_inputs(input_path, out_dir)
  outputs = [output_path(out_dir, p) for p in relpaths]
  check_outputs(root, relpaths, outputs, out_dir)
  with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
    colours = list(pool.map(is_colour, [os.path.join(root, p) for p in relpaths]))
  skipped = [p for p, c in zip(relpaths, colours) if c is None]
  if len(skipped) == len(relpaths):
    none_readable(input_path, skipped, "read")
  check_channels(root, relpaths, colours, channels)

  written = []
  todo = [(p, o) for p, o, c in zip(relpaths, outputs, colours) if c is not None]
  for relpath, out in tqdm.tqdm(todo, desc="translating", unit="image", disable=not progress):
    try:
      pixels = read_pixels(os.path.join(root, relpath), channels)
    except Exception:  # passed the header check but does not decode (e.g. a truncated JPEG)
      skipped.append(relpath)
      continue
    result = translate_array(pixels, fn, multiple)
    save_png(out, result, provenance)
    written.append(out)
  if not written:
    none_readable(input_path, skipped, "decoded")
  if skipped:
    skipped.sort()
    folder.report_left_out(f"{len(skipped)} of {len(relpaths)} image files in {input_path} that "
                           "pillow cannot read", skipped)
  return Report(written, skipped)


def output_path(out_dir, relpath):
  """Where the output of input `relpath` goes: its sub-folders and stem, as a PNG."""
  return os.path.join(out_dir, os.path.splitext(relpath)[0] + ".png")


def read_pixels(path, channels):
  """uint8 [H, W, channels] of an image file, oriented as viewers show it and converted like the
  training data (`images._to_channels`)."""
  with Image.open(path) as image:
    pixels = np.asarray(images._to_channels(ImageOps.exif_transpose(image), channels))
  return pixels.reshape(*pixels.shape[:2], channels)


def translate_array(pixels, fn, multiple):
  """uint8 [H, W, C] -> uint8 [H, W, C'] through `fn`, padded to multiples of `multiple`."""
  x = pixels.astype(np.float32) / 127.5 - 1.0
  return reporting.to_uint8(translate_batch(x[None], fn, multiple)[0])


def translate_batch(x, fn, multiple):
  """float32 [N, H, W, C] in [-1, 1] -> `fn`'s [N, H, W, C'], the batch padded to multiples of
  `multiple` on the way in and cropped back on the way out."""
  h, w = x.shape[1:3]
  padded, (top, left) = pad_to_multiple(x, multiple)
  y = np.asarray(fn(padded), dtype=np.float32)
  if y.ndim != 4 or y.shape[:3] != padded.shape[:3] or y.shape[3] not in (1, 3):
    raise ValueError(f"fn turned images of shape {padded.shape} into {y.shape}: it must keep "
                     "the batch, height and width, and give 1 or 3 channels")
  return y[:, top:top + h, left:left + w]


def pad_to_multiple(x, multiple):
  """(x [..., H, W, C] padded up to multiples of `multiple`, (top, left) offsets of x in it).

  The pad is split evenly between the two sides, so the picture stays centered and neither border
  gets all the padding. Reflect padding continues the picture's texture, which a generator
  translates into something plausible that we then crop away; zeros or a constant would be a hard
  edge that convolutions carry a few pixels into the picture. Reflection cannot fill a pad as long
  as the picture (it would need mirrored copies of mirrors), so a small side is edge-padded.
  """
  pads = []
  for n in x.shape[-3:-1]:
    total = -n % multiple
    pads.append((total // 2, total - total // 2))
  for axis, (before, after) in zip((x.ndim - 3, x.ndim - 2), pads):
    if before or after:
      mode = "reflect" if max(before, after) < x.shape[axis] else "edge"
      width = [(0, 0)] * x.ndim
      width[axis] = (before, after)
      x = np.pad(x, width, mode=mode)
  return x, (pads[0][0], pads[1][0])


def none_readable(input_path, relpaths, what):
  if not os.path.isdir(input_path):
    raise UserError(f"{input_path} could not be {what}: check that it is a valid png, jpg, webp "
                    "or bmp image.")
  raise UserError(f"None of the {len(relpaths)} image files in {input_path} could be {what} "
                  f"(e.g. {relpaths[0]}): check that they are valid png, jpg, webp or bmp images.")


def find_inputs(input_path, out_dir, flag="input"):
  """(root, sorted relpaths of the inputs under it); a single file is its own folder's only one.
  `flag`: the verb's name for the input (--input, --image)."""
  if not os.path.exists(input_path):
    raise UserError(f"--{flag}={input_path} does not exist: pass --{flag}=IMAGE or "
                    f"--{flag}=FOLDER of images.")
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise UserError(f"--out={out_dir} is a file: pass --out=FOLDER, a folder for the outputs.")
  if not os.path.isdir(input_path):
    return os.path.dirname(input_path) or ".", [os.path.basename(input_path)]
  if os.path.realpath(out_dir) == os.path.realpath(input_path):
    raise UserError(f"--out={out_dir} is the input folder itself: pass another folder, so the "
                    "outputs do not overwrite or mix with the inputs.")
  relpaths, others = folder.walk_images(input_path)
  # An out_dir inside the input folder holds earlier outputs, not inputs.
  inside = os.path.realpath(out_dir) + os.sep
  ours = [p for p in relpaths if os.path.realpath(os.path.join(input_path, p)).startswith(inside)]
  if ours:
    relpaths = sorted(set(relpaths) - set(ours))
  if not relpaths:
    kinds = ", ".join(e[1:] for e in images.EXTENSIONS)
    content = f"holds no {kinds} files (only {others} others)" if others else "is empty"
    if ours:
      content = f"holds no images outside the output folder {out_dir}"
    raise UserError(f"Input folder {input_path} {content}: pass --{flag}=IMAGE or a folder of "
                    "images.")
  return input_path, relpaths


def check_outputs(root, relpaths, outputs, out_dir, doing="Translating", done="written"):
  """Refuses, before anything is written, outputs that would overwrite inputs or each other.
  `doing`, `done`: the verb's words ("Projecting", "projected")."""
  sources = {}
  for relpath, out in zip(relpaths, outputs):
    if out in sources:
      raise UserError(f"{os.path.join(root, sources[out])} and {os.path.join(root, relpath)} would "
                      f"both be {done} to {out}: rename one of them.")
    sources[out] = relpath
  inputs = {os.path.realpath(os.path.join(root, p)) for p in relpaths}
  for relpath, out in zip(relpaths, outputs):
    if os.path.realpath(out) in inputs:
      raise UserError(f"{doing} {os.path.join(root, relpath)} would overwrite the input "
                      f"{out}: pass another --out folder than {out_dir}.")


def is_colour(path):
  """True for a colour image, False for a gray one, None when pillow cannot read the file.

  Opens the header only (plus pillow's cheap `verify`, which for PNG checks the chunk checksums).
  """
  try:
    with Image.open(path) as image:
      mode, palette = image.mode, image.palette  # as read from the header: nothing decoded
      image.verify()
  except Exception:  # pillow raises many types for bad files; any of them means "skip it"
    return None
  if mode in GRAY_MODES or mode.startswith("I"):
    return False
  if mode in ("P", "PA") and palette is not None:
    return not _gray_palette(palette)
  return True


def _gray_palette(palette):
  """Whether every entry of a palette as the file stores it (`getpalette` would decode the
  pixels) has R = G = B; its layout is the raw mode, e.g. RGB for PNG, BGRX for BMP."""
  layout = palette.rawmode or palette.mode
  if "R" not in layout:
    return True  # an L palette
  data = np.frombuffer(bytes(palette.palette), np.uint8)
  entries = data[:len(data) // len(layout) * len(layout)].reshape(-1, len(layout))
  r, g, b = (entries[:, layout.index(c)] for c in "RGB")
  return bool(np.all((r == g) & (g == b)))


def check_channels(root, relpaths, colours, channels, does="translates"):
  """Refuses colour files for a gray model and gray files for a colour one, all named at once.
  `does`: what the model does with images ("translates", "draws")."""
  want_colour = channels == 3
  wrong = [p for p, c in zip(relpaths, colours) if c is not None and c != want_colour]
  if not wrong:
    return
  first = os.path.join(root, wrong[0])
  count = f"{first}" + (f" and {len(wrong) - 1} other files" if len(wrong) > 1 else "")
  if want_colour:
    raise UserError(f"{count} {'are' if len(wrong) > 1 else 'is'} grayscale but this model "
                    f"{does} colour images (3 channels): give it colour images, or convert them "
                    "to RGB first.")
  raise UserError(f"{count} {'are' if len(wrong) > 1 else 'is'} in colour but this model {does} "
                  "grayscale images (1 channel): give it grayscale images, or convert them to "
                  "gray (mode L) first.")


def save_png(path, pixels, provenance=None):
  """uint8 [H, W, C] -> an L, LA, RGB or RGBA PNG carrying the `provenance.label` fields
  `provenance`, written whole (via a hidden temporary file: a leftover of an interrupted run is
  never an input) or not at all."""
  reporting.write_file(path, reporting.encode_picture(pixels, provenance), whole=True)
