"""`gan-jax upscale`: a trained super-resolution G applied to a user's pictures, one PNG each.

The file side is `translating`'s (inputs found and checked before anything is written, outputs
`out_dir/<relative sub-folders>/<stem>.png`, unreadable files left out and reported); what differs:

- Any size: a picture is cut into tiles of at most `tile` x `tile` input pixels, each read with
  `tile_pad` pixels of context on every side (mirrored at the picture's borders) that are cut away
  from the output, so seams do not show and a large picture fits in memory. Every tile of a
  picture has one shape (the last row and column of tiles are shifted inwards to overlap the ones
  before), so one compiled G serves the whole picture, and tiles of one shape go through G a few
  at a time.
- Any channels: a colour picture for a gray (1-channel) model has its luma (Y of YCbCr) upscaled
  by G and its chroma by bicubic; a gray picture for a colour model goes through as three equal
  channels and comes out gray. An alpha channel is not G's to invent: it is upscaled by bicubic
  and put back, so RGBA in gives RGBA out.
- Provenance: `upscale` labels every PNG with the run's (`provenance.of_model`, no seed).
"""
import numpy as np
import tqdm
from PIL import Image, ImageOps

from gan_jax import reporting, translating
from gan_jax.data import folder, images
from gan_jax.errors import UserError

TILES_AT_ONCE = 4  # tiles of one picture per call of G


def upscale(workdir, input_path, out_dir, tile=512, tile_pad=16, ema=True, progress=True,
            seed_index=0):
  """Upscales `input_path` (a picture or a folder) with the latest checkpoint of `workdir`."""
  check_tiling(tile, tile_pad)
  from gan_jax import api, provenance  # pylint: disable=g-import-not-at-top  (jax is slow)
  model = api.load(workdir, ema=ema, seed_index=seed_index, needs="upscale")
  return upscale_images(input_path, out_dir, model.image_fn(), model.game.scale, model.channels,
                        tile, tile_pad, progress, provenance.of_model(model))


def check_tiling(tile, tile_pad):
  if tile < 1:
    raise UserError(f"--tile={tile} must be a positive number of input pixels (e.g. 512).")
  if tile_pad < 0:
    raise UserError(f"--tile_pad={tile_pad} must be >= 0 (pixels of context around each tile).")


def upscale_images(input_path, out_dir, fn, scale, channels, tile=512, tile_pad=16,
                   progress=True, provenance=None):
  """Upscales the picture `input_path` (or every picture in the folder) into PNGs in `out_dir`,
  each carrying the `provenance.label` fields `provenance` (None: none).

  `fn` maps float32 [N, h, w, channels] in [-1, 1] to [N, h * scale, w * scale, channels].
  Returns a `translating.Report`; raises `UserError` (nothing written) on input the user can fix.
  """
  check_tiling(tile, tile_pad)
  root, relpaths = translating.find_inputs(input_path, out_dir)
  outputs = [translating.output_path(out_dir, p) for p in relpaths]
  translating.check_outputs(root, relpaths, outputs, out_dir, "Upscaling")
  written, skipped = [], []
  bar = tqdm.tqdm(list(zip(relpaths, outputs)), desc="upscaling", unit="image",
                  disable=not progress)
  for relpath, out in bar:
    try:
      picture = read_picture(f"{root}/{relpath}")
    except Exception:  # any failure of pillow's: a file that is not a readable picture
      skipped.append(relpath)
      continue
    result = upscale_picture(picture, fn, scale, channels, tile, tile_pad)
    translating.save_png(out, np.asarray(result).reshape(result.height, result.width, -1),
                         provenance)
    written.append(out)
  if not written:
    translating.none_readable(input_path, skipped, "read")
  if skipped:
    folder.report_left_out(f"{len(skipped)} of {len(relpaths)} image files in {input_path} that "
                           "pillow cannot read", sorted(skipped))
  return translating.Report(written, sorted(skipped))


def read_picture(path):
  """The picture at `path`, decoded and oriented as viewers show it (EXIF applied)."""
  with Image.open(path) as picture:
    picture = ImageOps.exif_transpose(picture)
    picture.load()
  return picture


def upscale_picture(picture, fn, scale, channels, tile=512, tile_pad=16):
  """A pillow picture of any mode -> its upscaled pillow picture (L, LA, RGB or RGBA)."""
  alpha = None
  if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info:
    rgba = picture.convert("RGBA")
    alpha = rgba.getchannel("A")
    picture = rgba.convert("L" if picture.mode in ("L", "LA", "La") else "RGB")
  elif picture.mode not in ("L", "RGB"):  # 16-bit gray scaled to 8 bits, as training data are
    gray = picture.mode.startswith(("I", "F", "1"))
    picture = images._to_channels(picture, 1 if gray else 3)  # pylint: disable=protected-access
  size = (picture.width * scale, picture.height * scale)
  run = lambda pixels: upscale_array(pixels, fn, scale, tile, tile_pad)
  if channels == 3:
    out = Image.fromarray(run(np.asarray(picture.convert("RGB"))))
    out = out if picture.mode == "RGB" else out.convert("L")
  elif picture.mode == "L":
    out = Image.fromarray(run(np.asarray(picture)[..., None])[..., 0])
  else:  # colour through a gray model: G for the luma, bicubic for the chroma
    y, cb, cr = picture.convert("YCbCr").split()
    y = Image.fromarray(run(np.asarray(y)[..., None])[..., 0])
    cb, cr = (c.resize(size, Image.Resampling.BICUBIC) for c in (cb, cr))
    out = Image.merge("YCbCr", (y, cb, cr)).convert("RGB")
  if alpha is not None:
    out.putalpha(alpha.resize(size, Image.Resampling.BICUBIC))
  return out


def tile_starts(size, tile):
  """Offsets of tiles of `tile` pixels covering `size`: the last one ends at the border."""
  return list(range(0, size - tile, tile)) + [size - tile]


def upscale_array(pixels, fn, scale, tile=512, tile_pad=16):
  """uint8 [H, W, C] -> uint8 [H * scale, W * scale, C] through `fn`, tile by tile."""
  x = pixels.astype(np.float32) / 127.5 - 1.0
  return reporting.to_uint8(upscale_float(x, fn, scale, tile, tile_pad))


def upscale_float(x, fn, scale, tile=512, tile_pad=16):
  """float32 [H, W, C] in [-1, 1] -> `fn`'s float32 [H * scale, W * scale, C], tile by tile."""
  h, w, _ = x.shape
  th, tw, p = min(tile, h), min(tile, w), tile_pad
  mode = "reflect" if p < min(h, w) else "edge"  # reflection needs a picture longer than the pad
  padded = np.pad(x, ((p, p), (p, p), (0, 0)), mode=mode)
  corners = [(t, l) for t in tile_starts(h, th) for l in tile_starts(w, tw)]
  out = np.empty((h * scale, w * scale, x.shape[-1]), np.float32)
  s = scale
  for i in range(0, len(corners), TILES_AT_ONCE):
    group = corners[i:i + TILES_AT_ONCE]
    windows = np.stack([padded[t:t + th + 2 * p, l:l + tw + 2 * p] for t, l in group])
    results = np.asarray(fn(windows), np.float32)
    if results.shape[1:3] != (windows.shape[1] * s, windows.shape[2] * s):
      raise ValueError(f"fn turned tiles of shape {windows.shape} into {results.shape}: it must "
                       f"make them {s} times larger")
    for (t, l), y in zip(group, results):
      out[t * s:(t + th) * s, l * s:(l + tw) * s] = y[p * s:(p + th) * s, p * s:(p + tw) * s]
  return out
