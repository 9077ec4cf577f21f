"""The JAX VGG19 features stack against one built from torch.nn layers, the weight conversion,
and the perceptual loss against the same sums computed in torch.

No real weights are needed: torch's stack gets random He-normal weights (activations stay O(1)
through all 16 convs, so every layer is compared at full scale), saved as a torchvision-style
state dict and converted by `gan-jax convert-vgg19`. torchvision itself is not needed.
"""
import jax
import numpy as np
import pytest

from gan_jax import cli
from gan_jax.errors import UserError
from gan_jax.metrics import vgg


def import_torch():
  return pytest.importorskip("torch", reason="the VGG19 parity tests need PyTorch "
                             "(pip install 'gan-jax[convert]')")


# torchvision's vgg19 cfg "E"; "M" is a 2x2 max pool.
TORCHVISION_CFG_E = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def torch_features(seed=0):
  """torchvision's `vgg19().features`, built from torch.nn as torchvision builds it, with
  random He-normal weights and small random biases."""
  torch = import_torch()
  modules, cin = [], 3
  for v in TORCHVISION_CFG_E:
    if v == "M":
      modules.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
    else:
      modules += [torch.nn.Conv2d(cin, v, kernel_size=3, padding=1), torch.nn.ReLU(inplace=True)]
      cin = v
  net = torch.nn.Sequential(*modules).eval()
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in net:
      if isinstance(m, torch.nn.Conv2d):
        fan_in = m.weight[0].numel()
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * np.sqrt(2.0 / fan_in))
        m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
  return net


def torch_input(x):
  """[-1, 1] NHWC -> [0, 1] -> ImageNet-normalised NCHW, as BasicSR feeds VGG."""
  torch = import_torch()
  t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  mean = torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)
  std = torch.tensor(vgg.IMAGENET_STD).view(1, 3, 1, 1)
  return ((t + 1) / 2 - mean) / std


def torch_layer_outputs(net, t):
  """{layer name: NCHW output} of every module of the stack (ReLUs not in place)."""
  torch = import_torch()
  out = {}
  for name, module in zip(vgg.LAYER_NAMES, net):
    # The stack's ReLUs are in place, as torchvision's: they would overwrite the conv output kept.
    t = t.clamp(min=0) if isinstance(module, torch.nn.ReLU) else module(t)
    out[name] = t
  return out


@pytest.fixture(scope="module")
def torch_weights(tmp_path_factory):
  """(net, path of its torchvision-style .pth, the converted .npz path)."""
  torch = import_torch()
  net = torch_features(0)
  state = {f"features.{k}": v for k, v in net.state_dict().items()}
  # torchvision's file also holds the classifier; small stand-ins, which the converter skips.
  state["classifier.0.weight"] = torch.zeros(8, 16)
  state["classifier.6.bias"] = torch.zeros(10)
  d = tmp_path_factory.mktemp("vgg")
  pth = d / vgg.TORCH_WEIGHTS
  torch.save(state, pth)
  npz = d / "vgg19.npz"
  assert cli.main(["convert-vgg19", str(pth), str(npz)]) == 0
  return net, state, pth, str(npz)


def test_layout_is_torchvisions_vgg19():
  # Facts about torchvision's vgg19: 37 modules in `features`, conv5_4 at index 34, pool5 at 36,
  # 20,024,384 feature parameters in 32 tensors.
  assert len(vgg.LAYOUT) == 37 and len(vgg.CONV_NAMES) == 16
  index = {name: i for name, _, i, *_ in vgg.LAYOUT}
  assert index["conv1_1"] == 0 and index["pool1"] == 4 and index["conv3_4"] == 16
  assert index["conv5_4"] == 34 and index["pool5"] == 36
  shapes = vgg.weight_shapes()
  assert len(shapes) == 32 and sum(int(np.prod(s)) for s in shapes.values()) == 20_024_384
  assert shapes["conv4_1/kernel"] == (3, 3, 256, 512)


@pytest.mark.parametrize("impl", ["auto", "conv"])
def test_every_layer_matches_torch(torch_weights, impl):
  torch = import_torch()
  net, _, _, npz = torch_weights
  weights = vgg.load_weights(npz)
  # 36 -> 18 -> 9 -> 4 -> 2 -> 1: the third pool drops an odd row and column, as torch's does.
  x = np.random.default_rng(1).uniform(-1, 1, (2, 36, 36, 3)).astype(np.float32)
  with torch.no_grad():
    ref = torch_layer_outputs(net, torch_input(x))
  out = jax.jit(lambda w, x: vgg.features(w, x, vgg.LAYER_NAMES, impl))(weights, x)
  assert set(out) == set(vgg.LAYER_NAMES)
  for name in vgg.LAYER_NAMES:
    r = ref[name].numpy().transpose(0, 2, 3, 1)
    scale = np.abs(r).max()
    assert scale > 0.1, name  # the random weights keep every layer alive, so each is compared
    np.testing.assert_allclose(np.asarray(out[name]), r, rtol=1e-4, atol=1e-4 * scale,
                               err_msg=name)
  # Before ReLU means before: conv5_4 has negative values, relu5_4 none.
  assert np.asarray(out["conv5_4"]).min() < 0 and np.asarray(out["relu5_4"]).min() == 0


def test_only_layers_up_to_the_deepest_requested_are_computed(torch_weights):
  weights = vgg.load_weights(torch_weights[3])
  x = np.random.default_rng(2).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
  full = vgg.features(weights, x, ("conv2_2", "conv1_2"))
  # Without block 3-5's weights it still runs: nothing past conv2_2 is touched.
  shallow = {k: v for k, v in weights.items() if k.split("_")[0] in ("conv1", "conv2")}
  out = vgg.features(shallow, x, ("conv2_2", "conv1_2"))
  assert set(out) == {"conv1_2", "conv2_2"} and out["conv2_2"].shape == (1, 8, 8, 128)
  np.testing.assert_array_equal(np.asarray(out["conv2_2"]), np.asarray(full["conv2_2"]))
  with pytest.raises(KeyError):
    vgg.features(shallow, x, ("conv3_1",))


def test_gray_input_is_repeated_to_rgb(torch_weights):
  weights = vgg.load_weights(torch_weights[3])
  gray = np.random.default_rng(3).uniform(-1, 1, (1, 8, 8, 1)).astype(np.float32)
  a = vgg.features(weights, gray, "conv1_2")["conv1_2"]
  b = vgg.features(weights, np.repeat(gray, 3, -1), "conv1_2")["conv1_2"]
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ESRGAN's game runs the loss on frozen weights (`cpu_conv.FrozenKernel`) in the CPU forms.
@pytest.mark.parametrize("criterion,frozen", [("l1", False), ("l2", False), ("l2", True)])
def test_perceptual_loss_and_its_gradient_match_torch(torch_weights, criterion, frozen):
  torch = import_torch()
  net, _, _, npz = torch_weights
  weights = vgg.load_weights(npz)
  impl = "auto" if frozen else vgg.DEFAULT_IMPL
  weights = vgg.frozen(weights) if frozen else weights
  rng = np.random.default_rng(4)
  x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  y = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)
  # Frozen kernels compile as constants: two blocks keep the compile short (and L2, since L1's
  # sign flips where the features nearly agree, a Winograd rounding apart).
  layer_weights = ({"conv1_2": 0.1, "conv2_2": 1.0} if frozen else vgg.REAL_ESRGAN_LAYERS)
  # BasicSR's PerceptualLoss: sum of w * L1Loss / MSELoss (means), the target's features detached.
  tx = torch_input(x).requires_grad_(True)
  fx = torch_layer_outputs(net, tx)
  with torch.no_grad():
    fy = torch_layer_outputs(net, torch_input(y))
  crit = torch.nn.L1Loss() if criterion == "l1" else torch.nn.MSELoss()
  ref = sum(w * crit(fx[name], fy[name]) for name, w in layer_weights.items())
  ref.backward()
  # d loss / d x in [-1, 1]: the chain through (x + 1) / 2 and the std division.
  std = np.asarray(vgg.IMAGENET_STD, np.float32)
  ref_grad = tx.grad.numpy().transpose(0, 2, 3, 1) * 0.5 / std

  loss_fn = jax.jit(lambda x, y: vgg.perceptual_loss(weights, x, y, layer_weights, criterion,
                                                     impl))
  loss, (gx, gy) = jax.value_and_grad(loss_fn, argnums=(0, 1))(x, y)
  assert loss.shape == () and float(loss) > 0.1
  np.testing.assert_allclose(float(loss), ref.item(), rtol=1e-4)
  np.testing.assert_allclose(np.asarray(gx), ref_grad, rtol=1e-3,
                             atol=1e-3 * np.abs(ref_grad).max())
  assert not np.asarray(gy).any()  # the target's features are constants
  assert float(loss_fn(x, x)) == 0.0


def test_perceptual_loss_weights_each_layer():
  weights = vgg.random_weights(1)
  rng = np.random.default_rng(5)
  x, y = (rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32) for _ in range(2))
  fx, fy = vgg.features(weights, x, ("conv1_2", "conv2_2")), vgg.features(weights, y, ("conv1_2", "conv2_2"))
  expected = 0.1 * np.abs(fx["conv1_2"] - fy["conv1_2"]).mean() + 2.0 * np.abs(fx["conv2_2"] - fy["conv2_2"]).mean()
  loss = vgg.perceptual_loss(weights, x, y, {"conv1_2": 0.1, "conv2_2": 2.0})
  np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)


def test_bad_layer_or_criterion_is_a_user_error():
  weights = vgg.random_weights(0)
  x = np.zeros((1, 8, 8, 3), np.float32)
  with pytest.raises(UserError, match="no layer 'conv5_5'.*convX_Y"):
    vgg.features(weights, x, ("conv1_1", "conv5_5"))
  with pytest.raises(UserError, match="empty layer list"):
    vgg.features(weights, x, ())
  with pytest.raises(UserError, match="'fro'.*'l1' or 'l2'"):
    vgg.perceptual_loss(weights, x, x, {"conv1_1": 1.0}, criterion="fro")


# ---------------------------------------------------------------------------------------------
# Conversion and loading


def test_convert_round_trip(torch_weights, tmp_path, capsys, monkeypatch):
  from gan_jax.metrics import inception  # pylint: disable=g-import-not-at-top
  _, state, pth, _ = torch_weights
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path / "cache"))
  assert vgg.default_weights_path() == str(tmp_path / "cache" / "vgg19.npz")
  assert cli.main(["convert-vgg19", str(pth)]) == 0  # no output path: the cache
  out = vgg.default_weights_path()
  assert capsys.readouterr().out.strip() == f"{out} sha256={inception.file_sha256(out)}"
  weights = vgg.load_weights()
  assert set(weights) == set(vgg.weight_shapes())
  np.testing.assert_array_equal(weights["conv3_4/kernel"],
                                state["features.16.weight"].numpy().transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(weights["conv5_4/bias"], state["features.34.bias"].numpy())


def assert_one_clear_error(capsys, expected):
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: ") and expected in err, err


@pytest.mark.parametrize("case", ["missing tensor", "batch norm tensor", "other network",
                                  "wrong shape", "not torch", "not a state dict", "no file",
                                  "no args"])
def test_convert_rejects_bad_input(case, torch_weights, tmp_path, capsys):
  torch = import_torch()
  _, state, pth, _ = torch_weights
  state = dict(state)
  if case == "missing tensor":
    del state["features.23.bias"]
  elif case == "batch norm tensor":  # vgg19_bn: features.1 is a BatchNorm2d
    state["features.1.running_mean"] = torch.zeros(64)
  elif case == "other network":
    state = {"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}
  elif case == "wrong shape":
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
  elif case == "not a state dict":
    state = [torch.zeros(3)]
  if case in ("missing tensor", "batch norm tensor", "other network", "wrong shape",
              "not a state dict"):
    pth = tmp_path / "bad.pth"
    torch.save(state, pth)
  elif case == "not torch":
    pth = tmp_path / "bad.pth"
    pth.write_text("not a checkpoint")
  elif case == "no file":
    pth = tmp_path / "missing.pth"
  out = tmp_path / "out.npz"
  argv = [] if case == "no args" else [str(pth), str(out)]
  expected = {"missing tensor": "lack 1 of VGG19's 32 feature tensors (first: conv4_3/bias)",
              "batch norm tensor": "'features.1.running_mean' that torchvision's VGG19",
              "other network": "'Conv2d_1a_3x3.conv.weight' that torchvision's VGG19",
              "wrong shape": "'features.0.weight' does not have VGG19's shape",
              "not torch": "not a readable PyTorch", "not a state dict": "holds a list",
              "no file": "does not exist: download https://download.pytorch.org/models/",
              "no args": "takes the .pth path"}[case]
  assert cli.main(["convert-vgg19", *argv]) == 2
  assert_one_clear_error(capsys, expected)
  assert not out.exists()


def test_missing_or_wrong_weights_say_how_to_get_them(tmp_path):
  path = str(tmp_path / "none.npz")
  with pytest.raises(UserError, match=r"https://download\.pytorch\.org/models/vgg19-dcabb4bb\.pth"
                     r".*`gan-jax convert-vgg19 vgg19-dcabb4bb\.pth .*none\.npz`.*torch"):
    vgg.load_weights(path)
  np.savez(tmp_path / "other.npz", kernel=np.zeros(3))
  with pytest.raises(UserError, match="does not hold VGG19's weights"):
    vgg.load_weights(str(tmp_path / "other.npz"))
  (tmp_path / "junk.npz").write_text("junk")
  with pytest.raises(UserError, match="not a readable .npz"):
    vgg.load_weights(str(tmp_path / "junk.npz"))
