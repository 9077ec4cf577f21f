"""MoCoGAN on your own videos: `--config.data.source=videos:PATH` (a folder of .mp4, .webm, .gif,
... files or of frame folders; classes = subfolders) or `tfds:NAME` of a TFDS video dataset, cut
into 16-frame clips starting every 4 frames, 64x64 RGB, the paper's widths (64)."""
from gan_jax import config as common


def get_config(arg=None):
  c = common.video(common.base_config())
  c.name = "video_folder"
  c.data.source = "videos:videos"
  c.data.channels = 3
  c.train.steps = 100000
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  c.sample.num = 16
  c.eval.metrics = "fvd"
  return common.apply_arg(c, arg)
