"""The sub-pixel transposed conv equals PyTorch's ConvTranspose2d(4, stride 2, padding 1); the
stride-2 conv equals flax's; the matmul and native forms agree."""
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


def test_forward_matches_definition():
  x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
  layer = ConvTranspose4x4s2(6)
  variables = layer.init(jax.random.PRNGKey(0), x)
  got = layer.apply(variables, x)
  want = reference_conv_transpose(x, np.asarray(variables["params"]["kernel"], np.float64))
  assert got.shape == (2, 6, 10, 6)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_gradients_match_lax_conv_transpose():
  # lax.conv_transpose with a spatially flipped kernel is the textbook transposed conv; the
  # sub-pixel layer must give the same values and the same gradients.
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 4, 4, 3)).astype(np.float32))
  kernel = jnp.asarray(rng.normal(size=(4, 4, 3, 5)).astype(np.float32))
  layer = ConvTranspose4x4s2(5)

  def ours(x, kernel):
    return jnp.sum(jnp.sin(layer.apply({"params": {"kernel": kernel}}, x)))

  def textbook(x, kernel):
    y = jax.lax.conv_transpose(x, kernel[::-1, ::-1], (2, 2), ((2, 2), (2, 2)),
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.sin(y))

  np.testing.assert_allclose(ours(x, kernel), textbook(x, kernel), rtol=1e-5)
  for a, b in zip(jax.grad(ours, (0, 1))(x, kernel), jax.grad(textbook, (0, 1))(x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["gemm", "conv"])
def test_conv4x4s2_matches_flax_conv(impl):
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(2, 8, 6, 3)).astype(np.float32))
  kernel = jnp.asarray(rng.normal(size=(4, 4, 3, 5)).astype(np.float32))
  ours = lambda x, k: jnp.sum(jnp.sin(Conv4x4s2(5, impl=impl).apply({"params": {"kernel": k}}, x)))
  flax_conv = nn.Conv(5, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=False)
  stock = lambda x, k: jnp.sum(jnp.sin(flax_conv.apply({"params": {"kernel": k}}, x)))
  np.testing.assert_allclose(ours(x, kernel), stock(x, kernel), rtol=1e-5)
  for a, b in zip(jax.grad(ours, (0, 1))(x, kernel), jax.grad(stock, (0, 1))(x, kernel)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_transpose_impls_agree():
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 4, 6)).astype(np.float32))
  variables = ConvTranspose4x4s2(5).init(jax.random.PRNGKey(0), x)
  outs = [ConvTranspose4x4s2(5, impl=impl).apply(variables, x) for impl in ("gemm", "conv")]
  np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)
