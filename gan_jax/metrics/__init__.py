"""Evaluation metrics: feature extractors, streaming statistics and scores, each kept separate.

  - `inception`: pytorch-fid's FID InceptionV3 in Flax, its weight conversion and a batched,
    sharded feature extractor (needs the converted weights file);
  - `stats`: mean and covariance of features streamed batch by batch;
  - `scores`: FID, IS, KID, precision/recall, density/coverage from features or logits;
  - `reference`: real-data statistics computed once per dataset and extractor, cached;
  - `digits`: a small digits classifier for offline digits FID/IS, class coverage and
    stacked-digits (1000-mode) coverage;
  - `modes2d`: PacGAN's mode metrics for the 2D ring/grid toys.
  - `vgg`: torchvision's VGG19 features stack (frozen, converted weights) and the ESRGAN /
    Real-ESRGAN perceptual loss on its layers before ReLU;
  - `sr`: PSNR and SSIM on the Y channel with the scale's border cropped, as SR papers report;
  - `video`: the offline measures of generated moving digits (identity, motion, coverage);
  - `i3d`: the Kinetics-400 I3D in Flax whose logits FVD compares (needs converted weights).
`gan_jax.evaluate` picks and runs them by name.
"""
