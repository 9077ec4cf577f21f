"""The SNGAN CIFAR iteration in PyTorch, timed the way benchmarks/throughput.py times ours.

  python benchmarks/peers/torch_sngan.py [--batch_size=64] [--num_classes=0] [--n_critic=5]
      [--g_width=256] [--d_width=128] [--channels=3] [--steps=10] [--warmup=2] [--threads=N]
      [--device=cpu|cuda] [--compile] [--json=PATH]

The networks of Miyato et al. 2018 (Table 4, "ResNet" for CIFAR-10) at 32x32: G a linear layer
to 4x4 x g_width, three up-blocks (BN, ReLU, nearest 2x, conv3x3, BN, ReLU, conv3x3; shortcut
nearest 2x then conv1x1), BN, ReLU, conv3x3 to RGB, tanh; D an optimized first block, a down
block and two plain blocks of d_width channels, ReLU, global sum pooling, a linear layer, every
layer wrapped by `torch.nn.utils.spectral_norm`. With --num_classes the conditional form of
Miyato & Koyama 2018 (as StudioGAN's SNGAN): class-conditional batch norm in G (an embedding
per norm for gains around 1 and one for biases), a projection term in D.

One iteration plays the hinge loss with n_critic D updates as our noise game does: the first
n_critic - 1 on fakes drawn without gradients, the last on the detached fakes of G's own forward,
which the G update then scores with the updated D. Adam 2e-4 (0.5, 0.999), as StudioGAN's
CIFAR-10 defaults. Prints the same JSON keys as throughput.py.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import timing  # noqa: E402


class Norm(nn.Module):
  """Batch norm; class-conditional (gain 1 + embedding, bias embedding) when num_classes > 0."""

  def __init__(self, ch, num_classes):
    super().__init__()
    self.conditional = num_classes > 0
    self.bn = nn.BatchNorm2d(ch, affine=not self.conditional)
    if self.conditional:
      self.gain, self.bias = nn.Embedding(num_classes, ch), nn.Embedding(num_classes, ch)
      nn.init.zeros_(self.gain.weight)
      nn.init.zeros_(self.bias.weight)

  def forward(self, x, y):
    x = self.bn(x)
    if not self.conditional:
      return x
    return x * (1 + self.gain(y))[:, :, None, None] + self.bias(y)[:, :, None, None]


class GBlock(nn.Module):
  def __init__(self, ch, num_classes, sn):
    super().__init__()
    wrap = spectral_norm if sn else (lambda m: m)
    self.norm1, self.norm2 = Norm(ch, num_classes), Norm(ch, num_classes)
    self.conv1 = wrap(nn.Conv2d(ch, ch, 3, padding=1))
    self.conv2 = wrap(nn.Conv2d(ch, ch, 3, padding=1))
    self.shortcut = wrap(nn.Conv2d(ch, ch, 1))

  def forward(self, x, y):
    h = F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2, mode="nearest")
    h = self.conv2(F.relu(self.norm2(self.conv1(h), y)))
    return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
  def __init__(self, nz, width, channels, num_classes, sn=False):
    super().__init__()
    wrap = spectral_norm if sn else (lambda m: m)
    self.width = width
    self.linear = wrap(nn.Linear(nz, 4 * 4 * width))
    self.blocks = nn.ModuleList([GBlock(width, num_classes, sn) for _ in range(3)])
    self.bn = nn.BatchNorm2d(width)
    self.out = wrap(nn.Conv2d(width, channels, 3, padding=1))

  def forward(self, z, y):
    h = self.linear(z).view(-1, self.width, 4, 4)
    for block in self.blocks:
      h = block(h, y)
    return torch.tanh(self.out(F.relu(self.bn(h))))


class DBlock(nn.Module):
  def __init__(self, cin, cout, down, first):
    super().__init__()
    self.down, self.first = down, first
    self.conv1 = spectral_norm(nn.Conv2d(cin, cout, 3, padding=1))
    self.conv2 = spectral_norm(nn.Conv2d(cout, cout, 3, padding=1))
    self.shortcut = spectral_norm(nn.Conv2d(cin, cout, 1)) if down or cin != cout else None

  def forward(self, x):
    h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
    if self.down:
      h = F.avg_pool2d(h, 2)
    s = x
    if self.first:  # the optimized block pools before its 1x1 conv
      s = self.shortcut(F.avg_pool2d(x, 2))
    elif self.shortcut is not None:
      s = self.shortcut(x)
      s = F.avg_pool2d(s, 2) if self.down else s
    return h + s


class Discriminator(nn.Module):
  def __init__(self, width, channels, num_classes):
    super().__init__()
    self.blocks = nn.Sequential(DBlock(channels, width, True, True), DBlock(width, width, True, False),
                                DBlock(width, width, False, False), DBlock(width, width, False, False))
    self.linear = spectral_norm(nn.Linear(width, 1))
    self.embed = spectral_norm(nn.Embedding(num_classes, width)) if num_classes else None

  def forward(self, x, y):
    h = torch.sum(F.relu(self.blocks(x)), dim=(2, 3))
    out = self.linear(h).view(-1)
    if self.embed is not None:
      out = out + torch.sum(self.embed(y) * h, dim=1)
    return out


def make_iteration(net_g, net_d, batch_size, nz, num_classes, n_critic, device):
  """iteration(reals, z) -> (d_loss, g_loss): n_critic hinge updates of D, then one of G."""
  opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  labels = lambda: torch.randint(0, max(num_classes, 1), (batch_size,), device=device)

  def d_update(real, y, fake):
    net_d.zero_grad(set_to_none=True)
    loss = F.relu(1 - net_d(real, y)).mean() + F.relu(1 + net_d(fake, y)).mean()
    loss.backward()
    opt_d.step()
    return loss

  def iteration(reals, z):
    for i in range(n_critic - 1):
      y = labels()
      with torch.no_grad():
        fake = net_g(torch.randn(batch_size, nz, device=device), y)
      d_update(reals[i], y, fake)
    y = labels()
    fake = net_g(z, y)
    d_loss = d_update(reals[-1], y, fake.detach())
    net_g.zero_grad(set_to_none=True)
    g_loss = -net_d(fake, y).mean()
    g_loss.backward()
    opt_g.step()
    return d_loss, g_loss
  return iteration


def measure(batch_size, steps, warmup, num_classes=0, n_critic=5, g_width=256, d_width=128,
            channels=3, device="cpu", compile=False, threads=None):
  if threads:
    torch.set_num_threads(threads)
  device = torch.device(device)
  torch.manual_seed(0)
  nz = 128
  net_g = Generator(nz, g_width, channels, num_classes).to(device)
  net_d = Discriminator(d_width, channels, num_classes).to(device)
  if compile:
    net_g, net_d = torch.compile(net_g), torch.compile(net_d)
  iteration = make_iteration(net_g, net_d, batch_size, nz, num_classes, n_critic, device)
  reals = torch.rand(n_critic, batch_size, channels, 32, 32, device=device) * 2 - 1
  noise = lambda: torch.randn(batch_size, nz, device=device)
  wait = timing.torch_wait(device)
  first_s, times = timing.time_calls(lambda: iteration(reals, noise()), steps, warmup, wait)
  return timing.torch_record("torch_sngan", device, compile, batch_size, "float32", first_s,
                             times, n_critic=n_critic, g_params=timing.count(net_g),
                             d_params=timing.count(net_d))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--num_classes", type=int, default=0, help="0: unconditional")
  p.add_argument("--n_critic", type=int, default=5)
  p.add_argument("--g_width", type=int, default=256)
  p.add_argument("--d_width", type=int, default=128)
  p.add_argument("--channels", type=int, default=3)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
  p.add_argument("--device", default="cpu")
  p.add_argument("--compile", action="store_true", help="torch.compile G and D")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  timing.emit(measure(a.batch_size, a.steps, a.warmup, a.num_classes, a.n_critic, a.g_width,
                      a.d_width, a.channels, a.device, a.compile, a.threads), a.json)


if __name__ == "__main__":
  main()
