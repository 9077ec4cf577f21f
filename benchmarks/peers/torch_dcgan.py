"""The pytorch/examples DCGAN iteration, timed the way benchmarks/throughput.py times ours.

  python benchmarks/peers/torch_dcgan.py [--batch_size=64] [--resolution=64] [--steps=20]
      [--warmup=3] [--threads=N] [--device=cpu|cuda] [--dtype=float32|bfloat16] [--compile]
      [--json=PATH]

One iteration, as in pytorch/examples' dcgan/main.py: D on a real batch, G forward, D on the
detached fake, D's Adam step, D on the fake again (with the updated D), G's Adam step. BCE on
logits-through-sigmoid, Adam 2e-4 (0.5, 0.999), nz 100, ngf = ndf = 64, N(0, 0.02) init. Real
data is one synthetic batch already on the device. Prints the same JSON keys as throughput.py.
"""
import argparse
import math
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import timing  # noqa: E402


def generator(resolution, nz=100, ngf=64, nc=3):
  n_up = int(math.log2(resolution)) - 2
  ch = ngf * 2 ** (n_up - 1)
  layers = [nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
  for _ in range(n_up - 1):
    layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2),
               nn.ReLU(True)]
    ch //= 2
  layers += [nn.ConvTranspose2d(ch, nc, 4, 2, 1, bias=False), nn.Tanh()]
  return nn.Sequential(*layers)


def discriminator(resolution, ndf=64, nc=3):
  n_down = int(math.log2(resolution)) - 2
  layers, ch = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)], ndf
  for _ in range(n_down - 1):
    layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2),
               nn.LeakyReLU(0.2, True)]
    ch *= 2
  layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
  return nn.Sequential(*layers)


def init_weights(m):
  if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.normal_(m.weight, 0.0, 0.02)
  elif isinstance(m, nn.BatchNorm2d):
    nn.init.normal_(m.weight, 1.0, 0.02)
    nn.init.zeros_(m.bias)


def make_iteration(net_g, net_d, batch_size, nz, device, dtype="float32"):
  """iteration(real, z) -> (d_loss, g_loss): one DCGAN update of D, then of G."""
  criterion = nn.BCELoss()
  opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  ones = torch.ones(batch_size, device=device)
  zeros = torch.zeros(batch_size, device=device)
  autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

  def bce(probs, target):  # the loss in fp32, as ours
    return criterion(probs.float().view(-1), target)

  def iteration(real, z):
    with autocast:
      net_d.zero_grad(set_to_none=True)
      err_real = bce(net_d(real), ones)
      err_real.backward()
      fake = net_g(z.view(batch_size, nz, 1, 1))
      err_fake = bce(net_d(fake.detach()), zeros)
      err_fake.backward()
      opt_d.step()
      net_g.zero_grad(set_to_none=True)
      err_g = bce(net_d(fake), ones)
      err_g.backward()
      opt_g.step()
    return err_real + err_fake, err_g
  return iteration


def measure(batch_size, resolution, steps, warmup, device="cpu", dtype="float32", compile=False,
            threads=None):
  if threads:
    torch.set_num_threads(threads)
  device = torch.device(device)
  torch.manual_seed(0)
  nz = 100
  net_g, net_d = generator(resolution, nz).to(device), discriminator(resolution).to(device)
  net_g.apply(init_weights)
  net_d.apply(init_weights)
  if compile:
    net_g, net_d = torch.compile(net_g), torch.compile(net_d)
  iteration = make_iteration(net_g, net_d, batch_size, nz, device, dtype)
  real = torch.rand(batch_size, 3, resolution, resolution, device=device) * 2 - 1
  noise = lambda: torch.randn(batch_size, nz, device=device)
  wait = timing.torch_wait(device)
  # The first call builds (and under --compile compiles) everything.
  first_s, times = timing.time_calls(lambda: iteration(real, noise()), steps, warmup, wait)
  return timing.torch_record("torch_dcgan", device, compile, batch_size, dtype, first_s, times,
                             n_critic=1, g_params=timing.count(net_g),
                             d_params=timing.count(net_d))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
  p.add_argument("--device", default="cpu")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--compile", action="store_true", help="torch.compile G and D")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  result = measure(a.batch_size, a.resolution, a.steps, a.warmup, a.device, a.dtype, a.compile,
                   a.threads)
  timing.emit(result, a.json)


if __name__ == "__main__":
  main()
