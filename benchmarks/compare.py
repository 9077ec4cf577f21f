"""Our compiled step against its PyTorch peer, alternating runs (A B A B ...) in one command.

  python benchmarks/compare.py --config=configs/dcgan64.py [--rounds=3] [--batch_size=B]
      [--steps=N] [--warmup=W] [--peer_args="--compile --device=cuda"] [--json=PATH]
      [--config.KEY=VALUE ...]

Each run is a fresh process (throughput.py for ours; benchmarks/peers/ for PyTorch, chosen by
the config's model: dcgan -> torch_dcgan.py, mlp -> torch_mlp_gan.py, unet_<R> -> torch_pix2pix.py,
resnet_<N>blocks -> torch_cyclegan.py, stylegan2 -> torch_stylegan2.py, resnet -> torch_sngan.py,
rrdb -> torch_rrdb.py, dfgan -> torch_dfgan.py, r3gan -> torch_r3gan.py, mocogan ->
torch_video.py) given the same batch, and
the peer gets as many threads as this process may use. Alternating spreads a noisy machine's
slow spells over both sides; each pair gives a ratio ours/peer of images (= steps) per second,
and the median ratio is the figure to quote. Prints one JSON object.
"""
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags
from ml_collections import config_flags

import timing

config_flags.DEFINE_config_file("config", None, "config file", lock_config=True)
flags.DEFINE_integer("rounds", 3, "pairs of runs")
flags.DEFINE_integer("batch_size", None, "global batch (default: the config's)")
flags.DEFINE_integer("steps", None, "timed calls per run (default: each script's)")
flags.DEFINE_integer("warmup", None, "untimed calls per run (default: each script's)")
flags.DEFINE_string("peer_args", "", "extra flags for the peer script")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS

HERE = os.path.dirname(os.path.abspath(__file__))


def peer_command(config, batch_size):
  """The PyTorch script doing the same work as `config`'s step, and its flags."""
  threads = len(os.sched_getaffinity(0))
  if config.model.name == "dcgan":
    d, m = config.data, config.model
    if (m.latent_dim, m.g_width, m.d_width, d.channels, m.conditional) != (100, 64, 64, 3, False):
      raise app.UsageError("The DCGAN peer is pytorch/examples' net (nz 100, width 64, 3 channels, "
                           "unconditional): compare configs/dcgan64.py.")
    return [os.path.join(HERE, "peers", "torch_dcgan.py"), f"--resolution={d.resolution}",
            f"--batch_size={batch_size}", f"--threads={threads}"]
  if config.model.name == "mlp":
    return [os.path.join(HERE, "peers", "torch_mlp_gan.py"), f"--batch_size={batch_size}",
            f"--r1_weight={config.loss.r1_weight}", f"--threads={threads}"]
  if config.model.name == "stylegan2":
    return stylegan2_peer(config, batch_size, threads)
  if config.model.name == "resnet":
    m, d = config.model, config.data
    if (m.g_spectral_norm, m.attention_res, m.shared_dim, m.latent_dim, d.resolution) != (
        False, 0, 0, 128, 32):
      raise app.UsageError("The ResNet peer is SNGAN-32 (z 128, no spectral norm in G, no "
                           "attention, no shared embedding): compare configs/sngan_cifar32.py.")
    classes = 10 if m.conditional else 0  # as throughput.data_spec (digits, CIFAR-10)
    return [os.path.join(HERE, "peers", "torch_sngan.py"), f"--batch_size={batch_size}",
            f"--num_classes={classes}", f"--n_critic={config.train.n_critic}",
            f"--g_width={m.g_width}", f"--d_width={m.d_width}", f"--channels={d.channels}",
            f"--threads={threads}"]
  if config.model.name == "dfgan":
    return dfgan_peer(config, batch_size, threads)
  if config.model.name == "r3gan":
    return r3gan_peer(config, batch_size, threads)
  if config.model.name == "mocogan":
    return video_peer(config, batch_size, threads)
  name, r = config.model.name, config.data.resolution
  if name == "rrdb":
    m, reg = config.model, config.loss
    if ((m.growth, m.upsample, m.global_skip, m.d_name, m.d_width, config.data.scale,
         config.data.channels, reg.adversarial, dict(reg.perceptual_layers)) !=
        (32, "nearest", False, "vgg", m.features, 4, 3, "relativistic_average",
         {"conv5_4": 1.0})):
      raise app.UsageError("The RRDB peer is ESRGAN's x4 step (growth 32, nearest upsampling, "
                           "no global skip, the VGG-style D as wide as G, relativistic average GAN, VGG19 conv5_4 "
                           "perceptual loss, RGB): compare configs/esrgan.py:paper.")
    return [os.path.join(HERE, "peers", "torch_rrdb.py"), f"--batch_size={batch_size}",
            f"--resolution={r}", f"--features={m.features}", f"--blocks={m.blocks}",
            f"--threads={threads}"]
  if name.startswith(("unet_", "resnet_")):
    m = config.model
    if (m.g_width, m.d_width, m.d_layers, config.data.channels) != (64, 64, 3, 3):
      raise app.UsageError("The translation peers are the references' nets (width 64, the 70x70 "
                           "PatchGAN, 3 channels): compare configs/pix2pix_facades.py or "
                           "configs/cyclegan_horse2zebra.py.")
    common = [f"--resolution={r}", f"--batch_size={batch_size}", f"--threads={threads}"]
    if m.norm != ("batch" if name.startswith("unet_") else "instance"):
      raise app.UsageError("The peers use the references' norms: batch for pix2pix, instance for "
                           "CycleGAN.")
    if name.startswith("unet_"):
      if name != f"unet_{r}":
        raise app.UsageError(f"The pix2pix peer's U-Net reduces its input to 1x1: at resolution "
                             f"{r} compare --config.model.name=unet_{r}.")
      gan_mode = "lsgan" if config.loss.adversarial == "least_squares" else "vanilla"
      return [os.path.join(HERE, "peers", "torch_pix2pix.py"), f"--gan_mode={gan_mode}"] + common
    blocks = name[len("resnet_"):-len("blocks")]
    return [os.path.join(HERE, "peers", "torch_cyclegan.py"), f"--n_blocks={blocks}"] + common
  raise app.UsageError(f"No PyTorch peer for model {config.model.name!r}.")


def stylegan2_peer(config, batch_size, threads):
  """The StyleGAN2 peer at the config's sizes and weights. It plays NVIDIA's iteration without
  augmentation, regularizing every 16 (R1) and 4 (path length, half the batch) steps, unfused
  modulated convs (NVIDIA's training form, and ours on CPU): time one full cycle of ours, e.g.
  `--config.train.steps_per_call=16`."""
  m, reg = config.model, config.loss
  if (config.augment.kind, reg.r1_interval, reg.pl_interval, reg.pl_batch_shrink,
      m.mbstd_group, m.conditional, config.data.channels) != ("none", 16, 4, 2, 4, False, 3):
    raise app.UsageError("The StyleGAN2 peer plays NVIDIA's schedule without augmentation, "
                         "unconditional, 3 channels, minibatch-stddev groups of 4: pass "
                         "--config.augment.kind=none and keep those settings.")
  return [os.path.join(HERE, "peers", "torch_stylegan2.py"), "--modconv=unfused",
          "--no_plain_timing", f"--resolution={config.data.resolution}",
          f"--batch_size={batch_size}", f"--threads={threads}", f"--channel_base={m.channel_base}",
          f"--channel_max={m.channel_max}", f"--z_dim={m.latent_dim}", f"--w_dim={m.w_dim}",
          f"--map_layers={m.mapping_layers}", f"--r1_gamma={reg.r1_gamma}",
          f"--pl_weight={reg.pl_weight}", f"--style_mixing={reg.style_mixing}",
          f"--lr={config.optim.g.lr}", f"--ema_kimg={config.train.ema_kimg}"]


def dfgan_peer(config, batch_size, threads):
  """The DF-GAN peer at the config's sizes, playing the text game's step (hinge with mismatched
  pairs, MA-GP, Adam (0, 0.9) at 1e-4 / 4e-4, EMA), on captions of the stand-in width."""
  m, reg = config.model, config.loss
  if ((m.g_width, reg.adversarial, config.optim.g.lr, config.optim.d.lr, config.optim.g.b1,
       config.optim.g.b2, m.g_norm, m.d_projection, reg.contrastive_weight) !=
      (m.d_width, "hinge", 1e-4, 4e-4, 0.0, 0.9, "none", False, 0.0)):
    raise app.UsageError("The DF-GAN peer plays the paper's DF-GAN recipe with G and D equally "
                         "wide: keep g_width = d_width, the hinge loss, DF-GAN's Adam settings, "
                         "--config.model.g_norm=none --config.model.d_projection=False "
                         "--config.loss.contrastive_weight=0.")
  from gan_jax import encoders  # pylint: disable=g-import-not-at-top
  return [os.path.join(HERE, "peers", "torch_dfgan.py"), f"--batch_size={batch_size}",
          f"--resolution={config.data.resolution}", f"--channels={config.data.channels}",
          f"--width={m.g_width}", f"--z_dim={m.latent_dim}",
          f"--text_dim={encoders.DIMS[config.text.encoder]}", f"--magp_weight={reg.magp_weight}",
          f"--magp_power={reg.magp_power}", f"--threads={threads}"]


def r3gan_peer(config, batch_size, threads):
  """The R3GAN peer at the config's nets, playing one RpGAN + R1 + R2 step with Adam at the
  config's starting lr and gamma (the schedules' cost is nil beside the nets)."""
  m = config.model
  if (config.augment.kind, m.g_bf16_stages, m.d_bf16_stages, config.data.channels) != (
      "none", (), (), 3):
    raise app.UsageError("The R3GAN peer plays the step without augmentation or mixed-precision "
                         "stages, on RGB: pass --config.augment.kind=none and leave "
                         "model.g_bf16_stages and model.d_bf16_stages empty.")
  ints = lambda values: ",".join(str(v) for v in values)
  classes = 10 if m.conditional else 0  # as throughput.data_spec (digits, CIFAR-10)
  return [os.path.join(HERE, "peers", "torch_r3gan.py"), f"--batch_size={batch_size}",
          f"--widths={ints(m.widths)}", f"--cardinality={ints(m.cardinality)}",
          f"--blocks={ints(m.blocks)}", f"--expansion={m.expansion}", f"--kernel={m.kernel}",
          f"--z_dim={m.latent_dim}", f"--c_dim={classes}", f"--g_class_dim={m.g_class_dim}",
          f"--d_class_dim={m.d_class_dim}", f"--gamma={config.loss.gamma}",
          f"--lr={config.optim.g.lr}", f"--threads={threads}"]


def video_peer(config, batch_size, threads):
  """The MoCoGAN peer at the config's sizes (batch in clips), playing the video game's step:
  both critics' non-saturating losses, Adam (0.5, 0.999) each side, G's EMA."""
  m, d, reg, o = config.model, config.data, config.loss, config.optim
  adam = lambda opt: (opt.optimizer, opt.schedule, opt.b1, opt.b2, opt.grad_clip)
  if ((reg.adversarial, m.g_norm, m.d_norm, m.conditional, adam(o.g), adam(o.d),
       config.train.ema_start) !=
      ("non_saturating", "batch", "batch", False, ("adam", "constant", 0.5, 0.999, 0.0),
       ("adam", "constant", 0.5, 0.999, 0.0), 0)):
    raise app.UsageError("The MoCoGAN peer plays the paper's recipe: the non-saturating loss, "
                         "batch norm in G and both critics, unconditional, constant-rate Adam "
                         "(0.5, 0.999) without clipping on both sides, the EMA from step 0.")
  return [os.path.join(HERE, "peers", "torch_video.py"), f"--batch_size={batch_size}",
          f"--resolution={d.resolution}", f"--frames={d.frames}", f"--channels={d.channels}",
          f"--content_dim={m.content_dim}", f"--motion_dim={m.motion_dim}",
          f"--g_width={m.g_width}", f"--d_width={m.d_width}", f"--v_width={m.v_width}",
          f"--time_kernel={m.time_kernel}", f"--image_frames={m.image_frames}",
          f"--g_lr={o.g.lr}", f"--d_lr={o.d.lr}", f"--image_weight={reg.image_weight}",
          f"--video_weight={reg.video_weight}", f"--ema_decay={config.train.ema_decay}",
          f"--instance_noise={reg.instance_noise}",
          f"--dtype={config.train.dtype}", f"--threads={threads}"]


def perceptual_weights(config):
  """A super-resolution config's perceptual term on, as the peer's is: where no converted VGG19
  is at hand, random weights of its shapes (the cost is the same) in a file ours reads."""
  if not config.loss.get("perceptual_weight"):
    return []
  from gan_jax.metrics import vgg  # pylint: disable=g-import-not-at-top
  path = config.loss.perceptual_weights or vgg.default_weights_path()
  if not os.path.exists(path):
    path = os.path.join(tempfile.gettempdir(), "gan_jax_vgg19_random.npz")
    vgg.save_weights(vgg.random_weights(), path)
  return [f"--config.loss.perceptual_weights={path}"]


# Peers written to our networks' exact parameter counts: a run whose counts differ compared
# other networks, and stops.
SAME_PARAMETERS = ("torch_dfgan.py", "torch_r3gan.py", "torch_video.py")


def check_parameters(ours, peer, script):
  if os.path.basename(script) not in SAME_PARAMETERS:
    return
  counts = lambda r: (r["g_params"], r["d_params"])
  if counts(ours) != counts(peer):
    raise SystemExit(f"{os.path.basename(script)} built G and D of {counts(peer)} parameters, "
                     f"ours have {counts(ours)}: they are not the same networks.")


def run_json(cmd):
  print("$", " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
  out = subprocess.run([sys.executable] + cmd, check=True, capture_output=True, text=True).stdout
  return json.loads(out[out.index("{"):])


def main(argv):
  config = FLAGS.config
  batch_size = FLAGS.batch_size or config.train.batch_size
  run_flags = [f"--{k}={v}" for k, v in (("steps", FLAGS.steps), ("warmup", FLAGS.warmup)) if v]
  # ours: the same config file and overrides this command was given
  del argv
  ours = [os.path.join(HERE, "throughput.py"), f"--batch_size={batch_size}"] + run_flags + [
      a for a in sys.argv[1:] if a.startswith("--config")] + perceptual_weights(config)
  peer = peer_command(config, batch_size) + run_flags + shlex.split(FLAGS.peer_args)
  pairs = []
  for _ in range(FLAGS.rounds):
    a, b = run_json(ours), run_json(peer)
    check_parameters(a, b, peer[0])
    pairs.append({"ours": a["imgs_per_sec"], "peer": b["imgs_per_sec"],
                  "ratio": a["imgs_per_sec"] / b["imgs_per_sec"]})
    print(json.dumps(pairs[-1]), file=sys.stderr, flush=True)
  result = {
      "config": config.name, "peer": os.path.basename(peer[0]), "batch_size": batch_size,
      "rounds": FLAGS.rounds, "median_ratio": statistics.median(p["ratio"] for p in pairs),
      "pairs": pairs, "ours": a, "peer_result": b,
  }
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
