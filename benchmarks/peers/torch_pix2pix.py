"""The pix2pix iteration (Isola et al. 2017) in PyTorch, timed the way benchmarks/throughput.py
times ours.

  python benchmarks/peers/torch_pix2pix.py [--batch_size=1] [--resolution=256] [--steps=10]
      [--warmup=2] [--threads=N] [--device=cpu|cuda] [--dtype=float32|bfloat16] [--compile]
      [--gan_mode=vanilla|lsgan] [--json=PATH]

The nets follow the layer lists of junyanz/pytorch-CycleGAN-and-pix2pix's networks.py (U-Net G,
n-layer and pixel PatchGAN D), written out flat here so their weights map one to one onto ours
(tests/test_translation_models.py). One iteration, as the reference's pix2pix model runs it: G
forward; D on (input, real) and (input, fake.detach()), D loss 0.5 * (real + fake), Adam step; G
loss adversarial on D(input, fake) + 100 * L1(fake, target), Adam step; Adam 2e-4 (0.5, 0.999),
N(0, 0.02) init. The data is one synthetic pair already on the device. Prints the same JSON
keys as throughput.py.
"""
import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import timing  # noqa: E402


def norm2d(kind, channels):
  if kind == "batch":
    return nn.BatchNorm2d(channels)
  if kind == "instance":  # the reference's: no affine parameters, no running statistics
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
  raise ValueError(f"unknown norm {kind!r}")


class UNet(nn.Module):
  """The reference's UnetGenerator: block i is down conv i and up conv i; every block but the
  innermost concatenates its input (the skip) with its inner block's output."""

  def __init__(self, in_channels, out_channels, num_downs=8, ngf=64, norm="batch", dropout=0.5):
    super().__init__()
    n = self.num_downs = num_downs
    widths = [ngf * min(2 ** i, 8) for i in range(n)]
    bias = norm == "instance"
    self.down = nn.ModuleList(
        nn.Conv2d(widths[i - 1] if i else in_channels, widths[i], 4, 2, 1, bias=bias)
        for i in range(n))
    self.down_norm = nn.ModuleDict({str(i): norm2d(norm, widths[i]) for i in range(1, n - 1)})
    self.up = nn.ModuleList(
        nn.ConvTranspose2d(widths[i] * (1 if i == n - 1 else 2),
                           widths[i - 1] if i else out_channels, 4, 2, 1, bias=bias or i == 0)
        for i in range(n))
    self.up_norm = nn.ModuleDict({str(i): norm2d(norm, widths[i - 1]) for i in range(1, n)})
    self.dropout = nn.ModuleDict({str(i): nn.Dropout(dropout) for i in range(4, n - 1)
                                  if dropout})

  def forward(self, x):
    n, skips = self.num_downs, []
    for i in range(n):
      if i:
        x = nn.functional.leaky_relu(x, 0.2)
      x = self.down[i](x)
      if str(i) in self.down_norm:
        x = self.down_norm[str(i)](x)
      skips.append(x)
    for i in reversed(range(n)):
      if i < n - 1:
        x = torch.cat([skips[i], x], 1)
      x = self.up[i](torch.relu(x))
      if i == 0:
        return torch.tanh(x)
      x = self.up_norm[str(i)](x)
      if str(i) in self.dropout:
        x = self.dropout[str(i)](x)


def patchgan(in_channels, ndf=64, n_layers=3, norm="batch"):
  """The reference's NLayerDiscriminator (n_layers >= 1; 3: 70x70 patches) or, for n_layers 0,
  its PixelDiscriminator (1x1 patches). Logits, no sigmoid."""
  bias = norm == "instance"
  lrelu = lambda: nn.LeakyReLU(0.2, True)
  if n_layers == 0:
    return nn.Sequential(nn.Conv2d(in_channels, ndf, 1), lrelu(),
                         nn.Conv2d(ndf, 2 * ndf, 1, bias=bias), norm2d(norm, 2 * ndf), lrelu(),
                         nn.Conv2d(2 * ndf, 1, 1, bias=bias))
  layers, ch = [nn.Conv2d(in_channels, ndf, 4, 2, 1), lrelu()], ndf
  for i in range(1, n_layers + 1):
    out = ndf * min(2 ** i, 8)
    stride = 2 if i < n_layers else 1
    layers += [nn.Conv2d(ch, out, 4, stride, 1, bias=bias), norm2d(norm, out), lrelu()]
    ch = out
  layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
  return nn.Sequential(*layers)


count = timing.count  # parameters of a torch module (tests count the peers with it)


def init_weights(m):
  """The reference's 'normal' init: convs N(0, 0.02) with zero bias, batch norm scale N(1, 0.02)."""
  if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.normal_(m.weight, 0.0, 0.02)
    if m.bias is not None:
      nn.init.zeros_(m.bias)
  elif isinstance(m, nn.BatchNorm2d):
    nn.init.normal_(m.weight, 1.0, 0.02)
    nn.init.zeros_(m.bias)


def gan_criterion(gan_mode):
  """loss(logits, is_real), as the reference's GANLoss: BCE on logits, or least squares."""
  if gan_mode not in ("vanilla", "lsgan"):
    raise ValueError(f"unknown gan_mode {gan_mode!r}")
  loss = nn.BCEWithLogitsLoss() if gan_mode == "vanilla" else nn.MSELoss()
  return lambda logits, real: loss(logits.float(), torch.full_like(logits.float(), float(real)))


def set_requires_grad(net, flag):
  for p in net.parameters():
    p.requires_grad_(flag)


def make_iteration(net_g, net_d, gan_mode="vanilla", lambda_l1=100.0, dtype="float32",
                   device_type="cpu"):
  """iteration(a, b) -> (d_loss, g_loss): one pix2pix update of D, then of G, for a -> b."""
  gan = gan_criterion(gan_mode)
  l1 = nn.L1Loss()
  opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

  def iteration(a, b):
    with autocast:
      fake = net_g(a)
      set_requires_grad(net_d, True)
      opt_d.zero_grad(set_to_none=True)
      d_loss = 0.5 * (gan(net_d(torch.cat([a, b], 1)), True) +
                      gan(net_d(torch.cat([a, fake.detach()], 1)), False))
      d_loss.backward()
      opt_d.step()
      set_requires_grad(net_d, False)  # as the reference: G's step needs no D weight gradients
      opt_g.zero_grad(set_to_none=True)
      g_loss = (gan(net_d(torch.cat([a, fake], 1)), True) +
                lambda_l1 * l1(fake.float(), b.float()))
      g_loss.backward()
      opt_g.step()
    return d_loss, g_loss
  return iteration


def measure(batch_size, resolution, steps, warmup, device="cpu", dtype="float32", compile=False,
            threads=None, gan_mode="vanilla"):
  if threads:
    torch.set_num_threads(threads)
  device = torch.device(device)
  torch.manual_seed(0)
  num_downs = resolution.bit_length() - 1  # unet_256 at 256
  net_g = UNet(3, 3, num_downs).to(device)
  net_d = patchgan(6).to(device)
  net_g.apply(init_weights)
  net_d.apply(init_weights)
  g_params, d_params = count(net_g), count(net_d)
  if compile:
    net_g, net_d = torch.compile(net_g), torch.compile(net_d)
  iteration = make_iteration(net_g, net_d, gan_mode, dtype=dtype, device_type=device.type)
  a = torch.rand(batch_size, 3, resolution, resolution, device=device) * 2 - 1
  b = torch.rand(batch_size, 3, resolution, resolution, device=device) * 2 - 1
  wait = timing.torch_wait(device)
  first_s, times = timing.time_calls(lambda: iteration(a, b), steps, warmup, wait)
  return timing.torch_record(f"torch_pix2pix_unet_{resolution}", device, compile, batch_size,
                             dtype, first_s, times, resolution=resolution, gan_mode=gan_mode,
                             g_params=g_params, d_params=d_params)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=1)
  p.add_argument("--resolution", type=int, default=256)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
  p.add_argument("--device", default="cpu")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--compile", action="store_true", help="torch.compile G and D")
  p.add_argument("--gan_mode", default="vanilla", choices=["vanilla", "lsgan"])
  p.add_argument("--json", default=None)
  a = p.parse_args()
  timing.emit(measure(a.batch_size, a.resolution, a.steps, a.warmup, a.device, a.dtype, a.compile,
                      a.threads, a.gan_mode), a.json)


if __name__ == "__main__":
  main()
