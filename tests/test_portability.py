"""Every game's compiled programs lower for GPUs and TPUs from this CPU machine.

`jax.export` for ("cuda", "tpu") fails on a CPU-only op, a host callback or a custom call that
one backend lacks, so such a change fails here rather than on a user's pod. The train step is
exported as the `jit` strategy compiles it (sharded over the 8 test devices); the sampler and
the translators as `sample`, `translate` and the previews call them. Layers with a CPU-only form
(`models/cpu_conv.py`) are traced as each backend runs them (`layers.lowering_for`), and the
tests check which form each backend gets. `pmap` has no export; it runs the same step function.
The default selection exports one config of each (game, model), `-m slow` every config.
"""
import glob
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from gan_jax import games, parallel, step as step_lib
from gan_jax.experiment import Experiment
from gan_jax.games import common
from gan_jax.models import layers
from test_step import load_config

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import throughput  # noqa: E402

ACCELERATORS = ("cuda", "tpu")
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "configs", "*.py")))
CONV_MODELS = ("dcgan", "unet_", "resnet_")


def _by_model(names):
  """`names` as pytest params: the first config of each (game, model) in the default selection,
  the others (the same layers at other settings) under `slow`."""
  seen, params = set(), []
  for name in names:
    config = load_config(name)
    kind = (config.game, config.model.name)
    params.append(pytest.param(name, marks=pytest.mark.slow) if kind in seen else name)
    seen.add(kind)
  return params


def abstract(tree, sharding=None):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def export_step(config, platform):
  """The jit strategy's train step for `config`, traced as `platform` runs it and exported for
  the accelerators."""
  spec = throughput.data_spec(config)
  with layers.lowering_for(platform):
    exp = Experiment.build(config, spec)
    strategy = parallel.get("jit")
    fn = strategy.compile(step_lib.make_multi_step(exp.game_for(None).train_step))
    state = abstract(jax.eval_shape(exp.init_state), strategy.replicated)
    batch = abstract(throughput.synthetic_batch(config, spec, np.random.default_rng(0)),
                     strategy.batch)
    return jax.export.export(fn, platforms=ACCELERATORS)(state, batch)


def convolutions(exported):
  return exported.mlir_module().count("stablehlo.convolution")


@pytest.mark.parametrize("name", _by_model(CONFIGS))
def test_train_step_lowers_for_gpu_and_tpu(name):
  config = load_config(name)
  exported = export_step(config, "cuda")
  assert exported.platforms == ACCELERATORS and exported.nr_devices == jax.device_count()
  if config.model.name.startswith(CONV_MODELS):
    # GPUs and TPUs run native convolutions; the CPU takes matmul forms for some of them.
    on_cpu = convolutions(export_step(config, "cpu"))
    assert convolutions(exported) > on_cpu
    if config.model.name == "dcgan":
      assert on_cpu == 0


@pytest.mark.parametrize("name", ["dcgan_digits", "pix2pix_digits", "cyclegan_digits"])
def test_bfloat16_train_step_lowers_for_gpu_and_tpu(name):
  exported = export_step(load_config(name, **{"train.dtype": "bfloat16"}), "cuda")
  assert "bf16" in exported.mlir_module()


@pytest.fixture
def exported_inference(monkeypatch):
  """Replaces `infer` in every game module with one that exports the call for the accelerators
  (as the backend being lowered for traces it) and returns zeros of the output's shape."""
  calls, infer = [], common.infer

  def export_and_fake(model, params, collections, *inputs, **kwargs):
    args = (model, params, collections) + tuple(abstract(x) for x in inputs)
    kwargs = {k: abstract(v) if hasattr(v, "shape") else v for k, v in kwargs.items()}
    with layers.lowering_for("cuda"):
      calls.append(jax.export.export(infer, platforms=ACCELERATORS)(*args, **kwargs))
    out = jax.eval_shape(infer, *args, **kwargs)
    return jnp.zeros(out.shape, out.dtype)

  for module in vars(games).values():
    if module is not common and getattr(module, "infer", None) is infer:
      monkeypatch.setattr(module, "infer", export_and_fake)
  return calls


# The watermark game's inference is gan_jax.watermark's marking and reading (the next test).
@pytest.mark.parametrize("name", _by_model(c for c in CONFIGS if c != "watermark"))
def test_inference_lowers_for_gpu_and_tpu(name, exported_inference):
  config = load_config(name)
  exp = Experiment.build(config, throughput.data_spec(config))
  game, state = exp.game, abstract(jax.eval_shape(exp.init_state))
  if game.can_generate:
    samples, _ = game.generate(state, 4)
    assert samples.shape == (4,) + tuple(exp.spec.shape)
  generating = len(exported_inference)  # StyleGAN2's: the mapping, then the synthesis
  side = config.data.resolution
  for direction in game.directions:
    out = game.translate(state, np.zeros((2, side, side, config.data.channels), np.float32),
                         direction)
    assert out.shape[:3] == (2, side, side)
  scale = getattr(game, "scale", 0)  # super-resolution: upscale LR images
  if scale:
    out = game.upscale(state, np.zeros((2, side // scale, side // scale, config.data.channels),
                                        np.float32))
    assert out.shape[:3] == (2, side, side)
  assert (generating > 0) == game.can_generate
  assert len(exported_inference) - generating == len(game.directions) + bool(scale)
  assert exported_inference and all(e.platforms == ACCELERATORS for e in exported_inference)


def test_watermark_lowers_for_gpu_and_tpu():
  """Marking and reading with the shipped weights, as every written picture is."""
  from gan_jax import watermark
  wm = watermark.shipped()
  images = jax.ShapeDtypeStruct((2, 48, 80, 3), jnp.float32)
  message = jax.ShapeDtypeStruct((2, wm.bits), jnp.float32)
  mark = lambda x, m: wm.encoder.apply({"params": wm.encoder_params}, x, m, train=False)
  read = lambda x: wm.decoder.apply({"params": wm.decoder_params}, x, train=False)
  for fn, args in ((mark, (images, message)), (read, (images,))):
    exported = jax.export.export(jax.jit(fn), platforms=ACCELERATORS)(*args)
    assert exported.platforms == ACCELERATORS


def test_step_flops_match_a_hand_count():
  """XLA's flop count of the `dcgan64` step (what MFU is computed from) against the layers'
  multiply-adds counted by hand, in both forms the step takes.

  Per step: G forward, G's weight gradients and its input gradients below the first layer; D
  forward three times (real and fake in D's update, the fake again in G's), weight gradients
  twice (D's update), input gradients of all layers once (G's update, down to the fake image)
  and below the first layer twice (D's update). The native form (GPU, TPU) computes each
  transposed conv as one 2x2 conv over the padded (H+1) x (W+1) input, whose border windows
  do 8.5% more arithmetic than the layers need; the CPU's Winograd F(2x2, 2x2) layers (32 or
  more channels on both sides) do 9 of the 16 products per 2x2 tile.
  """
  config = load_config("dcgan64", arg=None)
  batch = config.train.batch_size

  def hand_count(g_layers, d_layers):
    g = 2 * sum(g_layers) + sum(g_layers[1:])
    d = 6 * sum(d_layers) + 2 * sum(d_layers[1:])
    return 2 * batch * (g + d)  # 2 flops per multiply-add

  def layers_macs(pad, winograd):
    # multiply-adds per sample: G dense z -> 4x4x512, transposed convs 4 -> 64; D convs 64 -> 4,
    # dense 4x4x512 -> 1
    w = 9 / 16 if winograd else 1
    g = [100 * 4 * 4 * 512] + [(h + pad) ** 2 * 16 * cin * cout * (w if cout >= 32 else 1)
                               for h, cin, cout in ((4, 512, 256), (8, 256, 128), (16, 128, 64),
                                                    (32, 64, 3))]
    d = [(h * h * 16 * cin * cout * (w if cin >= 32 else 1))
         for h, cin, cout in ((32, 3, 64), (16, 64, 128), (8, 128, 256), (4, 256, 512))]
    return g, d + [4 * 4 * 512]

  model = hand_count(*layers_macs(pad=0, winograd=False))
  assert 145.5e9 < model < 145.7e9
  native, cpu = throughput.step_flops(config, "cuda"), throughput.step_flops(config, "cpu")
  # the rest is elementwise work (batch norm, activations, Adam): under 2%
  assert 1 < native / hand_count(*layers_macs(pad=1, winograd=False)) < 1.01
  assert 1 < cpu / hand_count(*layers_macs(pad=0, winograd=True)) < 1.02
  assert abs(native / model - 1.089) < 0.005
