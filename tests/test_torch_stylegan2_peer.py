"""benchmarks/peers/torch_stylegan2.py: NVIDIA's parameter counts, a tiny timed run, the
regularizers and their lazy schedule."""
import json
import math
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch peer needs torch (pip install torch)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "peers", "torch_stylegan2.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import torch_stylegan2 as sg  # noqa: E402

TINY = dict(resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16, map_layers=2)

# (resolution, channel_base, channel_max, z_dim, w_dim, map_layers, c_dim) -> (G, D) parameter
# counts printed by NVIDIA's own networks: NVlabs/stylegan2-ada-pytorch at commit d72cc7d,
# training.networks.Generator(z_dim, c_dim, w_dim, img_resolution, img_channels=3,
# mapping_kwargs={num_layers}, synthesis_kwargs={channel_base, channel_max}) and
# Discriminator(c_dim, img_resolution, img_channels=3, channel_base, channel_max) with all other
# arguments at their defaults, built on CPU, sum(p.numel() for p in net.parameters()).
NVIDIA_COUNTS = {
    (1024, 32768, 512, 512, 512, 8, 0): (30370060, 29012513),  # config F (FFHQ 1024)
    (256, 16384, 512, 512, 512, 2, 0): (23191522, 24001089),  # train.py --cfg=auto at 256
    (64, 8192, 128, 128, 128, 2, 0): (1596440, 1657857),  # this peer's defaults
    (16, 256, 16, 16, 16, 2, 10): (15166, 19056),  # tiny, conditional (G embed, D label mapping)
}


@pytest.mark.parametrize("setting", sorted(NVIDIA_COUNTS))
def test_parameter_counts_match_nvidia(setting):
  resolution, base, cmax, z_dim, w_dim, layers, c_dim = setting
  G, D = sg.build(resolution, base, cmax, z_dim, w_dim, layers, c_dim)
  assert (sg.count(G), sg.count(D)) == NVIDIA_COUNTS[setting]
  assert G.num_ws == 2 * int(math.log2(resolution)) - 2


def test_tiny_run_prints_json():
  args = [f"--{k}={v}" for k, v in TINY.items()] + [
      "--batch_size=4", "--steps=1", "--warmup=0", "--threads=1"]
  out = subprocess.run([sys.executable, SCRIPT] + args, check=True, capture_output=True,
                       text=True, timeout=120).stdout
  r = json.loads(out)
  assert r["config"] == "torch_stylegan2" and r["backend"] == "torch cpu"
  assert r["batch_size"] == 4 and r["resolution"] == 16 and r["iterations_per_call"] == 16
  assert r["imgs_per_sec"] > 0 and r["step_ms"]["median"] > 0
  assert r["step_ms_without_reg"]["median"] > 0
  assert (r["g_params"], r["d_params"]) == (sg.count(sg.build(**TINY)[0]),
                                            sg.count(sg.build(**TINY)[1]))


def test_r1_matches_finite_differences():
  torch.manual_seed(0)
  D = sg.Discriminator(resolution=8, channel_base=32, channel_max=4, mbstd_group=2).double()
  real = torch.randn(2, 3, 8, 8, dtype=torch.float64)
  gamma = 3.0
  r1, _ = sg.r1_term(D, real, gamma)
  # central differences of sum D(x) in every input coordinate (mbstd couples the two samples,
  # as in NVIDIA's R1), all in one batch: mbstd groups sample k with sample k + P, so copy k's
  # two samples sit at k and P + k
  eps, n = 1e-6, real.numel()
  delta = torch.eye(n, dtype=torch.float64).view(n, *real.shape) * eps
  copies = torch.cat([real + delta, real - delta])  # [2n, 2, 3, 8, 8]
  with torch.no_grad():
    out = D(copies.transpose(0, 1).reshape(-1, 3, 8, 8)).view(2, 2 * n).sum(0)
  grad = (out[:n] - out[n:]) / (2 * eps)
  expected = gamma / 2 * grad.view_as(real).square().sum(dim=[1, 2, 3])
  torch.testing.assert_close(r1.detach(), expected, rtol=1e-6, atol=1e-9)
  assert (r1 > 0).all()


def test_path_length_penalty_and_pl_mean_decay():
  torch.manual_seed(0)
  G = sg.Generator(**TINY)
  ws = G.mapping(torch.randn(3, TINY["z_dim"])).detach().requires_grad_(True)
  pl_mean = torch.tensor(0.5)
  penalty, lengths, img = sg.path_length_penalty(G.synthesis, ws, pl_mean, decay=0.01)
  assert img.shape == (3, 3, 16, 16) and penalty.shape == lengths.shape == (3,)
  assert torch.isfinite(penalty).all() and (lengths > 0).all()
  expected_mean = 0.5 + 0.01 * (lengths.mean().item() - 0.5)
  assert pl_mean.item() == pytest.approx(expected_mean, rel=1e-6)
  torch.testing.assert_close(penalty, (lengths - expected_mean).square())
  penalty.mean().backward()  # the double backward NVIDIA's Greg phase takes
  assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)


def test_lazy_regularization_schedule_and_adam(monkeypatch):
  calls = {"pl": 0, "r1": 0}
  for name, key in (("path_length_penalty", "pl"), ("r1_term", "r1")):
    fn = getattr(sg, name)

    def counted(*a, fn=fn, key=key, **k):
      calls[key] += 1
      return fn(*a, **k)
    monkeypatch.setattr(sg, name, counted)
  torch.set_num_threads(1)
  torch.manual_seed(0)
  G, D = sg.build(**TINY)
  G, D = G.requires_grad_(False), D.requires_grad_(False)
  G_ema = sg.copy.deepcopy(G).eval()
  before = [p.clone() for p in G_ema.parameters()]
  it = sg.make_iteration(G, D, G_ema, 4, torch.device("cpu"), r1_gamma=1.0)
  real = torch.rand(4, 3, 16, 16) * 2 - 1
  for idx in range(sg.CYCLE):
    d_loss, g_loss = it(idx, real)
  assert calls == {"pl": 4, "r1": 1}  # Greg every 4th iteration, Dreg every 16th
  assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and it.pl_mean.item() > 0
  it(0, real, regularize=False)
  assert calls == {"pl": 4, "r1": 1}
  assert any(not torch.equal(a, b) for a, b in zip(before, G_ema.parameters()))
  opt = sg.adam([torch.nn.Parameter(torch.zeros(1))], 0.0025, 4)  # c = 4/5
  assert opt.defaults["lr"] == pytest.approx(0.002)
  assert opt.defaults["betas"] == pytest.approx((0.0, 0.99 ** 0.8))
