"""A PyTorch loop equivalent to configs/gan_ring2d.py's step, timed like throughput.py.

  python benchmarks/peers/torch_mlp_gan.py [--batch_size=512] [--steps=200] [--warmup=20]
      [--threads=N] [--r1_weight=0.05] [--json=PATH]

Per iteration: one G forward; D on real and on the detached fake, non-saturating loss plus an
R1 penalty on real data (a double backward), D's Adam step; then G's loss on the same fake
through the updated D and G's Adam step. G and D: 3 hidden layers of 128 ReLU units, latent 2, Adam 2e-3 (0.5, 0.99) with
a linear decay. This is the same work per step as ours; the loop issues it from Python one
iteration at a time, the way a PyTorch user writes it.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import timing  # noqa: E402


def mlp(in_dim, out_dim, hidden=128, depth=3):
  layers = []
  for i in range(depth):
    layers += [nn.Linear(in_dim if i == 0 else hidden, hidden), nn.ReLU()]
  return nn.Sequential(*layers, nn.Linear(hidden, out_dim))


def make_iteration(net_g, net_d, batch_size, latent_dim, r1_weight, total_steps):
  opts = [torch.optim.Adam(n.parameters(), lr=2e-3, betas=(0.5, 0.99)) for n in (net_d, net_g)]
  decay = lambda step: max(0.0, 1.0 - step / total_steps)
  opt_d, opt_g = opts
  sched = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in opts]

  def iteration(real):
    opt_d.zero_grad(set_to_none=True)
    real = real.requires_grad_(r1_weight > 0)
    real_logits = net_d(real).squeeze(1)
    fake = net_g(torch.randn(batch_size, latent_dim))  # one G forward serves both phases, as ours
    d_loss = F.softplus(-real_logits).mean() + F.softplus(net_d(fake.detach()).squeeze(1)).mean()
    if r1_weight > 0:
      (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
      d_loss = d_loss + r1_weight * grad.pow(2).sum(1).mean()
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    g_loss = F.softplus(-net_d(fake).squeeze(1)).mean()
    g_loss.backward()
    opt_g.step()
    for s in sched:
      s.step()
    return d_loss.detach(), g_loss.detach()
  return iteration


def measure(batch_size, steps, warmup, r1_weight=0.05, threads=None):
  if threads:
    torch.set_num_threads(threads)
  torch.manual_seed(0)
  latent_dim = 2
  net_g, net_d = mlp(latent_dim, 2), mlp(2, 1)
  iteration = make_iteration(net_g, net_d, batch_size, latent_dim, r1_weight, 10 * (steps + warmup))
  real = torch.randn(batch_size, 2)
  first_s, times = timing.time_calls(lambda: iteration(real.clone()), steps, warmup)
  return timing.torch_record("torch_mlp_gan", torch.device("cpu"), False, batch_size, "float32",
                             first_s, times, n_critic=1, g_params=timing.count(net_g),
                             d_params=timing.count(net_d))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=512)
  p.add_argument("--steps", type=int, default=200)
  p.add_argument("--warmup", type=int, default=20)
  p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
  p.add_argument("--r1_weight", type=float, default=0.05)
  p.add_argument("--json", default=None)
  a = p.parse_args()
  result = measure(a.batch_size, a.steps, a.warmup, a.r1_weight, a.threads)
  timing.emit(result, a.json)


if __name__ == "__main__":
  main()
