"""The MoCoGAN training step (Tulyakov et al. 2018, "MoCoGAN: Decomposing Motion and Content
for Video Generation") in PyTorch, timed the way benchmarks/throughput.py times ours.

  python benchmarks/peers/torch_video.py [--batch_size=16] [--steps=10] [--warmup=2]
      [--threads=N] [--device=cpu|cuda] [--dtype=float32|bfloat16] [--resolution=64]
      [--frames=16] [--channels=1] [--content_dim=50] [--motion_dim=10] [--g_width=16]
      [--d_width=16] [--v_width=16] [--time_kernel=4] [--image_frames=2] [--g_lr=2e-4]
      [--d_lr=2e-4] [--image_weight=1] [--video_weight=1] [--ema_decay=0.999] [--compile]
      [--json=PATH]

The nets are plain torch.nn, written from the paper and the structure of gan_jax/models/video.py,
with our parameter counts exactly (tests/test_torch_video_peer.py checks them, and that these nets
compute what ours do on the same weights):
  G: a GRU of width motion_dim, zero initial state, fed motion_dim of fresh noise per frame, in
    flax's GRUCell form (biases on the input side and on the candidate's hidden side only, so
    640 parameters at width 10 where torch.nn.GRU has 660; the same function); each frame's
    [content (fixed over the clip), motion_t] goes through the DCGAN generator shared by all
    B x T frames: a bias-free linear map to 4x4 x ch, BatchNorm + ReLU, ConvTranspose2d(4, 2, 1)
    blocks halving the width (BatchNorm + ReLU after each but the last), tanh.
  image D: the DCGAN discriminator on `image_frames` frames drawn at random from each clip:
    Conv2d(4, 2, 1) down to 4x4, BatchNorm from the second layer, LeakyReLU 0.2, a bias-free
    linear map to the logit.
  video D: Conv3d with kernel (k_t, 4, 4), stride (1, 2, 2), padding (0, 1, 1), k_t =
    min(time_kernel, the frames left), BatchNorm3d from the second layer, LeakyReLU 0.2, then a
    bias-free linear map of all that remains to the logit.
  No conv has a bias; N(0, 0.02) init (BatchNorm scales N(1, 0.02)); BatchNorm momentum 0.1
  (flax's 0.9), eps 1e-5.

One step, as the video game's (gan_jax/games/video.py): draw the content and motion noise and
the image D's frame indices; G forward once; D phase: both critics on the real and the detached
fake clips (through instance noise), BCE-with-logits (non-saturating) losses weighted and summed,
one Adam step; G phase: both critics (updated, their weights frozen) on the fakes, the
non-saturating loss backpropagated through G, one Adam step; then the EMA of G's parameters
(decay min(ema_decay, (1 + t) / (10 + t)) at step t, as ours). Adam (0.5, 0.999), eps 1e-8. The
real clips are random uint8 made once, brought to [-1, 1] in every step as ours are. Our step's
logged metrics (grad norms, D's accuracy: a few reductions) are left out. --dtype=bfloat16 runs
the nets under autocast (losses in float32). Prints the same JSON keys as throughput.py; images per
second there are clips per second.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import timing  # noqa: E402


class GRU(nn.Module):
  """flax.linen.GRUCell run over time (nn.RNN, zero initial carry), in its exact form:
    r = sigmoid(W_ir x + b_ir + W_hr h),  z = sigmoid(W_iz x + b_iz + W_hz h),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) n + z h.
  The input maps of all frames run as one matrix product before the loop."""

  def __init__(self, features, hidden):
    super().__init__()
    self.hidden = hidden
    self.input = nn.Linear(features, 3 * hidden)              # [ir; iz; in], biases
    self.hidden_rz = nn.Linear(hidden, 2 * hidden, bias=False)  # [hr; hz]
    self.hidden_n = nn.Linear(hidden, hidden)                  # hn, bias

  def forward(self, noise):
    """noise [B, T, features] -> the states after each frame [B, T, hidden]."""
    b, t, _ = noise.shape
    xs = self.input(noise)
    h = noise.new_zeros(b, self.hidden, dtype=xs.dtype)
    states = []
    for i in range(t):
      x_r, x_z, x_n = xs[:, i].chunk(3, dim=-1)
      h_r, h_z = self.hidden_rz(h).chunk(2, dim=-1)
      r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
      n = torch.tanh(x_n + r * self.hidden_n(h))
      h = (1 - z) * n + z * h
      states.append(h)
    return torch.stack(states, dim=1)


def batch_norm(ch, dims=2):
  return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(ch, eps=1e-5, momentum=0.1)


class FrameGenerator(nn.Module):
  """dcgan.Generator: codes [N, code_dim] -> images [N, channels, R, R] in [-1, 1]."""

  def __init__(self, resolution, channels, width, code_dim):
    super().__init__()
    n_up = int(math.log2(resolution)) - 2
    ch = self.ch = width * 2 ** (n_up - 1)
    self.dense = nn.Linear(code_dim, 16 * ch, bias=False)
    layers = [batch_norm(ch), nn.ReLU(inplace=True)]
    for _ in range(n_up - 1):
      layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), batch_norm(ch // 2),
                 nn.ReLU(inplace=True)]
      ch //= 2
    layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
    self.net = nn.Sequential(*layers)

  def forward(self, codes):
    return self.net(self.dense(codes).view(codes.shape[0], self.ch, 4, 4))


class Generator(nn.Module):
  """(content [B, content_dim], motion noise [B, T, motion_dim]) -> clips [B, T, C, R, R]."""

  def __init__(self, resolution, channels, content_dim, motion_dim, width):
    super().__init__()
    self.gru = GRU(motion_dim, motion_dim)
    self.frames = FrameGenerator(resolution, channels, width, content_dim + motion_dim)

  def forward(self, content, noise):
    b, t = noise.shape[:2]
    motion = self.gru(noise)
    codes = torch.cat([content[:, None].expand(b, t, content.shape[-1]), motion.to(content.dtype)],
                      dim=-1)
    frames = self.frames(codes.reshape(b * t, -1))
    return frames.view((b, t) + frames.shape[1:])


class ImageDiscriminator(nn.Module):
  """dcgan.Discriminator: images [N, C, R, R] -> logits [N]."""

  def __init__(self, resolution, channels, width):
    super().__init__()
    layers, cin, ch = [], channels, width
    for i in range(int(math.log2(resolution)) - 2):
      layers.append(nn.Conv2d(cin, ch, 4, 2, 1, bias=False))
      if i:
        layers.append(batch_norm(ch))
      layers.append(nn.LeakyReLU(0.2, inplace=True))
      cin, ch = ch, ch * 2
    self.net = nn.Sequential(*layers)
    self.out = nn.Linear(cin * 16, 1, bias=False)

  def forward(self, x):
    return self.out(self.net(x).flatten(1))[:, 0]


class VideoDiscriminator(nn.Module):
  """video.VideoDiscriminator: clips [B, T, C, R, R] -> logits [B]."""

  def __init__(self, resolution, frames, channels, width, time_kernel):
    super().__init__()
    layers, cin, ch, t = [], channels, width, frames
    for i in range(int(math.log2(resolution)) - 2):
      k = min(time_kernel, t)
      layers.append(nn.Conv3d(cin, ch, (k, 4, 4), (1, 2, 2), (0, 1, 1), bias=False))
      if i:
        layers.append(batch_norm(ch, dims=3))
      layers.append(nn.LeakyReLU(0.2, inplace=True))
      cin, ch, t = ch, ch * 2, t - k + 1
    self.net = nn.Sequential(*layers)
    self.out = nn.Linear(cin * t * 16, 1, bias=False)

  def forward(self, clips):
    return self.out(self.net(clips.transpose(1, 2)).flatten(1))[:, 0]


def init_weights(m):
  if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)) or (
      isinstance(m, nn.Linear) and m.bias is None):
    nn.init.normal_(m.weight, 0.0, 0.02)
  elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
    nn.init.normal_(m.weight, 1.0, 0.02)
    nn.init.zeros_(m.bias)


def build(resolution=64, frames=16, channels=1, content_dim=50, motion_dim=10, g_width=16,
          d_width=16, v_width=16, time_kernel=4):
  """(G, image D, video D), initialised."""
  G = Generator(resolution, channels, content_dim, motion_dim, g_width)
  image_d = ImageDiscriminator(resolution, channels, d_width)
  video_d = VideoDiscriminator(resolution, frames, channels, v_width, time_kernel)
  for net in (G.frames, image_d, video_d):  # the GRU keeps torch's Linear init
    net.apply(init_weights)
  return G, image_d, video_d


count = timing.count  # parameters of a torch module (tests count the peer with it)


# --- flax weights, for parity checks ----------------------------------------------------------

def _t(a):
  return torch.tensor(a.__array__() if hasattr(a, "__array__") else a)


def _ordered(net, kind):
  return [m for m in net.modules() if isinstance(m, kind)]


def _load_bn(modules, p, stats=None):
  sets = []
  for i, bn in enumerate(modules):
    q = p[f"BatchNorm_{i}"]
    sets += [(bn.weight, _t(q["scale"])), (bn.bias, _t(q["bias"]))]
    if stats is not None:
      s = stats[f"BatchNorm_{i}"]
      sets += [(bn.running_mean, _t(s["mean"])), (bn.running_var, _t(s["var"]))]
  return sets


def _copy(net, sets, buffers=0):
  with torch.no_grad():
    for dst, src in sets:
      if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"shape {tuple(src.shape)} does not fit {tuple(dst.shape)}")
      dst.copy_(src.to(dst.dtype))
  if len(sets) - buffers != len(list(net.parameters())):
    raise ValueError("some of the net's parameters have no counterpart in the flax weights")


def load_flax(net, variables):
  """Copy gan_jax's MoCoGAN variables ({"params": ..., "batch_stats": ...} of
  `models.video.Generator`, `dcgan.Discriminator` or `video.VideoDiscriminator`, as nested
  dicts of arrays) into this peer's `net`. Kernels are HWIO (transposed convs [4, 4, in, out]
  in torch's meaning) there, [out, in, ...] here; dense maps [in, out]; flattening is HWC there,
  CHW (CTHW) here."""
  p, stats = variables["params"], variables.get("batch_stats")
  if isinstance(net, Generator):
    cell, f = p["GRUCell_0"], p["frames"]
    g = net.gru
    sets = [(g.input.weight, torch.cat([_t(cell[k]["kernel"]).T for k in ("ir", "iz", "in")])),
            (g.input.bias, torch.cat([_t(cell[k]["bias"]) for k in ("ir", "iz", "in")])),
            (g.hidden_rz.weight, torch.cat([_t(cell[k]["kernel"]).T for k in ("hr", "hz")])),
            (g.hidden_n.weight, _t(cell["hn"]["kernel"]).T),
            (g.hidden_n.bias, _t(cell["hn"]["bias"]))]
    ch = net.frames.ch
    dense = _t(f["Dense_0"]["kernel"])  # [in, (h, w, c)]
    sets.append((net.frames.dense.weight,
                 dense.view(-1, 4, 4, ch).permute(3, 1, 2, 0).reshape(16 * ch, -1)))
    for i, conv in enumerate(_ordered(net.frames, nn.ConvTranspose2d)):
      sets.append((conv.weight, _t(f[f"ConvTranspose4x4s2_{i}"]["kernel"]).permute(2, 3, 0, 1)))
    sets += _load_bn(_ordered(net.frames, nn.BatchNorm2d), f, stats and stats["frames"])
  else:
    video = isinstance(net, VideoDiscriminator)
    sets = []
    for i, conv in enumerate(_ordered(net, nn.Conv3d if video else nn.Conv2d)):
      k = _t(p[f"Conv4x4s2_{i}"]["kernel"])  # [4, 4, (kt,) cin, cout]
      if video:
        kt = conv.weight.shape[2]
        k = k.view(4, 4, kt, -1, k.shape[-1]).permute(4, 3, 2, 0, 1)
      else:
        k = k.permute(3, 2, 0, 1)
      sets.append((conv.weight, k))
    bns = _ordered(net, nn.BatchNorm3d if video else nn.BatchNorm2d)
    sets += _load_bn(bns, p, stats)
    out = _t(p["Dense_0"]["kernel"])[:, 0]  # features in ((t,) h, w, c) order
    c = _ordered(net, nn.Conv3d if video else nn.Conv2d)[-1].out_channels
    sets.append((net.out.weight, out.view(-1, c).T.reshape(1, -1)))  # to (c, (t,) h, w)
  _copy(net, sets, buffers=0 if stats is None else 2 * len(
      [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d))]))


# --- the step ---------------------------------------------------------------------------------

def make_iteration(G, image_d, video_d, batch_size, frames, content_dim, motion_dim, image_frames,
                   device, dtype="float32", g_lr=2e-4, d_lr=2e-4, image_weight=1.0,
                   video_weight=1.0, ema_decay=0.999, compile=False, instance_noise=0.1):
  """iteration(real_uint8 [B, T, C, R, R]) -> (d_loss, g_loss): one MoCoGAN update of both
  critics, then of G, then G's EMA."""
  d_params = list(image_d.parameters()) + list(video_d.parameters())
  g_list = list(G.parameters())
  opt_d = torch.optim.Adam(d_params, lr=d_lr, betas=(0.5, 0.999), eps=1e-8)
  opt_g = torch.optim.Adam(g_list, lr=g_lr, betas=(0.5, 0.999), eps=1e-8)
  ema = [p.detach().clone() for p in g_list] if ema_decay > 0 else None
  autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
  net_g, net_image, net_video = ((torch.compile(G), torch.compile(image_d),
                                  torch.compile(video_d)) if compile else (G, image_d, video_d))
  rows = torch.arange(batch_size, device=device)[:, None]
  step = [0]

  def pick(clips, index):
    """clips [B, T, ...], indices [B, K] -> the picked frames [B K, ...]."""
    return clips[rows, index].flatten(0, 1)

  def critics(clips, index):
    if instance_noise:  # what the critics see, as ours: clips plus Gaussian noise
      clips = clips + instance_noise * torch.randn_like(clips)
    with autocast:
      return net_image(pick(clips, index)).float(), net_video(clips).float()

  def iteration(real_uint8):
    real = real_uint8.float() / 127.5 - 1.0
    content = torch.randn(batch_size, content_dim, device=device)
    noise = torch.randn(batch_size, frames, motion_dim, device=device)
    real_index = torch.randint(0, frames, (batch_size, image_frames), device=device)
    fake_index = torch.randint(0, frames, (batch_size, image_frames), device=device)
    with autocast:
      fake = net_g(content, noise).float()

    for p in d_params:
      p.requires_grad_(True)
    real_image, real_video = critics(real, real_index)
    fake_image, fake_video = critics(fake.detach(), fake_index)
    bce = lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean()
    d_loss = (image_weight * bce(real_image, fake_image) +
              video_weight * bce(real_video, fake_video))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    for p in d_params:  # the G phase differentiates the critics' input only
      p.requires_grad_(False)
    image, video = critics(fake, fake_index)
    g_loss = image_weight * F.softplus(-image).mean() + video_weight * F.softplus(-video).mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()

    if ema is not None:
      t = step[0]
      decay = min(ema_decay, (1.0 + t) / (10.0 + t))
      with torch.no_grad():
        torch._foreach_lerp_(ema, g_list, 1.0 - decay)  # decay ema + (1 - decay) p
    step[0] += 1
    return d_loss.detach(), g_loss.detach()
  iteration.ema = ema
  return iteration


def measure(batch_size=16, steps=10, warmup=2, device="cpu", dtype="float32", threads=None,
            resolution=64, frames=16, channels=1, content_dim=50, motion_dim=10, g_width=16,
            d_width=16, v_width=16, time_kernel=4, image_frames=2, g_lr=2e-4, d_lr=2e-4,
            image_weight=1.0, video_weight=1.0, ema_decay=0.999, compile=False,
            instance_noise=0.1):
  if threads:
    torch.set_num_threads(threads)
  device = torch.device(device)
  torch.manual_seed(0)
  G, image_d, video_d = build(resolution, frames, channels, content_dim, motion_dim, g_width,
                              d_width, v_width, time_kernel)
  G, image_d, video_d = (net.to(device).train() for net in (G, image_d, video_d))
  iteration = make_iteration(G, image_d, video_d, batch_size, frames, content_dim, motion_dim,
                             image_frames, device, dtype, g_lr, d_lr, image_weight, video_weight,
                             ema_decay, compile, instance_noise)
  real = torch.randint(0, 256, (batch_size, frames, channels, resolution, resolution),
                       dtype=torch.uint8, device=device)
  first_s, times = timing.time_calls(lambda: iteration(real), steps, warmup,
                                     timing.torch_wait(device))
  return timing.torch_record(
      "torch_video", device, compile, batch_size, dtype, first_s, times, n_critic=1,
      g_params=count(G), d_params=count(image_d) + count(video_d),
      image_d_params=count(image_d), video_d_params=count(video_d), resolution=resolution,
      frames=frames, channels=channels, content_dim=content_dim, motion_dim=motion_dim,
      g_width=g_width, d_width=d_width, v_width=v_width, time_kernel=time_kernel,
      image_frames=image_frames)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=16, help="clips")
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--threads", type=int, default=None,
                 help="torch intra-op threads (default: torch's)")
  p.add_argument("--device", default="cpu")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--frames", type=int, default=16, help="frames per clip")
  p.add_argument("--channels", type=int, default=1)
  p.add_argument("--content_dim", type=int, default=50)
  p.add_argument("--motion_dim", type=int, default=10, help="the GRU's width and noise per frame")
  p.add_argument("--g_width", type=int, default=16)
  p.add_argument("--d_width", type=int, default=16, help="the image D's first layer")
  p.add_argument("--v_width", type=int, default=16, help="the video D's first layer")
  p.add_argument("--time_kernel", type=int, default=4)
  p.add_argument("--image_frames", type=int, default=2, help="frames of each clip the image D sees")
  p.add_argument("--g_lr", type=float, default=2e-4)
  p.add_argument("--d_lr", type=float, default=2e-4)
  p.add_argument("--image_weight", type=float, default=1.0)
  p.add_argument("--video_weight", type=float, default=1.0)
  p.add_argument("--ema_decay", type=float, default=0.999, help="0: no EMA")
  p.add_argument("--instance_noise", type=float, default=0.1,
                 help="sigma of the Gaussian noise on the clips the critics see")
  p.add_argument("--compile", action="store_true", help="torch.compile G and both critics")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  timing.emit(measure(a.batch_size, a.steps, a.warmup, a.device, a.dtype, a.threads,
                      a.resolution, a.frames, a.channels, a.content_dim, a.motion_dim, a.g_width,
                      a.d_width, a.v_width, a.time_kernel, a.image_frames, a.g_lr, a.d_lr,
                      a.image_weight, a.video_weight, a.ema_decay, a.compile,
                      a.instance_noise), a.json)


if __name__ == "__main__":
  main()
