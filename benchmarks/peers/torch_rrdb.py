"""ESRGAN's x4 training step in PyTorch (RRDBNet G, VGG-style D), timed the way
benchmarks/throughput.py times ours.

  python benchmarks/peers/torch_rrdb.py [--batch_size=4] [--resolution=128] [--features=64]
      [--blocks=23] [--steps=10] [--warmup=2] [--threads=N] [--device=cpu|cuda] [--compile]
      [--json=PATH]

Written from Wang et al. 2018 (ESRGAN) with BasicSR's layer layout, to the same parameter
counts as gan_jax/models/sr.py (G 16,697,987 at full size, D 14,499,401 at 128):
- G: conv_first; `blocks` RRDBs (three dense blocks of five 3x3 convs, growth 32, LReLU 0.2,
  residual scaling 0.2 in each dense block and around the RRDB); conv_body plus the trunk skip;
  per 2x stage nearest 2x, conv, LReLU 0.2; conv_hr, LReLU, conv_last. Dense-block convs start
  at Kaiming normal x 0.1 (ESRGAN's init), the rest at PyTorch's default.
- D: BasicSR's VGG-style D (3x3 and 4x4 stride-2 convs with BN, widths w .. 8w, Dense 100, 1).
- Perceptual net: VGG19's 16 convs up to conv5_4 (before its ReLU), max pooling between
  stages, random weights (no download; the cost is the same), inputs mapped to [0, 1] and
  ImageNet-normalised, frozen.

One iteration is BasicSR's ESRGANModel step on a batch of HR patches and the LR patches 4x
smaller (2x2 average pooling twice; the data pipeline's bicubic costs nothing here): G first,
D frozen: L1(G(lr), hr) x 1e-2 + L1 on VGG features x 1 + relativistic average GAN loss x 5e-3
(Jolicoeur-Martineau 2019: each side's logit minus the other side's mean, BCE toward swapped
labels, mean of the two terms); then D on the detached fakes, relativistic average BCE toward
real 1 / fake 0. Adam 1e-4 (0.9, 0.99) both sides. Prints the same JSON keys as throughput.py.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import timing  # noqa: E402

SCALE = 4


def conv3(cin, cout, bias=True):
  return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


class DenseBlock(nn.Module):
  """Five 3x3 convs, conv k on the block input and the k - 1 earlier outputs; x + 0.2 * out."""

  def __init__(self, nf, gc):
    super().__init__()
    widths = [nf + i * gc for i in range(5)]  # each conv's input: x and the earlier outputs
    self.convs = nn.ModuleList([conv3(c, gc) for c in widths[:4]] + [conv3(widths[4], nf)])
    for conv in self.convs:  # ESRGAN: Kaiming normal scaled by 0.1, zero bias
      nn.init.kaiming_normal_(conv.weight)
      conv.weight.data.mul_(0.1)
      nn.init.zeros_(conv.bias)

  def forward(self, x):
    feats = [x]
    for conv in self.convs[:-1]:
      feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
    return x + 0.2 * self.convs[-1](torch.cat(feats, 1))


class RRDB(nn.Module):

  def __init__(self, nf, gc):
    super().__init__()
    self.rdbs = nn.Sequential(*[DenseBlock(nf, gc) for _ in range(3)])

  def forward(self, x):
    return x + 0.2 * self.rdbs(x)


class RRDBNet(nn.Module):

  def __init__(self, in_ch=3, out_ch=3, nf=64, nb=23, gc=32, scale=SCALE):
    super().__init__()
    self.conv_first = conv3(in_ch, nf)
    self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
    self.conv_body = conv3(nf, nf)
    self.ups = nn.ModuleList([conv3(nf, nf) for _ in range({2: 1, 4: 2}[scale])])
    self.conv_hr, self.conv_last = conv3(nf, nf), conv3(nf, out_ch)

  def forward(self, x):
    feat = self.conv_first(x)
    feat = feat + self.conv_body(self.body(feat))
    for conv in self.ups:
      feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
    return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def vgg_widths(nf, resolution):
  """w, 2w, 4w, 8w, 8w, then 8w while the side left is above 4 and even (BasicSR's 128 / 256)."""
  widths, side = [nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf], resolution // 32
  while side > 4 and side % 2 == 0:
    widths.append(8 * nf)
    side //= 2
  return widths, side


class VGGStyleDiscriminator(nn.Module):

  def __init__(self, in_ch=3, nf=64, resolution=128):
    super().__init__()
    widths, side = vgg_widths(nf, resolution)
    layers, cin = [], in_ch
    for i, f in enumerate(widths):
      layers.append(conv3(cin, f, bias=i == 0))
      if i:
        layers.append(nn.BatchNorm2d(f))
      layers += [nn.LeakyReLU(0.2), nn.Conv2d(f, f, 4, 2, 1, bias=False), nn.BatchNorm2d(f),
                 nn.LeakyReLU(0.2)]
      cin = f
    self.features = nn.Sequential(*layers)
    self.linear1, self.linear2 = nn.Linear(cin * side * side, 100), nn.Linear(100, 1)

  def forward(self, x):
    h = torch.flatten(self.features(x), 1)
    return self.linear2(F.leaky_relu(self.linear1(h), 0.2)).view(-1)


# VGG19's convs per stage (Simonyan & Zisserman 2015, configuration E); max pooling between.
VGG19_STAGES = (64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4


class VGG19Features(nn.Module):
  """VGG19 up to conv5_4's output before its ReLU (ESRGAN's perceptual features)."""

  def __init__(self):
    super().__init__()
    layers, cin = [], 3
    for s, stage in enumerate(VGG19_STAGES):
      if s:
        layers.append(nn.MaxPool2d(2))
      for f in stage:
        layers += [conv3(cin, f), nn.ReLU()]
        cin = f
    self.layers = nn.Sequential(*layers[:-1])  # conv5_4 before activation
    self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
    self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

  def forward(self, x):  # x in [-1, 1]
    return self.layers(((x + 1) / 2 - self.mean) / self.std)


def relativistic(pred, other, target):
  """BCE of pred minus the other side's mean logit toward `target` (0 or 1)."""
  logits = pred - other.mean()
  return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def make_iteration(net_g, net_d, vgg):
  """iteration(lr, hr) -> (d_loss, g_loss): one G update, then one D update."""
  opt_g = torch.optim.Adam(net_g.parameters(), lr=1e-4, betas=(0.9, 0.99))
  opt_d = torch.optim.Adam(net_d.parameters(), lr=1e-4, betas=(0.9, 0.99))

  def iteration(lr, hr):
    for p in net_d.parameters():  # BasicSR freezes D for G's step: no weight gradients
      p.requires_grad_(False)
    net_g.zero_grad(set_to_none=True)
    fake = net_g(lr)
    with torch.no_grad():
      real_feat = vgg(hr)
    real_pred = net_d(hr).detach()
    fake_pred = net_d(fake)
    g_gan = (relativistic(real_pred, fake_pred, 0) + relativistic(fake_pred, real_pred, 1)) / 2
    g_loss = 1e-2 * F.l1_loss(fake, hr) + F.l1_loss(vgg(fake), real_feat) + 5e-3 * g_gan
    g_loss.backward()
    opt_g.step()

    for p in net_d.parameters():
      p.requires_grad_(True)
    net_d.zero_grad(set_to_none=True)
    real_pred, fake_pred = net_d(hr), net_d(fake.detach())
    d_loss = (relativistic(real_pred, fake_pred, 1) + relativistic(fake_pred, real_pred, 0)) / 2
    d_loss.backward()
    opt_d.step()
    return d_loss, g_loss
  return iteration


def measure(batch_size, steps, warmup, resolution=128, features=64, blocks=23, device="cpu",
            compile=False, threads=None):
  if threads:
    torch.set_num_threads(threads)
  if resolution % 32:
    raise ValueError(f"--resolution={resolution}: the VGG-style D needs a multiple of 32")
  device = torch.device(device)
  torch.manual_seed(0)
  net_g = RRDBNet(nf=features, nb=blocks).to(device)
  net_d = VGGStyleDiscriminator(nf=features, resolution=resolution).to(device)
  vgg = VGG19Features().to(device).eval()
  for p in vgg.parameters():
    p.requires_grad_(False)
  counts = dict(g_params=timing.count(net_g), d_params=timing.count(net_d),
                vgg_params=timing.count(vgg))
  if compile:
    net_g, net_d, vgg = torch.compile(net_g), torch.compile(net_d), torch.compile(vgg)
  iteration = make_iteration(net_g, net_d, vgg)
  hr = torch.rand(batch_size, 3, resolution, resolution, device=device) * 2 - 1
  lr = F.avg_pool2d(hr, SCALE)
  wait = timing.torch_wait(device)
  first_s, times = timing.time_calls(lambda: iteration(lr, hr), steps, warmup, wait)
  return timing.torch_record("torch_rrdb", device, compile, batch_size, "float32", first_s, times,
                             scale=SCALE, resolution=resolution, features=features,
                             blocks=blocks, **counts)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=4)
  p.add_argument("--resolution", type=int, default=128, help="HR patch side (LR: a quarter)")
  p.add_argument("--features", type=int, default=64, help="G's and D's base width")
  p.add_argument("--blocks", type=int, default=23, help="RRDBs")
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
  p.add_argument("--device", default="cpu")
  p.add_argument("--compile", action="store_true", help="torch.compile G, D and the VGG")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  timing.emit(measure(a.batch_size, a.steps, a.warmup, a.resolution, a.features, a.blocks,
                      a.device, a.compile, a.threads), a.json)


if __name__ == "__main__":
  main()
