"""InceptionV3 as pytorch-fid's FID network, in Flax, with its weights converted from PyTorch.

The network is the 2015 TensorFlow Inception graph that FID was defined with, in pytorch-fid's
form (mseitzer/pytorch-fid, `FIDInceptionA/C/E_1/E_2`): torchvision's InceptionV3 layout, with
the 3x3 average pools of the A, C and E blocks excluding the padding from their averages and the
last E block max-pooling instead. Inputs are NHWC in [-1, 1] at any size and 1 or 3 channels;
they are resized bilinearly to 299x299 without antialiasing (as torch's `F.interpolate(...,
mode="bilinear", align_corners=False)`), gray repeated to RGB. Outputs: the 2048-d average-pooled
features FID, KID and precision/recall use, and the 1008-way logits of IS.

Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, converted once by
`gan-jax convert-inception` (needs torch) into a plain `.npz` that this module loads without
torch and without pickle. Module and parameter names follow torchvision's, so the conversion is a
rename plus the OIHW -> HWIO kernel transpose.
"""

from __future__ import annotations

import functools
import hashlib
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gan_jax.errors import UserError
from gan_jax.cache import cache_dir
from gan_jax.metrics.cache import read_torch_weights, save_npz

NAME = "inception_v3_fid"
INPUT_SIZE = 299
NUM_LOGITS = 1008
POOL_DIM = 2048
TORCH_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
TORCH_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                     + TORCH_WEIGHTS)
BN_EPS = 1e-3


# ---------------------------------------------------------------------------------------------
# The network


class BasicConv(nn.Module):
  """Conv without bias, batch norm with running statistics (eps 0.001), ReLU."""
  features: int
  kernel: tuple = (1, 1)
  strides: tuple = (1, 1)
  padding: tuple = (0, 0)  # (rows, columns) added on both sides, as torch's Conv2d takes it

  @nn.compact
  def __call__(self, x):
    (ph, pw) = self.padding
    x = nn.Conv(self.features, self.kernel, self.strides, padding=((ph, ph), (pw, pw)),
                use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  """3x3 / stride 1 average pool, padded by 1, dividing by the unpadded count (as TensorFlow)."""
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3(x):
  return nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), (2, 2))


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, name="branch1x1")(x)
    b5 = BasicConv(48, name="branch5x5_1")(x)
    b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv(64, name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """The 35x35 -> 17x17 reduction."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, (3, 3), (2, 2), name="branch3x3")(x)
    bd = BasicConv(64, name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), (2, 2), name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """Factorized 7x7 convolutions (1x7 then 7x1) at 17x17."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
    b1 = BasicConv(192, name="branch1x1")(x)
    b7 = BasicConv(c7, name="branch7x7_1")(x)
    b7 = BasicConv(c7, **row, name="branch7x7_2")(b7)
    b7 = BasicConv(192, **col, name="branch7x7_3")(b7)
    bd = BasicConv(c7, name="branch7x7dbl_1")(x)
    bd = BasicConv(c7, **col, name="branch7x7dbl_2")(bd)
    bd = BasicConv(c7, **row, name="branch7x7dbl_3")(bd)
    bd = BasicConv(c7, **col, name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, **row, name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """The 17x17 -> 8x8 reduction."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, name="branch3x3_1")(x)
    b3 = BasicConv(320, (3, 3), (2, 2), name="branch3x3_2")(b3)
    b7 = BasicConv(192, name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), (2, 2), name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """8x8 block with split 1x3 / 3x1 branches; the FID graph's last one max-pools."""
  pool: str = "avg"  # avg | max

  @nn.compact
  def __call__(self, x):
    row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
    b1 = BasicConv(320, name="branch1x1")(x)
    b3 = BasicConv(384, name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, **row, name="branch3x3_2a")(b3),
                          BasicConv(384, **col, name="branch3x3_2b")(b3)], axis=-1)
    bd = BasicConv(448, name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, **row, name="branch3x3dbl_3a")(bd),
                          BasicConv(384, **col, name="branch3x3dbl_3b")(bd)], axis=-1)
    pooled = _avg_pool_3x3(x) if self.pool == "avg" else _max_pool_3x3(x)
    bp = BasicConv(192, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def resize_input(x):
  """NHWC in [-1, 1] -> [N, 299, 299, 3]: bilinear, half-pixel centres, no antialiasing."""
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), "bilinear", antialias=False)
  return x


class InceptionV3(nn.Module):
  """pytorch-fid's FID InceptionV3: {"pool": [N, 2048], "logits": [N, 1008]}."""

  @nn.compact
  def __call__(self, x):
    x = resize_input(x.astype(jnp.float32))
    x = BasicConv(32, (3, 3), (2, 2), name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = BasicConv(80, name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE("avg", name="Mixed_7b")(x)
    x = InceptionE("max", name="Mixed_7c")(x)
    pool = x.mean(axis=(1, 2))
    return {"pool": pool, "logits": nn.Dense(NUM_LOGITS, name="fc")(pool)}


# ---------------------------------------------------------------------------------------------
# Weights: shapes, conversion from pytorch-fid's state dict, npz files


def variable_shapes() -> dict:
  """{flat key: shape} of every variable, keys "params/Mixed_5b/branch1x1/conv/kernel" style."""
  return dict(_variable_shapes())


@functools.lru_cache(maxsize=1)
def _variable_shapes():
  shapes = jax.eval_shape(InceptionV3().init, jax.random.PRNGKey(0),
                          jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))
  return tuple(("/".join(k), v.shape) for k, v in traverse_util.flatten_dict(shapes).items())


# torch's last name -> (Flax collection, Flax name); BatchNorm's statistics live in batch_stats.
_TORCH_LEAF = {
    ("conv", "weight"): ("params", "kernel"),
    ("bn", "weight"): ("params", "scale"),
    ("bn", "bias"): ("params", "bias"),
    ("bn", "running_mean"): ("batch_stats", "mean"),
    ("bn", "running_var"): ("batch_stats", "var"),
    ("fc", "weight"): ("params", "kernel"),
    ("fc", "bias"): ("params", "bias"),
}


def flax_tensor(torch_key: str, value) -> tuple[str, np.ndarray]:
  """One torch tensor as (flat Flax key, float32 array), or KeyError for a name it cannot map.

  "Mixed_5b.branch1x1.conv.weight" -> "params/Mixed_5b/branch1x1/conv/kernel"; conv kernels go
  from torch's [out, in, h, w] to Flax's [h, w, in, out] and the fc matrix from [out, in] to
  [in, out].
  """
  parts = torch_key.split(".")
  if tuple(parts[-2:]) not in _TORCH_LEAF:
    raise KeyError(torch_key)
  collection, leaf = _TORCH_LEAF[tuple(parts[-2:])]
  value = np.asarray(value, dtype=np.float32)
  if value.ndim == 4:
    value = value.transpose(2, 3, 1, 0)
  elif value.ndim == 2:
    value = value.T
  return "/".join([collection, *parts[:-1], leaf]), value


def from_torch(state_dict: dict) -> dict:
  """pytorch-fid's FID Inception state dict (name -> numpy array) -> flat {Flax key: array}.

  Raises UserError naming the first tensor that is unexpected, misshapen or missing.
  """
  expected = variable_shapes()
  flat = {}
  for torch_key, value in state_dict.items():
    if torch_key.endswith("num_batches_tracked"):
      continue
    try:
      key, value = flax_tensor(torch_key, value)
    except KeyError:
      key = None
    if key not in expected:
      raise UserError(f"The weights hold a tensor {torch_key!r} that pytorch-fid's FID Inception "
                      f"does not have: convert {TORCH_WEIGHTS}, not another network's weights.")
    if value.shape != tuple(expected[key]):
      raise UserError(f"Tensor {torch_key!r} does not have the FID Inception's shape for it "
                      f"({value.shape} after transposing, expected {tuple(expected[key])}): "
                      f"convert {TORCH_WEIGHTS}.")
    flat[key] = value
  missing = sorted(set(expected) - set(flat))
  if missing:
    raise UserError(f"The weights lack {len(missing)} of the FID Inception's tensors (first: "
                    f"{missing[0]}): convert the complete {TORCH_WEIGHTS}.")
  return flat


def default_weights_path() -> str:
  return os.path.join(cache_dir(), "inception_fid_2015-12-05.npz")


def save_weights(flat: dict, path: str) -> str:
  """Writes flat {flax key: array} as a pickle-free .npz; returns the path."""
  save_npz(path, {k: np.asarray(v, np.float32) for k, v in flat.items()})
  return path


def file_sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def missing_weights_message(path: str) -> str:
  return (f"FID, IS, KID and precision/recall need the InceptionV3 weights, and {path} does not "
          f"exist: download {TORCH_WEIGHTS_URL}, convert it with `gan-jax convert-inception "
          f"{TORCH_WEIGHTS} {path}` (needs torch: pip install 'gan-jax[convert]'), or point "
          "--config.eval.inception_weights at a converted file.")


def load_weights(path: str) -> dict:
  """Flax variables {"params": ..., "batch_stats": ...} from a converted .npz."""
  if not os.path.exists(path):
    raise UserError(missing_weights_message(path))
  expected = variable_shapes()
  try:
    with np.load(path, allow_pickle=False) as z:
      flat = {k: z[k] for k in z.files}
  except (OSError, ValueError) as e:
    raise UserError(f"{path} is not a readable .npz ({e}): convert the weights again with "
                    "`gan-jax convert-inception`.") from None
  bad = sorted(k for k in set(expected) | set(flat)
               if k not in flat or k not in expected or flat[k].shape != tuple(expected[k]))
  if bad:
    raise UserError(f"{path} does not hold the FID Inception's weights (first mismatch: {bad[0]}): "
                    "convert them again with `gan-jax convert-inception`.")
  return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def random_weights(seed: int = 0) -> dict:
  """Flat random weights with the real ones' shapes, for tests and timings without a download.

  He-normal kernels and batch-norm statistics near (but not at) identity keep activations O(1)
  through all 94 layers, so a comparison of two implementations tests every layer.
  """
  rng = np.random.default_rng(seed)
  flat = {}
  for key, shape in sorted(variable_shapes().items()):
    leaf = key.rsplit("/", 1)[1]
    if leaf == "kernel":
      fan_in = int(np.prod(shape[:-1]))
      value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif leaf in ("scale", "var"):
      value = rng.uniform(0.7, 1.3, shape)
    else:  # bias, mean
      value = rng.normal(0.0, 0.1, shape)
    flat[key] = value.astype(np.float32)
  return flat


def convert(torch_path: str, out_path: str | None = None) -> str:
  """pytorch-fid's .pth -> a converted .npz (default: the cache); returns the output path."""
  flat = from_torch(read_torch_weights(torch_path, "Inception", TORCH_WEIGHTS, TORCH_WEIGHTS_URL))
  return save_weights(flat, out_path or default_weights_path())


# ---------------------------------------------------------------------------------------------
# Feature extraction


class InceptionExtractor:
  """Pool features and logits of images, batched, jitted and sharded over the local devices.

  Each batch is split over a `data` mesh axis with the weights replicated; the last batch is
  padded to the batch shape (one compile) and the padding dropped.
  """
  name = NAME

  def __init__(self, weights_path: str, batch_size: int = 64):
    self.weights_path = weights_path
    variables = load_weights(weights_path)
    self.weights_hash = file_sha256(weights_path)
    devices = jax.local_devices()
    self.mesh = Mesh(np.array(devices), ("data",))
    self.num_devices = len(devices)
    self.batch_size = -(-batch_size // self.num_devices) * self.num_devices
    self.variables = jax.device_put(variables, NamedSharding(self.mesh, P()))
    batch = NamedSharding(self.mesh, P("data"))
    self._apply = jax.jit(lambda v, x: InceptionV3().apply(v, x),
                          in_shardings=(NamedSharding(self.mesh, P()), batch),
                          out_shardings=batch)

  def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
    """images: float NHWC in [-1, 1] (or uint8) -> (pool [N, 2048], logits [N, 1008]) float32."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
      images = images.astype(np.float32) / 127.5 - 1.0
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"Inception features need NHWC images with 1 or 3 channels, got shape "
                       f"{images.shape}")
    n = images.shape[0]
    # Small inputs get a smaller batch (still a multiple of the device count): less padding.
    size = min(self.batch_size, -(-max(n, 1) // self.num_devices) * self.num_devices)
    pools, logits = [np.zeros((0, POOL_DIM), np.float32)], [np.zeros((0, NUM_LOGITS), np.float32)]
    for start in range(0, n, size):
      chunk = images[start:start + size].astype(np.float32)
      m = chunk.shape[0]
      chunk = np.pad(chunk, ((0, size - m),) + ((0, 0),) * 3)
      out = self._apply(self.variables, chunk)
      pools.append(np.asarray(out["pool"])[:m])
      logits.append(np.asarray(out["logits"])[:m])
    return np.concatenate(pools), np.concatenate(logits)
