"""On a GPU (skipped elsewhere; `benchmarks/device_check.py` runs these first): each game's step
takes the native-convolution path and runs there in float32 and bfloat16, and agrees with the
same step on the machine's CPU."""
import os
import sys

import jax
import numpy as np
import pytest

from conftest import REPO
from gan_jax import step as step_lib
from gan_jax.experiment import Experiment
from gan_jax.models import layers
from test_step import load_config

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import throughput  # noqa: E402

pytestmark = pytest.mark.gpu
GAMES = ["dcgan_digits", "stylegan2_digits", "pix2pix_digits", "cyclegan_digits"]


def one_step(config, device):
  """Fresh state and one step of `config` on `device`; returns its metrics as numpy."""
  spec = throughput.data_spec(config)
  with jax.default_device(device), layers.lowering_for(device.platform):
    exp = Experiment.build(config, spec)
    fn = jax.jit(step_lib.make_multi_step(exp.game_for(None).train_step))
    batch = throughput.synthetic_batch(config, spec, np.random.default_rng(0))
    _, metrics = fn(exp.init_state(), jax.device_put(batch, device))
    return jax.device_get(metrics)


def test_layers_take_the_native_path_on_gpu():
  assert layers.target_backend() == "gpu" and not layers._use_gemm("auto")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", GAMES)
def test_step_runs_on_gpu(name, dtype):
  metrics = one_step(load_config(name, **{"train.dtype": dtype}), jax.devices("gpu")[0])
  assert np.isfinite(metrics["d_loss"]) and np.isfinite(metrics["g_loss"])
  assert metrics["nonfinite_step"] == step_lib.NEVER


@pytest.mark.parametrize("name", GAMES)
def test_gpu_step_agrees_with_cpu(name):
  # float32 on both; the GPU may run convolutions as TF32, hence the loose tolerance
  config = load_config(name)
  gpu, cpu = (one_step(config, jax.devices(kind)[0]) for kind in ("gpu", "cpu"))
  for key in ("d_loss", "g_loss"):
    np.testing.assert_allclose(gpu[key], cpu[key], rtol=2e-2)
