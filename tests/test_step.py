"""One step under jit over 8 devices, under pmap, and on one device agree; K steps per call = K calls."""
import importlib.util
import json
import re

import jax
import numpy as np
import pytest

from conftest import config_path
from gan_jax import parallel, step as step_lib
from gan_jax.data import pipeline, sources
from gan_jax.experiment import Experiment


def load_config(name, arg="smoke", **overrides):
  path, _, arg = config_path(name, arg).partition(":")
  spec = importlib.util.spec_from_file_location("cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def batches(config, source, count):
  it = pipeline.make_iterator(source, config)
  return [next(it) for _ in range(count)]


_prepared = {}  # the last config's experiment, batches and initial state (on the host)


def prepared(config, steps):
  """What every strategy's run of one config shares, built once: the tests run one config
  under several strategies in turn, and building and initialising a model is compiling."""
  key = (json.dumps({**config.to_dict(), "parallel": None}, sort_keys=True, default=str), steps)
  if key not in _prepared:
    _prepared.clear()
    source = sources.build(config)
    exp = Experiment.build(config, source.spec)
    _prepared[key] = exp, batches(config, source, steps), jax.device_get(exp.init_state())
  return _prepared[key]


def run(config, strategy_name, steps=2, k=1):
  """Final host state after `steps` steps with one strategy ('single' = plain jit, one device)."""
  exp, data, initial = prepared(config, steps)
  initial = jax.tree.map(np.array, initial)  # a copy: the step donates the state it is given
  if strategy_name == "single":
    multi = jax.jit(step_lib.make_multi_step(exp.game.train_step))
    state = jax.device_put(initial, jax.devices()[0])
    put, host = (lambda b: jax.device_put(b, jax.devices()[0])), (lambda s: s)
  else:
    strategy = parallel.get(strategy_name)
    multi = strategy.compile(step_lib.make_multi_step(exp.game_for(strategy.axis_name).train_step))
    state = strategy.put_state(initial)
    put, host = strategy.put_batch, strategy.host_state
  for i in range(0, steps, k):
    chunk = jax.tree.map(lambda *xs: np.stack(xs), *data[i:i + k])
    state, metrics = multi(state, put(chunk))
  return jax.device_get(host(state)), metrics


def under_jit_and_pmap(config, steps=2):
  """{"jit": (state, metrics), "pmap": (state, metrics)}: `run` under each strategy in turn."""
  results = {}
  for strategy in ("jit", "pmap"):
    config.parallel.strategy = strategy
    results[strategy] = run(config, strategy, steps)
  return results


def assert_trees_close(a, b, rtol, atol):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                               rtol=rtol, atol=atol)


CASES = {
    # batch norm in G and D: statistics must be global under both strategies
    "dcgan": dict(name="dcgan_digits"),
    # conditional G and projection D
    "cgan": dict(name="cgan_digits"),
    # 5 critic updates with a gradient penalty: per-device slices of global random draws
    "wgan_gp": dict(name="wgan_gp_digits"),
    # spectral-norm vectors in G and D, self-attention, a shared class embedding, orthogonal
    # regularization of G, an EMA that starts late; BigGAN's two D updates per G update (the
    # critic scan with spectral norm: the resnet smoke sizes update D once)
    # G's conv biases there feed batch norm, which removes them: their true gradient is 0 and
    # Adam turns its float noise into steps of up to lr, so they (and the running means of the
    # norms they feed) agree to 2 x lr x steps only
    "biggan": dict(name="biggan_cifar32", noisy=r"SNConv_\d+'\]\['bias|\['mean'\]",
                   overrides={"train.n_critic": 2}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_jit_and_pmap_match_single_device(case):
  config = load_config(CASES[case]["name"], **{"train.batch_size": 16},
                       **CASES[case].get("overrides", {}))
  single, _ = run(config, "single")
  for strategy in ("jit", "pmap"):
    config.parallel.strategy = strategy
    got, metrics = run(config, strategy)
    assert int(got.step) == 2
    noisy = CASES[case].get("noisy", "$^")
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path((got.g.params, got.g.collections)),
                            jax.tree.leaves((single.g.params, single.g.collections))):
      close = (dict(atol=2 * config.optim.g.lr * 2) if re.search(noisy, jax.tree_util.keystr(path))
               else dict(rtol=2e-4, atol=2e-5))
      np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), **close)
    assert_trees_close(got.d, single.d, rtol=2e-4, atol=2e-5)


def test_batch_is_split_across_devices():
  config = load_config("dcgan_digits", **{"train.batch_size": 16})
  batch = jax.tree.map(lambda x: x[None], batches(config, sources.build(config), 1)[0])
  placed = parallel.JitStrategy().put_batch(batch)["x"]  # [K, n_critic, B, H, W, C]
  shards = placed.addressable_shards
  assert len(shards) == 8 and len({s.device for s in shards}) == 8
  assert all(s.data.shape[2] == 2 for s in shards)
  rows = sorted(s.index[2].start for s in shards)
  assert rows == list(range(0, 16, 2))
  split = parallel.PmapStrategy().put_batch(batch)["x"]
  assert split.shape[:4] == (8, 1, 1, 2)
  np.testing.assert_array_equal(split[3, 0, 0], batch["x"][0, 0, 6:8])


@pytest.mark.parametrize("strategy_name", ["jit", "pmap"])
def test_a_strategys_step_compiles_once(strategy_name):
  """Its second call, on the first's outputs, reuses the first's program (under pmap it did not
  when the state was placed from host arrays: every run compiled its step twice)."""
  config = load_config("gan_ring2d", **{"train.batch_size": 8})
  exp, data, initial = prepared(config, 3)
  strategy = parallel.get(strategy_name)
  multi = strategy.compile(step_lib.make_multi_step(exp.game_for(strategy.axis_name).train_step))
  state = strategy.put_state(initial)
  compiles = []

  def listener(event, duration, **_):
    if "backend_compile" in event:
      compiles.append(duration)

  for i, batch in enumerate(data):
    if i == 1:
      jax.monitoring.register_event_duration_secs_listener(listener)
    state, _ = multi(state, strategy.put_batch(jax.tree.map(lambda x: x[None], batch)))
  jax.monitoring.unregister_event_duration_listener(listener)
  jax.block_until_ready(state)
  assert not compiles


def test_steps_per_call_equals_separate_calls():
  config = load_config("dcgan_digits", **{"train.batch_size": 8})
  one_by_one, _ = run(config, "single", steps=3, k=1)
  scanned, _ = run(config, "single", steps=3, k=3)
  assert_trees_close(scanned, one_by_one, rtol=1e-5, atol=1e-6)


def test_nonfinite_step_is_reported():
  config = load_config("gan_ring2d", **{"optim.d.lr": 1e30, "optim.g.lr": 1e30,
                                        "train.batch_size": 8})
  _, metrics = run(config, "single", steps=4, k=4)
  bad = int(metrics["nonfinite_step"])
  assert 1 <= bad <= 4
