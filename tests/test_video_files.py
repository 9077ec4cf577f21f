"""Clips from video files, folders of frames and TFDS video datasets (gan_jax.data.video_files).

Every test video shows frame t as a gray background of value 20 + 6 t with a red square moving
along its bottom, so a clip's frame indices can be read back from its top rows."""
import importlib.util
import io
import logging
import os
import re

import av
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from gan_jax.data import images, video_files
from gan_jax.data.spec import DataSpec
from gan_jax.data.video_files import TfdsVideo, VideoFolder
from gan_jax.errors import UserError

H, W = 48, 64


def frame_at(t):
  picture = np.full((H, W, 3), 20 + 6 * t, np.uint8)
  left = (2 * t) % (W - 8)
  picture[H - 10:H - 2, left:left + 8] = (255, 0, 0)
  return picture


def write_video(path, n, codec="libx264", rotation=None, draw=frame_at):
  options = {"libx264": {"crf": "0"}, "libvpx": {"crf": "4", "b:v": "1M", "deadline": "realtime",
                                                 "cpu-used": "8"}}[codec]
  with av.open(str(path), "w") as out:
    stream = out.add_stream(codec, rate=10, options=options)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    if rotation is not None:
      stream.set_display_rotation(rotation)
    for t in range(n):
      out.mux(stream.encode(av.VideoFrame.from_ndarray(draw(t), format="rgb24")))
    out.mux(stream.encode())


def write_gif(path, n):
  pictures = [Image.fromarray(frame_at(t)) for t in range(n)]
  pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=40, loop=0)


def write_frames(directory, n):
  os.makedirs(directory)
  for t in range(n):  # unpadded names: f2.png must come before f10.png
    Image.fromarray(frame_at(t)).save(os.path.join(directory, f"f{t}.png"))


def write_junk(path, size=2000):
  with open(path, "wb") as f:
    f.write(np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes())


def frame_indices(clips):
  """The frame index t each frame of uint8 [B, T, R, R, C] clips shows (from its top rows)."""
  top = clips[:, :, :2].astype(np.float64).mean(axis=(2, 3, 4))
  return np.round((top - 20) / 6).astype(np.int64)


LENGTHS = {"a.mp4": 30, "b.webm": 24, "c.gif": 20, "frames": 22}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
  """An mp4, a webm, a gif and a folder of frames, beside a corrupt and a too-short video."""
  root = tmp_path_factory.mktemp("videos")
  write_video(root / "a.mp4", LENGTHS["a.mp4"])
  write_video(root / "b.webm", LENGTHS["b.webm"], "libvpx")
  write_gif(root / "c.gif", LENGTHS["c.gif"])
  write_frames(root / "frames", LENGTHS["frames"])
  write_junk(root / "bad.mp4")
  write_video(root / "short.mp4", 5)
  (root / "notes.txt").write_text("not a video")
  return str(root)


def expected_clips(lengths, frames, stride):
  return sum((n - frames) // stride + 1 for n in lengths if n >= frames)


def test_clips_of_every_kind_of_video(mixed, caplog):
  with caplog.at_level(logging.WARNING, "gan_jax.data"):
    source = VideoFolder.scan(mixed, frames=8, stride=3, resolution=16, channels=3)
  assert source.relpaths == sorted(LENGTHS)
  assert [len(v) for v in source.videos] == [LENGTHS[p] for p in source.relpaths]
  assert len(source) == expected_clips(LENGTHS.values(), 8, 3) == 24
  assert source.spec == DataSpec((8, 16, 16, 3), "uint8", 0) and source.class_names is None
  assert source.skipped == {"bad.mp4": video_files.UNREADABLE,
                            "short.mp4": video_files.TOO_SHORT}
  assert re.search(r"Left out 2 of 6 videos in .*: 1 could not be decoded \(bad.mp4\), 1 too short "
                   r"for a clip \(short.mp4\)", caplog.text)
  batch = source.get(np.arange(len(source)))
  assert batch["x"].shape == (24, 8, 16, 16, 3) and batch["x"].dtype == np.uint8
  assert batch["label"].dtype == np.int32 and not batch["label"].any()
  # Frames in time order, clip k of a video starting at frame 3 k, in every container.
  starts = np.concatenate([np.arange(0, n - 8 + 1, 3) for n in
                           (LENGTHS[p] for p in source.relpaths)])
  np.testing.assert_array_equal(frame_indices(batch["x"]), starts[:, None] + np.arange(8))
  # Values: the gray background and the red square survive decoding and resizing.
  red = batch["x"][:, :, -3:, :, :].reshape(-1, 3).astype(int)
  assert (red[:, 0] > 200).any() and (red[:, 0] - red[:, 1] > 150).any()


def test_avi_mov_and_mkv_files_are_read_too(tmp_path):
  for ext in ("avi", "mov", "mkv"):
    write_video(tmp_path / f"v.{ext}", 12)
  source = VideoFolder.scan(tmp_path, frames=12, stride=1, resolution=16, channels=3)
  assert source.relpaths == ["v.avi", "v.mkv", "v.mov"] and not source.skipped
  np.testing.assert_array_equal(frame_indices(source.get([0, 1, 2])["x"]), [np.arange(12)] * 3)


def test_get_is_a_pure_function_of_the_index(mixed):
  source = VideoFolder.scan(mixed, frames=4, stride=5, resolution=12, channels=3, workers=1)
  again = VideoFolder.scan(mixed, frames=4, stride=5, resolution=12, channels=3, workers=2)
  picks = np.array([7, 0, 7, len(source) - 1])
  first = source.get(picks)
  np.testing.assert_array_equal(first["x"][0], first["x"][2])
  for other in (source.get(picks), again.get(picks)):
    np.testing.assert_array_equal(other["x"], first["x"])
    np.testing.assert_array_equal(other["label"], first["label"])


def test_class_subfolders_label_clips_and_gray_frames(tmp_path, caplog):
  for name in ("cats", "dogs"):
    os.makedirs(tmp_path / name)
  write_video(tmp_path / "cats" / "x.mp4", 12)
  write_gif(tmp_path / "dogs" / "y.gif", 10)
  write_frames(tmp_path / "dogs" / "run", 9)
  write_video(tmp_path / "loose.mp4", 12)
  with caplog.at_level(logging.WARNING, "gan_jax.data"):
    source = VideoFolder.scan(tmp_path, frames=6, stride=2, resolution=8, channels=1)
  assert "1 videos in" in caplog.text and "not in a class subfolder: loose.mp4" in caplog.text
  assert source.class_names == ["cats", "dogs"] and source.spec.num_classes == 2
  assert source.relpaths == ["cats/x.mp4", "dogs/run", "dogs/y.gif"]
  batch = source.get(np.arange(len(source)))
  assert len(source) == 4 + 2 + 3 and batch["x"].shape == (9, 6, 8, 8, 1)
  np.testing.assert_array_equal(batch["label"], [0] * 4 + [1] * 5)
  np.testing.assert_array_equal(frame_indices(batch["x"])[:, 0], [0, 2, 4, 6, 0, 2, 0, 2, 4])


@pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
                    reason="this PyAV cannot write a display rotation (PyAV 18 can)")
def test_rotated_video_is_turned_upright(tmp_path):
  def marked(t):  # white mark at the top of the stored frame, inside its centre square
    picture = np.zeros((H, W, 3), np.uint8)
    picture[:8, 28:36] = 255
    return picture

  write_video(tmp_path / "turned.mp4", 4, rotation=90, draw=marked)
  write_video(tmp_path / "plain.mp4", 4, draw=marked)
  source = VideoFolder.scan(tmp_path, frames=1, stride=1, resolution=16, channels=1)
  plain, turned = (source.get([source.relpaths.index(p) * 4])["x"][0, 0, :, :, 0]
                   for p in ("plain.mp4", "turned.mp4"))
  assert plain[:2, 7:9].min() > 200 and plain[7:9, :2].max() < 50
  # 90 degrees counter-clockwise, as players show it: the top edge is now the left one.
  assert turned[7:9, :2].min() > 200 and turned[:2, 7:9].max() < 50


def test_folders_without_a_usable_clip_are_user_errors(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="Video folder .*empty is empty"):
    VideoFolder.scan(tmp_path / "empty", 4, 1, 16, 3)
  with pytest.raises(UserError, match="missing does not exist"):
    VideoFolder.scan(tmp_path / "missing", 4, 1, 16, 3)
  bad = tmp_path / "bad"
  bad.mkdir()
  write_junk(bad / "junk.mp4")
  write_junk(bad / "junk.webm", 50)
  write_gif(bad / "tiny.gif", 3)
  with pytest.raises(UserError, match=re.escape(
      f"No video in {bad} gives a clip of 4 frames (2 could not be decoded (junk.mp4, junk.webm), "
      "1 too short for a clip (tiny.gif))")):
    VideoFolder.scan(bad, 4, 1, 16, 3)
  with pytest.raises(UserError, match="frames must be at least 1"):
    VideoFolder.scan(bad, 0, 1, 16, 3)
  with pytest.raises(UserError, match="takes? more than"):
    VideoFolder.scan(tmp_path, 1, 1, 16, 3, max_bytes=1000)


def test_clip_table_counts_every_start():
  table = video_files.clip_table([10, 3, 7, 4], frames=4, stride=3)
  assert table.tolist() == [[0, 0], [0, 3], [0, 6], [2, 0], [2, 3], [3, 0]]
  assert len(video_files.clip_table([100] * 5, 16, 1)) == expected_clips([100] * 5, 16, 1)


# --- TFDS -------------------------------------------------------------------------------------

def test_tfds_bair_robot_pushing_clips_through_mock_data():
  with tfds.testing.mock_data(num_examples=3):
    source = TfdsVideo("bair_robot_pushing_small", "train", frames=8, stride=11, resolution=16,
                       channels=3)
    aux = TfdsVideo("bair_robot_pushing_small", "train", 8, 11, 16, 3, key="image_aux1")
    records = [source.data[i] for i in range(3)]
    batch, aux_batch = source.get(np.arange(9)), aux.get([4])
    with pytest.raises(UserError, match="'action' is no video feature .* image_main, image_aux1"):
      TfdsVideo("bair_robot_pushing_small", "train", 8, 11, 16, 3, key="action")
  assert source.key == "image_main" and len(source) == 3 * 3
  assert source.spec == DataSpec((8, 16, 16, 3), "uint8", 0) and source.class_names is None
  assert batch["x"].shape == (9, 8, 16, 16, 3) and not batch["label"].any()
  fit = lambda frames: np.stack([images.fit_array(f, 16, 3, "center_crop") for f in frames])
  np.testing.assert_array_equal(batch["x"][4], fit(records[1]["image_main"][11:19]))
  np.testing.assert_array_equal(aux_batch["x"][0], fit(records[1]["image_aux1"][11:19]))


class CountedClips(tfds.core.GeneratorBasedBuilder):
  """Videos of different lengths as a Sequence of Images with a ClassLabel (ucf101's layout, which
  TFDS prepares without TensorFlow when the frames come encoded): video i has 6 + 4 i frames,
  frame t of value 10 t + i, and label i % 2."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "video": tfds.features.Sequence(tfds.features.Image(shape=(12, 16, 3))),
        "label": tfds.features.ClassLabel(names=["even", "odd"])}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for i in range(4):
      encoded = []
      for t in range(6 + 4 * i):
        png = io.BytesIO()
        Image.fromarray(np.full((12, 16, 3), 10 * t + i, np.uint8)).save(png, "png")
        encoded.append(io.BytesIO(png.getvalue()))
      yield i, {"video": encoded, "label": i % 2}


def test_tfds_videos_of_any_length_decode_only_a_clips_frames(tmp_path, monkeypatch):
  from tensorflow_datasets.core.data_sources import array_record
  CountedClips(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  with monkeypatch.context() as m:
    # Frames are counted and clips read from the raw records: no whole video is decoded.
    m.setattr(array_record.ArrayRecordDataSource, "__getitem__",
              lambda self, i: pytest.fail("a whole record was decoded"))
    source = TfdsVideo("counted_clips", "train", frames=5, stride=2, resolution=8, channels=1,
                       data_dir=str(tmp_path))
    batch = source.get(np.arange(len(source)))
  assert sorted(source.lengths) == [6, 10, 14, 18]  # records are stored in a shuffled order
  assert len(source) == expected_clips([6, 10, 14, 18], 5, 2) == 16
  assert source.class_names == ["even", "odd"]
  assert source.spec == DataSpec((5, 8, 8, 1), "uint8", 2)
  record, first = source.table.T
  generated = (source.lengths[record] - 6) // 4  # i of the example each clip comes from
  np.testing.assert_array_equal(batch["label"], generated % 2)
  expected = 10 * (first[:, None] + np.arange(5)) + generated[:, None]
  np.testing.assert_array_equal(batch["x"][..., 0, 0, 0], expected)
  assert batch["x"].shape == (16, 5, 8, 8, 1)
  with pytest.raises(UserError, match="has 19 frames .*the longest has 18"):
    TfdsVideo("counted_clips", "train", 19, 1, 8, 1, data_dir=str(tmp_path))


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed")
def test_tfds_video_features_without_tensorflow_ask_for_it():
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(UserError, match="'moving_mnist' stores videos .*install tensorflow-cpu"):
      TfdsVideo("moving_mnist", "test", 10, 5, 16, 1)


def test_tfds_moving_mnist_and_ucf101_through_mock_data():
  pytest.importorskip("tensorflow")  # tfds.features.Video needs it
  with tfds.testing.mock_data(num_examples=3):
    digits = TfdsVideo("moving_mnist", "test", frames=10, stride=5, resolution=32, channels=1)
    actions = TfdsVideo("ucf101", "train", frames=4, stride=4, resolution=16, channels=3)
    records = [actions.data[i] for i in range(3)]
    digit_clips, action_clips = digits.get([0, 1]), actions.get(np.arange(len(actions)))
  assert digits.key == "image_sequence" and len(digits) == 3 * 3
  assert digit_clips["x"].shape == (2, 10, 32, 32, 1)
  assert actions.key == "video" and len(actions.class_names) == actions.spec.num_classes == 101
  lengths = [len(r["video"]) for r in records]
  assert actions.lengths.tolist() == lengths and len(actions) == expected_clips(lengths, 4, 4)
  assert action_clips["x"].shape == (len(actions), 4, 16, 16, 3)
  np.testing.assert_array_equal(action_clips["label"],
                                [records[v]["label"] for v in actions.table[:, 0]])
