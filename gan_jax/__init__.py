"""gan_jax: config-driven GAN training in JAX."""
__version__ = "0.1.0"
