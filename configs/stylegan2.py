"""StyleGAN2 with ADA as stylegan2-ada-pytorch's `--cfg` presets set it up (Karras et al. 2020).

  --config=configs/stylegan2.py:PRESET[,RESOLUTION]   PRESET: auto | stylegan2 | paper256 |
                                                      paper512 | paper1024 | cifar | smoke

`auto` derives the sizes from the resolution (default 256) as NVIDIA's does for one GPU: batch
min(4096 / res, 32), minibatch-stddev groups of 4, channel base 16384 below 512 pixels (32768
from it), lr 0.0025 (0.002 at 1024), R1 gamma 0.0002 res^2 / batch, EMA half-life batch x 10 / 32
kimg with ramp-up 0.05, a 2-layer mapping. The paper presets fix them (8 layers). `cifar` is
NVIDIA's CIFAR-10 setup: no path-length penalty or style mixing (its D keeps the residual
architecture here, where NVIDIA's switches to the plain one). Point it at your images with
`--config.data.source=folder:PATH` (or a TFDS name); `cifar` reads `tfds:cifar10`.
"""
from gan_jax import config as common
from gan_jax.errors import UserError

# preset: (resolution, batch, mbstd group, fmaps, lr, gamma, ema kimg, ema ramp-up, mapping layers)
PRESETS = {
    "stylegan2": (1024, 32, 4, 1, 0.002, 10.0, 10, None, 8),
    "paper256": (256, 64, 8, 0.5, 0.0025, 1.0, 20, None, 8),
    "paper512": (512, 64, 8, 1, 0.0025, 0.5, 20, None, 8),
    "paper1024": (1024, 32, 4, 1, 0.002, 2.0, 10, None, 8),
    "cifar": (32, 64, 32, 1, 0.0025, 0.01, 500, 0.05, 2),
}


def auto(resolution):
  batch = max(min(4096 // resolution, 32), 1)
  return (resolution, batch, min(batch, 4), 1 if resolution >= 512 else 0.5,
          0.002 if resolution >= 1024 else 0.0025, 0.0002 * resolution ** 2 / batch,
          batch * 10 / 32, 0.05, 2)


def get_config(arg=None):
  preset, _, resolution = (arg or "auto").partition(",")
  smoke = preset == "smoke"
  preset = "auto" if smoke else preset
  if preset != "auto" and preset not in PRESETS:
    raise UserError(f"Unknown StyleGAN2 preset {preset!r}: choose auto, "
                    f"{', '.join(PRESETS)} or smoke (e.g. --config=configs/stylegan2.py:auto,64).")
  if resolution and not resolution.isdigit():
    raise UserError(f"The resolution after the preset must be a number of pixels, got "
                    f"{resolution!r} (e.g. --config=configs/stylegan2.py:auto,64).")
  spec = auto(int(resolution or 256)) if preset == "auto" else PRESETS[preset]
  if resolution and preset != "auto":
    spec = (int(resolution),) + spec[1:]
  c = common.stylegan2(common.base_config(), *spec)
  c.name = f"stylegan2_{preset}"
  c.data.source = "folder:images"
  c.data.random_flip = True  # NVIDIA's --mirror=1, which its paper setups use
  c.train.steps = 25_000_000 // c.train.batch_size  # 25000 kimg
  # multiples of 16, so that `--config.train.steps_per_call=16` (a whole cycle of the lazy
  # regularizers in one call) divides them
  c.train.log_every = 128
  c.train.sample_every = 1024
  c.train.checkpoint_every = 1024
  if preset == "cifar":
    c.data.source, c.data.random_flip = "tfds:cifar10", False
    c.loss.pl_weight, c.loss.style_mixing = 0.0, 0.0
    c.train.steps = 100_000_000 // c.train.batch_size
  return common.apply_arg(c, "smoke" if smoke else None)
