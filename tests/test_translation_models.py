"""The translation nets (U-Net, ResNet generator, PatchGAN) are the reference's
(junyanz/pytorch-CycleGAN-and-pix2pix, as benchmarks/peers writes them out): the same parameter
counts at full size, and with the same weights copied in, the same outputs and gradients at
tiny sizes, with the CPU's matmul-form convolutions and with native ones."""
import importlib.util
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import REPO
from gan_jax.errors import UserError
from gan_jax.models import build_translation
from gan_jax.models.layers import Conv3x3s2, ConvS1, ConvTranspose3x3s2
from gan_jax.models.patchgan import PatchGAN
from gan_jax.models.resnet_gen import ResnetGenerator
from gan_jax.models.unet import UNet

torch = pytest.importorskip("torch", reason="the PyTorch reference needs torch (pip install torch)")

PEERS = os.path.join(REPO, "benchmarks", "peers")


def load_peer(name):
  if PEERS not in sys.path:  # torch_cyclegan imports torch_pix2pix
    sys.path.insert(0, PEERS)
  spec = importlib.util.spec_from_file_location(name, os.path.join(PEERS, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


pix2pix, cyclegan = load_peer("torch_pix2pix"), load_peer("torch_cyclegan")


def t2j(t):
  return jnp.asarray(t.detach().numpy())


def j2t(x):
  return torch.from_numpy(np.asarray(x).copy())


def count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def init_shapes(module, shape):
  keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
  return jax.eval_shape(lambda: module.init(keys, jnp.zeros(shape), train=False))


def torch_to_ours(net, conv_names, norm_names):
  """The torch net's convs and batch norms, in module order, onto our layers of those names:
  kernels to [kh, kw, in, out] (a transposed conv's kept in PyTorch's meaning)."""
  convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
  norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  assert len(convs) == len(conv_names)
  params, stats = {}, {}
  for name, m in zip(conv_names, convs):
    order = (2, 3, 0, 1) if isinstance(m, torch.nn.ConvTranspose2d) else (2, 3, 1, 0)
    params[name] = {"kernel": t2j(m.weight.permute(*order))}
    if m.bias is not None:
      params[name]["bias"] = t2j(m.bias)
  if norms:
    assert len(norms) == len(norm_names)
    for name, m in zip(norm_names, norms):
      params[name] = {"scale": t2j(m.weight), "bias": t2j(m.bias)}
      stats[name] = {"mean": t2j(m.running_mean), "var": t2j(m.running_var)}
  return {"params": params, **({"batch_stats": stats} if stats else {})}


def unet_names(n):
  return ([f"down{i}" for i in range(n)] + [f"up{i}" for i in range(n)],
          [f"down{i}_norm" for i in range(1, n - 1)] + [f"up{i}_norm" for i in range(1, n)])


def resnet_names(n_blocks):
  blocks = [f"block{i}_{j}" for i in range(n_blocks) for j in ("conv0", "conv1")]
  block_norms = [f"block{i}_{j}" for i in range(n_blocks) for j in ("norm0", "norm1")]
  return (["conv_in", "down0", "down1"] + blocks + ["up0", "up1", "conv_out"],
          ["conv_in_norm", "down0_norm", "down1_norm"] + block_norms + ["up0_norm", "up1_norm"])


def patchgan_names(n_layers):
  if n_layers == 0:
    return ["conv0", "conv1", "conv2"], ["conv1_norm"]
  return ([f"conv{i}" for i in range(n_layers + 2)],
          [f"conv{i}_norm" for i in range(1, n_layers + 1)])


def random(shape, seed):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# --- parameter counts at the reference's sizes ------------------------------------------------

def test_parameter_counts_match_the_torch_peers():
  cases = [
      (UNet(3, 8), (1, 256, 256, 3), pix2pix.UNet(3, 3, 8)),  # unet_256, batch norm
      (ResnetGenerator(3, 9), (1, 256, 256, 3), cyclegan.resnet_generator(3, 3, 9)),
      (PatchGAN(), (1, 256, 256, 6), pix2pix.patchgan(6)),
      (PatchGAN(norm="instance"), (1, 256, 256, 3), pix2pix.patchgan(3, norm="instance")),
      (PatchGAN(n_layers=1), (1, 64, 64, 6), pix2pix.patchgan(6, n_layers=1)),
      (PatchGAN(n_layers=0), (1, 16, 16, 6), pix2pix.patchgan(6, n_layers=0)),
  ]
  for ours, shape, theirs in cases:
    assert count(init_shapes(ours, shape)["params"]) == pix2pix.count(theirs), ours
  # the counts the reference prints for these nets (in millions)
  assert pix2pix.count(cases[0][2]) == 54_413_955
  assert pix2pix.count(cases[1][2]) == 11_378_179
  assert pix2pix.count(cases[2][2]) == 2_768_705


# --- forward and backward parity at tiny sizes -----------------------------------------------

@pytest.fixture(params=["gemm", "conv"])
def impl(request):
  return request.param


def run_ours(module, variables, x, train):
  # One jitted program compiles faster than the op-by-op dispatch of the matmul forms' many ops.
  @jax.jit
  def run(variables, x):
    if train and "batch_stats" in variables:
      return module.apply(variables, x, train=True, mutable=["batch_stats"])[0]
    return module.apply(variables, x, train=train)
  return run(variables, x)


def check_forward(ours, theirs, names, x_nhwc, train, atol=2e-5):
  theirs.apply(pix2pix.init_weights)
  variables = torch_to_ours(theirs, *names)
  want_tree = init_shapes(ours, x_nhwc.shape)
  assert jax.tree.structure(variables) == jax.tree.structure(want_tree)
  got = run_ours(ours, variables, jnp.asarray(x_nhwc), train)
  theirs.train(train)
  with torch.no_grad():
    want = theirs(j2t(x_nhwc).permute(0, 3, 1, 2))
  want = want.permute(0, 2, 3, 1).numpy() if want.ndim == 4 and want.shape[1] > 1 else want
  if want.ndim == 4:  # D: [B, 1, h, w] -> [B, h, w]
    want = want[:, 0] if want.shape[1] == 1 else want
  np.testing.assert_allclose(got, want, atol=atol)


# Every case with the CPU forms; native convs (the same layers but for the conv calls) once.
@pytest.mark.parametrize("impl,norm,train", [
    ("gemm", "batch", True), ("gemm", "batch", False), ("gemm", "instance", True),
    ("conv", "batch", True)])
def test_unet_matches_torch(impl, norm, train):
  # 64x64: 6 downs, so one decoder block has dropout (off in eval; rate 0 in the train case)
  torch.manual_seed(0)
  dropout = 0.0 if train else 0.5
  ours = UNet(3, num_downs=6, width=8, norm=norm, dropout=dropout, conv_impl=impl)
  theirs = pix2pix.UNet(3, 3, 6, ngf=8, norm=norm, dropout=dropout)
  check_forward(ours, theirs, unet_names(6), random((2, 64, 64, 3), 0), train)


@pytest.mark.parametrize("impl,norm,train", [
    ("gemm", "instance", True), ("gemm", "batch", True), ("gemm", "batch", False),
    ("conv", "instance", True)])
def test_resnet_generator_matches_torch(impl, norm, train):
  torch.manual_seed(0)
  ours = ResnetGenerator(3, n_blocks=2, width=8, norm=norm, conv_impl=impl)
  theirs = cyclegan.resnet_generator(3, 3, 2, ngf=8, norm=norm)
  check_forward(ours, theirs, resnet_names(2), random((2, 32, 32, 3), 1), train)


@pytest.mark.parametrize("n_layers,norm,train", [
    (0, "batch", True), (1, "batch", True), (3, "batch", True), (3, "batch", False),
    (3, "instance", True), (0, "instance", True)])
def test_patchgan_matches_torch(impl, n_layers, norm, train):
  torch.manual_seed(0)
  ours = PatchGAN(width=8, n_layers=n_layers, norm=norm, conv_impl=impl)
  theirs = pix2pix.patchgan(6, 8, n_layers, norm)
  check_forward(ours, theirs, patchgan_names(n_layers), random((2, 32, 32, 6), 2), train)


def grads_match(ours, theirs, names, x_nhwc, atol):
  """d(sum(out * w))/d(params) for a fixed random w, in train mode, ours vs torch's."""
  theirs.apply(pix2pix.init_weights)
  variables = torch_to_ours(theirs, *names)
  out_shape = run_ours(ours, variables, jnp.asarray(x_nhwc), True).shape
  w = random(out_shape, 9)

  def loss(params):
    return jnp.sum(run_ours(ours, {**variables, "params": params}, jnp.asarray(x_nhwc), True) * w)

  got = jax.jit(jax.grad(loss))(variables["params"])
  theirs.train(True)
  out = theirs(j2t(x_nhwc).permute(0, 3, 1, 2))
  out = out.permute(0, 2, 3, 1) if out.ndim == 4 and out.shape[1] > 1 else out[:, 0]
  (out * j2t(w)).sum().backward()
  for p in theirs.parameters():
    p.data = p.grad  # the gradients, in the weights' places, to map them as weights
  want = torch_to_ours(theirs, *names)["params"]
  # Measured against the largest gradient: a bias just before instance norm has a true
  # gradient of 0, and both sides' are float32 noise.
  scale = max(np.max(np.abs(b)) for b in jax.tree.leaves(want))
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, atol=atol * scale, err_msg=str(path))


def test_resnet_generator_gradients_match_torch(impl):
  torch.manual_seed(0)
  grads_match(ResnetGenerator(3, n_blocks=1, width=8, conv_impl=impl),
              cyclegan.resnet_generator(3, 3, 1, ngf=8), resnet_names(1),
              random((2, 16, 16, 3), 3), atol=1e-4)


def test_unet_gradients_match_torch():
  torch.manual_seed(0)
  grads_match(UNet(3, num_downs=5, width=8), pix2pix.UNet(3, 3, 5, ngf=8), unet_names(5),
              random((2, 32, 32, 3), 4), atol=1e-4)


def test_patchgan_gradients_match_torch(impl):
  torch.manual_seed(0)
  grads_match(PatchGAN(width=8, conv_impl=impl), pix2pix.patchgan(6, 8), patchgan_names(3),
              random((2, 32, 32, 6), 5), atol=1e-4)


# --- the new layers on their own, odd sizes included ------------------------------------------

# Each stride-1 form of `cpu_conv.conv_s1` forced, and native; the stride-2 layers' CPU form and
# native, on even sizes and on odd ones (where the CPU form falls back to native).
ODD, EVEN = (1, 7, 9, 4), (2, 8, 6, 3)


@pytest.mark.parametrize("layer,form,shape", [
    *[(layer, form, ODD) for layer in ("reflect7", "zeros4", "conv1x1")
      for form in ("padded", "im2col", "col2im", "conv")],
    *[(layer, form, shape) for layer in ("conv3x3s2", "conv_transpose3x3s2")
      for form in ("gemm", "conv") for shape in (EVEN, ODD)]])
def test_new_layers_match_torch(layer, form, shape, monkeypatch):
  impl = "conv" if form == "conv" else "gemm"
  if form in ("padded", "im2col", "col2im"):
    monkeypatch.setattr("gan_jax.models.cpu_conv.conv_s1_form", lambda x, k: form)
  cin, cout = shape[-1], 5
  if layer == "conv3x3s2":
    ours, k = Conv3x3s2(cout, use_bias=True, impl=impl), 3
    theirs = torch.nn.Conv2d(cin, cout, 3, 2, 1)
  elif layer == "conv_transpose3x3s2":
    ours, k = ConvTranspose3x3s2(cout, use_bias=True, impl=impl), 3
    theirs = torch.nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1)
  elif layer == "reflect7":
    ours, k = ConvS1(cout, 7, padding=3, pad_mode="reflect", use_bias=True, impl=impl), 7
    theirs = torch.nn.Sequential(torch.nn.ReflectionPad2d(3), torch.nn.Conv2d(cin, cout, 7))
  elif layer == "conv1x1":
    ours, theirs, k = ConvS1(cout, 1, use_bias=True, impl=impl), torch.nn.Conv2d(cin, cout, 1), 1
  else:
    ours, k = ConvS1(cout, 4, padding=1, use_bias=True, impl=impl), 4
    theirs = torch.nn.Conv2d(cin, cout, 4, 1, 1)
  conv_types = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
  conv = [m for m in theirs.modules() if isinstance(m, conv_types)][0]
  torch.nn.init.normal_(conv.bias)
  order = (2, 3, 0, 1) if isinstance(conv, torch.nn.ConvTranspose2d) else (2, 3, 1, 0)
  params = {"kernel": t2j(conv.weight.permute(*order)), "bias": t2j(conv.bias)}
  x = random(shape, 6)
  x_torch = j2t(x).requires_grad_()
  out = theirs(x_torch.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
  w = random(out.shape, 7)
  (out * j2t(w)).sum().backward()

  def loss(params, x):
    y = ours.apply({"params": params}, x)
    return jnp.sum(y * w), y

  grad = jax.jit(jax.value_and_grad(loss, (0, 1), has_aux=True))
  (_, got), (g_params, g_x) = grad(params, jnp.asarray(x))
  np.testing.assert_allclose(got, out.detach().numpy(), atol=1e-5)
  np.testing.assert_allclose(g_params["kernel"], t2j(conv.weight.grad.permute(*order)), atol=1e-4)
  np.testing.assert_allclose(g_params["bias"], t2j(conv.bias.grad), atol=1e-4)
  np.testing.assert_allclose(g_x, t2j(x_torch.grad), atol=1e-4)
  assert k == conv.kernel_size[0]


# --- the registry -----------------------------------------------------------------------------

def translation_config(name, **model):
  defaults = dict(g_width=64, d_width=64, d_layers=3, norm="batch", dropout=0.5,
                  upsample="transpose")
  return ml_collections.ConfigDict({
      "model": {**defaults, "name": name, **model},
      "train": {"dtype": "float32"}})


@pytest.mark.parametrize("name,kind,depth", [
    ("unet_256", UNet, 8), ("unet_128", UNet, 7), ("unet_32", UNet, 5),
    ("resnet_9blocks", ResnetGenerator, 9), ("resnet_6blocks", ResnetGenerator, 6),
    ("resnet_2blocks", ResnetGenerator, 2)])
def test_build_translation_names(name, kind, depth):
  g, d = build_translation(translation_config(name, norm="instance"), 3, 3)
  assert isinstance(g, kind) and isinstance(d, PatchGAN)
  assert (g.num_downs if kind is UNet else g.n_blocks) == depth
  assert g.norm == d.norm == "instance" and d.n_layers == 3


@pytest.mark.parametrize("name", ["unet_100", "unet_4", "resnet_blocks", "vgg", "unet"])
def test_build_translation_rejects_unknown_names(name):
  with pytest.raises(UserError, match="unet_256"):
    build_translation(translation_config(name), 3, 3)
