"""Adversarial losses as pure pairs: d_loss(real_logits, fake_logits), g_loss(fake_logits).

Logits are raw D outputs of shape [B]. Each function returns (loss, aux) with aux a dict of
scalars for logging.
"""
import jax
import jax.numpy as jnp

softplus = jax.nn.softplus


def _mean(x):
  return jnp.mean(x.astype(jnp.float32))


# Goodfellow et al. 2014. D maximises log D(x) + log(1 - D(G(z))), i.e. minimises
# softplus(-real) + softplus(fake) with D = sigmoid(logit).
def bce_d_loss(real, fake):
  return _mean(softplus(-real)) + _mean(softplus(fake)), {}


def non_saturating_g_loss(fake):
  return _mean(softplus(-fake)), {}        # -log D(G(z))


def minimax_g_loss(fake):
  return -_mean(softplus(fake)), {}        # log(1 - D(G(z)))


# Mao et al. 2017 (LSGAN, a=0, b=c=1); the 1/2 matches the paper.
def least_squares_d_loss(real, fake):
  return 0.5 * _mean((real - 1.0) ** 2) + 0.5 * _mean(fake ** 2), {}


def least_squares_g_loss(fake):
  return 0.5 * _mean((fake - 1.0) ** 2), {}


# Lim & Ye 2017; Miyato et al. 2018.
def hinge_d_loss(real, fake):
  return _mean(jax.nn.relu(1.0 - real)) + _mean(jax.nn.relu(1.0 + fake)), {}


def wasserstein_g_loss(fake):
  return -_mean(fake), {}


# Arjovsky et al. 2017: the critic maximises E[D(x)] - E[D(G(z))].
def wasserstein_d_loss(real, fake):
  distance = _mean(real) - _mean(fake)
  return -distance, {"wasserstein_estimate": distance}


LOSSES = {
    "non_saturating": (bce_d_loss, non_saturating_g_loss),
    "minimax": (bce_d_loss, minimax_g_loss),
    "least_squares": (least_squares_d_loss, least_squares_g_loss),
    "hinge": (hinge_d_loss, wasserstein_g_loss),
    "wasserstein": (wasserstein_d_loss, wasserstein_g_loss),
}


def get(name):
  """(d_loss, g_loss) for a config's `loss.adversarial`."""
  return LOSSES[name]


def decision_threshold(name):
  """The logit where D's verdict turns from fake to real under loss `name` (its accuracy is
  measured against it): 0 for the sigmoid and hinge losses, 0.5 between LSGAN's targets 0 and 1,
  None for the Wasserstein critic, whose scores hold no meaning up to a constant."""
  return {"least_squares": 0.5, "wasserstein": None}.get(name, 0.0)


# pix2pix's and CycleGAN's GANLoss (Isola et al. 2017; Zhu et al. 2017): each logit (one per
# patch) is pushed towards a target, "real" or "fake"; D's loss is the mean of its real and fake
# terms (halved, "to slow down D"), G's is the real term on its fakes.
TARGET_TERMS = {
    "non_saturating": (lambda x: softplus(-x), softplus),            # BCE with logits
    "least_squares": (lambda x: (x - 1.0) ** 2, lambda x: x ** 2),    # MSE to 1 and to 0
}


def get_targets(name):
  """(d_loss(real, fake), g_loss(fake)) in the target form, for the translation games."""
  is_real, is_fake = TARGET_TERMS[name]
  d_loss = lambda real, fake: (0.5 * (_mean(is_real(real)) + _mean(is_fake(fake))), {})
  g_loss = lambda fake: (_mean(is_real(fake)), {})
  return d_loss, g_loss


# Jolicoeur-Martineau 2019's relativistic average GAN, as ESRGAN uses it: each logit is judged
# against the average logit of the other side, D(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)]). The
# average is over the batch (per pixel for a D with a logit map); both sides' terms are halved
# as in ESRGAN. D's loss: real judged more real than the average fake, and fake less real than the
# average real; G's: the same with the roles swapped.
def _relative(x, other):
  return x - jnp.mean(other.astype(jnp.float32), axis=0)


def relativistic_average_d_loss(real, fake):
  return 0.5 * (_mean(softplus(-_relative(real, fake))) + _mean(softplus(_relative(fake, real)))), {}


def relativistic_average_g_loss(real, fake):
  return 0.5 * (_mean(softplus(_relative(real, fake))) + _mean(softplus(-_relative(fake, real)))), {}


# RpGAN (Jolicoeur-Martineau 2019), R3GAN's loss (Huang et al. 2024): each real is paired with
# one fake of the batch and D is asked only that the real score higher than its fake, so D cannot
# push every fake down at once; G's loss is the same with the roles swapped.
def relativistic_pairing_d_loss(real, fake):
  return _mean(softplus(-(real - fake))), {}


def relativistic_pairing_g_loss(real, fake):
  return _mean(softplus(-(fake - real))), {}


# Losses whose G term may also see the real logits, g_loss(real, fake): the relativistic one, and
# the plain pairs above (which ignore them) for games that offer both (super-resolution).
RELATIVE = {
    "relativistic_average": (relativistic_average_d_loss, relativistic_average_g_loss),
    "relativistic_pairing": (relativistic_pairing_d_loss, relativistic_pairing_g_loss),
    **{name: (d_loss, lambda real, fake, g_loss=g_loss: g_loss(fake))
       for name, (d_loss, g_loss) in LOSSES.items() if name != "wasserstein"},
}
