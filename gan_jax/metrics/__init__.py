"""Evaluation metrics: feature extractors, FID/IS-style scores and mode coverage.

Offline metrics (no downloaded weights):
  - `gan_jax.metrics.modes2d`: PacGAN's mode metrics for the 2D ring/grid toys;
  - `gan_jax.metrics.digits`: a small digits classifier for digits FID/IS, class coverage and
    stacked-digits (1000-mode) coverage.
"""
