"""SNGAN / SAGAN / BigGAN in the noise game: an EMA that starts late, exact resume with the
spectral-norm vectors, truncated z at sampling."""
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import cli, experiment
from gan_jax.games.common import ema
from runs import assert_resumed_as, stopped_copy, trained
from test_train import train


def test_ema_copies_g_until_its_start_then_warms_up():
  g_ema, params = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
  for step in (0, 4):
    np.testing.assert_array_equal(ema(g_ema, params, jnp.int32(step), 0.999, start=5)["w"], 1.0)
  # at the start, the warm-up decay of step 0: min(0.999, 1 / 10)
  np.testing.assert_allclose(ema(g_ema, params, jnp.int32(5), 0.999, start=5)["w"], 0.9)
  np.testing.assert_allclose(ema(g_ema, params, jnp.int32(0), 0.999)["w"], 0.9)


@pytest.fixture(scope="module")
def biggan(tmp_path_factory):
  return trained(tmp_path_factory, "biggan_cifar32")


def test_resume_with_spectral_norm_is_bitwise_equal(biggan, tmp_path):
  assert stopped_copy(biggan, tmp_path / "split") == 2
  assert train("biggan_cifar32", tmp_path / "split") == 0
  _, a = assert_resumed_as(tmp_path / "split", biggan)
  assert "spectral" in a.g.collections and "spectral" in a.d.collections


def test_truncated_samples_of_a_biggan(biggan, tmp_path):
  exp, ckpt = experiment.load(str(biggan))
  state = experiment.restore_latest(exp, ckpt)
  ckpt.close()
  z, labels = exp.game.latents(state, 10, seed=3, labels=7, truncation=0.4)
  assert np.abs(z).max() <= 0.4 and set(labels) == {7}
  images, _ = exp.game.generate(state, 10, seed=3, labels=7, truncation=0.4)
  assert images.shape == (10, 32, 32, 3) and np.all(np.abs(images) <= 1)
  assert cli.main(["sample", f"--workdir={biggan}", "--truncation=0.4", "--label=123",
                   f"--out={tmp_path}/t.png"]) == 0
  assert (tmp_path / "t.png").exists()
  # Synthetic data from it: truncated, kept by its spectrally normalized projection D.
  out = tmp_path / "export"
  assert cli.main(["export", f"--workdir={biggan}", f"--out={out}", "--num=4", "--labels=7",
                   "--truncation=0.4", "--filter=discriminator:0.5", "--format=npz",
                   "--noprogress"]) == 0
  arrays = np.load(out / "synthetic.npz")
  assert arrays["images"].shape == (4, 32, 32, 3) and set(arrays["labels"]) == {7}
