"""Where gan_jax keeps what it computes once: the digits classifier, reference statistics and
XLA's compiled programs. `$GAN_JAX_CACHE`, or ~/.cache/gan_jax."""
import os

import jax


def cache_dir() -> str:
  return os.environ.get("GAN_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "gan_jax"))


def enable_compilation_cache():
  """Keep compiled steps on disk, so a repeat run of a config skips most of its compile time.

  Off with GAN_JAX_COMPILATION_CACHE=0; a cache directory the user set for JAX wins.
  """
  if os.environ.get("GAN_JAX_COMPILATION_CACHE", "1") == "0" or jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", os.path.join(cache_dir(), "xla"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
