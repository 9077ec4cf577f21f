"""The Flax FID InceptionV3: parity with pytorch-fid, the weight conversion, sharded extraction.

No real weights are needed (none can be downloaded here): both networks get the same random ones.
The full-network parity test needs torch, torchvision and pytorch-fid, which CI does not install;
it skips there and says so. The layer-by-layer tests need torch alone and check the conversion
(OIHW -> HWIO kernels, batch-norm parameters and statistics, the fc matrix) and the pools.
"""
import os

import jax
import numpy as np
import pytest

from gan_jax import cli
from gan_jax.errors import UserError
from gan_jax.metrics import inception


def import_torch():
  return pytest.importorskip("torch", reason="the conversion tests need PyTorch "
                             "(pip install 'gan-jax[convert]'); .ci/run installs the CPU wheel")


def import_pytorch_fid():
  import_torch()
  try:
    from pytorch_fid import inception as fid_inception  # pylint: disable=g-import-not-at-top
  except Exception as e:  # pylint: disable=broad-except  (missing, or torchvision's ops failing)
    pytest.skip("parity with pytorch-fid needs torchvision and pytorch-fid importable next to "
                f"torch ({type(e).__name__}: {str(e)[:80]}); CI installs neither")
  return fid_inception


@pytest.fixture(scope="module")
def weights_path(tmp_path_factory):
  path = tmp_path_factory.mktemp("inception") / "random.npz"
  return inception.save_weights(inception.random_weights(0), str(path))


@pytest.fixture(scope="module")
def extractor(weights_path):
  return inception.InceptionExtractor(weights_path, batch_size=8)


# ---------------------------------------------------------------------------------------------
# Against pytorch-fid itself


def random_torch_state(state_dict, seed=0):
  """Random values for every tensor of a torch state dict, scaled to keep activations O(1)."""
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  out = {}
  for key, tensor in state_dict.items():
    shape = tuple(tensor.shape)
    if key.endswith("num_batches_tracked"):
      out[key] = tensor.clone()
      continue
    if key.endswith(".weight") and len(shape) > 1:  # conv or fc: He normal
      value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
    elif key.endswith(("bn.weight", "running_var")):
      value = rng.uniform(0.7, 1.3, shape)
    else:
      value = rng.normal(0.0, 0.1, shape)
    out[key] = torch.from_numpy(value.astype(np.float32))
  return out


def test_pool_features_match_pytorch_fid(tmp_path, monkeypatch):
  fid_inception = import_pytorch_fid()
  import torch  # pylint: disable=g-import-not-at-top
  # pytorch-fid builds its network with its own code; only the download is replaced, by random
  # values for exactly the tensors its network asks for (strict loading checks every name).
  built = {}
  make_inception = fid_inception._inception_v3  # pylint: disable=protected-access

  def keep(*args, **kwargs):
    built["net"] = make_inception(*args, **kwargs)
    return built["net"]

  monkeypatch.setattr(fid_inception, "_inception_v3", keep)
  monkeypatch.setattr(fid_inception, "load_state_dict_from_url",
                      lambda *args, **kwargs: random_torch_state(built["net"].state_dict()))
  model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

  pth = tmp_path / inception.TORCH_WEIGHTS
  torch.save(built["net"].state_dict(), pth)
  assert cli.main(["convert-inception", str(pth), str(tmp_path / "converted.npz")]) == 0
  flax_model = inception.InceptionExtractor(str(tmp_path / "converted.npz"), batch_size=8)

  images = np.random.default_rng(0).uniform(-1, 1, (3, 16, 16, 1)).astype(np.float32)
  pool, logits = flax_model(images)
  with torch.no_grad():
    rgb01 = torch.from_numpy((np.repeat(images, 3, -1).transpose(0, 3, 1, 2) + 1) / 2)
    ref_pool = model(rgb01)[0][:, :, 0, 0]  # pytorch-fid takes [0, 1] and resizes to 299 itself
    ref_logits = built["net"].fc(ref_pool).numpy()
  ref_pool = ref_pool.numpy()
  diff = float(np.abs(pool - ref_pool).max())
  print(f"max |pool - pytorch-fid pool| = {diff:.2e} (pool values up to {np.abs(ref_pool).max():.2f})")
  assert np.abs(ref_pool).max() > 0.1  # the comparison is not between two vectors of zeros
  assert diff <= 1e-4
  np.testing.assert_allclose(logits, ref_logits, atol=1e-3, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Layer by layer against torch.nn (torch only)


def flax_variables(torch_module, prefix):
  """A torch module's tensors through the converter's mapping, as Flax variables."""
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  flat = {}
  for name, value in torch_module.state_dict().items():
    if not name.endswith("num_batches_tracked"):
      key, array = inception.flax_tensor(f"{prefix}.{name}", value.numpy())
      flat[tuple(key.split("/"))] = array
  tree = traverse_util.unflatten_dict(flat)
  return {collection: tree[collection][prefix] for collection in tree}


@pytest.mark.parametrize("kernel,stride,padding", [  # every shape the network uses
    ((1, 1), (1, 1), (0, 0)), ((3, 3), (2, 2), (0, 0)), ((3, 3), (1, 1), (0, 0)),
    ((3, 3), (1, 1), (1, 1)), ((5, 5), (1, 1), (2, 2)), ((1, 7), (1, 1), (0, 3)),
    ((7, 1), (1, 1), (3, 0)), ((1, 3), (1, 1), (0, 1)), ((3, 1), (1, 1), (1, 0))])
def test_basic_conv_equals_torch_conv_bn_relu(kernel, stride, padding):
  torch = import_torch()
  torch.manual_seed(0)
  conv = torch.nn.Conv2d(5, 6, kernel, stride, padding, bias=False)
  bn = torch.nn.BatchNorm2d(6, eps=0.001)
  module = torch.nn.Module()
  module.conv, module.bn = conv, bn
  module.load_state_dict(random_torch_state(module.state_dict(), seed=1))
  module.eval()
  x = np.random.default_rng(2).standard_normal((2, 11, 13, 5)).astype(np.float32)
  with torch.no_grad():
    ref = torch.relu(bn(conv(torch.from_numpy(x.transpose(0, 3, 1, 2))))).numpy().transpose(0, 2, 3, 1)
  out = inception.BasicConv(6, kernel, stride, padding).apply(flax_variables(module, "Mixed_5b"), x)
  np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)


def test_fc_converts_from_torch_linear():
  torch = import_torch()
  fc = torch.nn.Linear(inception.POOL_DIM, inception.NUM_LOGITS)
  x = np.random.default_rng(3).standard_normal((2, inception.POOL_DIM)).astype(np.float32)
  key, kernel = inception.flax_tensor("fc.weight", fc.weight.detach().numpy())
  assert key == "params/fc/kernel" and kernel.shape == (2048, 1008)
  _, bias = inception.flax_tensor("fc.bias", fc.bias.detach().numpy())
  with torch.no_grad():
    ref = fc(torch.from_numpy(x)).numpy()
  np.testing.assert_allclose(x @ kernel + bias, ref, atol=1e-4)


def test_pools_equal_torch_and_exclude_padding():
  torch = import_torch()
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(4).standard_normal((2, 9, 8, 3)).astype(np.float32)
  t = torch.from_numpy(x.transpose(0, 3, 1, 2))
  nhwc = lambda y: y.numpy().transpose(0, 2, 3, 1)
  avg = np.asarray(inception._avg_pool_3x3(x))  # pylint: disable=protected-access
  np.testing.assert_allclose(avg, nhwc(F.avg_pool2d(t, 3, 1, 1, count_include_pad=False)), atol=1e-6)
  # Border averages differ from torch's default (zeros counted): the choice matters.
  assert np.abs(avg - nhwc(F.avg_pool2d(t, 3, 1, 1))).max() > 0.05
  np.testing.assert_array_equal(np.asarray(inception._max_pool_3x3(x)),  # pylint: disable=protected-access
                                nhwc(F.max_pool2d(t, 3, 1, 1)))
  np.testing.assert_array_equal(np.asarray(inception._max_pool_3x3_s2(x)),  # pylint: disable=protected-access
                                nhwc(F.max_pool2d(t, 3, 2)))


@pytest.mark.parametrize("size", [16, 32, 299, 512])
def test_resize_equals_torch_bilinear_without_antialiasing(size):
  torch = import_torch()
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  with torch.no_grad():
    ref = F.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)), size=(299, 299),
                        mode="bilinear", align_corners=False).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(np.asarray(inception.resize_input(x)), ref, atol=2e-6)
  gray = x[..., :1]
  np.testing.assert_array_equal(np.asarray(inception.resize_input(gray)),
                                np.asarray(inception.resize_input(np.repeat(gray, 3, -1))))


# ---------------------------------------------------------------------------------------------
# Names and shapes against pytorch-fid's weights file, and the converter (no torchvision)


# Facts about pt_inception-2015-12-05-6726825d.pth: 472 tensors besides num_batches_tracked,
# 23,885,392 values; a few names with their torch shapes.
KNOWN_TENSORS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Mixed_5b.branch_pool.bn.running_var": (32,),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
}


def test_variables_have_pytorch_fid_names_and_shapes():
  shapes = inception.variable_shapes()
  assert len(shapes) == 472 and sum(int(np.prod(s)) for s in shapes.values()) == 23_885_392
  for torch_key, torch_shape in KNOWN_TENSORS.items():
    key, value = inception.flax_tensor(torch_key, np.zeros(torch_shape))
    assert tuple(shapes[key]) == value.shape, torch_key


def torch_state_from_flax(flat):
  """The inverse mapping (test only): flat Flax weights as a pytorch-fid-style state dict."""
  import torch  # pylint: disable=g-import-not-at-top
  names = {("params", "kernel"): "weight", ("params", "scale"): "weight", ("params", "bias"): "bias",
           ("batch_stats", "mean"): "running_mean", ("batch_stats", "var"): "running_var"}
  out = {}
  for key, value in flat.items():
    collection, *path, leaf = key.split("/")
    if value.ndim == 4:
      value = value.transpose(3, 2, 0, 1)
    elif value.ndim == 2:
      value = value.T
    out[".".join(path + [names[(collection, leaf)]])] = torch.from_numpy(np.ascontiguousarray(value))
  return out


@pytest.fixture(scope="module")
def torch_weights(tmp_path_factory):
  torch = import_torch()
  flat = inception.random_weights(5)
  state = torch_state_from_flax(flat)
  state["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0)  # ignored by the converter
  path = tmp_path_factory.mktemp("torch") / inception.TORCH_WEIGHTS
  torch.save(state, path)
  return flat, state, path


def test_convert_round_trip(torch_weights, tmp_path, capsys):
  flat, _, pth = torch_weights
  out = tmp_path / "w.npz"
  assert cli.main(["convert-inception", str(pth), str(out)]) == 0
  assert capsys.readouterr().out.strip() == f"{out} sha256={inception.file_sha256(str(out))}"
  with np.load(out, allow_pickle=False) as z:
    assert sorted(z.files) == sorted(flat)
    for key in flat:
      np.testing.assert_array_equal(z[key], flat[key])
  variables = inception.load_weights(str(out))
  assert set(variables) == {"params", "batch_stats"}


def assert_one_clear_error(capsys, expected):
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: ") and expected in err, err


@pytest.mark.parametrize("case", ["missing tensor", "extra tensor", "wrong shape", "not torch",
                                  "no file", "no args"])
def test_convert_rejects_bad_input(case, torch_weights, tmp_path, capsys):
  torch = import_torch()
  _, state, pth = torch_weights
  state = dict(state)
  if case == "missing tensor":
    del state["Mixed_6c.branch7x7dbl_3.bn.running_mean"]
  elif case == "extra tensor":
    state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
  elif case == "wrong shape":
    state["fc.weight"] = torch.zeros(1000, 2048)
  if case in ("missing tensor", "extra tensor", "wrong shape"):
    pth = tmp_path / "bad.pth"
    torch.save(state, pth)
  elif case == "not torch":
    pth = tmp_path / "bad.pth"
    pth.write_text("not a checkpoint")
  elif case == "no file":
    pth = tmp_path / "missing.pth"
  out = tmp_path / "out.npz"
  argv = [] if case == "no args" else [str(pth), str(out)]
  expected = {"missing tensor": "Mixed_6c/branch7x7dbl_3/bn/mean", "extra tensor": "AuxLogits.fc",
              "wrong shape": "'fc.weight'", "not torch": "not a readable PyTorch",
              "no file": "does not exist", "no args": "takes the .pth path"}[case]
  assert cli.main(["convert-inception", *argv]) == 2
  assert_one_clear_error(capsys, expected)
  assert not out.exists()


def test_missing_or_wrong_weights_say_how_to_get_them(tmp_path):
  with pytest.raises(UserError, match="pytorch-fid/releases/download/fid_weights/"
                     "pt_inception-2015-12-05-6726825d.pth.*convert-inception"):
    inception.load_weights(str(tmp_path / "none.npz"))
  np.savez(tmp_path / "other.npz", kernel=np.zeros(3))
  with pytest.raises(UserError, match="does not hold the FID Inception"):
    inception.load_weights(str(tmp_path / "other.npz"))


# ---------------------------------------------------------------------------------------------
# Extraction


def test_extraction_is_sharded_padded_and_batch_independent(extractor):
  images = np.random.default_rng(6).uniform(-1, 1, (5, 16, 16, 1)).astype(np.float32)
  pool, logits = extractor(images)  # one batch of 8 (one image per device): 3 rows of padding
  assert pool.shape == (5, 2048) and logits.shape == (5, 1008)
  assert np.isfinite(pool).all() and pool.std() > 0.01
  again, _ = extractor(images[2:])  # the same batch shape with other rows of padding
  np.testing.assert_allclose(again, pool[2:], atol=1e-5)
  assert np.abs(pool[0] - pool[1]).max() > 1e-3  # different images, different features
  out = extractor._apply(extractor.variables, np.zeros((8, 16, 16, 1), np.float32))  # pylint: disable=protected-access
  assert len(out["pool"].sharding.device_set) == jax.device_count() == 8


def test_weights_hash_names_the_file(extractor, weights_path):
  assert extractor.weights_hash == inception.file_sha256(weights_path)
  assert len(extractor.weights_hash) == 64 and os.path.getsize(weights_path) > 90e6
