"""The 4x4 transposed conv equals PyTorch's ConvTranspose2d(4, stride 2, padding 1), the stride-2
conv equals flax's and the stride-1 3x3 Winograd conv lax's, in values, gradients and gradients of
gradients, however they run."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.models.layers import Conv4x4s2, ConvTranspose4x4s2


def reference_conv_transpose(x, kernel):
  """Direct definition: output row 2i - 1 + k receives input row i times tap k (PyTorch's)."""
  b, h, w, _ = x.shape
  out = np.zeros((b, 2 * h + 2, 2 * w + 2, kernel.shape[-1]))
  for i in range(h):
    for j in range(w):
      for kh in range(4):
        for kw in range(4):
          out[:, 2 * i + kh, 2 * j + kw] += x[:, i, j] @ kernel[kh, kw]
  return out[:, 1:-1, 1:-1]


# The three ways the 4x4 layers run: native XLA convs, and on CPU (cpu_conv) matmuls via im2col
# or via Winograd, which normally depends on the channel count and is forced here.
IMPLS = ["conv", "im2col", "winograd"]


def _forced(form, monkeypatch):
  monkeypatch.setattr("gan_jax.models.cpu_conv.WINOGRAD_MIN_CHANNELS",
                      1 if form == "winograd" else 10**9)
  if form == "taps":
    monkeypatch.setattr("gan_jax.models.cpu_conv.transpose_form", lambda kernel, x_shape: "taps")
  return "conv" if form == "conv" else "gemm"


@pytest.fixture(params=IMPLS)
def impl(request, monkeypatch):
  return _forced(request.param, monkeypatch)


# The transposed conv has a fourth form: tap by tap, for large kernels over few pixels.
@pytest.fixture(params=IMPLS + ["taps"])
def transpose_impl(request, monkeypatch):
  return _forced(request.param, monkeypatch)


def textbook_conv_transpose(x, kernel):
  """lax.conv_transpose with a spatially flipped kernel: the textbook transposed conv."""
  return jax.lax.conv_transpose(x, kernel[::-1, ::-1], (2, 2), ((2, 2), (2, 2)),
                                dimension_numbers=("NHWC", "HWIO", "NHWC"))


def stock_conv(x, kernel):
  flax_conv = nn.Conv(kernel.shape[-1], (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                      use_bias=False)
  return flax_conv.apply({"params": {"kernel": kernel}}, x)


def ours_conv_transpose(impl):
  return lambda x, k: ConvTranspose4x4s2(k.shape[-1], impl=impl).apply({"params": {"kernel": k}}, x)


def ours_conv(impl):
  return lambda x, k: Conv4x4s2(k.shape[-1], impl=impl).apply({"params": {"kernel": k}}, x)


def random(shape, seed):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


# Even sizes take Winograd's 2 x 2 tiles; the odd ones fall back to im2col (or native).
@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (2, 3, 5, 4)])
def test_conv_transpose_forward_matches_definition(transpose_impl, shape):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  layer = ConvTranspose4x4s2(6, impl=transpose_impl)
  variables = layer.init(jax.random.PRNGKey(0), x)
  got = layer.apply(variables, x)
  want = reference_conv_transpose(x, np.asarray(variables["params"]["kernel"], np.float64))
  assert got.shape == (shape[0], 2 * shape[1], 2 * shape[2], 6)
  np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (2, 3, 5, 4)])
def test_conv_transpose_gradients_match_lax(transpose_impl, shape):
  x, kernel = random(shape, 1), random((4, 4, shape[-1], 5), 2)
  ours = lambda x, k: jnp.sum(jnp.sin(ours_conv_transpose(transpose_impl)(x, k)))
  textbook = lambda x, k: jnp.sum(jnp.sin(textbook_conv_transpose(x, k)))
  np.testing.assert_allclose(ours(x, kernel), textbook(x, kernel), rtol=1e-5)
  for a, b in zip(jax.grad(ours, (0, 1))(x, kernel), jax.grad(textbook, (0, 1))(x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 8, 12, 3), (2, 8, 6, 3), (2, 7, 6, 3)])
def test_conv4x4s2_matches_flax_conv(impl, shape):
  x, kernel = random(shape, 3), random((4, 4, shape[-1], 5), 4)
  ours = lambda x, k: jnp.sum(jnp.sin(ours_conv(impl)(x, k)))
  stock = lambda x, k: jnp.sum(jnp.sin(stock_conv(x, k)))
  np.testing.assert_allclose(ours(x, kernel), stock(x, kernel), rtol=1e-5)
  for a, b in zip(jax.grad(ours, (0, 1))(x, kernel), jax.grad(stock, (0, 1))(x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def assert_second_order_gradients_match(ours, stock, x, kernel):
  """The gradient penalty and R1 differentiate D's input gradient once more: the custom VJPs'
  backward passes must themselves differentiate correctly."""
  def penalty(f):
    def of_kernel(k):
      grad_x = jax.grad(lambda x: jnp.sum(jnp.sin(f(x, k))))(x)
      return jnp.sum(grad_x ** 2)
    return of_kernel

  np.testing.assert_allclose(penalty(ours)(kernel), penalty(stock)(kernel), rtol=1e-5)
  got, want = jax.grad(penalty(ours))(kernel), jax.grad(penalty(stock))(kernel)
  # Entries range over 1e-3..1e2: float32 rounding measured against the largest.
  np.testing.assert_allclose(got, want, atol=1e-5 * np.max(np.abs(want)))


def test_conv4x4s2_second_order_gradients_match(impl):
  assert_second_order_gradients_match(ours_conv(impl), stock_conv, random((2, 4, 8, 3), 5),
                                      random((4, 4, 3, 4), 6))


def test_conv_transpose_second_order_gradients_match(transpose_impl):
  assert_second_order_gradients_match(ours_conv_transpose(transpose_impl),
                                      textbook_conv_transpose, random((2, 4, 8, 3), 5),
                                      random((4, 4, 3, 4), 6))


def test_winograd_is_chosen_for_wide_layers():
  from gan_jax.models import cpu_conv
  wide, narrow = jnp.zeros((4, 4, 64, 64)), jnp.zeros((4, 4, 64, 3))
  assert cpu_conv.form(wide, (1, 4, 4)) == "winograd"
  assert cpu_conv.form(narrow, (1, 4, 4)) == "im2col"
  assert cpu_conv.form(wide, (1, 3, 4)) == "im2col"  # no 2 x 2 tiling
  assert cpu_conv.form(wide.astype(jnp.bfloat16), (1, 4, 4)) == "im2col"


def test_taps_are_chosen_for_large_kernels_over_few_pixels():
  from gan_jax.models import cpu_conv
  unet_inner, unet_mid = jnp.zeros((4, 4, 1024, 512)), jnp.zeros((4, 4, 1024, 256))
  assert cpu_conv.transpose_form(unet_inner, (1, 2, 2, 1024)) == "taps"
  assert cpu_conv.transpose_form(unet_inner, (16, 4, 4, 1024)) == "taps"
  assert cpu_conv.transpose_form(unet_mid, (1, 16, 16, 1024)) == "im2col"  # too many pixels
  assert cpu_conv.transpose_form(jnp.zeros((4, 4, 64, 64)), (1, 1, 1, 64)) == "im2col"  # small


# --- stride-1 3x3 convs as Winograd F(2x2, 3x3) and F(4x4, 3x3) ------------------------------

def lax_valid(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def winograd(algorithm):
  from gan_jax.models import cpu_conv
  return {"F(2x2, 3x3)": cpu_conv.conv3x3_winograd, "F(4x4, 3x3)": cpu_conv.conv3x3_winograd4,
          "F(2x2, 4x4)": cpu_conv.conv4x4_winograd,
          "F(3x3, 4x4)": cpu_conv.conv4x4_winograd3}[algorithm]


# Errors allowed, as a share of the largest output: F(4x4, 3x3)'s transforms multiply by up to 8
# and 1/24, F(2x2, 4x4)'s by 3 and 1/6, F(3x3, 4x4)'s by 5 and 1/30; their float32 errors are up
# to ~10x F(2x2, 3x3)'s (up to ~1e-5 of that scale here, measured).
TOLERANCE = {"F(2x2, 3x3)": 2e-6, "F(4x4, 3x3)": 2e-5, "F(2x2, 4x4)": 2e-5, "F(3x3, 4x4)": 2e-5}


def assert_matches_to_scale(ours, expected, algorithm):
  np.testing.assert_allclose(ours, expected,
                             atol=TOLERANCE[algorithm] * float(jnp.abs(expected).max()))


# The 4x4 kernel's output sides that are no multiple of the tile (6 x 7, 5 x 5, 4 x 6, 4 x 5)
# take padded rows or columns.
@pytest.mark.parametrize("algorithm,shape", [
    ("F(2x2, 3x3)", (2, 6, 10, 3)), ("F(2x2, 3x3)", (1, 4, 4, 5)),
    ("F(4x4, 3x3)", (2, 10, 18, 3)), ("F(4x4, 3x3)", (1, 6, 6, 5)),
    ("F(2x2, 4x4)", (2, 9, 10, 3)), ("F(2x2, 4x4)", (1, 8, 8, 5)), ("F(2x2, 4x4)", (1, 7, 9, 2)),
    ("F(3x3, 4x4)", (2, 9, 12, 3)), ("F(3x3, 4x4)", (1, 7, 9, 5)), ("F(3x3, 4x4)", (1, 7, 8, 2))])
def test_winograd_matches_lax(algorithm, shape):
  conv = winograd(algorithm)
  k = int(algorithm[-2])
  x, kernel = random(shape, 7), random((k, k, shape[-1], 4), 8)
  ours = lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
  stock = lambda x, k: jnp.sum(jnp.sin(lax_valid(x, k)))
  assert_matches_to_scale(conv(x, kernel), lax_valid(x, kernel), algorithm)
  for a, b in zip(jax.grad(ours, (0, 1))(x, kernel), jax.grad(stock, (0, 1))(x, kernel)):
    assert_matches_to_scale(a, b, algorithm)


@pytest.mark.parametrize("algorithm", sorted(TOLERANCE))
def test_winograd_second_order_gradients_match(algorithm):
  k = int(algorithm[-2])  # outputs 4 x 8 (3x3), 4 x 7 (4x4)
  assert_second_order_gradients_match(winograd(algorithm), lax_valid,
                                      random((2, k + 3, 10, 3), 9), random((k, k, 3, 4), 10))


def test_winograd3x3_is_chosen_for_wide_3x3_layers():
  from gan_jax.models import cpu_conv
  x, wide = jnp.zeros((4, 10, 10, 64)), jnp.zeros((3, 3, 64, 64))
  assert cpu_conv.conv_s1_form(x, wide) == "winograd"
  assert cpu_conv.conv_s1_form(x[:, :9], wide) != "winograd"  # odd output: no 2 x 2 tiling
  assert cpu_conv.conv_s1_form(x, wide[..., :32]) != "winograd"  # narrowing to 32
  least = cpu_conv.WINOGRAD3X3_NON_NARROWING_MIN_CHANNELS  # 32 -> 32 (StyleGAN2's)
  assert cpu_conv.conv_s1_form(x[..., :least], wide[:, :, :least, :least]) == "winograd"
  assert cpu_conv.conv_s1_form(x[..., :least - 1], wide[:, :, :least - 1]) != "winograd"
  assert cpu_conv.conv_s1_form(x, wide.astype(jnp.bfloat16)) != "winograd"
  assert cpu_conv.conv_s1_form(x, jnp.zeros((5, 5, 64, 64))) != "winograd"
  wider = cpu_conv.WINOGRAD6_MIN_CHANNELS
  x, kernel = jnp.zeros((2, 10, 10, wider)), jnp.zeros((3, 3, wider, wider))
  assert cpu_conv.conv_s1_form(x, kernel) == "winograd4"  # 8 x 8: 4 x 4 tiles
  assert cpu_conv.conv_s1_form(x[:, :8, :8], kernel) == "winograd"  # 6 x 6: 2 x 2 tiles only
  for algorithm, form, x in (("F(2x2, 3x3)", "winograd", random((2, 6, 10, 64), 11)),
                             ("F(4x4, 3x3)", "winograd4", random((2, 6, 10, wider), 11))):
    kernel = random((3, 3, x.shape[-1], x.shape[-1]), 12)
    assert cpu_conv.conv_s1_form(x, kernel) == form
    assert_matches_to_scale(cpu_conv.conv_s1(x, kernel), lax_valid(x, kernel), algorithm)


# Frozen kernels (VGG's in ESRGAN's perceptual loss): each form conv_s1 picks for them, with the
# transform made on the host; the input's gradient only.
@pytest.mark.parametrize("algorithm,form,channels", [
    ("F(2x2, 3x3)", "winograd", 64), ("F(4x4, 3x3)", "winograd4", 128),
    ("F(2x2, 3x3)", "im2col", 3)])  # F(2x2)'s tolerance for im2col: both round as float32 sums
def test_frozen_kernel_matches_lax(algorithm, form, channels):
  from gan_jax.models import cpu_conv
  x = random((2, 6, 10, channels), 13)
  kernel = np.asarray(random((3, 3, channels, 64 if channels < 64 else channels), 14))
  frozen = cpu_conv.FrozenKernel(kernel)
  assert cpu_conv.conv_s1_form(x, frozen.array) == form
  assert_matches_to_scale(frozen(x), lax_valid(x, kernel), algorithm)
  dy = random((2, 4, 8, kernel.shape[-1]), 15)  # linear: sin() of wide sums would amplify rounding
  ours = jax.grad(lambda x: jnp.sum(frozen(x) * dy))(x)
  assert_matches_to_scale(ours, jax.grad(lambda x: jnp.sum(lax_valid(x, kernel) * dy))(x),
                          algorithm)
  assert len(frozen._convs) == 1 and frozen(x).shape == (2, 4, 8, kernel.shape[-1])  # built once


def lax_dense_convs(x, kernels, biases, slope):
  """ESRGAN's dense stack conv by conv: each conv sees the input and all earlier outputs."""
  pad = lambda h: jnp.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
  feats = [x]
  for kernel, bias in zip(kernels[:-1], biases[:-1]):
    y = lax_valid(pad(jnp.concatenate(feats, -1)), kernel) + bias
    feats.append(jax.nn.leaky_relu(y, slope))
  return lax_valid(pad(jnp.concatenate(feats, -1)), kernels[-1]) + biases[-1]


# Sides that are multiples of F(4x4, 3x3)'s tile, and others (computed longer, then cropped).
@pytest.mark.parametrize("shape,growth", [((2, 8, 12, 6), 4), ((1, 5, 7, 4), 3)])
def test_dense_convs_match_conv_by_conv(shape, growth):
  from gan_jax.models import cpu_conv
  c = shape[-1]
  outs = [growth] * 4 + [c]
  # Kaiming-like scales keep the outputs near 1, where sin's gradient does not magnify rounding.
  kernels = [random((3, 3, c + growth * k, o), 20 + k) / np.sqrt(9 * (c + growth * k))
             for k, o in enumerate(outs)]
  biases = [random((o,), 30 + k) for k, o in enumerate(outs)]
  x, weight = random(shape, 17), random(shape, 18)  # weight: each output its own gradient
  loss = lambda f: lambda *args: jnp.sum(weight * jnp.sin(f(*args, 0.2)))
  args = (x, kernels, biases)
  # jitted: op by op, each of the stacks' hundreds of ops would compile on its own
  forward = lambda f: jax.jit(lambda *args: f(*args, 0.2))
  assert_matches_to_scale(forward(cpu_conv.dense_convs3x3)(*args),
                          forward(lax_dense_convs)(*args), "F(4x4, 3x3)")
  ours = jax.jit(jax.grad(loss(cpu_conv.dense_convs3x3), (0, 1, 2)))(*args)
  stock = jax.jit(jax.grad(loss(lax_dense_convs), (0, 1, 2)))(*args)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(stock)):
    assert_matches_to_scale(a, b, "F(4x4, 3x3)")
  with pytest.raises(ValueError, match="dense conv 1 reads"):
    cpu_conv.dense_convs3x3(x, [kernels[0], kernels[0]], biases[:2], 0.2)


def test_winograd_is_chosen_for_wide_4x4_layers():
  from gan_jax.models import cpu_conv
  x, wide = random((1, 9, 9, 64), 13), random((4, 4, 64, 64), 14)  # the PatchGAN's odd sides
  assert cpu_conv.conv_s1_form(x, wide) == "winograd_k4"
  assert_matches_to_scale(cpu_conv.conv_s1(x, wide), lax_valid(x, wide), "F(2x2, 4x4)")
  assert cpu_conv.conv_s1_form(x, wide[..., :32]) != "winograd_k4"  # narrow
  assert cpu_conv.conv_s1_form(x, wide[..., :1]) == "col2im"  # the PatchGAN's logits
  assert cpu_conv.conv_s1_form(x, wide.astype(jnp.bfloat16)) != "winograd_k4"
  wider = cpu_conv.WINOGRAD6_MIN_CHANNELS  # 6 x 6 tiles: F(3x3, 4x4)
  x, kernel = random((1, 8, 9, wider), 15), random((4, 4, wider, wider), 16)
  assert cpu_conv.conv_s1_form(x, kernel) == "winograd3_k4"
  assert_matches_to_scale(cpu_conv.conv_s1(x, kernel), lax_valid(x, kernel), "F(3x3, 4x4)")
