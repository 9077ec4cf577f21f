"""benchmarks/peers/torch_video.py: our MoCoGAN's parameter counts at the smoke sizes, the same
outputs and input gradients on the same weights, a tiny timed run (the command compare.py gives)
that prints JSON, and a step that moves all three nets and the EMA."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_step import load_config
from gan_jax.data.sources import DataSpec
from gan_jax.models import video

torch = pytest.importorskip("torch", reason="the PyTorch peer needs torch (pip install torch)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "peers", "torch_video.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import torch_video as peer  # noqa: E402


def sizes(config):
  d, m = config.data, config.model
  return dict(resolution=d.resolution, frames=d.frames, channels=d.channels,
              content_dim=m.content_dim, motion_dim=m.motion_dim, g_width=m.g_width,
              d_width=m.d_width, v_width=m.v_width, time_kernel=m.time_kernel)


@pytest.fixture(scope="module")
def ours():
  """The smoke config's sizes and our three nets' variables (initialised) and modules."""
  config = load_config("video_digits")
  s = sizes(config)
  spec = DataSpec((s["frames"], s["resolution"], s["resolution"], s["channels"]), "uint8", 10)
  g, image_d, video_d = video.build(config, spec)
  k_g, k_i, k_v = jax.random.split(jax.random.key(0), 3)
  content = jnp.zeros((2, s["content_dim"]))
  noise = jnp.zeros((2, s["frames"], s["motion_dim"]))
  clips = jnp.zeros((2,) + spec.shape)
  variables = jax.jit(lambda: (g.init(k_g, content, noise), image_d.init(k_i, clips[:, 0]),
                               video_d.init(k_v, clips)))()
  return s, (g, image_d, video_d), variables


def count(variables):
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(variables["params"])))


def test_parameter_counts_equal_ours(ours):
  s, _, (gv, iv, vv) = ours
  G, image_d, video_d = peer.build(**s)
  assert peer.count(G) == count(gv)
  assert (peer.count(image_d), peer.count(video_d)) == (count(iv), count(vv))
  # the config's own sizes too (the compare run's): a GRU of width 10 has 640 parameters, as
  # flax's GRUCell, where torch.nn.GRU would have 660
  s = sizes(load_config("video_digits", arg=None))
  assert s["frames"] == 16 and s["resolution"] == 64
  G, image_d, video_d = peer.build(**s)
  assert peer.count(G.gru) == 640
  assert (peer.count(G), peer.count(image_d) + peer.count(video_d)) == (296288, 872576)


def test_same_outputs_and_gradients_on_the_same_weights(ours):
  s, (g, image_d, video_d), (gv, iv, vv) = ours
  gv, iv, vv = jax.tree.map(np.asarray, (gv, iv, vv))
  G, Di, Dv = peer.build(**s)
  for net, variables in ((G, gv), (Di, iv), (Dv, vv)):
    peer.load_flax(net, variables)
    net.train()
  rng = np.random.default_rng(0)
  content = rng.standard_normal((3, s["content_dim"])).astype(np.float32)
  noise = rng.standard_normal((3, s["frames"], s["motion_dim"])).astype(np.float32)
  clips, _ = jax.jit(lambda c, n: g.apply(gv, c, n, mutable=["batch_stats"]))(content, noise)
  out = G(torch.tensor(content), torch.tensor(noise)).detach().numpy()
  np.testing.assert_allclose(out.transpose(0, 1, 3, 4, 2), clips, atol=1e-5)

  for ours_d, variables, theirs, x in ((image_d, iv, Di, np.asarray(clips[:, 0])),
                                       (video_d, vv, Dv, np.asarray(clips))):
    f = lambda v: ours_d.apply(variables, v, mutable=["batch_stats"])[0]  # pylint: disable=cell-var-from-loop
    logits, grad = jax.jit(lambda v: (f(v), jax.grad(lambda u: jnp.sum(f(u)))(v)))(x)  # pylint: disable=cell-var-from-loop
    to_torch = (0, 3, 1, 2) if x.ndim == 4 else (0, 1, 4, 2, 3)
    xt = torch.tensor(x.transpose(to_torch)).requires_grad_(True)
    logits_t = theirs(xt)
    (grad_t,) = torch.autograd.grad(logits_t.sum(), xt)
    scale = float(np.max(np.abs(logits)))
    np.testing.assert_allclose(logits_t.detach().numpy(), logits, atol=1e-5 * scale)
    np.testing.assert_allclose(grad_t.numpy().transpose(np.argsort(to_torch)), grad,
                               atol=1e-5 * float(np.max(np.abs(grad))))


def compare_command(config_arg):
  """benchmarks/compare.py's peer command for configs/video_digits.py:`config_arg` (compare.py
  defines absl flags that other benchmark modules also define, so it is asked in a subprocess)."""
  code = ("import json, sys; sys.path.insert(0, 'benchmarks'); sys.path.insert(0, 'tests'); "
          "import compare; from test_step import load_config; "
          f"print(json.dumps(compare.peer_command(load_config('video_digits', {config_arg!r}), 4)))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True,
                       text=True, timeout=120).stdout
  return json.loads(out.splitlines()[-1])


def test_compare_runs_the_peer_at_the_configs_sizes(ours):
  s = ours[0]
  cmd = compare_command("smoke")
  assert os.path.basename(cmd[0]) == "torch_video.py"
  for key, value in s.items():
    assert f"--{key}={value}" in cmd
  out = subprocess.run([sys.executable] + cmd + ["--steps=2", "--warmup=0", "--threads=1"],
                       check=True, capture_output=True, text=True, timeout=120).stdout
  r = json.loads(out)
  assert r["config"] == "torch_video" and r["backend"] == "torch cpu"
  assert r["batch_size"] == 4 and r["frames"] == s["frames"] and r["image_frames"] == 2
  assert r["imgs_per_sec"] > 0 and r["step_ms"]["median"] > 0
  _, _, (gv, iv, vv) = ours
  assert (r["g_params"], r["d_params"]) == (count(gv), count(iv) + count(vv))


def test_step_trains_and_keeps_the_ema():
  """Two steps move G, both critics and the EMA (which starts as G and trails it)."""
  torch.manual_seed(0)
  s = dict(resolution=8, frames=3, channels=1, content_dim=4, motion_dim=3, g_width=4,
           d_width=4, v_width=4, time_kernel=2)
  G, Di, Dv = peer.build(**s)
  before = [torch.cat([p.detach().flatten().clone() for p in n.parameters()]) for n in (G, Di, Dv)]
  it = peer.make_iteration(G, Di, Dv, 2, s["frames"], s["content_dim"], s["motion_dim"], 2,
                           torch.device("cpu"))
  real = torch.randint(0, 256, (2, s["frames"], 1, 8, 8), dtype=torch.uint8)
  for _ in range(2):
    d_loss, g_loss = it(real)
  assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
  after = [torch.cat([p.detach().flatten() for p in n.parameters()]) for n in (G, Di, Dv)]
  assert all(not torch.equal(a, b) for a, b in zip(before, after))
  ema = torch.cat([e.flatten() for e in it.ema])
  # step 0's decay is 1/10, step 1's 2/11: the EMA lies between the start and G's weights
  assert not torch.equal(ema, after[0]) and not torch.equal(ema, before[0])
