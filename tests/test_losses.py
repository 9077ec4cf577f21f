"""Each adversarial loss against its closed form; each regularizer against finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.losses import adversarial, regularizers

REAL = np.array([2.0, -1.0, 0.5, 3.0], np.float32)
FAKE = np.array([-0.5, 1.5, -2.0, 0.0], np.float32)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


CLOSED_FORMS = {
    # name: (D loss, G loss) written from the papers' definitions with D = sigmoid(logit)
    "non_saturating": (lambda r, f: -np.mean(np.log(sigmoid(r))) - np.mean(np.log(1 - sigmoid(f))),
                       lambda f: -np.mean(np.log(sigmoid(f)))),
    "minimax": (lambda r, f: -np.mean(np.log(sigmoid(r))) - np.mean(np.log(1 - sigmoid(f))),
                lambda f: np.mean(np.log(1 - sigmoid(f)))),
    "least_squares": (lambda r, f: 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f ** 2),
                      lambda f: 0.5 * np.mean((f - 1) ** 2)),
    "hinge": (lambda r, f: np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)),
              lambda f: -np.mean(f)),
    "wasserstein": (lambda r, f: np.mean(f) - np.mean(r), lambda f: -np.mean(f)),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_loss_matches_closed_form(name):
  d_loss, g_loss = adversarial.get(name)
  want_d, want_g = CLOSED_FORMS[name]
  np.testing.assert_allclose(d_loss(REAL, FAKE)[0], want_d(REAL, FAKE), rtol=1e-5)
  np.testing.assert_allclose(g_loss(FAKE)[0], want_g(FAKE), rtol=1e-5)


def test_relativistic_average_matches_its_formula():
  # Jolicoeur-Martineau 2019 / ESRGAN: D_Ra(a, b) = sigmoid(C(a) - E[C(b)]);
  # L_D = -(E log D_Ra(r, f) + E log(1 - D_Ra(f, r))) / 2, L_G with r and f swapped.
  d_ra = lambda a, b: sigmoid(a - b.mean())
  want_d = -(np.mean(np.log(d_ra(REAL, FAKE))) + np.mean(np.log(1 - d_ra(FAKE, REAL)))) / 2
  want_g = -(np.mean(np.log(d_ra(FAKE, REAL))) + np.mean(np.log(1 - d_ra(REAL, FAKE)))) / 2
  d_loss, g_loss = adversarial.RELATIVE["relativistic_average"]
  np.testing.assert_allclose(d_loss(REAL, FAKE)[0], want_d, rtol=1e-5)
  np.testing.assert_allclose(g_loss(REAL, FAKE)[0], want_g, rtol=1e-5)
  # A D with a logit per pixel compares each pixel with the batch's average at that pixel.
  real_map, fake_map = REAL.reshape(2, 2, 1), FAKE.reshape(2, 2, 1)
  per_pixel = [-(np.log(sigmoid(real_map[:, i] - fake_map[:, i].mean()))
                 + np.log(1 - sigmoid(fake_map[:, i] - real_map[:, i].mean()))) / 2
               for i in range(2)]
  np.testing.assert_allclose(d_loss(real_map, fake_map)[0], np.mean(per_pixel), rtol=1e-5)
  # The plain losses, offered beside it, ignore the real logits in G's term.
  np.testing.assert_allclose(adversarial.RELATIVE["hinge"][1](REAL, FAKE)[0], -FAKE.mean())


def test_relativistic_pairing_matches_its_formula():
  # RpGAN (R3GAN, Huang et al. 2024): each real against its paired fake, D(x_r, x_f) =
  # sigmoid(C(x_r) - C(x_f)); L_D = -E log D(x_r, x_f), L_G = -E log D(x_f, x_r).
  d_loss, g_loss = adversarial.RELATIVE["relativistic_pairing"]
  np.testing.assert_allclose(d_loss(REAL, FAKE)[0], -np.mean(np.log(sigmoid(REAL - FAKE))),
                             rtol=1e-5)
  np.testing.assert_allclose(g_loss(REAL, FAKE)[0], -np.mean(np.log(sigmoid(FAKE - REAL))),
                             rtol=1e-5)
  # pairs, not batch averages: swapping two fakes changes the loss
  assert abs(d_loss(REAL, FAKE[::-1])[0] - d_loss(REAL, FAKE)[0]) > 1e-3


def test_non_saturating_is_stable_for_large_logits():
  d_loss, g_loss = adversarial.get("non_saturating")
  big = jnp.array([1e4, -1e4])
  assert np.isfinite(d_loss(big, -big)[0]) and np.isfinite(g_loss(-big)[0])
  np.testing.assert_allclose(g_loss(jnp.array([-1e4]))[0], 1e4, rtol=1e-6)


def test_wasserstein_reports_distance_estimate():
  _, aux = adversarial.get("wasserstein")[0](REAL, FAKE)
  np.testing.assert_allclose(aux["wasserstein_estimate"], REAL.mean() - FAKE.mean(), rtol=1e-6)


def quadratic_critic(x):
  """A nonlinear per-sample critic with an easy gradient: D(x) = sum(w * x^2) + sum(x)."""
  w = jnp.linspace(0.5, 1.5, x[0].size).reshape(x.shape[1:])
  return jnp.sum(w * x ** 2 + x, axis=tuple(range(1, x.ndim)))


def finite_difference_grad(fn, x, h=1e-3):
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[idx] = h
    g[idx] = (fn(x + e) - fn(x - e)) / (2 * h)
  return g


def critic_np(x):
  w = np.linspace(0.5, 1.5, x[0].size).reshape(x.shape[1:])
  return np.sum(w * x ** 2 + x, axis=tuple(range(1, x.ndim)))


def test_r1_penalty_matches_finite_differences():
  x = np.random.default_rng(0).normal(size=(3, 2, 2, 1)).astype(np.float32)
  grads = finite_difference_grad(lambda v: critic_np(v).sum(), x)
  want = np.mean(np.sum(grads.reshape(3, -1) ** 2, axis=1))
  got = regularizers.r1_penalty(quadratic_critic, jnp.asarray(x))
  np.testing.assert_allclose(got, want, rtol=1e-3)


def test_zero_centred_penalty_gives_the_logits_of_its_pass():
  # R1 at reals and R2 at fakes are one function: the mean squared input-gradient norm
  x = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
  penalty, logits = regularizers.zero_centred_penalty(quadratic_critic, jnp.asarray(x))
  grads = finite_difference_grad(lambda v: critic_np(v).sum(), x)
  np.testing.assert_allclose(penalty, np.mean(np.sum(grads ** 2, axis=1)), rtol=1e-3)
  np.testing.assert_allclose(logits, critic_np(x), rtol=1e-5)


def test_gradient_penalty_matches_finite_differences():
  rng = np.random.default_rng(1)
  real = rng.normal(size=(4, 3)).astype(np.float32)
  fake = rng.normal(size=(4, 3)).astype(np.float32)
  eps = rng.uniform(size=4).astype(np.float32)
  x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
  grads = finite_difference_grad(lambda v: critic_np(v).sum(), x_hat)
  want = np.mean((np.linalg.norm(grads, axis=1) - 1.0) ** 2)
  got = regularizers.gradient_penalty(quadratic_critic, jnp.asarray(real), jnp.asarray(fake),
                                      jnp.asarray(eps))
  np.testing.assert_allclose(got, want, rtol=1e-3)


def test_penalties_are_differentiable_in_params():
  # D's update needs d(penalty)/d(params): a double backward through the input gradient.
  def penalty(scale):
    return regularizers.r1_penalty(lambda x: scale * jnp.sum(x ** 2, axis=1), jnp.ones((2, 3)))
  # ||grad||^2 = ||2 scale x||^2 = 4 scale^2 * 3, so d/dscale = 24 scale
  np.testing.assert_allclose(jax.grad(penalty)(2.0), 48.0, rtol=1e-5)


def test_clip_weights():
  params = {"a": jnp.array([-1.0, 0.005, 2.0]), "b": {"c": jnp.array([[0.02, -0.003]])}}
  clipped = regularizers.clip_weights(params, 0.01)
  np.testing.assert_allclose(clipped["a"], [-0.01, 0.005, 0.01])
  np.testing.assert_allclose(clipped["b"]["c"], [[0.01, -0.003]])
