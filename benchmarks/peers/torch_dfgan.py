"""The DF-GAN iteration in PyTorch, timed the way benchmarks/throughput.py times ours.

  python benchmarks/peers/torch_dfgan.py [--batch_size=32] [--resolution=32] [--channels=3]
      [--width=32] [--z_dim=100] [--text_dim=384] [--magp_weight=2] [--magp_power=6]
      [--steps=10] [--warmup=2] [--threads=N] [--device=cpu|cuda] [--dtype=float32|bfloat16]
      [--compile] [--json=PATH]

The networks as Tao et al. 2022 describe them (and our `gan_jax/models/dfgan.py` builds them,
with the same parameters): G a linear layer from z to 4x4, per doubling a block (nearest 2x, then
DFBlock, conv3x3, DFBlock, conv3x3, plus a 1x1-conv shortcut where the channels change), each
DFBlock two (per-channel affine from MLPs of [z, e], LeakyReLU) pairs, then LeakyReLU, conv3x3,
tanh; D a conv3x3, per halving a block (conv4x4 / 2, LeakyReLU, conv3x3, LeakyReLU, scaled by a
learned gamma, plus a 1x1-conv and average-pooled shortcut), and at 4x4 the sentence repeated
and concatenated, conv3x3, LeakyReLU, conv4x4 to one logit. Written plainly: the DFBlock runs
after the upsampling, the 1x1 shortcuts at the higher resolution, as the paper draws them.

One iteration is our text game's step: D's hinge loss on real pairs, fakes (1/2) and real images
with the next example's caption (1/2), MA-GP on the real pairs (k E ||grad_(x, e)||^p), Adam
(0, 0.9) 4e-4; then G's -D(G(z, e), e) through the updated D, Adam 1e-4; the EMA of G (0.999).
Prints the same JSON keys as throughput.py, with the parameter counts.
"""
import argparse
import copy
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import timing  # noqa: E402


def channels(resolution, width):
  """Channels of the feature maps of side 4, 8, ..., resolution."""
  n = int(math.log2(resolution)) - 1
  return [width * min(2 ** i, 8) for i in reversed(range(n))]


def lrelu(x):
  return F.leaky_relu(x, 0.2)


class Affine(nn.Module):
  def __init__(self, cond_dim, ch):
    super().__init__()
    mlp = lambda: nn.Sequential(nn.Linear(cond_dim, ch), nn.ReLU(), nn.Linear(ch, ch))
    self.gamma, self.beta = mlp(), mlp()
    for m, bias in ((self.gamma, 1.0), (self.beta, 0.0)):  # gamma 1, beta 0 at the start
      nn.init.zeros_(m[2].weight)
      nn.init.constant_(m[2].bias, bias)

  def forward(self, x, cond):
    return x * self.gamma(cond)[:, :, None, None] + self.beta(cond)[:, :, None, None]


class DFBlock(nn.Module):
  def __init__(self, cond_dim, ch):
    super().__init__()
    self.affines = nn.ModuleList([Affine(cond_dim, ch), Affine(cond_dim, ch)])

  def forward(self, x, cond):
    for affine in self.affines:
      x = lrelu(affine(x, cond))
    return x


class GBlock(nn.Module):
  def __init__(self, cond_dim, cin, cout):
    super().__init__()
    self.fuse1, self.fuse2 = DFBlock(cond_dim, cin), DFBlock(cond_dim, cout)
    self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, padding=1), nn.Conv2d(cout, cout, 3, padding=1)
    self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

  def forward(self, x, cond):
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    h = self.conv2(self.fuse2(self.conv1(self.fuse1(x, cond)), cond))
    return self.shortcut(x) + h


class Generator(nn.Module):
  def __init__(self, resolution, channels_out, width, z_dim, text_dim):
    super().__init__()
    chans = channels(resolution, width)
    self.c0 = chans[0]
    self.linear = nn.Linear(z_dim, 16 * chans[0])
    self.blocks = nn.ModuleList([GBlock(z_dim + text_dim, a, b) for a, b in zip(chans, chans[1:])])
    self.to_image = nn.Conv2d(chans[-1], channels_out, 3, padding=1)

  def forward(self, z, text):
    cond = torch.cat([z, text], 1)
    h = self.linear(z).view(-1, self.c0, 4, 4)
    for block in self.blocks:
      h = block(h, cond)
    return torch.tanh(self.to_image(lrelu(h)))


class DBlock(nn.Module):
  def __init__(self, cin, cout):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 4, 2, 1, bias=False)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
    self.gamma = nn.Parameter(torch.zeros(()))

  def forward(self, x):
    h = lrelu(self.conv2(lrelu(self.conv1(x))))
    return F.avg_pool2d(self.shortcut(x), 2) + self.gamma * h


class Discriminator(nn.Module):
  def __init__(self, resolution, channels_in, width, text_dim):
    super().__init__()
    chans = channels(resolution, width)[::-1]
    self.from_image = nn.Conv2d(channels_in, chans[0], 3, padding=1)
    self.blocks = nn.Sequential(*[DBlock(a, b) for a, b in zip(chans, chans[1:])])
    self.joint = nn.Conv2d(chans[-1] + text_dim, 2 * width, 3, padding=1, bias=False)
    self.logit = nn.Conv2d(2 * width, 1, 4, bias=False)

  def features(self, x):
    return self.blocks(self.from_image(x))

  def judge(self, h, text):
    e = text[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
    return self.logit(lrelu(self.joint(torch.cat([h, e], 1)))).view(-1)

  def forward(self, x, text):
    return self.judge(self.features(x), text)


def make_iteration(net_g, net_d, z_dim, magp_weight=2.0, magp_power=6.0, ema_decay=0.999,
                   dtype="float32"):
  """iteration(reals, text) -> (d_loss, g_loss): one D update, one G update, the EMA of G;
  dtype bfloat16: the networks under autocast, the losses and MA-GP's norms in float32."""
  autocast = torch.autocast(next(net_g.parameters()).device.type, dtype=torch.bfloat16,
                            enabled=dtype == "bfloat16")
  opt_d = torch.optim.Adam(net_d.parameters(), lr=4e-4, betas=(0.0, 0.9))
  opt_g = torch.optim.Adam(net_g.parameters(), lr=1e-4, betas=(0.0, 0.9))
  g_ema = copy.deepcopy(net_g).requires_grad_(False)

  def iteration(real, text):
    real, text = real.detach().requires_grad_(), text.detach().requires_grad_()
    z = torch.randn(real.shape[0], z_dim, device=real.device)
    with autocast:
      h = net_d.features(real)
      real_logits = net_d.judge(h, text).float()
      mismatched = net_d.judge(h, torch.roll(text, -1, 0)).float()
      fake = net_g(z, text)
      fake_logits = net_d(fake.detach(), text).float()
    grads = torch.autograd.grad(real_logits.sum(), (real, text), create_graph=True)
    squared = sum(g.float().flatten(1).square().sum(1) for g in grads)
    magp = magp_weight * squared.pow(magp_power / 2).mean()
    d_loss = (F.relu(1 - real_logits).mean()
              + (F.relu(1 + fake_logits).mean() + F.relu(1 + mismatched).mean()) / 2 + magp)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    with autocast:
      g_loss = -net_d(fake, text).float().mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    with torch.no_grad():
      torch._foreach_lerp_(list(g_ema.parameters()), list(net_g.parameters()), 1 - ema_decay)
    return d_loss, g_loss
  return iteration


def measure(batch_size, steps, warmup, resolution=32, channels_io=3, width=32, z_dim=100,
            text_dim=384, magp_weight=2.0, magp_power=6.0, device="cpu", compile=False,
            threads=None, dtype="float32"):
  if threads:
    torch.set_num_threads(threads)
  device = torch.device(device)
  torch.manual_seed(0)
  net_g = Generator(resolution, channels_io, width, z_dim, text_dim).to(device)
  net_d = Discriminator(resolution, channels_io, width, text_dim).to(device)
  counts = dict(g_params=timing.count(net_g), d_params=timing.count(net_d))
  if compile:
    net_g, net_d = torch.compile(net_g), torch.compile(net_d)
  iteration = make_iteration(net_g, net_d, z_dim, magp_weight, magp_power, dtype=dtype)
  real = torch.rand(batch_size, channels_io, resolution, resolution, device=device) * 2 - 1
  text = F.normalize(torch.randn(batch_size, text_dim, device=device), dim=1)
  wait = timing.torch_wait(device)
  first_s, times = timing.time_calls(lambda: iteration(real, text), steps, warmup, wait)
  return timing.torch_record("torch_dfgan", device, compile, batch_size, dtype, first_s,
                             times, **counts)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--resolution", type=int, default=32)
  p.add_argument("--channels", type=int, default=3)
  p.add_argument("--width", type=int, default=32, help="ngf = ndf")
  p.add_argument("--z_dim", type=int, default=100)
  p.add_argument("--text_dim", type=int, default=384)
  p.add_argument("--magp_weight", type=float, default=2.0)
  p.add_argument("--magp_power", type=float, default=6.0)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
  p.add_argument("--device", default="cpu")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--compile", action="store_true", help="torch.compile G and D")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  timing.emit(measure(a.batch_size, a.steps, a.warmup, a.resolution, a.channels, a.width,
                      a.z_dim, a.text_dim, a.magp_weight, a.magp_power, a.device, a.compile,
                      a.threads, a.dtype), a.json)


if __name__ == "__main__":
  main()
