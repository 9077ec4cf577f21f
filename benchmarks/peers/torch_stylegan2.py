"""The StyleGAN2 training iteration (Karras et al. 2020) in PyTorch, timed the way
benchmarks/throughput.py times ours.

  python benchmarks/peers/torch_stylegan2.py [--batch_size=16] [--resolution=64] [--steps=2]
      [--warmup=0] [--threads=N] [--device=cpu|cuda] [--dtype=float32|bfloat16] [--compile]
      [--channel_base=8192] [--channel_max=128] [--z_dim=128] [--w_dim=128] [--map_layers=2]
      [--c_dim=0] [--modconv=fused|unfused] [--r1_gamma=G] [--pl_weight=2] [--style_mixing=0.9]
      [--ema_kimg=10] [--lr=0.0025] [--no_plain_timing] [--json=PATH]

The nets follow the layer list of NVIDIA's stylegan2-ada-pytorch training/networks.py (G: the
'skip' architecture, D: 'resnet'), written out here from the paper and that layer list, so that
the parameter counts match NVIDIA's for the same settings (tests/test_torch_stylegan2_peer.py):
  G mapping: z normalised by its 2nd moment (with an optional class embedding, also normalised),
    map_layers FC layers (lr multiplier 0.01, leaky ReLU 0.2 with gain sqrt 2), w_avg tracked
    with beta 0.995 and broadcast to num_ws styles.
  G synthesis: a learned 4x4 constant; per resolution a modulated 3x3 conv with 2x up-sampling
    (transposed conv, then the [1,3,3,1] FIR blur) and a modulated 3x3 conv, both demodulated,
    each with per-pixel noise of learned strength, bias and leaky ReLU (gain sqrt 2); a
    modulated 1x1 ToRGB per resolution, summed into an image up-sampled by the same FIR filter.
  D: FromRGB at the top resolution; per resolution a 3x3 conv, a 3x3 conv with FIR blur and
    stride 2, and a 1x1 skip with FIR down-sampling, the two branches scaled by sqrt(0.5);
    at 4x4 minibatch stddev (group min(4, batch), 1 channel), a 3x3 conv, an FC and the output FC.
  Channels at resolution r: min(channel_base // r, channel_max). Equalized learning rate
  everywhere: weights drawn N(0, 1) (N(0, 1/lr_mul) in the mapping) and scaled at run time.
The defaults (channel_base 8192, channel_max 128, z_dim = w_dim = 128, map_layers 2) give 128
channels at every resolution up to 64: a CPU-sized StyleGAN2 (NVIDIA's 'auto' config also uses
2 mapping layers; config F uses 512 / 512 / 8 and channel_base 32768, channel_max 512).

Modulated convs run by default in the grouped-conv ("fused") form of the original TF StyleGAN2
training code; --modconv=unfused scales activations around one shared-weight conv instead, the
form stylegan2-ada-pytorch trains with (its blocks use the fused form only outside training).
Not modelled: NVIDIA's fp16 on the top resolutions and conv_clamp (see --dtype), ADA augmentation.

One iteration, as NVIDIA's training loop orders its phases, each with its own fresh z batch:
  Gmain: non-saturating logistic loss of G's images through D (style mixing with probability
    --style_mixing at a random cutoff); G's Adam step (D takes no weight gradients).
  Greg, every 4th iteration: path-length penalty on a batch shrunk by 2, pl_mean decayed by
    0.01, weight --pl_weight, loss times the interval 4; G's Adam step.
  Dmain: logistic loss on G's images (G not differentiated) and on the real batch; D's step.
  Dreg, every 16th iteration: R1 = r1_gamma / 2 * |grad_x D(x_real)|^2, times the interval 16;
    D's Adam step. r1_gamma defaults to NVIDIA's 'auto' heuristic 0.0002 * resolution^2 / batch
    (0.0512 at 64px, batch 16); its value does not change the work.
  G EMA: half-life --ema_kimg thousand images, no ramp-up.
Before each Adam step NaN/inf in the gradients are replaced, as NVIDIA does. Adam lr 0.0025,
betas (0, 0.99), eps 1e-8, with lazy regularization's correction: lr * c and betas ** c with
c = k / (k + 1) for interval k (4 for G, 16 for D).

One timed call is a full 16-iteration cycle (so the lazy regularizers are amortised exactly);
img/s and step_ms are per iteration (call / 16). step_ms_without_reg times single iterations
without the Greg and Dreg phases. Under --compile the regularizer phases run G and D eagerly:
torch.compile's AOTAutograd refuses double backward (pytorch/pytorch#92348, #181606), which
R1 and the path-length penalty need; Gmain and Dmain run compiled. Real data is one synthetic
batch on the device; conditional runs (--c_dim) use one-hot labels.
Prints the same JSON keys as throughput.py.
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

SQRT2 = math.sqrt(2.0)
CYCLE = 16  # iterations per timed call: lcm of the G (4) and D (16) regularization intervals
G_REG_INTERVAL, D_REG_INTERVAL = 4, 16


def lrelu(x, gain=1.0):
  """Leaky ReLU 0.2 with StyleGAN's gain sqrt(2) (times `gain`)."""
  return F.leaky_relu(x, 0.2) * (SQRT2 * gain)


def fir_filter(taps=(1, 3, 3, 1), gain=1.0):
  """The separable low-pass filter as a 2D kernel that sums to `gain`."""
  k = torch.tensor(taps, dtype=torch.float32)
  k = torch.outer(k, k)
  return k * (gain / k.sum())


def depthwise(x, k, stride=1, padding=0):
  """Convolve each channel of x with the 2D kernel k (symmetric, so no flip is needed)."""
  c = x.shape[1]
  return F.conv2d(x, k.to(x.dtype).expand(c, 1, *k.shape), stride=stride, padding=padding,
                  groups=c)


def upsample_fir(x, k4):
  """2x up-sampling: zero insertion followed by the FIR filter k4 (gain 4), size 2H x 2W.
  With a 4-tap filter this is a stride-2 depthwise transposed conv cropped by 1 on each side."""
  c = x.shape[1]
  return F.conv_transpose2d(x, k4.to(x.dtype).expand(c, 1, *k4.shape), stride=2, padding=1,
                            groups=c)


class FC(nn.Module):
  """Equalized-lr dense layer: N(0, 1/lr_mul) weights scaled by lr_mul / sqrt(fan_in)."""

  def __init__(self, fin, fout, act=False, lr_mul=1.0, bias_init=0.0):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(fout, fin) / lr_mul)
    self.bias = nn.Parameter(torch.full([fout], float(bias_init)))
    self.weight_gain, self.bias_gain, self.act = lr_mul / math.sqrt(fin), lr_mul, act

  def forward(self, x):
    x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
    return lrelu(x) if self.act else x


class Conv(nn.Module):
  """Equalized-lr conv of D; down=2 blurs with the FIR filter and strides by 2."""

  def __init__(self, cin, cout, kernel, bias=True, act=True, down=1):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
    self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
    self.weight_gain, self.act, self.down, self.kernel = 1 / math.sqrt(cin * kernel ** 2), act, down, kernel
    self.register_buffer("fir", fir_filter(), persistent=False)

  def forward(self, x, gain=1.0):
    w = (self.weight * self.weight_gain).to(x.dtype)
    if self.down == 1:
      x = F.conv2d(x, w, padding=self.kernel // 2)
    elif self.kernel == 1:  # blur-and-subsample (pad 1), then the 1x1 conv
      x = F.conv2d(depthwise(x, self.fir, stride=2, padding=1), w)
    else:  # blur to H+1 (pad 2), then the strided 3x3 conv to H/2
      x = F.conv2d(depthwise(x, self.fir, padding=2), w, stride=2)
    if self.bias is not None:
      x = x + self.bias.to(x.dtype).view(1, -1, 1, 1)
    return lrelu(x, gain) if self.act else x * gain


def f32(x):
  """x in float32 if it is in a 16-bit float type (autocast's outputs); float64 is kept."""
  return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def normalize_2nd_moment(x, eps=1e-8):
  return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class Mapping(nn.Module):
  """z (and an optional class embedding) -> w, broadcast to num_ws rows when num_ws is set."""

  def __init__(self, z_dim, c_dim, w_dim, num_ws, layers, lr_mul=0.01, w_avg_beta=0.995):
    super().__init__()
    self.z_dim, self.c_dim, self.num_ws, self.w_avg_beta = z_dim, c_dim, num_ws, w_avg_beta
    embed = w_dim if c_dim else 0
    if c_dim:
      self.embed = FC(c_dim, embed)
    dims = [z_dim + embed] + [w_dim] * layers
    self.fcs = nn.ModuleList(FC(dims[i], dims[i + 1], act=True, lr_mul=lr_mul)
                             for i in range(layers))
    if num_ws is not None and w_avg_beta is not None:
      self.register_buffer("w_avg", torch.zeros(w_dim))

  def forward(self, z, c=None, update_w_avg=True):
    parts = []
    if self.z_dim:
      parts.append(normalize_2nd_moment(z.float()))
    if self.c_dim:
      parts.append(normalize_2nd_moment(self.embed(c.float())))
    x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    for fc in self.fcs:
      x = fc(x)
    if self.num_ws is None:
      return x
    if update_w_avg and self.training and self.w_avg_beta is not None:
      with torch.no_grad():
        self.w_avg.copy_(torch.lerp(x.detach().float().mean(0), self.w_avg, self.w_avg_beta))
    return x.unsqueeze(1).expand(-1, self.num_ws, -1)


def modulated_conv(x, weight, styles, demodulate=True, up=False, fused=True, fir=None):
  """StyleGAN2's modulated conv: weight [O, I, k, k] scaled per sample by styles [N, I],
  demodulated to unit output norm; up=True makes it a 2x transposed conv followed by the FIR
  blur (fir: the gain-4 filter). fused: one grouped conv over per-sample weights; otherwise
  the activations are scaled before and after one conv with the shared weight."""
  n, cin = styles.shape
  cout, _, kh, kw = weight.shape
  if fused or demodulate:
    w = weight.unsqueeze(0) * styles.view(n, 1, cin, 1, 1)  # [N, O, I, k, k]
  if demodulate:
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
  if fused:
    if demodulate:
      w = w * dcoefs.view(n, cout, 1, 1, 1)
    x = x.reshape(1, n * cin, *x.shape[2:])
    if up:  # a grouped transposed conv wants [groups * I, O, k, k]
      w = w.transpose(1, 2).reshape(n * cin, cout, kh, kw).to(x.dtype)
      x = depthwise(F.conv_transpose2d(x, w, stride=2, groups=n), fir, padding=1)
    else:
      x = F.conv2d(x, w.reshape(n * cout, cin, kh, kw).to(x.dtype), padding=kh // 2, groups=n)
    return x.reshape(n, cout, *x.shape[2:])
  x = x * styles.to(x.dtype).view(n, cin, 1, 1)
  if up:
    x = depthwise(F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2), fir,
                  padding=1)
  else:
    x = F.conv2d(x, weight.to(x.dtype), padding=kh // 2)
  if demodulate:
    x = x * dcoefs.to(x.dtype).view(n, cout, 1, 1)
  return x


class SynthesisLayer(nn.Module):
  """Modulated 3x3 conv (optionally 2x up) + noise of learned strength + bias + leaky ReLU."""

  def __init__(self, cin, cout, w_dim, resolution, up=False, fused=True):
    super().__init__()
    self.resolution, self.up, self.fused = resolution, up, fused
    self.affine = FC(w_dim, cin, bias_init=1.0)
    self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
    self.noise_strength = nn.Parameter(torch.zeros([]))
    self.bias = nn.Parameter(torch.zeros(cout))
    self.register_buffer("noise_const", torch.randn(resolution, resolution))
    self.register_buffer("fir", fir_filter(gain=4.0), persistent=False)

  def forward(self, x, w):
    styles = self.affine(w)
    x = modulated_conv(x, self.weight, styles, up=self.up, fused=self.fused, fir=self.fir)
    noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device)
    x = x + (noise * self.noise_strength).to(x.dtype)
    return lrelu(x + self.bias.to(x.dtype).view(1, -1, 1, 1))


class ToRGB(nn.Module):
  """Modulated 1x1 conv to RGB without demodulation, plus bias."""

  def __init__(self, cin, cout, w_dim, fused=True):
    super().__init__()
    self.affine = FC(w_dim, cin, bias_init=1.0)
    self.weight = nn.Parameter(torch.randn(cout, cin, 1, 1))
    self.bias = nn.Parameter(torch.zeros(cout))
    self.weight_gain, self.fused = 1 / math.sqrt(cin), fused

  def forward(self, x, w):
    styles = self.affine(w) * self.weight_gain
    x = modulated_conv(x, self.weight, styles, demodulate=False, fused=self.fused)
    return x + self.bias.to(x.dtype).view(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
  def __init__(self, cin, cout, w_dim, resolution, img_channels, fused=True):
    super().__init__()
    self.first = cin == 0
    if self.first:
      self.const = nn.Parameter(torch.randn(cout, resolution, resolution))
    else:
      self.conv0 = SynthesisLayer(cin, cout, w_dim, resolution, up=True, fused=fused)
    self.conv1 = SynthesisLayer(cout, cout, w_dim, resolution, fused=fused)
    self.torgb = ToRGB(cout, img_channels, w_dim, fused=fused)
    self.num_conv = 1 if self.first else 2
    self.register_buffer("fir", fir_filter(gain=4.0), persistent=False)

  def forward(self, x, img, ws):  # ws: [N, num_conv + 1, w_dim]
    if self.first:
      x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
      x = self.conv1(x, ws[:, 0])
    else:
      x = self.conv1(self.conv0(x, ws[:, 0]), ws[:, 1])
    y = f32(self.torgb(x, ws[:, self.num_conv]))
    img = y if img is None else upsample_fir(img, self.fir) + y
    return x, img


class Synthesis(nn.Module):
  def __init__(self, w_dim, resolution, img_channels, channel_base, channel_max, fused=True):
    super().__init__()
    self.resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
    ch = lambda r: min(channel_base // r, channel_max)
    self.blocks = nn.ModuleList(
        SynthesisBlock(ch(r // 2) if r > 4 else 0, ch(r), w_dim, r, img_channels, fused)
        for r in self.resolutions)
    # each block's ToRGB shares its style with the next block's first conv; the last has its own
    self.num_ws = sum(b.num_conv for b in self.blocks) + 1

  def forward(self, ws):
    x = img = None
    i = 0
    for block in self.blocks:
      x, img = block(x, img, ws[:, i:i + block.num_conv + 1])
      i += block.num_conv
    return img


class Generator(nn.Module):
  def __init__(self, z_dim=128, c_dim=0, w_dim=128, resolution=64, img_channels=3,
               channel_base=8192, channel_max=128, map_layers=2, fused=True):
    super().__init__()
    self.z_dim, self.c_dim = z_dim, c_dim
    self.synthesis = Synthesis(w_dim, resolution, img_channels, channel_base, channel_max, fused)
    self.num_ws = self.synthesis.num_ws
    self.mapping = Mapping(z_dim, c_dim, w_dim, self.num_ws, map_layers)

  def forward(self, z, c=None):
    return self.synthesis(self.mapping(z, c))


class DiscriminatorBlock(nn.Module):
  """Residual block: (FromRGB,) conv, conv + FIR down; 1x1 FIR-down skip; both times sqrt .5."""

  def __init__(self, cin, tmp, cout, img_channels):
    super().__init__()
    if cin == 0:
      self.fromrgb = Conv(img_channels, tmp, 1)
    self.conv0 = Conv(tmp, tmp, 3)
    self.conv1 = Conv(tmp, cout, 3, down=2)
    self.skip = Conv(tmp, cout, 1, bias=False, act=False, down=2)

  def forward(self, x, img):
    if x is None:
      x = self.fromrgb(img)
    y = self.skip(x, gain=math.sqrt(0.5))
    return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


def minibatch_std(x, group_size=4, channels=1):
  """Append the stddev over groups of min(group_size, N) samples, averaged over channel groups
  and pixels, as `channels` feature maps."""
  n, c, h, w = x.shape
  g = min(group_size, n)
  y = x.reshape(g, -1, channels, c // channels, h, w)
  y = (y - y.mean(dim=0)).square().mean(dim=0)
  y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [N / g, channels]
  y = y.reshape(-1, channels, 1, 1).repeat(g, 1, h, w)
  return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
  def __init__(self, c_dim=0, resolution=64, img_channels=3, channel_base=8192, channel_max=128,
               mbstd_group=4, mbstd_channels=1, cmap_dim=None, c_map_layers=8):
    super().__init__()
    ch = lambda r: min(channel_base // r, channel_max)
    resolutions = [2 ** i for i in range(int(math.log2(resolution)), 2, -1)]
    self.blocks = nn.ModuleList(
        DiscriminatorBlock(ch(r) if r < resolution else 0, ch(r), ch(r // 2), img_channels)
        for r in resolutions)
    c4 = ch(4)
    self.c_dim, self.cmap_dim = c_dim, (cmap_dim or c4) if c_dim else 0
    if c_dim:  # NVIDIA's conditional D: labels mapped (8 FC layers by default) to a projection
      self.mapping = Mapping(0, c_dim, self.cmap_dim, None, c_map_layers, w_avg_beta=None)
    self.mbstd_group, self.mbstd_channels = mbstd_group, mbstd_channels
    self.conv = Conv(c4 + mbstd_channels, c4, 3)
    self.fc = FC(c4 * 16, c4, act=True)
    self.out = FC(c4, self.cmap_dim or 1)

  def forward(self, img, c=None):
    x = None
    for block in self.blocks:
      x = block(x, img)
    x = f32(x)  # the 4x4 epilogue in float32, as NVIDIA's
    if self.mbstd_channels:
      x = minibatch_std(x, self.mbstd_group, self.mbstd_channels)
    x = self.out(self.fc(self.conv(x).flatten(1)))
    if self.c_dim:
      x = (x * self.mapping(None, c)).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
    return x


def adam(params, lr, interval):
  """NVIDIA's Adam for a lazily regularized net: lr and betas corrected by c = k / (k + 1)."""
  c = interval / (interval + 1)
  return torch.optim.Adam(params, lr=lr * c, betas=(0.0 ** c, 0.99 ** c), eps=1e-8)


def r1_term(net_d, real, gamma, c=None, autocast=None):
  """R1 per sample, gamma / 2 * |grad_x sum D(x)|^2 at the real images, and D's logits there
  (graph kept for the backward)."""
  real = real.detach().requires_grad_(True)
  with autocast or torch.autocast("cpu", enabled=False):
    logits = f32(net_d(real, c))
  (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
  return grad.square().sum(dim=[1, 2, 3]) * (gamma / 2), logits


def path_length_penalty(synthesis, ws, pl_mean, decay=0.01, autocast=None):
  """The per-sample path-length penalty (|J_w^T y| - a)^2 with y ~ N(0, I) / sqrt(H W), the
  running mean a moved by `decay` towards this batch's mean length (pl_mean updated in place;
  the penalty's a keeps its graph, as NVIDIA's does). Returns (penalty, lengths, images)."""
  with autocast or torch.autocast("cpu", enabled=False):
    img = f32(synthesis(ws))
  noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
  (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
  lengths = f32(grad).square().sum(2).mean(1).sqrt()
  mean = pl_mean.lerp(lengths.mean(), decay)
  pl_mean.copy_(mean.detach())
  return (lengths - mean).square(), lengths, img


def make_iteration(G, D, G_ema, batch_size, device, dtype="float32", compile=False, lr=0.0025,
                   r1_gamma=10.0, pl_weight=2.0, style_mixing=0.9, pl_batch_shrink=2,
                   pl_decay=0.01, ema_kimg=10.0):
  """iteration(idx, real, c=None, regularize=True): NVIDIA's phases Gmain, Greg (idx % 4 == 0),
  Dmain, Dreg (idx % 16 == 0), then the G EMA update. Returns the D and G main losses."""
  opt_g, opt_d = adam(G.parameters(), lr, G_REG_INTERVAL), adam(D.parameters(), lr, D_REG_INTERVAL)
  pl_mean = torch.zeros([], device=device)
  autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
  # compiled forwards for the main phases; the double-backward phases use the eager modules
  mapping, synthesis, net_d = G.mapping, G.synthesis, D
  if compile:
    mapping, synthesis, net_d = (torch.compile(m) for m in (mapping, synthesis, net_d))
  ema_beta = 0.5 ** (batch_size / max(ema_kimg * 1000, 1e-8))
  ema_pairs = list(zip(G_ema.parameters(), G.parameters()))
  buffer_pairs = list(zip(G_ema.buffers(), G.buffers()))
  cpu_rng = torch.Generator().manual_seed(0)  # mixing cutoffs, drawn on the host

  def mixed_ws(z, c, mapping_fn):
    """w for each style row; with probability style_mixing the rows from a random cutoff on
    come from a second z (which does not move w_avg)."""
    ws = mapping_fn(z, c)
    if style_mixing > 0:
      cutoff = int(torch.randint(1, ws.shape[1], (), generator=cpu_rng))
      if float(torch.rand((), generator=cpu_rng)) < style_mixing:
        ws2 = mapping_fn(torch.randn_like(z), c, update_w_avg=False)
        ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
    return ws

  def step(net, opt):
    net.requires_grad_(False)
    for p in net.parameters():
      if p.grad is not None:
        torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
    opt.step()

  def begin(net, opt):
    opt.zero_grad(set_to_none=True)
    net.requires_grad_(True)

  def iteration(idx, real, c=None, regularize=True):
    zs = torch.randn(4, batch_size, G.z_dim, device=device).unbind(0)  # one batch per phase
    # Gmain
    begin(G, opt_g)
    with autocast:
      img = synthesis(mixed_ws(zs[0], c, mapping))
      g_loss = F.softplus(-net_d(img, c).float()).mean()
    g_loss.backward()
    step(G, opt_g)
    # Greg
    if regularize and pl_weight and idx % G_REG_INTERVAL == 0:
      begin(G, opt_g)
      n = batch_size // pl_batch_shrink
      cn = None if c is None else c[:n]
      with autocast:
        ws = mixed_ws(zs[1][:n], cn, G.mapping)
      penalty, _, img = path_length_penalty(G.synthesis, ws, pl_mean, pl_decay, autocast)
      (img[:, 0, 0, 0] * 0 + penalty * pl_weight).mean().mul(G_REG_INTERVAL).backward()
      step(G, opt_g)
    # Dmain
    begin(D, opt_d)
    with autocast:
      img = synthesis(mixed_ws(zs[2], c, mapping))  # G takes no gradients here
      loss_fake = F.softplus(net_d(img, c).float()).mean()
    loss_fake.backward()
    with autocast:
      loss_real = F.softplus(-net_d(real.detach(), c).float()).mean()
    loss_real.backward()
    step(D, opt_d)
    # Dreg
    if regularize and r1_gamma and idx % D_REG_INTERVAL == 0:
      begin(D, opt_d)
      r1, logits = r1_term(D, real, r1_gamma, c, autocast)
      (logits[:, 0] * 0 + r1).mean().mul(D_REG_INTERVAL).backward()
      step(D, opt_d)
    # G EMA
    with torch.no_grad():
      for p_ema, p in ema_pairs:
        p_ema.copy_(p.lerp(p_ema, ema_beta))
      for b_ema, b in buffer_pairs:
        b_ema.copy_(b)
    return (loss_fake + loss_real).detach(), g_loss.detach()
  iteration.pl_mean = pl_mean
  return iteration


def build(resolution=64, channel_base=8192, channel_max=128, z_dim=128, w_dim=128, map_layers=2,
          c_dim=0, fused=True, mbstd_group=4):
  G = Generator(z_dim, c_dim, w_dim, resolution, 3, channel_base, channel_max, map_layers, fused)
  D = Discriminator(c_dim, resolution, 3, channel_base, channel_max, mbstd_group)
  return G, D


count = timing.count  # parameters of a torch module (tests count the peers with it)


def measure(batch_size, resolution, steps, warmup, device="cpu", dtype="float32", compile=False,
            threads=None, channel_base=8192, channel_max=128, z_dim=128, w_dim=128, map_layers=2,
            c_dim=0, modconv="fused", r1_gamma=None, pl_weight=2.0, style_mixing=0.9,
            ema_kimg=10.0, lr=0.0025, time_without_reg=True):
  if threads:
    torch.set_num_threads(threads)
  device = torch.device(device)
  torch.manual_seed(0)
  if r1_gamma is None:  # NVIDIA's 'auto' heuristic
    r1_gamma = 0.0002 * resolution ** 2 / batch_size
  G, D = build(resolution, channel_base, channel_max, z_dim, w_dim, map_layers, c_dim,
               modconv == "fused")
  G, D = G.to(device).train().requires_grad_(False), D.to(device).train().requires_grad_(False)
  G_ema = copy.deepcopy(G).eval()
  iteration = make_iteration(G, D, G_ema, batch_size, device, dtype, compile, lr, r1_gamma,
                             pl_weight, style_mixing, ema_kimg=ema_kimg)
  real = torch.rand(batch_size, 3, resolution, resolution, device=device) * 2 - 1
  c = (F.one_hot(torch.arange(batch_size) % c_dim, c_dim).float().to(device) if c_dim else None)
  wait = timing.torch_wait(device)

  def cycle():  # the first call builds (and under --compile compiles) everything
    for idx in range(CYCLE):
      out = iteration(idx, real, c)
    return out
  first_s, times = timing.time_calls(cycle, steps, warmup, wait)
  result = timing.torch_record(
      "torch_stylegan2", device, compile, batch_size, dtype, first_s, times,
      steps_per_call=CYCLE, n_critic=1, resolution=resolution, g_params=count(G),
      d_params=count(D), iterations_per_call=CYCLE, channel_base=channel_base,
      channel_max=channel_max, z_dim=z_dim, w_dim=w_dim, map_layers=map_layers, c_dim=c_dim,
      num_ws=G.num_ws, modconv=modconv, r1_gamma=r1_gamma, pl_weight=pl_weight,
      style_mixing=style_mixing, g_reg_interval=G_REG_INTERVAL, d_reg_interval=D_REG_INTERVAL,
      lr=lr, ema_kimg=ema_kimg)
  if time_without_reg:  # single plain iterations: Gmain, Dmain, EMA
    _, plain = timing.time_calls(lambda: iteration(1, real, c, regularize=False), steps,
                                 min(warmup, 1), wait)
    plain_stats = timing.per_step(plain, batch_size)
    result["step_ms_without_reg"] = plain_stats["step_ms"]
    result["imgs_per_sec_without_reg"] = plain_stats["imgs_per_sec"]
  return result


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch_size", type=int, default=16)
  p.add_argument("--resolution", type=int, default=64)
  # the untimed first call (16 iterations) already warms up; on a shared 2-core CPU one
  # iteration at the defaults took 39 s
  p.add_argument("--steps", type=int, default=2, help="timed calls of 16 iterations each")
  p.add_argument("--warmup", type=int, default=0,
                 help="untimed calls of 16 iterations each, after the untimed first call")
  p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
  p.add_argument("--device", default="cpu")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--compile", action="store_true", help="torch.compile G's mapping and synthesis, and D")
  p.add_argument("--channel_base", type=int, default=8192)
  p.add_argument("--channel_max", type=int, default=128)
  p.add_argument("--z_dim", type=int, default=128)
  p.add_argument("--w_dim", type=int, default=128)
  p.add_argument("--map_layers", type=int, default=2)
  p.add_argument("--c_dim", type=int, default=0, help="classes (0: unconditional)")
  p.add_argument("--modconv", default="fused", choices=["fused", "unfused"])
  p.add_argument("--r1_gamma", type=float, default=None,
                 help="R1 weight (default: NVIDIA's 'auto' 0.0002 * resolution^2 / batch_size)")
  p.add_argument("--pl_weight", type=float, default=2.0)
  p.add_argument("--style_mixing", type=float, default=0.9)
  p.add_argument("--ema_kimg", type=float, default=10.0)
  p.add_argument("--lr", type=float, default=0.0025)
  p.add_argument("--no_plain_timing", action="store_true",
                 help="skip timing iterations without the regularizers")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  timing.emit(measure(a.batch_size, a.resolution, a.steps, a.warmup, a.device, a.dtype, a.compile,
                      a.threads, a.channel_base, a.channel_max, a.z_dim, a.w_dim, a.map_layers,
                      a.c_dim, a.modconv, a.r1_gamma, a.pl_weight, a.style_mixing, a.ema_kimg,
                      a.lr, not a.no_plain_timing), a.json)


if __name__ == "__main__":
  main()
