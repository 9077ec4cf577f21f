"""The CycleGAN iteration (Zhu et al. 2017) in PyTorch, timed the way benchmarks/throughput.py
times ours.

  python benchmarks/peers/torch_cyclegan.py [--batch_size=1] [--resolution=256] [--steps=10]
      [--warmup=2] [--threads=N] [--device=cpu|cuda] [--dtype=float32|bfloat16] [--compile]
      [--n_blocks=9] [--json=PATH]

The nets follow the layer lists of junyanz/pytorch-CycleGAN-and-pix2pix's networks.py (ResNet G
with instance norm, 70x70 PatchGAN D), written out here so their weights map one to one onto
ours (tests/test_translation_models.py). One iteration, as the reference's CycleGAN model runs
it: G_AB, G_BA on real A and B and back again; G loss = least-squares adversarial loss both ways
+ 10 * cycle L1 each way + 0.5 * 10 * identity L1 each way, one Adam step on both Gs; then D_B
and D_A each on real images and on fakes drawn from a 50-image history pool, each loss halved,
one Adam step on both Ds. Adam 2e-4 (0.5, 0.999), N(0, 0.02) init. Prints the same JSON keys as
throughput.py; img/s counts one image of each domain as one.
"""
import argparse
import itertools
import os
import random
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
from torch_pix2pix import count, gan_criterion, init_weights, norm2d, patchgan  # noqa: E402,F401


class ResnetBlock(nn.Module):
  def __init__(self, dim, norm="instance"):
    super().__init__()
    bias = norm == "instance"
    self.body = nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm2d(norm, dim), nn.ReLU(True),
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm2d(norm, dim))

  def forward(self, x):
    return x + self.body(x)


def resnet_generator(in_channels, out_channels, n_blocks=9, ngf=64, norm="instance"):
  """The reference's ResnetGenerator (no dropout, as CycleGAN trains it)."""
  bias = norm == "instance"
  layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm2d(norm, ngf),
            nn.ReLU(True)]
  for i in range(2):
    ch = ngf * 2 ** i
    layers += [nn.Conv2d(ch, 2 * ch, 3, 2, 1, bias=bias), norm2d(norm, 2 * ch), nn.ReLU(True)]
  layers += [ResnetBlock(4 * ngf, norm) for _ in range(n_blocks)]
  for i in range(2):
    ch = ngf * 2 ** (2 - i)
    layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1, bias=bias),
               norm2d(norm, ch // 2), nn.ReLU(True)]
  layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
  return nn.Sequential(*layers)


class ImagePool:
  """The reference's history of generated images: once full, each new image is returned as is
  or, with probability 1/2, swapped for a stored one (Shrivastava et al. 2017)."""

  def __init__(self, size=50, seed=0):
    self.size, self.images, self.rng = size, [], random.Random(seed)

  def query(self, images):
    out = []
    for image in images.detach():
      image = image.unsqueeze(0)
      if len(self.images) < self.size:
        self.images.append(image)
        out.append(image)
      elif self.rng.random() < 0.5:
        i = self.rng.randrange(self.size)
        out.append(self.images[i].clone())
        self.images[i] = image
      else:
        out.append(image)
    return torch.cat(out, 0)


def set_requires_grad(nets, flag):
  for net in nets:
    for p in net.parameters():
      p.requires_grad_(flag)


def make_iteration(g_ab, g_ba, d_a, d_b, lambda_cycle=10.0, lambda_identity=0.5, pool_size=50,
                   dtype="float32", device_type="cpu"):
  """iteration(real_a, real_b) -> (d_loss, g_loss): one CycleGAN update of both Gs, then of both
  Ds. d_a judges domain A's images, d_b domain B's."""
  gan = gan_criterion("lsgan")
  l1 = nn.L1Loss()
  opt_g = torch.optim.Adam(itertools.chain(g_ab.parameters(), g_ba.parameters()), lr=2e-4,
                           betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(itertools.chain(d_a.parameters(), d_b.parameters()), lr=2e-4,
                           betas=(0.5, 0.999))
  pool_a, pool_b = ImagePool(pool_size, 0), ImagePool(pool_size, 1)
  autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
  l1f = lambda x, y: l1(x.float(), y.float())

  def iteration(real_a, real_b):
    with autocast:
      fake_b, fake_a = g_ab(real_a), g_ba(real_b)
      rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
      set_requires_grad((d_a, d_b), False)  # G's step needs no D weight gradients
      opt_g.zero_grad(set_to_none=True)
      identity = lambda_identity * lambda_cycle * (l1f(g_ab(real_b), real_b) +
                                                   l1f(g_ba(real_a), real_a))
      g_loss = (gan(d_b(fake_b), True) + gan(d_a(fake_a), True) +
                lambda_cycle * (l1f(rec_a, real_a) + l1f(rec_b, real_b)) + identity)
      g_loss.backward()
      opt_g.step()
      set_requires_grad((d_a, d_b), True)
      opt_d.zero_grad(set_to_none=True)
      d_loss = 0
      for net_d, real, fake, pool in ((d_b, real_b, fake_b, pool_b), (d_a, real_a, fake_a, pool_a)):
        loss = 0.5 * (gan(net_d(real), True) + gan(net_d(pool.query(fake)), False))
        loss.backward()
        d_loss = d_loss + loss.detach()
      opt_d.step()
    return d_loss, g_loss
  return iteration


def measure(batch_size, resolution, steps, warmup, device="cpu", dtype="float32", compile=False,
            threads=None, n_blocks=9):
  if threads:
    torch.set_num_threads(threads)
  device = torch.device(device)
  torch.manual_seed(0)
  g_ab, g_ba = (resnet_generator(3, 3, n_blocks).to(device) for _ in range(2))
  d_a, d_b = (patchgan(3, norm="instance").to(device) for _ in range(2))
  for net in (g_ab, g_ba, d_a, d_b):
    net.apply(init_weights)
  g_params, d_params = count(g_ab), count(d_a)
  if compile:
    g_ab, g_ba, d_a, d_b = (torch.compile(net) for net in (g_ab, g_ba, d_a, d_b))
  iteration = make_iteration(g_ab, g_ba, d_a, d_b, dtype=dtype, device_type=device.type)
  a = torch.rand(batch_size, 3, resolution, resolution, device=device) * 2 - 1
  b = torch.rand(batch_size, 3, resolution, resolution, device=device) * 2 - 1
  wait = timing.torch_wait(device)
  first_s, times = timing.time_calls(lambda: iteration(a, b), steps, warmup, wait)
  # parameters per network; the model trains two of each
  return timing.torch_record(f"torch_cyclegan_resnet_{n_blocks}blocks_{resolution}", device,
                             compile, batch_size, dtype, first_s, times, resolution=resolution,
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
  p.add_argument("--compile", action="store_true", help="torch.compile the Gs and Ds")
  p.add_argument("--n_blocks", type=int, default=9)
  p.add_argument("--json", default=None)
  a = p.parse_args()
  timing.emit(measure(a.batch_size, a.resolution, a.steps, a.warmup, a.device, a.dtype, a.compile,
                      a.threads, a.n_blocks), a.json)


if __name__ == "__main__":
  main()
