"""gan_jax: config-driven GAN training in JAX.

`gan_jax.load(workdir)` opens a trained run for use from Python (`gan_jax.api`); bad requests
raise `gan_jax.UserError`.
"""
from gan_jax.errors import UserError

__version__ = "0.1.0"
__all__ = ["load", "Model", "UserError"]


def __getattr__(name):
  # Lazily: `import gan_jax` (and `gan-jax --help`) should not pay for importing jax.
  if name in ("load", "Model"):
    from gan_jax import api  # pylint: disable=g-import-not-at-top
    return getattr(api, name)
  raise AttributeError(f"module 'gan_jax' has no attribute {name!r}")
