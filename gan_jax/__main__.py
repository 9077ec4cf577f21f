from gan_jax.cli import run

run()
