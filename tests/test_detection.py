"""Detection data from generated objects: alpha from real digits, tight boxes that match what the
canvas shows, no overlaps, determinism, YOLO label lines, data.yaml and backgrounds."""
import numpy as np
import pytest
import yaml
from PIL import Image

from gan_jax import detection
from gan_jax.data.embedded import digits
from gan_jax.errors import UserError

SIZE = 128


@pytest.fixture(scope="module")
def real():
  """The first 300 real digits, 32x32 gray: (uint8 [N, 32, 32, 1], labels)."""
  x, y = digits(32)
  return x[:300], y[:300]


def test_alpha_of_real_digits(real):
  """LOW and HIGH: 0 on the background even under a generator's speckle (noise of 0.03), 1 on
  all ink, and boxes the noise does not move. LOW = 0.05 or HIGH = 0.6 fail this."""
  x = real[0]
  noisy = np.random.default_rng(0).normal(x, 0.03 * 255)
  noisy = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
  clean, alpha = (np.stack([detection.object_alpha(i) for i in s]) for s in (x, noisy))
  assert clean.dtype == np.float32 and clean.shape == x.shape[:3]
  background, ink = x[..., 0] == 0, x[..., 0] >= 128
  assert (clean[background] == 0).all() and (clean[ink] == 1).all()
  assert (alpha[background] == 0).mean() > 0.9999 and (alpha[ink] == 1).all()
  for a, c in zip(alpha, clean):
    moved = np.subtract(detection.tight_box(a >= 0.5), detection.tight_box(c >= 0.5))
    assert np.abs(moved).max() <= 1


def test_alpha_on_a_light_background():
  """The background colour is the border's, not black, and one channel's difference is enough."""
  image = np.full((16, 16, 3), 250, np.uint8)
  image[4:9, 6:12] = (20, 240, 250)  # differs in one channel only
  alpha = detection.object_alpha(image)
  assert detection.tight_box(alpha >= 0.5) == (6, 4, 12, 9)
  assert alpha.sum() == 30
  assert not detection.object_alpha(np.full((8, 8, 1), 77, np.uint8)).any()


def test_tight_box():
  mask = np.zeros((10, 12), bool)
  assert detection.tight_box(mask) is None
  mask[3, 5] = True
  assert detection.tight_box(mask) == (5, 3, 6, 4)
  mask[7, 2] = mask[4, 10] = True
  assert detection.tight_box(mask) == (2, 3, 11, 8)
  assert detection.tight_box(np.ones((4, 6), bool)) == (0, 0, 6, 4)


def check_boxes(canvas, background, boxes):
  """Every pixel that differs from the plain `background` lies in a box (or 1 px off its edge),
  and each box's edges are within 1 px of the tight box of those pixels. "Differs" is weighed
  against a box edge's pixel (alpha 0.5, value ~(LOW + HIGH) / 2 for a digit on black): 0.35 of
  its difference from the background, above the faint halo (alpha < 0.5) that an enlarged digit
  spreads 2 px beyond its box."""
  colour = background[0, 0].astype(float)
  edge = 0.5 * np.abs(255 * (detection.LOW + detection.HIGH) / 2 - colour).max()
  shown = np.abs(canvas.astype(int) - background.astype(int)).max(-1) > 0.7 * edge
  near = np.zeros_like(shown)
  for _, x0, y0, x1, y1 in boxes:
    near[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = True
  assert not (shown & ~near).any()
  for i, (_, x0, y0, x1, y1) in enumerate(boxes):
    own = np.zeros_like(shown)
    own[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = True
    for j, (_, u0, v0, u1, v1) in enumerate(boxes):
      if j != i:
        own[v0:v1, u0:u1] = False
    found = detection.tight_box(shown & own)
    assert found is not None and np.abs(np.subtract(found, (x0, y0, x1, y1))).max() <= 1


@pytest.mark.parametrize("colour", ["black", "#808080", "#3060c0"])
def test_compose_boxes_match_the_pasted_pixels(real, colour):
  x, y = real
  count = 0
  for seed in range(6):
    rng = np.random.default_rng(seed)
    channels = 1 if colour == "#808080" else 3
    background = detection.Background(colour).draw(rng, SIZE, channels)
    pick = rng.choice(len(x), 5, replace=False)
    canvas, boxes = detection.compose(background, x[pick], y[pick], rng)
    assert canvas.shape == (SIZE, SIZE, channels) and canvas.dtype == np.uint8
    check_boxes(canvas, background, boxes)
    labels = [b[0] for b in boxes]
    assert all(isinstance(v, int) for b in boxes for v in b)
    rest = iter(y[pick].tolist())
    assert all(label in rest for label in labels)  # the labels given, in order, some left out
    for i, a in enumerate(boxes):
      assert 0 <= a[1] < a[3] <= SIZE and 0 <= a[2] < a[4] <= SIZE
      assert not any(detection.overlap(a[1:], b[1:]) for b in boxes[i + 1:])
    count += len(boxes)
  assert count >= 20  # most of the 30 objects find a place


def test_compose_sizes_places_and_what_is_left_out(real):
  x, y = real
  rng = np.random.default_rng(1)
  background = np.zeros((SIZE, SIZE, 1), np.uint8)
  # the whole canvas for the first; no room for the second; a blank one is skipped outright
  blank = np.full((32, 32, 1), 9, np.uint8)
  canvas, boxes = detection.compose(background, [blank, x[0], x[1]], [7, y[0], y[1]], rng,
                                    min_scale=1, max_scale=1)
  assert [b[0] for b in boxes] == [y[0]]
  check_boxes(canvas, background, boxes)
  # a wide object keeps its aspect: its long side sets the scale
  wide = np.zeros((10, 40, 1), np.uint8)
  wide[2:8, 5:35] = 255
  canvas, boxes = detection.compose(background, [wide], [3], rng, min_scale=0.5, max_scale=0.5)
  (_, x0, y0, x1, y1), = boxes
  assert (x1 - x0, y1 - y0) == (48, 10)  # the bar: 30x6 of 40x10, resized to 64x16
  with pytest.raises(UserError, match="min_scale"):
    detection.compose(background, [wide], [3], rng, min_scale=0.6, max_scale=0.5)


def test_compose_is_deterministic(real):
  x, y = real
  background = detection.Background("black").draw(None, SIZE, 3)
  runs = [detection.compose(background, x[:4], y[:4], np.random.default_rng(s)) for s in (5, 5, 6)]
  assert runs[0][0].tobytes() == runs[1][0].tobytes() and runs[0][1] == runs[1][1]
  assert runs[0][0].tobytes() != runs[2][0].tobytes()
  assert (background == 0).all()  # the caller's background is not written to


def test_channels_are_matched(real):
  """Gray objects on an RGB canvas come out gray; RGB objects on a gray canvas as their luma."""
  x, y = real
  rgb_canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
  canvas, boxes = detection.compose(rgb_canvas, x[:3], y[:3], np.random.default_rng(0))
  assert boxes and (canvas == canvas[..., :1]).all()
  red = np.zeros((32, 32, 3), np.uint8)
  red[8:24, 8:24] = (250, 120, 0)
  gray_canvas = np.zeros((SIZE, SIZE, 1), np.uint8)
  canvas, boxes = detection.compose(gray_canvas, [red], [4], np.random.default_rng(0))
  (label, x0, y0, x1, y1), = boxes
  assert label == 4 and canvas.shape == (SIZE, SIZE, 1)
  inside = canvas[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
  assert (inside == round(250 * 0.299 + 120 * 0.587)).all()  # 145: past HIGH, fully opaque
  check_boxes(canvas, gray_canvas, boxes)


def test_yolo_lines_parse_back():
  boxes = [(3, 10, 20, 50, 60), (0, 0, 0, 128, 128), (9, 127, 100, 128, 101)]
  text = detection.yolo_lines(boxes, 128)
  lines = text.splitlines()
  assert text.endswith("\n") and len(lines) == 3
  for line, (label, x0, y0, x1, y1) in zip(lines, boxes):
    fields = line.split()
    assert len(fields) == 5 and int(fields[0]) == label
    values = np.array([float(f) for f in fields[1:]])
    assert ((0 <= values) & (values <= 1)).all()
    assert all(len(f.split(".")[1]) == 6 for f in fields[1:])
    cx, cy, w, h = values * 128
    np.testing.assert_allclose([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2],
                               [x0, y0, x1, y1], atol=1e-3)
  assert lines[0] == "3 0.234375 0.312500 0.312500 0.312500"
  assert detection.yolo_lines([], 128) == ""
  # a box past the canvas is clipped to [0, 1]
  assert detection.yolo_lines([(1, 100, 0, 200, 10)], 128).split()[1:4] == ["1.000000", "0.039062",
                                                                            "0.781250"]


def test_data_yaml(tmp_path):
  path = tmp_path / "data.yaml"
  detection.write_data_yaml(path, tmp_path / "set", ["zero", "one", "two"])
  data = yaml.safe_load(path.read_text())
  assert data == {"path": str(tmp_path / "set"), "train": "images/train", "val": "images/val",
                  "names": {0: "zero", 1: "one", 2: "two"}}
  detection.write_data_yaml(path, "set", {1: "cat", 0: "dog"}, train="a", val="b")
  data = yaml.safe_load(path.read_text())
  assert (data["train"], data["val"], data["names"]) == ("a", "b", {0: "dog", 1: "cat"})


def test_background_from_a_colour():
  rng = np.random.default_rng(0)
  assert (detection.Background("gray").draw(rng, 8, 3) == 128).all()
  assert (detection.Background("#3060c0").draw(rng, 8, 3) == (48, 96, 192)).all()
  gray = detection.Background("#3060c0").draw(rng, 8, 1)
  assert gray.shape == (8, 8, 1) and (gray == round(48 * 0.299 + 96 * 0.587 + 192 * 0.114)).all()
  with pytest.raises(UserError, match=r"^--background=blurple is neither a colour nor folder:PATH"):
    detection.Background("blurple")


def test_background_from_a_folder(tmp_path):
  colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
  for i, colour in enumerate(colours):
    (tmp_path / f"sub{i}").mkdir()
    Image.new("RGB", (40 + 30 * i, 60), colour).save(tmp_path / f"sub{i}" / f"p{i}.png")
  (tmp_path / "notes.txt").write_text("not a picture")
  background = detection.Background(f"folder:{tmp_path}")
  rng = np.random.default_rng(0)
  drawn = [background.draw(rng, 32, 3) for _ in range(12)]
  assert all(d.shape == (32, 32, 3) and d.dtype == np.uint8 for d in drawn)
  seen = {tuple(d[0, 0]) for d in drawn}
  assert seen == set(colours)  # every picture is drawn, found in subfolders too
  assert all((d == d[0, 0]).all() for d in drawn)  # each a crop of one picture
  assert background.draw(rng, 16, 1).shape == (16, 16, 1)
  # crops differ in place and size: a picture with detail shows it
  ramp = tmp_path / "ramp"
  ramp.mkdir()
  Image.fromarray(np.arange(80 * 60, dtype=np.uint16).reshape(60, 80).astype(np.uint8)).save(
      ramp / "r.png")
  crops = {detection.Background(f"folder:{ramp}").draw(np.random.default_rng(s), 16, 1).tobytes()
           for s in range(5)}
  assert len(crops) == 5
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(UserError, match="is empty"):
    detection.Background(f"folder:{empty}")
  with pytest.raises(UserError, match="names no folder"):
    detection.Background(f"folder:{tmp_path / 'missing'}")
