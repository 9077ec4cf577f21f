"""LPIPS (VGG16, v0.1) against a torch forward of the same weights, its conversion, and LPIPS as
`gan-jax project`'s distance.

No real VGG16 weights are needed: random He-normal ones are saved as a torchvision-style state
dict. The lin weights are the lpips package's own where it is installed (found as a file; the
package itself imports torchvision), else random non-negative ones. The torch reference is
written here from torch.nn.functional ops and lpips's constants, not from our code.
"""
import importlib.util
import os

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import cli, projection
from gan_jax.errors import UserError
from gan_jax.metrics import lpips, vgg
from runs import trained

# torchvision's vgg16 cfg "D"; "M" is a 2x2 max pool. LPIPS reads the ReLUs at these indices.
TORCHVISION_CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                     512, 512, 512, "M"]
TAP_INDICES = (3, 8, 15, 22, 29)
# lpips's ScalingLayer and normalize_tensor.
SHIFT, SCALE, EPS = (-.030, -.088, -.188), (.458, .448, .450), 1e-10
LIN_CHANNELS = (64, 128, 256, 512, 512)


def import_torch():
  return pytest.importorskip("torch", reason="the LPIPS parity tests need PyTorch "
                             "(pip install 'gan-jax[convert]')")


def shipped_lin_weights():
  """lpips's weights/v0.1/vgg.pth where the package is installed, else None."""
  spec = importlib.util.find_spec("lpips")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = os.path.join(list(spec.submodule_search_locations)[0], "weights", "v0.1", "vgg.pth")
  return path if os.path.exists(path) else None


def torch_vgg16_state(seed=0):
  """A torchvision-style VGG16 state dict with random He-normal kernels and small biases."""
  torch = import_torch()
  gen = torch.Generator().manual_seed(seed)
  state, cin, index = {}, 3, 0
  for v in TORCHVISION_CFG_D:
    if v == "M":
      index += 1
      continue
    state[f"features.{index}.weight"] = torch.randn((v, cin, 3, 3), generator=gen) * np.sqrt(
        2.0 / (cin * 9))
    state[f"features.{index}.bias"] = torch.randn((v,), generator=gen) * 0.1
    cin, index = v, index + 2
  state["classifier.0.weight"] = torch.zeros(8, 16)  # a stand-in the converter skips
  return state


def torch_lpips(vgg_state, lin_state, x, y):
  """LPIPS [N] of NHWC float32 images in [-1, 1], as lpips's LPIPS(net='vgg') computes it."""
  torch = import_torch()
  F = torch.nn.functional

  def taps(images):
    t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    t = (t - torch.tensor(SHIFT).view(1, 3, 1, 1)) / torch.tensor(SCALE).view(1, 3, 1, 1)
    out, index = [], 0
    for v in TORCHVISION_CFG_D:
      if v == "M":
        t, index = F.max_pool2d(t, 2, 2), index + 1
        continue
      t = F.relu(F.conv2d(t, vgg_state[f"features.{index}.weight"],
                          vgg_state[f"features.{index}.bias"], padding=1))
      if index + 1 in TAP_INDICES:
        out.append(t / (torch.sqrt(torch.sum(t ** 2, dim=1, keepdim=True)) + EPS))
      if index + 1 == TAP_INDICES[-1]:
        return out
      index += 2

  total = 0
  for i, (a, b) in enumerate(zip(taps(x), taps(y))):
    total = total + F.conv2d((a - b) ** 2, lin_state[f"lin{i}.model.1.weight"]).mean([2, 3])
  return total[:, 0].numpy()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """(VGG16 state, lin state, the .npz `gan-jax convert-lpips` wrote, the two .pth paths)."""
  torch = import_torch()
  d = tmp_path_factory.mktemp("lpips")
  vgg_state = torch_vgg16_state(0)
  vgg_pth = d / vgg.VGG16.torch_weights
  torch.save(vgg_state, vgg_pth)
  lin_pth = shipped_lin_weights()
  if lin_pth is None:
    gen = torch.Generator().manual_seed(1)
    lin_pth = d / "vgg.pth"
    torch.save({f"lin{i}.model.1.weight": torch.rand((1, c, 1, 1), generator=gen) * 0.2
                for i, c in enumerate(LIN_CHANNELS)}, lin_pth)
  lin_state = torch.load(lin_pth, map_location="cpu", weights_only=True)
  npz = d / "lpips.npz"
  assert cli.main(["convert-lpips", f"--vgg16={vgg_pth}", f"--lin={lin_pth}",
                   f"--out={npz}"]) == 0
  return vgg_state, lin_state, str(npz), vgg_pth, lin_pth


def image_pairs(rng, n, side):
  """n pairs: one of unrelated pictures, the others a picture and a noisy copy of it."""
  x = rng.uniform(-1, 1, (n, side, side, 3)).astype(np.float32)
  y = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)
  y[0] = rng.uniform(-1, 1, (side, side, 3))
  return x, y


def test_matches_torch_at_64px(converted):
  vgg_state, lin_state, npz, *_ = converted
  weights = lpips.load_weights(npz)
  x, y = image_pairs(np.random.default_rng(0), 3, 64)
  ref = torch_lpips(vgg_state, lin_state, x, y)
  ours = np.asarray(jax.jit(lpips.distance)(weights, x, y))
  assert ours.shape == (3,) and ref.min() > 1e-3, ref
  np.testing.assert_allclose(ours, ref, rtol=1e-4)
  assert ref[0] > ref[1:].max()  # the unrelated pair is the farthest


def test_scaling_layer_is_imagenets_normalisation():
  # LPIPS's constants are ImageNet's mean and std for [-1, 1] inputs, which vgg.features uses.
  np.testing.assert_allclose(SHIFT, 2 * np.asarray(vgg.IMAGENET_MEAN) - 1, atol=1e-12)
  np.testing.assert_allclose(SCALE, 2 * np.asarray(vgg.IMAGENET_STD), atol=1e-12)


def test_zero_for_identical_pictures_and_symmetric():
  weights = lpips.random_weights(0)
  rng = np.random.default_rng(1)
  x, y = image_pairs(rng, 2, 32)
  fn = jax.jit(lpips.distance)
  assert not np.asarray(fn(weights, x, x)).any()
  xy, yx = np.asarray(fn(weights, x, y)), np.asarray(fn(weights, y, x))
  assert (xy > 0).all()
  np.testing.assert_allclose(xy, yx, rtol=1e-6)
  gray = x[..., :1]  # repeated to RGB, as vgg.features does
  np.testing.assert_array_equal(np.asarray(fn(weights, gray, y)),
                                np.asarray(fn(weights, np.repeat(gray, 3, -1), y)))


def test_gradient_is_finite_where_a_tap_is_all_zero():
  weights = lpips.random_weights(2)
  weights["conv5_3/bias"] = np.full_like(weights["conv5_3/bias"], -1e3)  # relu5_3 all zero
  x, y = image_pairs(np.random.default_rng(2), 1, 16)
  assert not np.asarray(lpips.features(weights, x)[-1]).any()
  grad = jax.grad(lambda x: lpips.distance(weights, x, y).sum())(x)
  assert np.isfinite(np.asarray(grad)).all() and np.abs(np.asarray(grad)).max() > 0


def test_pictures_under_16_pixels_are_refused():
  weights = lpips.random_weights(0)
  x = np.zeros((1, 8, 8, 3), np.float32)
  with pytest.raises(UserError, match="at least 16x16 pixels.*these are 8x8"):
    lpips.distance(weights, x, x)


# ---------------------------------------------------------------------------------------------
# Conversion


def test_convert_round_trip_into_the_cache(converted, tmp_path, capsys, monkeypatch):
  from gan_jax.metrics import inception  # pylint: disable=import-outside-toplevel
  vgg_state, lin_state, _, vgg_pth, lin_pth = converted
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path / "cache"))
  assert cli.main(["convert-lpips", f"--vgg16={vgg_pth}", f"--lin={lin_pth}"]) == 0
  out = lpips.default_weights_path()
  assert out.startswith(str(tmp_path / "cache"))
  assert capsys.readouterr().out.strip() == f"{out} sha256={inception.file_sha256(out)}"
  weights = lpips.load_weights()
  assert set(weights) == set(lpips.weight_shapes()) and len(weights) == 26 + 5
  np.testing.assert_array_equal(weights["conv5_3/kernel"],
                                vgg_state["features.28.weight"].numpy().transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(weights["lin/relu3_3"],
                                lin_state["lin2.model.1.weight"].numpy().reshape(-1))


def assert_one_clear_error(capsys, expected):
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert err.startswith("gan-jax: error: ") and expected in err and err.endswith("."), err


CONVERT_BAD = {
    "vgg19 as vgg16": "'features.16.weight' that torchvision's VGG16 does not have",
    "alex lin": "'lin1.model.1.weight' is (1, 192, 1, 1), and LPIPS's VGG lin layer",
    "negative lin": "holds negative weights",
    "missing lin": "lack 1 of LPIPS's 5 VGG lin layers (first: lin4.model.1.weight)",
    "lin file as vgg16": "'lin0.model.1.weight' that torchvision's VGG16 does not have",
    "no such file": "does not exist: download https://github.com/richzhang/",
    "not torch": "not a readable PyTorch state dict",
    "no lin flag": "convert-lpips needs --lin=",
}


@pytest.mark.parametrize("case", sorted(CONVERT_BAD))
def test_convert_rejects_bad_input(case, converted, tmp_path, capsys):
  torch = import_torch()
  vgg_state, lin_state, _, vgg_pth, lin_pth = converted
  bad = tmp_path / "bad.pth"
  lin_state = dict(lin_state)
  if case == "vgg19 as vgg16":  # VGG19's block 3 has a fourth conv at index 16, a pool in VGG16
    torch.save({**vgg_state, "features.16.weight": torch.zeros(256, 256, 3, 3)}, bad)
    vgg_pth = bad
  elif case == "alex lin":
    lin_state["lin1.model.1.weight"] = torch.ones(1, 192, 1, 1)
  elif case == "negative lin":
    lin_state["lin3.model.1.weight"] = -torch.ones(1, 512, 1, 1)
  elif case == "missing lin":
    del lin_state["lin4.model.1.weight"]
  elif case == "lin file as vgg16":
    vgg_pth = lin_pth
  elif case == "no such file":
    lin_pth = tmp_path / "missing.pth"
  elif case == "not torch":
    bad.write_text("not a checkpoint")
    lin_pth = bad
  if case in ("alex lin", "negative lin", "missing lin"):
    torch.save(lin_state, bad)
    lin_pth = bad
  out = tmp_path / "out.npz"
  argv = ["convert-lpips", f"--vgg16={vgg_pth}", f"--out={out}"]
  if case != "no lin flag":
    argv.append(f"--lin={lin_pth}")
  assert cli.main(argv) == 2
  assert_one_clear_error(capsys, CONVERT_BAD[case])
  assert not out.exists()


def test_missing_or_wrong_weights_say_how_to_get_them(tmp_path):
  path = str(tmp_path / "none.npz")
  with pytest.raises(UserError, match=r"vgg16-397923af\.pth.*pip install lpips.*"
                     r"`gan-jax convert-lpips --vgg16=vgg16-397923af\.pth --lin=vgg\.pth "
                     r"--out=.*none\.npz`"):
    lpips.load_weights(path)
  vgg.save_weights(vgg.random_weights(0, vgg.VGG16), str(tmp_path / "vgg16_only.npz"))
  with pytest.raises(UserError, match="does not hold LPIPS's VGG16 and lin weights.*lin/relu1_2"):
    lpips.load_weights(str(tmp_path / "vgg16_only.npz"))


# ---------------------------------------------------------------------------------------------
# `gan-jax project`


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory):
  return trained(tmp_path_factory, "dcgan_digits")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("lpips_random") / "lpips.npz")
  return vgg.save_weights(lpips.random_weights(3), path)


def save_picture(workdir, path):
  import gan_jax  # pylint: disable=import-outside-toplevel
  pixels = gan_jax.load(workdir).sample(1, seed=5, uint8=True)[0]
  Image.fromarray(pixels[..., 0]).save(path)
  return path


def test_project_fits_by_lpips_from_the_file_given(dcgan, weights_file, tmp_path, capsys):
  image = save_picture(dcgan, tmp_path / "a.png")
  out = tmp_path / "out"
  assert cli.main(["project", f"--workdir={dcgan}", f"--image={image}", f"--out={out}",
                   "--steps=2", f"--lpips={weights_file}", "--noprogress"]) == 0
  line = capsys.readouterr().out.strip()
  assert f"wrote 1 projections to {out}" in line, line
  assert f"distance: LPIPS (VGG16, v0.1 lin weights, from {weights_file}) x 1" in line, line
  assert "D features" not in line
  assert sorted(os.listdir(out)) == ["a.gif", "a.npz", "a.png"]


def test_the_cache_file_is_used_when_present(dcgan, weights_file, tmp_path, monkeypatch):
  import gan_jax  # pylint: disable=import-outside-toplevel
  model = gan_jax.load(dcgan)
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  assert "the run's D features" in projection.Projector(model, "z").distance
  os.symlink(weights_file, lpips.default_weights_path())
  found = projection.Projector(model, "z")
  assert found.lpips_path == lpips.default_weights_path()
  assert found.distance.startswith(f"LPIPS (VGG16, v0.1 lin weights, from {found.lpips_path})")
  assert "D features" in projection.Projector(model, "z", lpips=False).distance


@pytest.mark.parametrize("case", ["missing", "not npz", "empty"])
def test_bad_lpips_path_is_one_sentence(case, dcgan, tmp_path, capsys):
  image = save_picture(dcgan, tmp_path / "a.png")
  path = {"missing": tmp_path / "none.npz", "not npz": tmp_path / "junk.npz", "empty": ""}[case]
  (tmp_path / "junk.npz").write_text("junk")
  out = tmp_path / "out"
  assert cli.main(["project", f"--workdir={dcgan}", f"--image={image}", f"--out={out}",
                   f"--lpips={path}"]) == 2
  expected = {"missing": "none.npz does not exist: download", "not npz": "not a readable .npz",
              "empty": "--lpips= needs the path"}[case]
  assert_one_clear_error(capsys, expected)
  assert not out.exists()
