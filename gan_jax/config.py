"""Configuration: the defaults every variant starts from, the `smoke` shrink, validation, JSON I/O.

Variant files in `configs/` (big_vision / Flax-examples style) call `base_config()`, override what
makes them that variant, and end with `apply_arg(config, arg)`.
"""
import json
import math

import ml_collections

from gan_jax.data import degrade, sources
from gan_jax.errors import UserError

def base_config():
  c = ml_collections.ConfigDict()
  c.name = ""  # set by each variant; names the default workdir runs/<name>
  c.seed = 0
  c.game = "noise"  # noise | paired | cycle | stylegan2 | r3gan | superres | text | video |
                    # video_sparse: what is trained (games/)

  c.data = ml_collections.ConfigDict(dict(
      # digits | stacked_digits | ring2d | grid2d | digit_edges | digit_styles | photos |
      # t2i_digits | tfds:NAME[:SPLIT] | folder:PATH | captions:PATH | pair:A,B | unpaired:A,B
      # (see README, Data)
      source="digits",
      resolution=32,     # images are brought to resolution x resolution x channels
      channels=1,
      resize="center_crop",  # center_crop | pad | stretch | random_crop: how other sizes reach
                             # the resolution (random_crop: a fixed random square of each, unscaled)
      random_flip=False,     # mirror each image left-right with probability 1/2
      load_size=0,       # random jitter (pix2pix): resize to load_size, random-crop back; 0 = off
      subset=0,          # train on N examples only, a fixed random choice (small-data runs); 0 = all
      data_dir="",       # TFDS data dir ("" = TFDS's default)
      text_key="",       # TFDS: the text feature that captions each image (e.g. captions/text)
      workers=0,         # threads decoding steps in parallel (0 = one per CPU core)
      prefetch=4,        # steps decoded ahead of the train step
  ))

  c.model = ml_collections.ConfigDict(dict(
      name="dcgan",
      latent_dim=100,
      g_width=64,        # channels of the last G block; doubles towards 4x4
      d_width=64,
      g_norm="batch",    # batch | none
      d_norm="batch",    # batch | layer | none (no batch norm under a gradient penalty)
      conditional=False,
  ))

  c.loss = ml_collections.ConfigDict(dict(
      adversarial="non_saturating",  # non_saturating | minimax | least_squares | hinge | wasserstein
      gp_weight=0.0,     # WGAN-GP gradient penalty on interpolates (Gulrajani et al. 2017)
      r1_weight=0.0,     # R1 penalty on real data (Mescheder et al. 2018)
      weight_clip=0.0,   # clip D weights to [-c, c] after each update (WGAN)
      ortho_weight=0.0,  # G's orthogonal regularization, BigGAN's off-diagonal form (Brock et al. 2019)
  ))

  def adam(lr):
    return ml_collections.ConfigDict(dict(
        optimizer="adam",  # adam | rmsprop | sgd
        lr=lr,
        schedule="constant",  # constant | cosine | linear (decay to 0 over train.steps)
        warmup_steps=0,
        hold_fraction=0.0,  # cosine | linear: share of the steps at the full rate before decaying
        b1=0.5,
        b2=0.999,
        grad_clip=0.0,     # clip by global norm; 0 = off
    ))
  c.optim = ml_collections.ConfigDict(dict(g=adam(2e-4), d=adam(2e-4)))

  c.train = ml_collections.ConfigDict(dict(
      steps=2000,
      batch_size=64,
      n_critic=1,            # D updates per G update, each on its own real batch
      steps_per_call=1,      # K steps in one compiled call (lax.scan); same results as K calls
      ema_decay=0.999,       # EMA of G weights for sampling; 0 = off
      ema_start=0,           # the EMA copies G until this step, then averages (BigGAN)
      log_every=50,
      sample_every=500,
      checkpoint_every=500,
      keep_checkpoints=2,
      nan_policy="stop",     # stop | rollback (restore the last checkpoint, new RNG)
      health="warn",         # warn | stop | off: alarms for D winning, mode collapse, loss spikes
                             # (gan_jax/health.py): log them, also end the run, or not watch
      health_samples=256,    # samples (and real examples) the collapse check compares
      init_from="",          # a run's workdir: start from its networks (fine-tuning)
      dtype="float32",
      num_seeds=1,           # N runs of seeds seed, seed + 1, ... vmapped in one program
  ))

  c.augment = ml_collections.ConfigDict(dict(  # what D sees (gan_jax/augment.py)
      kind="none",       # none | diffaugment | ada
      policy="",         # diffaugment: ops ("color,translation,cutout"); ada: a preset ("bgc")
      p=0.0,             # ada: the probability of each transform (fixed, or the starting value)
      target=0.6,        # ada: p adapts so that E[sign(D(real))] stays here; 0 = fixed p
      ada_kimg=500.0,    # ada: thousands of images for p to move from 0 to 1
      interval=4,        # ada: steps between adjustments of p
  ))

  c.parallel = ml_collections.ConfigDict(dict(strategy="jit"))  # jit | pmap | fsdp (state sharded)

  c.sample = ml_collections.ConfigDict(dict(num=64))  # size of the grid written during training

  c.eval = ml_collections.ConfigDict(dict(  # `gan-jax evaluate` and evaluation during training
      every_steps=0,         # evaluate during training every N steps and at the end; 0 = off
      metrics="",            # comma-separated: fid,is,kid,pr,prdc,modes,digits,cas,t2i,clip,...;
                             # "" = the data's default
      num_samples=10000,     # generated samples scored
      num_reference=10000,   # real images behind the Inception statistics (cached per dataset)
      inception_weights="",  # converted .npz; "" = $GAN_JAX_CACHE/inception_fid_2015-12-05.npz
      seed=0,                # latent seed of the scored samples, the same at every evaluation
      ema=True,              # score the EMA of G when the run keeps one
      hr_dir="",             # super-resolution: HR pictures to score on ("" = the data's held-out)
      test_dir="",           # cas: real labelled images to test on, class subfolders ("" = the
                             # data's held-out part: digits' 360)
      clip_weights="",       # clip: a Hugging Face CLIPModel folder
      i3d_weights="",        # fvd: converted I3D .npz; "" = $GAN_JAX_CACHE/i3d_kinetics400.npz
  ))
  return c


def mlp_model():
  """MLP G and D for 2D points."""
  return ml_collections.ConfigDict(dict(
      name="mlp", latent_dim=2, hidden=128, depth=3, conditional=False))


def vanilla_gan_2d(c):
  """The 2D mixtures' shared recipe: an MLP GAN with the non-saturating loss, Adam (2e-3, 0.5,
  0.99) decayed linearly to 0, an R1 penalty (weight set per dataset) and no EMA of G, since
  averaging an oscillating G lands between the modes."""
  c.model = mlp_model()
  c.loss.adversarial = "non_saturating"
  for side in (c.optim.g, c.optim.d):
    side.lr, side.b1, side.b2, side.schedule = 2e-3, 0.5, 0.99, "linear"
  c.train.ema_decay = 0.0
  c.train.steps_per_call = 50  # a step takes ~10 ms: amortize the dispatch
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  c.sample.num = 2000
  return c


def translation(c, game):
  """The translation games' shared recipe (pix2pix, CycleGAN): an image-to-image G and a PatchGAN
  D, Adam 2e-4 (0.5, 0.999) held for the first half and then decayed linearly to 0 (the
  references' n_epochs / n_epochs_decay, in steps), batch 1, no EMA of G."""
  c.game = game
  c.model = ml_collections.ConfigDict(dict(
      name="unet_256",    # unet_<R> (R = 2 ** downsamplings: unet_256, unet_128) | resnet_<N>blocks
      g_width=64,         # channels of G's first layer
      d_width=64,
      d_layers=3,         # PatchGAN: 3 = 70x70 patches, 1 = 16x16, 0 = 1x1 (PixelGAN)
      norm="batch",       # batch | instance, in G and D
      dropout=0.5,        # U-Net: in the innermost decoder blocks, the noise source
      upsample="transpose",  # ResNet G: transpose (transposed convs) | resize (nearest + conv)
  ))
  c.loss.adversarial = "non_saturating"  # or least_squares
  c.loss.adversarial_weight = 1.0  # G's GAN term (0: the L1-only baseline of the pix2pix paper)
  c.loss.l1_weight = 100.0        # paired: |G(x) - y|
  c.loss.cycle_weight = 10.0      # cycle: per direction
  c.loss.identity_weight = 0.5    # cycle: times cycle_weight, |G_ab(b) - b| and |G_ba(a) - a|
  c.train.history_pool = 50       # cycle: earlier fakes D sees per domain (0 = off)
  c.train.batch_size = 1
  c.train.ema_decay = 0.0
  for side in (c.optim.g, c.optim.d):
    side.lr, side.b1, side.b2, side.schedule = 2e-4, 0.5, 0.999, "linear"
    side.hold_fraction = 0.5
  c.sample.num = 8
  return c


def resnet_gan(c):
  """SNGAN / SAGAN / BigGAN's shared recipe at 32x32, as StudioGAN's CIFAR-10 defaults set it
  (POSTECH-CVLab/PyTorch-StudioGAN, src/config.py and configs/CIFAR10/SNGAN.yaml): Miyato et
  al.'s ResNet G (256 channels) and spectrally normalized D (128), class-conditional batch norm
  in G and a projection D, the hinge loss, Adam 2e-4 (0.5, 0.999), batch 64, 5 D steps per G
  step, no EMA of G. Images are RGB (gray digits as three equal channels), so
  `--config.data.source=tfds:cifar10` trains the paper's setting unchanged."""
  c.data.resolution = 32
  c.data.channels = 3
  c.model = ml_collections.ConfigDict(dict(
      name="resnet",
      latent_dim=128,
      g_width=256,
      d_width=128,
      g_spectral_norm=False,  # spectral norm in G too (SAGAN, BigGAN)
      attention_res=0,        # side of the feature maps with a self-attention block; 0 = none
      shared_dim=0,           # BigGAN: shared class embedding of this size + hierarchical z; 0 = off
      conditional=True,
  ))
  c.loss.adversarial = "hinge"
  for side in (c.optim.g, c.optim.d):
    side.lr, side.b1, side.b2 = 2e-4, 0.5, 0.999
  c.train.batch_size = 64
  c.train.n_critic = 5
  c.train.ema_decay = 0.0
  return c


def stylegan2(c, resolution, batch_size, mbstd, fmaps, lr, gamma, ema_kimg, rampup, mapping):
  """StyleGAN2's recipe (Karras et al. 2020, as stylegan2-ada-pytorch's `--cfg` presets set it):
  the mapping / synthesis G and residual D (channels min(fmaps * 32768 / res, 512)), the
  logistic loss, lazy R1 (gamma, every 16 D steps) and path-length regularization (weight 2,
  every 4 G steps), style mixing 0.9, Adam (0, 0.99), an EMA of G by half-life, ADA."""
  c.game = "stylegan2"
  c.data.resolution = resolution
  c.data.channels = 3
  c.model = ml_collections.ConfigDict(dict(
      name="stylegan2",
      latent_dim=512,     # z
      w_dim=512,
      mapping_layers=mapping,
      channel_base=int(fmaps * 32768),  # channels at resolution r: min(channel_base // r, max)
      channel_max=512,
      mbstd_group=mbstd,  # minibatch-stddev group size
      conv_clamp=0.0,     # clamp activations to +-this (for reduced precision); 0 = off
      conditional=False,
  ))
  c.loss.adversarial = "non_saturating"
  c.loss.r1_gamma = gamma
  c.loss.r1_interval = 16
  c.loss.r2 = False  # also R2 at the fakes, R1's weight (R3GAN's config-B ablation, with RpGAN)
  c.loss.pl_weight = 2.0
  c.loss.pl_interval = 4
  c.loss.pl_decay = 0.01
  c.loss.pl_batch_shrink = 2
  c.loss.style_mixing = 0.9
  for side in (c.optim.g, c.optim.d):
    side.lr, side.b1, side.b2, side.schedule = lr, 0.0, 0.99, "constant"
  c.train.batch_size = batch_size
  c.train.ema_decay = 0.0     # the style game's EMA is by half-life:
  c.train.ema_kimg = ema_kimg  # thousands of images for G_ema's weight on the past to halve
  c.train.ema_rampup = rampup or 0.0  # half-life at most rampup x the images seen; 0 = off
  c.train.freeze_d = 0  # FreezeD (Mo et al. 2020): D's first N blocks, from the input, not trained
  c.augment.kind, c.augment.policy = "ada", "bgc"
  return c


def r3gan(c, widths, cardinality, gamma, gamma_final, ema_kimg, aug_p, ramp_kimg, blocks=2,
          conditional=False):
  """R3GAN's recipe (Huang et al. 2024, as the authors' train.py presets set it): G and D of
  stages of inverted-bottleneck residual blocks (`widths`, `cardinality` per stage from 4x4
  up, `blocks` each, expansion 2), z of 64 (and a class embedding of 64 in G, of widths[0] in D),
  RpGAN with R1 + R2 every step, Adam (0, 0.9 -> 0.99, eps 1e-8) at 2e-4 -> 5e-5, gamma ->
  gamma_final, an EMA whose half-life grows from 0 to ema_kimg and ADA's `bgc` with p from 0 to
  aug_p, every schedule a cosine over ramp_kimg thousand images (the authors' decay_nimg)."""
  c.game = "r3gan"
  c.data.resolution = 4 * 2 ** (len(widths) - 1)
  c.data.channels = 3
  c.model = ml_collections.ConfigDict(dict(
      name="r3gan",
      latent_dim=64,
      widths=tuple(widths),            # channels per stage, 4x4 first (D: the same, reversed)
      cardinality=tuple(cardinality),  # groups of each stage's 3x3 convs
      blocks=(blocks,) * len(widths),  # residual blocks per stage
      expansion=2,                     # a block's inner channels: width x expansion
      kernel=3,
      conditional=conditional,
      g_class_dim=64,                  # conditional: the class embedding G reads beside z
      d_class_dim=widths[0],           # conditional: D's output projected on a class embedding
      g_bf16_stages=(),                # stage indices computed in bfloat16 (-1: the last)
      d_bf16_stages=(),
  ))
  c.loss.adversarial = "relativistic_pairing"
  c.loss.gamma = float(gamma)              # R1 and R2 weight gamma / 2, at the start ...
  c.loss.gamma_final = float(gamma_final)  # ... and after train.ramp_kimg
  c.loss.gamma_sweep = ()           # copies of one run differing in gamma (gan-jax tune-gamma)
  for side in (c.optim.g, c.optim.d):
    side.lr, side.lr_final, side.schedule = 2e-4, 5e-5, "cosine"
    side.b1, side.b2, side.b2_final, side.eps = 0.0, 0.9, 0.99, 1e-8
  c.train.ema_decay = 0.0  # the r3gan game's EMA is by half-life:
  c.train.ema_kimg = float(ema_kimg)
  c.train.ramp_kimg = float(ramp_kimg)
  c.augment.kind, c.augment.policy, c.augment.p, c.augment.target = (
      ("ada", "bgc", float(aug_p), 0.0) if aug_p else ("none", "", 0.0, 0.6))
  return c


def superres(c, paper):
  """ESRGAN's recipe (Wang et al. 2018, as BasicSR's options/train/ESRGAN/train_ESRGAN_x4.yml
  sets it): RRDBNet G (64 features, 23 blocks, growth 32, nearest + conv upsampling), the
  VGG-style D, L1 1e-2 + VGG19 conv5_4 perceptual 1 + relativistic average GAN 5e-3, Adam 1e-4
  (0.9, 0.99) on both sides, batch 16 of 128x128 HR crops, x4, an EMA of G (0.999). LR inputs
  are made from the HR crops on the host (`data/degrade.py`). Unless `paper`, G and D are
  narrowed (32 features, 4 blocks, growth 16; D 32), crops are 64x64 and G adds its input
  upsampled bilinearly to its output (SRResNet's global skip: from its first step it learns the
  residual over bilinear, where ESRGAN's G starts from nothing), to train on a CPU in minutes."""
  c.game = "superres"
  c.data.source = "photos"
  c.data.resolution = 128  # the HR patch side; LR patches are resolution / scale
  c.data.channels = 3
  c.data.scale = 4
  c.data.random_flip = True
  c.data.degrade = degrade.default_config()
  c.model = ml_collections.ConfigDict(dict(
      name="rrdb",        # rrdb (ESRGAN's RRDBNet) | srresnet (SRGAN's)
      features=64,
      blocks=23,          # RRDBs (rrdb) or residual blocks (srresnet)
      growth=32,          # rrdb: channels each dense-block conv adds
      upsample="nearest",  # nearest (+ conv) | pixel_shuffle, per 2x stage
      global_skip=False,  # rrdb: add the input upsampled bilinearly (SRResNet's skip)
      d_name="vgg",       # vgg (ESRGAN's VGG-style D, one logit) | unet (Real-ESRGAN's, per pixel)
      d_width=64,
  ))
  c.loss.adversarial = "relativistic_average"
  c.loss.adversarial_weight = 5e-3
  c.loss.l1_weight = 1e-2
  c.loss.perceptual_weight = 1.0
  c.loss.perceptual_layers = ml_collections.ConfigDict({"conv5_4": 1.0})  # before ReLU
  c.loss.perceptual_criterion = "l1"  # l1 | l2
  c.loss.perceptual_weights = ""  # converted VGG19 .npz; "" = $GAN_JAX_CACHE/vgg19.npz
  for side in (c.optim.g, c.optim.d):
    side.lr, side.b1, side.b2, side.schedule = 1e-4, 0.9, 0.99, "constant"
  c.train.batch_size = 16
  c.train.ema_decay = 0.999
  c.sample.num = 8
  if not paper:
    c.model.update(features=32, blocks=4, growth=16, d_width=32, global_skip=True)
    c.data.resolution = 64
  return c


def text_to_image(c):
  """DF-GAN's recipe (Tao et al. 2022, as its code sets it): G with deep text-image fusion and
  the one-way-output D, z of 100, width 32 on both sides; hinge loss with mismatched pairs and
  MA-GP (k 2, p 6); Adam (0, 0.9) at 1e-4 for G and 4e-4 for D; batch 32; one D step per G
  step, no augmentation. Captions are embedded once by `text.encoder` (the data's
  "text"); an EMA of G (0.999) draws the samples, as in the other games.

  Four changes make it train on t2i_digits with MiniLM's unit embeddings (README,
  Text-to-image): the paper's G (g_norm=none) grew its activations until tanh saturated and
  drew black within 100 steps; unit embeddings (entries ~0.05 beside z's ~1) left the
  captions unread until scaled; the projection term made D read the digit; XMC-GAN's
  contrastive term lifted held-out pairs from 79% to 98%."""
  c.game = "text"
  c.data.channels = 3
  c.model = ml_collections.ConfigDict(dict(
      name="dfgan",
      latent_dim=100,
      g_width=32,         # the paper's code's ngf: feature maps carry width x 1..8 channels
      d_width=32,         # ndf
      g_norm="instance",  # instance: normalize each fusion block's input | none (the paper's)
      text_scale=10.0,    # G and D read the unit sentence embeddings times this (paper: 1)
      d_projection=True,  # D adds <pooled features, linear(sentence)> (paper: False)
      conditional=False,  # G reads sentence embeddings, not classes
  ))
  c.text = ml_collections.ConfigDict(dict(encoder="minilm"))  # gan_jax/encoders
  c.loss.adversarial = "hinge"
  c.loss.magp_weight = 2.0   # MA-GP's k; 0 = off
  c.loss.magp_power = 6.0    # MA-GP's p
  c.loss.contrastive_weight = 1.0       # XMC-GAN's sentence-image term (needs d_projection); 0 = off
  c.loss.contrastive_temperature = 0.1  # its temperature (XMC-GAN's 0.1)
  for side, lr in ((c.optim.g, 1e-4), (c.optim.d, 4e-4)):
    side.lr, side.b1, side.b2, side.schedule = lr, 0.0, 0.9, "constant"
  c.train.batch_size = 32
  c.train.ema_decay = 0.999
  return c


def video(c):
  """MoCoGAN's recipe (Tulyakov et al. 2018) at DCGAN sizes: content code 50, motion 10 (a GRU
  of width 10 fed noise of 10 a frame), widths 64, the image D shown 2 frames of each clip, the
  video D 4x4x4 kernels; both critics see clips through Gaussian noise of sigma 0.1 (the
  reference code adds it before each critic layer, here at their input); non-saturating loss,
  Adam (0.5, 0.999) at 2e-4 both sides (the paper's), an EMA of G."""
  c.game = "video"
  c.data.source = "moving_digits"
  c.data.resolution = 64
  c.data.frames = 16       # frames per clip
  c.data.num_digits = 1    # moving_digits: digits per clip (2: the harder variant)
  c.data.stride = 4        # videos:PATH, tfds:NAME: a clip starts every `stride` frames
  c.data.video_key = ""    # tfds:NAME: its video feature ("": video, image_main, ...)
  c.model = ml_collections.ConfigDict(dict(
      name="mocogan",
      content_dim=50,     # the content code, fixed over a clip
      motion_dim=10,      # the GRU's width and its noise per frame
      g_width=64,         # channels of G's last block; doubles towards 4x4 (the paper's ngf)
      d_width=64,         # the image D's first layer (ndf)
      v_width=64,         # the video D's first layer
      time_kernel=4,      # frames a video D kernel spans
      image_frames=2,     # frames of each clip the image D sees
      g_norm="batch",
      d_norm="batch",
      g_content="input",  # input: [content, motion] is G's input | modulation: StyleGAN-V's split
      conditional=False,
  ))
  c.loss.image_weight = 1.0
  c.loss.video_weight = 1.0
  c.loss.instance_noise = 0.1  # sigma of the Gaussian noise on clips the critics see (MoCoGAN's)
  c.train.batch_size = 16  # clips
  c.train.micro_batches = 1  # M: each step's batch in M slices, one after another (memory / ~M)
  return c


def apply_arg(c, arg):
  """`smoke`: tiny sizes so a test trains a variant in seconds."""
  if not arg:
    return c
  if arg != "smoke":
    raise UserError(f"Unknown config arg {arg!r}: the only arg is 'smoke' (e.g. --config=configs/x.py:smoke).")
  c.train.steps = 4
  c.train.steps_per_call = 1
  c.train.batch_size = 16
  c.train.log_every = 2
  c.train.sample_every = 4
  c.train.checkpoint_every = 2
  c.sample.num = 16
  # The collapse check's 256 samples took up to 8 s of a 25 s smoke run; as many as the sample
  # grid, it reuses the grid's compiled program.
  c.train.health_samples = c.sample.num
  if c.model.name == "dcgan":
    c.data.resolution = 16
    c.model.latent_dim = 8
    c.model.g_width = 8
    c.model.d_width = 8
  elif c.model.name == "resnet":
    c.model.latent_dim = 8  # BigGAN splits z into 4 chunks at 32x32
    c.model.g_width = c.model.d_width = 8
    c.model.shared_dim = min(c.model.shared_dim, 8)
    c.train.n_critic = 1  # the critic scan compiles the D update twice (test_step's BigGAN has it)
  elif c.model.name == "mlp":
    c.model.hidden = 16
    c.model.latent_dim = 2
  elif c.model.name == "stylegan2":
    c.data.resolution = 8
    c.model.latent_dim = c.model.w_dim = 16
    c.model.mapping_layers = 2
    c.model.channel_base, c.model.channel_max = 64, 16
    c.train.batch_size = 8
    c.loss.r1_interval, c.loss.pl_interval = 2, 2  # both lazy phases run within the 4 steps
    c.augment.ada_kimg = 0.1  # ADA's p visibly moves at its first adjustment (step 4)
  elif c.model.name == "r3gan":
    c.data.resolution = 8
    c.model.latent_dim = c.model.g_class_dim = 8
    c.model.widths, c.model.cardinality, c.model.blocks = (16, 8), (4, 2), (1, 1)
    c.model.d_class_dim = 16
    c.train.batch_size = 8
  elif c.model.name == "dfgan":
    c.data.resolution = 16
    c.model.latent_dim = 8
    c.model.g_width = c.model.d_width = 4
    c.train.batch_size = 8
  elif c.model.name == "mocogan":
    c.data.resolution, c.data.frames = 16, 4
    c.model.content_dim, c.model.motion_dim = 8, 4
    c.model.g_width = c.model.d_width = c.model.v_width = 4
    c.train.batch_size = 8
  elif c.model.name == "watermark":
    c.data.resolution = 32
    c.model.width, c.model.bits, c.model.side = 8, 8, 16
    c.train.batch_size = 8
  elif c.game == "superres":
    c.data.resolution = 32
    c.model.features, c.model.blocks, c.model.growth = 8, 1, 4
    c.model.d_width = 4
    c.train.batch_size = 8
  else:  # a translator
    c.data.resolution = 16
    c.data.load_size = 18 if c.data.load_size else 0  # jitter stays on where the config has it
    c.model.g_width = 4
    c.model.d_width = 4
    c.model.d_layers = min(c.model.d_layers, 2)  # a 16x16 image has no 70x70 patches
    c.train.batch_size = 8
    if c.model.name.startswith("unet_"):
      c.model.name = "unet_16"
    else:
      c.model.name = "resnet_1blocks"
      c.train.history_pool = 3
  return c


CHOICES = {
    "data.resize": ("center_crop", "pad", "stretch", "random_crop"),
    "loss.adversarial": ("non_saturating", "minimax", "least_squares", "hinge", "wasserstein",
                         "relativistic_average", "relativistic_pairing"),
    "loss.perceptual_criterion": ("l1", "l2"),
    "model.g_norm": ("batch", "layer", "instance", "none"),
    "model.g_content": ("input", "modulation"),
    "model.d_norm": ("batch", "layer", "instance", "none"),
    "optim.g.optimizer": ("adam", "rmsprop", "sgd"),
    "optim.d.optimizer": ("adam", "rmsprop", "sgd"),
    "optim.g.schedule": ("constant", "cosine", "linear"),
    "optim.d.schedule": ("constant", "cosine", "linear"),
    "train.nan_policy": ("stop", "rollback"),
    "train.health": ("warn", "stop", "off"),
    "train.dtype": ("float32", "bfloat16"),
    "parallel.strategy": ("jit", "pmap", "fsdp"),
}


class Range:
  """The numbers a key may hold: from `low` to `high`, each end included unless `open`."""

  def __init__(self, low, high=math.inf, low_open=False, high_open=False, note=""):
    self.low, self.high, self.low_open, self.high_open, self.note = (
        low, high, low_open, high_open, note)

  def holds(self, value):
    # nan fails every comparison; inf is no setting either
    return (isinstance(value, (int, float)) and math.isfinite(value)
            and (self.low < value if self.low_open else self.low <= value)
            and (value < self.high if self.high_open else value <= self.high))

  def __str__(self):
    if self.high == math.inf:
      text = ("a positive integer" if (self.low, self.low_open) == (1, False)
              else f"{'>' if self.low_open else '>='} {self.low:g}")
    else:
      text = (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
              f"{')' if self.high_open else ']'}")
    return text + (f" ({self.note})" if self.note else "")


COUNT, NON_NEGATIVE, POSITIVE = Range(1), Range(0), Range(0, low_open=True)
# base_config's regularizers (of D, and G's orthogonal one); a game's `base_regularizers` names
# those it reads, and `validate` refuses the others rather than let them do nothing.
BASE_REGULARIZERS = ("gp_weight", "r1_weight", "weight_clip", "ortho_weight")
FRACTION, PROBABILITY = Range(0, 1, high_open=True), Range(0, 1, note="a probability")
_optim = lambda side: {
    f"optim.{side}.lr": POSITIVE, f"optim.{side}.warmup_steps": NON_NEGATIVE,
    f"optim.{side}.hold_fraction": Range(0, 1, high_open=True, note="the share of the steps at "
                                         "the full rate before the decay"),
    f"optim.{side}.b1": FRACTION, f"optim.{side}.b2": FRACTION, f"optim.{side}.b2_final": FRACTION,
    f"optim.{side}.lr_final": NON_NEGATIVE, f"optim.{side}.eps": POSITIVE,
    f"optim.{side}.grad_clip": Range(0, note="0 = off")}
# Every number of base_config and of the keys the recipes and games add, with what it may hold.
# A key a config lacks (each game adds its own) is skipped; the games check what depends on
# other settings (StyleGAN2's freeze_d against D's blocks, ...).
RANGES = {
    "data.resolution": COUNT,
    "model.latent_dim": COUNT, "model.g_width": COUNT, "model.d_width": COUNT,
    "model.hidden": COUNT, "model.depth": COUNT, "model.w_dim": COUNT,
    "model.mapping_layers": COUNT, "model.channel_base": COUNT, "model.channel_max": COUNT,
    "model.features": COUNT, "model.blocks": COUNT, "model.growth": COUNT,
    "model.d_layers": NON_NEGATIVE, "model.attention_res": Range(0, note="0 = none"),
    "model.shared_dim": Range(0, note="0 = off"),
    "model.mbstd_group": Range(0, note="0 = the whole batch"),
    "model.conv_clamp": Range(0, note="0 = off"), "model.dropout": FRACTION,
    **{f"loss.{k}": NON_NEGATIVE for k in BASE_REGULARIZERS + (
        "adversarial_weight", "l1_weight", "cycle_weight", "identity_weight", "perceptual_weight",
        "r1_gamma", "pl_weight", "magp_weight")},
    "loss.magp_power": Range(2, note="below 2 it has no gradient where D's is zero"),
    "loss.r1_interval": COUNT, "loss.pl_interval": COUNT, "loss.pl_batch_shrink": COUNT,
    "loss.pl_decay": Range(0, 1), "loss.style_mixing": PROBABILITY,
    "loss.gamma": POSITIVE, "loss.gamma_final": NON_NEGATIVE, "train.ramp_kimg": POSITIVE,
    "model.expansion": COUNT, "model.kernel": COUNT, "model.g_class_dim": COUNT,
    "model.d_class_dim": COUNT, "model.widths": COUNT, "model.cardinality": COUNT,
    "model.content_dim": COUNT, "model.motion_dim": COUNT, "model.v_width": COUNT,
    "model.time_kernel": COUNT, "model.image_frames": COUNT, "data.frames": COUNT,
    "data.num_digits": Range(1, 2), "data.stride": COUNT, "loss.image_weight": NON_NEGATIVE,
    "loss.video_weight": NON_NEGATIVE, "loss.instance_noise": NON_NEGATIVE,
    "model.frames_per_clip": COUNT, "model.max_distance": COUNT, "model.motion_spacing": COUNT,
    "model.motion_kernel": COUNT, "model.time_features": COUNT, "model.max_period": POSITIVE,
    "model.time_shift": NON_NEGATIVE, "model.concat_resolution": COUNT,
    **_optim("g"), **_optim("d"),
    **{f"train.{k}": COUNT for k in (
        "steps", "batch_size", "n_critic", "steps_per_call", "num_seeds", "log_every",
        "checkpoint_every", "sample_every", "keep_checkpoints", "micro_batches")},
    "train.ema_decay": Range(0, 1, high_open=True, note="0 = off"),
    "train.ema_start": NON_NEGATIVE, "train.ema_kimg": NON_NEGATIVE,
    "train.ema_rampup": Range(0, note="0 = off"), "train.history_pool": Range(0, note="0 = off"),
    "train.freeze_d": NON_NEGATIVE,
    "train.health_samples": Range(2, note="a spread needs two samples"),
    "augment.p": PROBABILITY, "augment.target": Range(0, 1, note="0 = a fixed p"),
    "augment.ada_kimg": POSITIVE, "augment.interval": COUNT,
    "sample.num": COUNT,
    "eval.every_steps": Range(0, note="0 = off"), "eval.num_samples": NON_NEGATIVE,
    "eval.num_reference": NON_NEGATIVE,
}


def lookup(config, dotted, default=None):
  node = config
  for key in dotted.split("."):
    if key not in node:
      return default
    node = node[key]
  return node


def validate(config, num_devices=1):
  """Raises UserError with one sentence for the first impossible setting, before anything is
  built: a bad value costs the user no compile and leaves no workdir."""
  from gan_jax import games  # pylint: disable=g-import-not-at-top  (games import this module's users)
  game = games.get(config.game)
  for key, choices in CHOICES.items():
    value = lookup(config, key, choices[0])
    if value not in choices:
      raise UserError(f"--config.{key}={value!r} is not supported: choose one of {', '.join(choices)}.")
  for key, allowed in RANGES.items():
    value = lookup(config, key)
    if isinstance(value, (tuple, list)):  # one value per stage (R3GAN)
      if not value or not all(allowed.holds(v) for v in value):
        raise UserError(f"--config.{key} must give one value per stage, each {allowed}, got "
                        f"{value!r}.")
    elif value is not None and not allowed.holds(value):
      raise UserError(f"--config.{key} must be {allowed}, got {value!r}.")
  for name, weight in (lookup(config, "loss.perceptual_layers") or {}).items():
    if not Range(0).holds(weight):
      raise UserError(f"--config.loss.perceptual_layers.{name} must be >= 0, got {weight}.")
  validate_data(config)
  t = config.train
  if t.batch_size % num_devices:
    raise UserError(f"--config.train.batch_size={t.batch_size} does not divide over {num_devices} "
                    f"devices: use a multiple of {num_devices}.")
  for key in ("log_every", "checkpoint_every", "sample_every"):
    if t[key] % t.steps_per_call:
      raise UserError(f"--config.train.{key}={t[key]} must be a multiple of "
                      f"train.steps_per_call={t.steps_per_call} (work is done K steps at a time).")
  if config.data.get("scale", 0) and not hasattr(game, "upscale"):
    raise UserError(f"--config.data.scale={config.data.scale} makes low-resolution inputs for "
                    f"super-resolution, which the {config.game} game does not learn: set it 0, "
                    "or train configs/rrdb_psnr.py.")
  micro, per_device = lookup(config, "train.micro_batches", 1), t.batch_size // num_devices
  if per_device % micro:
    raise UserError(f"--config.train.micro_batches={micro} does not divide the {per_device} "
                    f"examples each device takes a step: use a divisor of {per_device}.")
  if t.n_critic != 1 and not getattr(game, "multi_critic", False):
    raise UserError(f"--config.train.n_critic={t.n_critic}: the {config.game} game updates D "
                    "once per G update; set it to 1.")
  for key in BASE_REGULARIZERS:
    value = lookup(config, f"loss.{key}", 0)
    if value and key not in getattr(game, "base_regularizers", ()):
      raise UserError(f"--config.loss.{key}={value} is not read by the {config.game} game: set "
                      "it 0.")
  game.validate(config)


def validate_data(config):
  d = config.data
  kind = sources.kind(d.source)
  if kind == "stacked_digits" and d.channels != 3:
    raise UserError(f"--config.data.channels={d.channels}: stacked_digits has 3 channels (one "
                    "digit each), set it to 3.")
  if kind == "t2i_digits" and d.channels != 3:
    raise UserError(f"--config.data.channels={d.channels}: t2i_digits draws digits in colours, "
                    "set it to 3.")
  if d.get("text_key") and kind != "tfds":
    raise UserError(f"--config.data.text_key={d.text_key} names a TFDS text feature, and "
                    f"{d.source} is no TFDS dataset: use tfds:NAME, or captions:PATH for a folder "
                    "with a metadata.jsonl.")
  if kind not in ("ring2d", "grid2d") and d.channels not in (1, 3):
    raise UserError(f"--config.data.channels={d.channels} is not supported for {d.source}: use 1 "
                    "(gray) or 3 (RGB).")
  if d.random_flip and kind in ("ring2d", "grid2d"):
    raise UserError(f"--config.data.random_flip mirrors images, and {d.source} holds 2D points: "
                    "set it False.")
  if d.load_size and kind in ("ring2d", "grid2d"):
    raise UserError(f"--config.data.load_size crops images, and {d.source} holds 2D points: set "
                    "it 0.")
  if d.load_size and d.load_size < d.resolution:
    raise UserError(f"--config.data.load_size={d.load_size} must be 0 (off) or at least "
                    f"data.resolution={d.resolution}: images are enlarged to it, then cropped.")
  if d.subset < 0 or (d.subset and kind in sources.TWO_DOMAINS):
    raise UserError(f"--config.data.subset={d.subset} must be 0 (all) or a number of examples "
                    "of one-domain data.")
  if d.workers < 0:
    raise UserError(f"--config.data.workers={d.workers} must be >= 0 (0 = one per CPU core).")
  if d.prefetch < 1:
    raise UserError(f"--config.data.prefetch={d.prefetch} must be a positive number of steps.")
  if d.get("scale", 0) and (kind in ("ring2d", "grid2d")
                            or (kind in sources.TWO_DOMAINS and kind != "pair")):
    raise UserError(f"--config.data.scale={d.scale} makes super-resolution pairs from images, or "
                    f"reads pair:LR,HR folders, not {d.source}: use an image source or scale 0.")
  if d.get("scale", 0) and kind == "pair" and d.resize == "random_crop":
    raise UserError("--config.data.resize=random_crop would crop the LR and HR images of "
                    f"{d.source} at unrelated places: use center_crop, pad or stretch.")
  degrade.validate(config)


# Keys that may change when a run resumes in an existing workdir: they do not change the model,
# the data or what one step computes.
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.sample_every",
                     "train.checkpoint_every", "train.keep_checkpoints", "train.steps_per_call",
                     "train.nan_policy", "train.health", "train.health_samples",
                     "parallel.strategy", "sample.num", "data.data_dir", "data.workers",
                     "data.prefetch",
                     *(f"eval.{k}" for k in base_config().eval))


def with_seed(config, seed):
  """`config` as the one-seed run of `seed` (run i of a num_seeds run: config.seed + i)."""
  config = config.copy_and_resolve_references()
  config.seed = seed
  if "num_seeds" in config.train:
    config.train.num_seeds = 1
  return config


def flatten(config, prefix=""):
  out = {}
  for key, value in config.items():
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def incompatible_keys(saved, config):
  """Keys whose values differ between a workdir's saved config and `config`. A key newer than the
  saved config counts as unchanged while it holds its default (which is what that run did)."""
  a, b = flatten(saved), flatten(config.to_dict())
  defaults = flatten(base_config().to_dict())
  a.update({k: defaults[k] for k in b.keys() - a.keys() if k in defaults})
  resumable = set(RESUMABLE_CHANGES)
  # a decaying schedule is laid out over train.steps, R3GAN's over train.ramp_kimg
  if (a.get("game") != "r3gan"
      and any(a.get(f"optim.{n}.schedule") != "constant" for n in ("g", "d"))):
    resumable.discard("train.steps")
  return sorted(k for k in set(a) | set(b)
                if k not in resumable and _norm(a.get(k)) != _norm(b.get(k)))


def _norm(value):
  return list(value) if isinstance(value, tuple) else value


def save_json(config, path):
  with open(path, "w") as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True)


def load_json(path):
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))
