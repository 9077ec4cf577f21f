"""`upscaling`'s file side with a stand-in G: tiles that do not show, any size, any channels."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_jax import upscaling
from gan_jax.errors import UserError

SCALE = 2


@jax.jit
def blur_then_enlarge(x):
  """A stand-in G whose output pixels see their 3x3 input neighbourhood (zero-padded at the edge
  of what it is given, as a conv net's), enlarged by SCALE."""
  c = x.shape[-1]
  kernel = jnp.full((3, 3, 1, c), 1 / 9, x.dtype)
  y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", feature_group_count=c,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y.repeat(SCALE, 1).repeat(SCALE, 2)


def picture(h, w, c, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.mark.parametrize("h,w", [(13, 21), (8, 8), (5, 30)])
def test_tiles_do_not_show(h, w):
  """Small tiles with a context of 1 pixel (G's reach) give the picture enlarged whole."""
  pixels = picture(h, w, 3)
  whole = upscaling.upscale_array(pixels, blur_then_enlarge, SCALE, tile=64, tile_pad=1)
  tiled = upscaling.upscale_array(pixels, blur_then_enlarge, SCALE, tile=4, tile_pad=1)
  assert tiled.shape == (h * SCALE, w * SCALE, 3) and tiled.dtype == np.uint8
  np.testing.assert_array_equal(tiled, whole)
  # Without context the tiles' zero-padded edges show.
  seams = upscaling.upscale_array(pixels, blur_then_enlarge, SCALE, tile=4, tile_pad=0)
  assert not np.array_equal(seams, whole)


def test_tile_starts_cover_the_picture_with_one_shape():
  assert upscaling.tile_starts(10, 4) == [0, 4, 6]
  assert upscaling.tile_starts(8, 4) == [0, 4]
  assert upscaling.tile_starts(3, 3) == [0]


def save(path, array, mode=None):
  Image.fromarray(array, mode).save(path)
  return path


def test_folder_of_modes_sizes_and_a_broken_file(tmp_path):
  src = tmp_path / "in"
  (src / "sub").mkdir(parents=True)
  save(src / "rgb.png", picture(7, 11, 3))
  save(src / "sub" / "gray.png", picture(9, 5, 1)[..., 0])
  rgba = picture(6, 6, 4, seed=1)
  save(src / "alpha.png", rgba)
  (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
  out = tmp_path / "out"
  report = upscaling.upscale_images(str(src), str(out), blur_then_enlarge, SCALE, channels=3,
                                    tile=4, tile_pad=1, progress=False)
  assert report.skipped == ["broken.jpg"] and len(report.written) == 3
  with Image.open(out / "rgb.png") as im:
    assert im.mode == "RGB" and im.size == (22, 14)
  with Image.open(out / "sub" / "gray.png") as im:
    assert im.mode == "L" and im.size == (10, 18)
  with Image.open(out / "alpha.png") as im:
    assert im.mode == "RGBA" and im.size == (12, 12)
    alpha = np.asarray(im.getchannel("A"))
  want = Image.fromarray(rgba[..., 3]).resize((12, 12), Image.Resampling.BICUBIC)
  np.testing.assert_array_equal(alpha, np.asarray(want))  # alpha by bicubic, not by G


def test_16_bit_gray_is_scaled_not_clipped(tmp_path):
  values = np.full((4, 4), 40000, np.uint16)  # 40000 / 257 = 155.6 on 8 bits
  Image.fromarray(values).save(tmp_path / "deep.png")
  upscaling.upscale_images(str(tmp_path / "deep.png"), str(tmp_path / "out"), blur_then_enlarge,
                           SCALE, channels=3, tile=8, tile_pad=1, progress=False)
  with Image.open(tmp_path / "out" / "deep.png") as im:
    assert im.mode == "L" and np.asarray(im)[4, 4] == 156


def test_colour_picture_through_a_gray_model_keeps_its_colour(tmp_path):
  """G upscales the luma; the chroma comes from bicubic, so a red picture stays red."""
  red = np.zeros((6, 6, 3), np.uint8)
  red[..., 0] = 200
  save(tmp_path / "red.png", red)
  upscaling.upscale_images(str(tmp_path / "red.png"), str(tmp_path / "out"), blur_then_enlarge,
                           SCALE, channels=1, tile=8, tile_pad=1, progress=False)
  with Image.open(tmp_path / "out" / "red.png") as im:
    out = np.asarray(im)
  assert im.mode == "RGB" and out.shape == (12, 12, 3)
  centre = out[4:8, 4:8].reshape(-1, 3).mean(0)
  assert centre[0] > 150 and centre[1] < 40 and centre[2] < 40


def test_bad_input_is_one_sentence(tmp_path):
  run = lambda src, **kw: upscaling.upscale_images(str(src), str(tmp_path / "out"),
                                                   blur_then_enlarge, SCALE, 3, progress=False,
                                                   **kw)
  with pytest.raises(UserError, match="does not exist"):
    run(tmp_path / "missing.png")
  (tmp_path / "bad.png").write_bytes(b"nope")
  with pytest.raises(UserError, match="could not be read"):
    run(tmp_path / "bad.png")
  save(tmp_path / "ok.png", picture(4, 4, 3))
  with pytest.raises(UserError, match="--tile=0"):
    run(tmp_path / "ok.png", tile=0)
  with pytest.raises(UserError, match="--tile_pad=-1"):
    run(tmp_path / "ok.png", tile_pad=-1)
  assert not (tmp_path / "out").exists()  # nothing written
