"""The R3GAN training step (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern
GAN Baseline") in PyTorch, timed the way benchmarks/throughput.py times ours.

  python benchmarks/peers/torch_r3gan.py [--batch_size=64] [--steps=3] [--warmup=1]
      [--threads=N] [--device=cpu|cuda] [--dtype=float32|bfloat16] [--preset=cifar10|ffhq64|
      ffhq256] [--widths=64,64,64] [--cardinality=8,8,8] [--blocks=1,1,1] [--expansion=2]
      [--kernel=3] [--z_dim=64] [--c_dim=0] [--g_class_dim=0] [--d_class_dim=0] [--gamma=0.05]
      [--lr=2e-4] [--compile] [--json=PATH]

The nets are plain torch.nn (no custom ops), written from the paper and the structure of
gan_jax/models/r3gan.py, with the authors' parameter counts for their presets
(tests/test_r3gan_models.py checks them, and that these nets compute what ours do on the same
weights):
  G: a learned 4x4 basis per channel times a bias-free linear map of z (and of the class
    embedding beside it); per later stage a 1x1 conv where the width changes and 2x up-sampling
    with the [1, 3, 3, 1] filter (a depthwise transposed conv, gain 4); per stage residual
    blocks (1x1 conv to width x expansion, bias + leaky ReLU 0.2, grouped k x k conv, bias +
    leaky ReLU, 1x1 conv back, plus the input); a 1x1 conv to the image, no tanh.
  D: G's stages reversed: a 1x1 conv from the image; per stage the blocks, then [1, 3, 3, 1]
    down-sampling and a 1x1 conv where the width changes; at 4x4 a depthwise 4x4 conv and a
    linear map to the logit (conditional: to an embedding dotted with the class's embedding).
  No conv has a bias; init N(0, gain^2 / fan_in), the blocks' first two convs at leaky ReLU's
  gain times L^(-1/4) (L: the net's blocks), their last at zero.
The defaults are configs/r3gan_stacked.py's nets (16x16, widths 64, cardinality 8, one block per
stage); --preset takes the authors' CIFAR-10 (conditional), FFHQ-64 or FFHQ-256 nets.

One step, as the r3gan game's (gan_jax/games/r3gan.py), on one fresh z batch:
  D: softplus(-(D(x) - D(G(z)))) + gamma / 2 (R1 + R2), R1 and R2 the squared input-gradient
    norms per sample at the reals and at the (detached) fakes, differentiated again
    (create_graph); D's Adam step.
  G: softplus(-(D(G(z)) - D(x))) through the updated D, D(x) without gradients, backpropagated
    through the G(z) of the D phase (G runs forward once); G's Adam step.
Adam (betas (0, 0.9), eps 1e-8) at --lr on both sides; no EMA, augmentation or schedules (they
cost little beside the nets). --dtype=bfloat16 runs G and D under CPU/CUDA autocast (the losses
and penalties in float32). Real data is one synthetic batch on the device; conditional runs use
one-hot labels. Prints the same JSON keys as throughput.py.
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

LRELU_GAIN = math.sqrt(2 / (1 + 0.2 ** 2))

# The authors' train.py presets (G order, 4x4 first): widths, cardinality, blocks, classes
PRESETS = {
    "cifar10": ((768,) * 4, (96,) * 4, (2,) * 4, 10),
    "ffhq64": ((768,) * 4 + (384,), (96,) * 4 + (48,), (2,) * 5, 0),
    "ffhq256": ((768,) * 4 + (384, 192, 96), (96,) * 4 + (48, 24, 12), (2,) * 7, 0),
}


def msr(layer, gain=1.0):
  """N(0, gain^2 / fan_in) weights, fan_in = inputs per group x kernel taps."""
  fan_in = layer.weight[0].numel()
  with torch.no_grad():
    layer.weight.normal_(0, gain / math.sqrt(fan_in))
  return layer


def conv1x1(cin, cout, gain=1.0):
  return msr(nn.Conv2d(cin, cout, 1, bias=False), gain)


def biased_lrelu(x, bias):
  return F.leaky_relu(x + bias.to(x.dtype).view(1, -1, 1, 1), 0.2)


def fir_kernel(channels, gain):
  """The [1, 3, 3, 1] filter's 4x4 outer product, summing to `gain`, one copy per channel."""
  k = torch.tensor([1.0, 3.0, 3.0, 1.0])
  k = torch.outer(k, k)
  return (k * (gain / k.sum())).expand(channels, 1, 4, 4).contiguous()


class Block(nn.Module):
  def __init__(self, width, cardinality, expansion, kernel, total_blocks):
    super().__init__()
    e = width * expansion
    gain = LRELU_GAIN * total_blocks ** (-1 / 4)
    self.conv1 = conv1x1(width, e, gain)
    self.bias1 = nn.Parameter(torch.zeros(e))
    self.conv2 = msr(nn.Conv2d(e, e, kernel, padding=kernel // 2, groups=cardinality, bias=False),
                     gain)
    self.bias2 = nn.Parameter(torch.zeros(e))
    self.conv3 = conv1x1(e, width, 0.0)

  def forward(self, x):
    y = biased_lrelu(self.conv1(x), self.bias1)
    y = biased_lrelu(self.conv2(y), self.bias2)
    return x + self.conv3(y)


class Stage(nn.Module):
  """G's (transition, then blocks) or D's (blocks, then transition) stage; `resample` is "up",
  "down" or None (G's first stage: the basis is outside)."""

  def __init__(self, cin, cout, cardinality, n_blocks, expansion, kernel, total, resample):
    super().__init__()
    self.resample = resample
    width = cin if resample == "down" else cout
    self.transition = conv1x1(cin, cout) if resample and cin != cout else None
    self.blocks = nn.ModuleList(Block(width, cardinality, expansion, kernel, total)
                                for _ in range(n_blocks))
    if resample:  # G up-samples after its 1x1 conv, D down-samples before its own
      up = resample == "up"
      self.register_buffer("fir", fir_kernel(cout if up else cin, 4.0 if up else 1.0),
                           persistent=False)

  def _conv(self, x):
    return self.transition(x) if self.transition is not None else x

  def forward(self, x):
    if self.resample == "up":
      x = self._conv(x)
      x = F.conv_transpose2d(x, self.fir.to(x.dtype), stride=2, padding=1, groups=x.shape[1])
    for block in self.blocks:
      x = block(x)
    if self.resample == "down":
      x = F.conv2d(x, self.fir.to(x.dtype), stride=2, padding=1, groups=x.shape[1])
      x = self._conv(x)
    return x


class Generator(nn.Module):
  def __init__(self, widths, cardinality, blocks, expansion=2, kernel=3, z_dim=64, c_dim=0,
               class_dim=0, channels=3):
    super().__init__()
    total, self.c_dim = sum(blocks), c_dim
    embed = (class_dim or z_dim) if c_dim else 0
    if c_dim:
      self.embed = msr(nn.Linear(c_dim, embed, bias=False))
    self.basis = nn.Parameter(torch.randn(widths[0], 4, 4))
    self.basis_linear = msr(nn.Linear(z_dim + embed, widths[0], bias=False))
    self.stages = nn.ModuleList(
        Stage(widths[max(i - 1, 0)], widths[i], cardinality[i], blocks[i], expansion, kernel,
              total, "up" if i else None) for i in range(len(widths)))
    self.aggregate = conv1x1(widths[-1], channels)

  def forward(self, z, c=None):
    if self.c_dim:
      z = torch.cat([z, self.embed(c)], dim=1)
    x = self.basis.unsqueeze(0) * self.basis_linear(z).view(z.shape[0], -1, 1, 1)
    for stage in self.stages:
      x = stage(x)
    return self.aggregate(x)


class Discriminator(nn.Module):
  """Takes G's lists (4x4 first) and runs them reversed."""

  def __init__(self, widths, cardinality, blocks, expansion=2, kernel=3, c_dim=0, class_dim=0,
               channels=3):
    super().__init__()
    widths, cardinality, blocks = widths[::-1], cardinality[::-1], blocks[::-1]
    total, n, self.c_dim = sum(blocks), len(widths), c_dim
    self.extract = conv1x1(channels, widths[0])
    self.stages = nn.ModuleList(
        Stage(widths[i], widths[min(i + 1, n - 1)], cardinality[i], blocks[i], expansion, kernel,
              total, "down" if i < n - 1 else None) for i in range(n))
    out = (class_dim or widths[-1]) if c_dim else 1
    self.basis = msr(nn.Conv2d(widths[-1], widths[-1], 4, groups=widths[-1], bias=False))
    self.basis_linear = msr(nn.Linear(widths[-1], out, bias=False))
    if c_dim:
      self.embed = msr(nn.Linear(c_dim, out, bias=False), 1 / math.sqrt(out))

  def forward(self, img, c=None):
    x = self.extract(img)
    for stage in self.stages:
      x = stage(x)
    x = self.basis_linear(self.basis(x).flatten(1)).float()
    if self.c_dim:
      return (x * self.embed(c.float()).float()).sum(dim=1)
    return x[:, 0]


def build(widths=(64, 64, 64), cardinality=(8, 8, 8), blocks=(1, 1, 1), expansion=2, kernel=3,
          z_dim=64, c_dim=0, g_class_dim=0, d_class_dim=0, channels=3):
  G = Generator(widths, cardinality, blocks, expansion, kernel, z_dim, c_dim, g_class_dim,
                channels)
  D = Discriminator(widths, cardinality, blocks, expansion, kernel, c_dim, d_class_dim, channels)
  return G, D


count = timing.count  # parameters of a torch module (tests count the peers with it)


def _hwio_to_oihw(w):
  return torch.tensor(w).permute(3, 2, 0, 1)


def load_flax(net, params):
  """Copy gan_jax's r3gan parameters (a nested dict of arrays: G's or D's "params") into this
  peer's `net`, for parity checks. Kernels are HWIO there, OIHW here; dense maps [in, out]."""
  p, sets = params, []
  if "embed" in p:
    sets.append((net.embed.weight, torch.tensor(p["embed"]).T))
  sets.append((net.basis_linear.weight, torch.tensor(p["basis_linear"]).T))
  if isinstance(net, Generator):
    sets.append((net.basis, torch.tensor(p["basis"]).permute(2, 0, 1)))
    sets.append((net.aggregate.weight, _hwio_to_oihw(p["aggregate"])))
  else:
    sets.append((net.basis.weight, torch.tensor(p["basis"]).permute(2, 0, 1).unsqueeze(1)))
    sets.append((net.extract.weight, _hwio_to_oihw(p["extract"])))
  for i, stage in enumerate(net.stages):
    if stage.transition is not None:
      sets.append((stage.transition.weight, _hwio_to_oihw(p[f"stage{i}_transition"])))
    for j, block in enumerate(stage.blocks):
      b = p[f"stage{i}_block{j}"]
      for name in ("conv1", "conv2", "conv3"):
        sets.append((getattr(block, name).weight, _hwio_to_oihw(b[name])))
      sets += [(block.bias1, torch.tensor(b["bias1"])), (block.bias2, torch.tensor(b["bias2"]))]
  with torch.no_grad():
    for dst, src in sets:
      if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"shape {tuple(src.shape)} does not fit {tuple(dst.shape)}")
      dst.copy_(src.to(dst.dtype))
  if len(sets) != len(list(net.parameters())):
    raise ValueError("some of the net's parameters have no counterpart in `params`")


def zero_centred_penalty(net_d, x, c=None, autocast=None):
  """(|grad_x sum D(x)|^2 per sample, D(x)), the graph kept for the backward (R1 at reals, R2
  at fakes)."""
  x = x.detach().requires_grad_(True)
  with autocast or torch.autocast("cpu", enabled=False):
    logits = net_d(x, c).float()
  (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
  return grad.float().square().sum(dim=[1, 2, 3]), logits


def make_iteration(G, D, batch_size, z_dim, device, dtype="float32", gamma=0.05, lr=2e-4,
                   compile=False):
  """iteration(real, c=None) -> (d_loss, g_loss): one D update, then one G update. Under
  `compile` G and the G phase's D run compiled; the D phase runs D eagerly, since R1 and R2
  differentiate it twice and torch.compile's AOTAutograd refuses double backward
  (pytorch/pytorch#92348)."""
  opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.0, 0.9), eps=1e-8)
  opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.9), eps=1e-8)
  autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
  net_g, d_main = (torch.compile(G), torch.compile(D)) if compile else (G, D)

  def iteration(real, c=None):
    z = torch.randn(batch_size, z_dim, device=device)
    G.requires_grad_(True)
    D.requires_grad_(True)
    with autocast:
      fake = net_g(z, c)
    r1, real_logits = zero_centred_penalty(D, real, c, autocast)
    r2, fake_logits = zero_centred_penalty(D, fake.float(), c, autocast)
    d_loss = (F.softplus(-(real_logits - fake_logits)) + gamma / 2 * (r1 + r2)).mean()
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()  # fakes detached: no gradient reaches G
    opt_d.step()
    D.requires_grad_(False)
    with torch.no_grad(), autocast:
      real_logits = d_main(real, c).float()
    with autocast:
      fake_logits = d_main(fake, c).float()
    g_loss = F.softplus(-(fake_logits - real_logits)).mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return d_loss.detach(), g_loss.detach()
  return iteration


def measure(batch_size, steps, warmup, device="cpu", dtype="float32", threads=None,
            widths=(64, 64, 64), cardinality=(8, 8, 8), blocks=(1, 1, 1), expansion=2, kernel=3,
            z_dim=64, c_dim=0, g_class_dim=0, d_class_dim=0, gamma=0.05, lr=2e-4, preset=None,
            compile=False):
  if threads:
    torch.set_num_threads(threads)
  device = torch.device(device)
  torch.manual_seed(0)
  G, D = build(widths, cardinality, blocks, expansion, kernel, z_dim, c_dim, g_class_dim,
               d_class_dim)
  G, D = G.to(device).train(), D.to(device).train()
  iteration = make_iteration(G, D, batch_size, z_dim, device, dtype, gamma, lr, compile)
  resolution = 4 * 2 ** (len(widths) - 1)
  real = torch.rand(batch_size, 3, resolution, resolution, device=device) * 2 - 1
  c = (F.one_hot(torch.arange(batch_size) % c_dim, c_dim).float().to(device) if c_dim else None)
  first_s, times = timing.time_calls(lambda: iteration(real, c), steps, warmup,
                                     timing.torch_wait(device))
  return timing.torch_record(
      "torch_r3gan", device, compile, batch_size, dtype, first_s, times, n_critic=1,
      resolution=resolution, g_params=count(G), d_params=count(D), preset=preset,
      widths=list(widths), cardinality=list(cardinality), blocks=list(blocks),
      expansion=expansion, kernel=kernel, z_dim=z_dim, c_dim=c_dim, gamma=gamma, lr=lr)


def _ints(text):
  return tuple(int(v) for v in text.split(","))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=64)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--threads", type=int, default=None,
                 help="torch intra-op threads (default: torch's)")
  p.add_argument("--device", default="cpu")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                 help="the authors' nets (sets widths, cardinality, blocks and c_dim)")
  p.add_argument("--widths", type=_ints, default=(64, 64, 64), help="per stage, 4x4 first")
  p.add_argument("--cardinality", type=_ints, default=(8, 8, 8))
  p.add_argument("--blocks", type=_ints, default=(1, 1, 1))
  p.add_argument("--expansion", type=int, default=2)
  p.add_argument("--kernel", type=int, default=3)
  p.add_argument("--z_dim", type=int, default=64)
  p.add_argument("--c_dim", type=int, default=0, help="classes (0: unconditional)")
  p.add_argument("--g_class_dim", type=int, default=0, help="G's class embedding (0: z_dim)")
  p.add_argument("--d_class_dim", type=int, default=0, help="D's class embedding (0: widths[0])")
  p.add_argument("--gamma", type=float, default=0.05)
  p.add_argument("--lr", type=float, default=2e-4)
  p.add_argument("--compile", action="store_true",
                 help="torch.compile G and the G phase's D (the D phase stays eager)")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  if a.preset:
    a.widths, a.cardinality, a.blocks, a.c_dim = PRESETS[a.preset]
  timing.emit(measure(a.batch_size, a.steps, a.warmup, a.device, a.dtype, a.threads, a.widths,
                      a.cardinality, a.blocks, a.expansion, a.kernel, a.z_dim, a.c_dim,
                      a.g_class_dim, a.d_class_dim, a.gamma, a.lr, a.preset, a.compile), a.json)


if __name__ == "__main__":
  main()
