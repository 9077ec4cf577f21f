"""StyleGAN-V's recipe (Skorokhodov et al. 2022), DCGAN-sized, on the moving digits of
configs/video_digits.py: G renders a frame at any time t, D sees 3 frames of each 16-frame clip
and the gaps between them (`gan_jax/games/video_sparse.py`). The paper's sizes are StyleGAN2's
(motion noise and codes 512 wide, 256 waves, motion codes every 16 frames smoothed by kernels of
11, waves of periods 16 to 1024 frames, D's frames at most 32 apart, meeting at 16x16); here the
codes are 16 wide and 16 waves at most 256 frames long, one every 8 frames, smoothed by kernels
of 3, and widths are 16 as in the MoCoGAN config, so that it trains on 2 CPU cores. As there,
G's Adam runs at 1e-3 and D's at 2e-4: with both at 2e-4, 6000 steps drew blobs that changed
shape every frame (identity 0.4%, teleports 11.4%); with G at 1e-3, digits (identity 9.7%, no
teleports), though fewer of them (README's Video section)."""
import ml_collections

from gan_jax import config as common


def get_config(arg=None):
  c = common.video(common.base_config())
  c.name = "video_digits_sparse"
  c.game = "video_sparse"
  c.model = ml_collections.ConfigDict(dict(
      name="stylegan_v",
      content_dim=50,       # the content code, fixed over a clip
      motion_dim=16,        # motion noise a grid point, and the width of its smoothed codes
      motion_spacing=8,     # frames between the motion noise's grid points (shortest period)
      motion_kernel=3,      # frames of grid of each of the two smoothing convs
      time_features=16,     # waves of the motion code (sin and cos each: 32 numbers)
      max_period=256,       # frames of the longest wave
      time_shift=48,        # fakes' times: the reals' plus up to this many frames (0: the same)
      frames_per_clip=3,    # frames of each clip D sees
      max_distance=16,      # frames between D's first and last frame at most (and T - 1)
      concat_resolution=16,  # where D's frames meet (their features side by side)
      g_width=16,           # channels of G's last block; doubles towards 4x4
      d_width=16,           # D's first layer
      g_norm="batch",
      d_norm="batch",
      g_content="input",    # or modulation: the motion code makes G's input, the content its gains
      conditional=False,
  ))
  del c.loss["image_weight"], c.loss["video_weight"]  # MoCoGAN's two critics: one D here
  c.optim.g.lr = 1e-3
  c.train.steps = 6000
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  c.sample.num = 16
  if arg == "smoke":  # apply_arg's smoke knows MoCoGAN's keys, not these
    c.data.resolution, c.data.frames = 16, 8
    c.model.content_dim = c.model.motion_dim = c.model.time_features = 4
    c.model.motion_spacing, c.model.max_period, c.model.time_shift = 4, 32, 8
    c.model.concat_resolution = 8
    c.model.g_width = c.model.d_width = 4
    c.train.steps, c.train.steps_per_call, c.train.batch_size = 4, 1, 8
    c.train.log_every, c.train.sample_every, c.train.checkpoint_every = 2, 4, 2
    c.sample.num = 16
    c.train.health_samples = c.sample.num  # as apply_arg's smoke: the grid's compiled program
    return c
  return common.apply_arg(c, arg)  # no arg: unchanged; any other: apply_arg's UserError
