"""`translating.translate_images`: file trees, any size, channels and every bad input, with plain
functions standing in for a trained generator."""
import io
import logging
import os

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import translating
from gan_jax.errors import UserError
from test_data import save


def invert(x):
  return -x


def rgb(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def gray(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def pixels(path):
  with Image.open(path) as image:
    return image.mode, np.asarray(image)


def files_under(root):
  return sorted(os.path.relpath(os.path.join(d, f), root)
                for d, _, names in os.walk(root) for f in names)


def translate(src, out, fn=invert, channels=3, multiple=4):
  return translating.translate_images(str(src), str(out), fn, channels, multiple, progress=False)


def assert_one_sentence(error, expected):
  message = str(error.value)
  assert expected in message, message
  assert "\n" not in message and message.endswith("."), message


def test_folder_tree_is_mirrored_with_stems_kept(tmp_path):
  src = tmp_path / "in"
  save(str(src / "a" / "b" / "x.jpg"), rgb(16, 16), quality=95)
  save(str(src / "a" / "y.png"), rgb(8, 12))
  save(str(src / "z.bmp"), rgb(9, 7))
  save(str(src / ".hidden" / "h.png"), rgb(8, 8))  # hidden entries are not inputs
  save(str(src / ".h.png"), rgb(8, 8))
  (src / "notes.txt").write_text("not an image")
  report = translate(src, tmp_path / "out")
  expected = [os.path.join("a", "b", "x.png"), os.path.join("a", "y.png"), "z.png"]
  assert files_under(tmp_path / "out") == expected
  assert report.written == [str(tmp_path / "out" / p) for p in expected]
  assert report.skipped == []
  mode, y = pixels(tmp_path / "out" / "a" / "y.png")
  assert mode == "RGB" and y.shape == (8, 12, 3)


@pytest.mark.parametrize("multiple", [1, 4, 64, 256])  # no pad, reflect, reflect, edge (> image)
def test_any_size_comes_back_unshifted(tmp_path, multiple):
  picture = rgb(37, 53, seed=multiple)
  save(str(tmp_path / "in" / "odd.png"), picture)
  seen = []

  def fn(x):
    seen.append(x.shape)
    assert x.shape[1] % multiple == 0 and x.shape[2] % multiple == 0
    return -x

  translate(tmp_path / "in", tmp_path / "out", jax.jit(fn), multiple=multiple)
  mode, y = pixels(tmp_path / "out" / "odd.png")
  assert mode == "RGB" and y.shape == (37, 53, 3)
  # Elementwise fn: any shift of the crop would show padding (reflected pixels) instead.
  np.testing.assert_array_equal(y, 255 - picture)
  assert seen[0][1] >= 37 and seen[0][2] >= 53


def blur(x):
  """A 3x3 box blur of [N, H, W, C], size kept: a convolution, as a generator's layers are."""
  padded = np.pad(np.asarray(x), [(0, 0), (1, 1), (1, 1), (0, 0)], mode="edge")
  h, w = x.shape[1:3]
  return sum(padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9


@pytest.mark.parametrize("multiple", [16, 256])
def test_a_convolution_sees_the_picture_unshifted(tmp_path, multiple):
  picture = rgb(37, 53, seed=7)
  save(str(tmp_path / "in" / "odd.png"), picture)
  translate(tmp_path / "in", tmp_path / "out", blur, multiple=multiple)
  y = pixels(tmp_path / "out" / "odd.png")[1].astype(int)
  x = picture[None].astype(np.float32) / 127.5 - 1
  expected = np.clip(np.round((blur(x)[0] + 1) * 127.5), 0, 255).astype(int)
  # Inside, 1 pixel from the border, the padding is out of the blur's reach.
  assert np.abs(y[1:-1, 1:-1] - expected[1:-1, 1:-1]).max() <= 1
  assert not np.array_equal(y[1:-1, 2:], expected[1:-1, 1:-1])  # a shift would be seen


def test_padding_reflects_and_centers_then_edges():
  x = np.arange(5, dtype=np.float32).reshape(1, 5, 1)
  padded, (top, left) = translating.pad_to_multiple(x, 8)
  assert (top, left) == (3, 1) and padded.shape == (8, 8, 1)  # H 1 -> 8: edge; W 5 -> 8: reflect
  np.testing.assert_array_equal(padded[0, :, 0], [1, 0, 1, 2, 3, 4, 3, 2])
  assert np.all(padded == padded[:1])


def test_one_channel_in_three_out(tmp_path):
  picture = gray(10, 6)
  save(str(tmp_path / "in" / "g.png"), picture)

  def colourize(x):  # [1, H, W, 1] -> [1, H, W, 3]
    assert x.shape[-1] == 1
    return np.concatenate([x, -x, np.zeros_like(x)], axis=-1)

  translate(tmp_path / "in", tmp_path / "out", colourize, channels=1)
  mode, y = pixels(tmp_path / "out" / "g.png")
  assert mode == "RGB" and y.shape == (10, 6, 3)
  np.testing.assert_array_equal(y[..., 0], picture)
  np.testing.assert_array_equal(y[..., 1], 255 - picture)
  assert np.all(y[..., 2] == 128)  # 0 -> round(127.5)


def test_one_channel_out_is_mode_L_and_alpha_goes_over_white(tmp_path):
  rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black: white, as in training
  save(str(tmp_path / "in" / "t.png"), rgba)
  translate(tmp_path / "in", tmp_path / "out", lambda x: x[..., :1])
  mode, y = pixels(tmp_path / "out" / "t.png")
  assert mode == "L" and y.shape == (4, 4) and np.all(y == 255)


def test_unreadable_files_are_skipped_and_reported(tmp_path, caplog):
  src = tmp_path / "in"
  for i in range(2):
    save(str(src / f"good{i}.png"), rgb(8, 8, seed=i))
  buffer = io.BytesIO()
  Image.fromarray(rgb(32, 32)).save(buffer, format="PNG")
  (src / "cut.png").write_bytes(buffer.getvalue()[:200])  # truncated PNG
  (src / "text.jpg").write_text("not a jpeg at all")
  buffer = io.BytesIO()
  Image.fromarray(rgb(64, 64)).save(buffer, format="JPEG")
  (src / "sub").mkdir()
  (src / "sub" / "cut.jpg").write_bytes(buffer.getvalue()[:400])  # header fine, pixels missing
  with caplog.at_level(logging.WARNING, logger="gan_jax.data"):
    report = translate(src, tmp_path / "out")
  assert files_under(tmp_path / "out") == ["good0.png", "good1.png"]
  assert report.skipped == ["cut.png", os.path.join("sub", "cut.jpg"), "text.jpg"]
  assert "Left out 3 of 5 image files" in caplog.text
  assert "cut.png" in caplog.text


def test_no_readable_file_is_an_error(tmp_path):
  for i in range(3):
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / f"{i}.jpg").write_bytes(b"\xff\xd8 truncated")
  with pytest.raises(UserError) as error:
    translate(tmp_path / "in", tmp_path / "out")
  assert_one_sentence(error, "None of the 3 image files")
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("channels, bad, expected", [
    (3, gray(8, 8), "is grayscale but this model translates colour"),
    (1, rgb(8, 8), "is in colour but this model translates grayscale"),
])
def test_wrong_channels_refused_before_anything_is_written(tmp_path, channels, bad, expected):
  src = tmp_path / "in"
  for i in range(3):  # sorted before the bad one: a lazy check would already have written them
    good = rgb(8, 8, seed=i) if channels == 3 else gray(8, 8, seed=i)
    save(str(src / f"{i}.png"), good)
  save(str(src / "z" / "bad.png"), bad)
  with pytest.raises(UserError) as error:
    translate(src, tmp_path / "out", channels=channels)
  assert_one_sentence(error, expected)
  assert os.path.join("z", "bad.png") in str(error.value)
  assert not (tmp_path / "out").exists()


def palette_image(colours):
  image = Image.new("P", (4, 4))
  image.putpalette([v for c in colours for v in c])
  return image


@pytest.mark.parametrize("image, colour", [
    (Image.new("L", (4, 4)), False),
    (Image.new("LA", (4, 4)), False),
    (Image.new("I;16", (4, 4)), False),
    (Image.new("1", (4, 4)), False),
    (Image.new("RGB", (4, 4)), True),
    (Image.new("RGBA", (4, 4)), True),
    (palette_image([(0, 0, 0), (128, 128, 128), (255, 255, 255)]), False),
    (palette_image([(0, 0, 0), (255, 0, 0)]), True),
])
def test_how_modes_count(tmp_path, image, colour):
  path = str(tmp_path / "x.png")
  image.save(path)
  assert translating.is_colour(path) is colour


@pytest.mark.parametrize("colours, colour", [([(0, 0, 0), (9, 9, 9)], False),
                                             ([(0, 0, 0), (0, 0, 255)], True)])
def test_bmp_palettes_count_too(tmp_path, colours, colour):  # stored as BGRX, not RGB
  palette_image(colours).save(tmp_path / "x.bmp")
  assert translating.is_colour(str(tmp_path / "x.bmp")) is colour


def test_single_file(tmp_path):
  save(str(tmp_path / "photos" / "cat.jpg"), rgb(20, 30), quality=95)
  report = translate(tmp_path / "photos" / "cat.jpg", tmp_path / "out")
  assert report.written == [str(tmp_path / "out" / "cat.png")]
  assert files_under(tmp_path / "out") == ["cat.png"]
  assert pixels(tmp_path / "out" / "cat.png")[1].shape == (20, 30, 3)


BAD_INPUT = {
    "missing input": ("missing", "out", "does not exist"),
    "unreadable single file": ("text/readme.txt", "out", "readme.txt could not be read"),
    "empty folder": ("empty", "out", "is empty"),
    "no images": ("text", "out", "holds no png, jpg"),
    "out is the input folder": ("good", "good", "is the input folder itself"),
    "out would overwrite the file": ("good/0.png", "good", "would overwrite the input"),
    "out is a file": ("good", "afile", "is a file"),
    "two inputs, one output": ("clash", "out", "would both be written to"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input(case, tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "text").mkdir()
  (tmp_path / "text" / "readme.txt").write_text("no images here")
  (tmp_path / "afile").write_text("a file")
  save(str(tmp_path / "good" / "0.png"), rgb(8, 8))
  save(str(tmp_path / "clash" / "x.png"), rgb(8, 8))
  save(str(tmp_path / "clash" / "x.jpg"), rgb(8, 8))
  before = files_under(tmp_path)
  src, out, expected = BAD_INPUT[case]
  with pytest.raises(UserError) as error:
    translate(tmp_path / src, tmp_path / out)
  assert_one_sentence(error, expected)
  assert files_under(tmp_path) == before


def test_out_inside_input_folder_is_not_read_back(tmp_path):
  src = tmp_path / "in"
  save(str(src / "a.png"), rgb(8, 8))
  save(str(src / "sub" / "b.png"), rgb(8, 8))
  for _ in range(2):  # the rerun must not translate the first run's outputs
    report = translate(src, src / "out")
    assert report.written == [str(src / "out" / "a.png"), str(src / "out" / "sub" / "b.png")]
  assert files_under(src / "out") == ["a.png", os.path.join("sub", "b.png")]


def test_progress_bar_on_and_off(tmp_path, capsys):
  save(str(tmp_path / "in" / "a.png"), rgb(8, 8))
  translating.translate_images(str(tmp_path / "in"), str(tmp_path / "o1"), invert, 3, 4,
                               progress=False)
  captured = capsys.readouterr()
  assert captured.out == "" and captured.err == ""
  translating.translate_images(str(tmp_path / "in"), str(tmp_path / "o2"), invert, 3, 4)
  assert "translating" in capsys.readouterr().err
