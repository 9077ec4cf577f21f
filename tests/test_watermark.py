"""The learned watermark: its game, its attacks, its weights file and the shipped weights."""
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import config_path
from runs import assert_resumed_as, stopped_copy
from test_cli import assert_one_clear_error
from test_games import assert_close_to_scale
from test_step import load_config, run
from gan_jax import attacks, cli, watermark
from gan_jax.data import embedded
from gan_jax.errors import UserError
from gan_jax.metrics import pairs


def test_message_is_the_keys_hash():
  a = watermark.message("alice", 32)
  assert a.shape == (32,) and set(np.unique(a)) <= {0.0, 1.0}
  np.testing.assert_array_equal(a, watermark.message("alice", 32))
  assert np.sum(a != watermark.message("bob", 32)) > 4
  expected = np.unpackbits(np.frombuffer(bytes.fromhex(  # sha256("alice"), first 4 bytes
      "2bd806c9"), np.uint8)).astype(np.float32)
  np.testing.assert_array_equal(a, expected)
  with pytest.raises(UserError, match="non-empty string"):
    watermark.message("", 32)


def test_p_value_is_the_binomial_tail():
  assert watermark.p_value(0, 32) == 1.0
  assert watermark.p_value(32, 32) == 2.0 ** -32
  assert watermark.p_value(24, 32) < watermark.P_VALUE <= watermark.p_value(23, 32)
  assert abs(watermark.p_value(17, 32) - 0.43) < 0.01


def test_jpeg_stand_in_tracks_pillows_jpeg():
  """The training's JPEG (DCT, luminance table, rounding) lands near pillow's on a grey picture:
  far closer to it than JPEG's own change."""
  rng = np.random.default_rng(0)
  smooth = np.cumsum(np.cumsum(rng.normal(0, 4, (64, 64)), 0), 1)
  picture = np.clip(128 + 100 * smooth / np.abs(smooth).max(), 0, 255).astype(np.uint8)[..., None]
  picture[20:40, 20:40] = 255  # an edge for JPEG to ring around
  for quality in (50, 75, 90):
    real = attacks.jpeg(picture, quality).astype(np.float64)
    ours = attacks.jpeg_like(jnp.asarray(picture[None], jnp.float32) / 127.5 - 1.0,
                             jnp.asarray([float(quality)]))
    ours = (np.asarray(ours[0]) + 1.0) * 127.5
    change = np.abs(real - picture).mean()
    assert change > 0.5, quality
    assert np.abs(ours - real).mean() < 0.5 * change, quality


def test_training_attacks_are_differentiable_and_random():
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3), minval=-1, maxval=1)
  grad = jax.grad(lambda x: jnp.sum(attacks.noisy(x, jax.random.key(1), 0.5) * x))(x)
  assert np.all(np.isfinite(grad)) and np.abs(grad).mean() > 0.1
  a, b = attacks.noisy(x, jax.random.key(1)), attacks.noisy(x, jax.random.key(2))
  assert np.abs(a - b).max() > 0.1
  none = attacks.noisy(x, jax.random.key(1), 0.0)  # only the 8-bit rounding
  assert np.abs(none - x).max() <= 0.5 / 127.5 + 1e-6


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_real_attacks_keep_uint8_pictures(name):
  picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
  out = attacks.ATTACKS[name](picture)
  assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[-1] == 3
  assert 16 <= out.shape[0] <= 64


def test_jit_and_pmap_agree():
  config = load_config("watermark")
  jitted, metrics = run(config, "jit", steps=2)
  for key in ("d_loss", "g_loss", "bit_accuracy", "psnr", "message", "clean"):
    assert np.isfinite(metrics[key]), key
  mapped, _ = run(config, "pmap", steps=2)
  assert int(jitted.step) == int(mapped.step) == 2
  assert_close_to_scale(mapped, jitted, 2e-4)


def train(workdir, *flags):
  return cli.main(["train", f"--config={config_path('watermark')}", f"--workdir={workdir}",
                   "--noprogress", *flags])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("watermark")
  assert train(workdir / "whole") == 0
  return workdir


def test_resume_is_bitwise_equal(smoke_run):
  split = smoke_run / "split"
  assert stopped_copy(smoke_run / "whole", split) == 2
  assert train(split) == 0
  assert assert_resumed_as(split, smoke_run / "whole")[0] == 4


def test_weights_file_from_a_run(smoke_run, tmp_path, monkeypatch):
  out = tmp_path / "wm.npz"
  run = str(smoke_run / "whole")
  assert cli.main(["watermark-weights", f"--workdir={run}", f"--out={out}", "--tune_steps=0"]) == 0
  with np.load(out) as f:  # arrays only: loads without pickle
    assert "settings" in f.files and all(k.startswith(("encoder/", "decoder/", "settings"))
                                         for k in f.files)
  wm = watermark.Watermark(str(out))
  pictures = np.full((3, 24, 40, 1), 90, np.uint8)  # any size, grey
  marked = wm.mark(pictures, "k")
  assert marked.shape == pictures.shape and marked.dtype == np.uint8
  assert 0 < np.abs(marked.astype(int) - 90).max() < 40
  assert wm.read(marked).shape == (3, wm.bits)
  assert set(wm.check(marked[0], "k")) == {"bits", "bit_accuracy", "p_value", "detected"}
  with pytest.raises(UserError, match="uint8 pictures"):
    wm.mark(pictures.astype(np.float32))
  # By default the decoder is then tuned on the real operations (here briefly, on few
  # pictures): the encoder is the run's, so what was marked before reads as before.
  monkeypatch.setattr(watermark, "TUNE_SIDES", (32, 48))
  monkeypatch.setattr(watermark, "TUNE_PER_SIDE", 8)
  tuned = tmp_path / "tuned.npz"
  assert cli.main(["watermark-weights", f"--workdir={run}", f"--out={tuned}", "--tune_steps=3",
                   "--noprogress"]) == 0
  with np.load(out) as a, np.load(tuned) as b:
    assert a.files == b.files
    for k in a.files:
      if not k.startswith("decoder/"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not all(np.array_equal(a[k], b[k]) for k in a.files if k.startswith("decoder/"))
  np.testing.assert_array_equal(watermark.Watermark(str(tuned)).mark(pictures, "k"), marked)
  # --strength sets how loud the encoder marks (the run's model.strength by default)
  loud = tmp_path / "loud.npz"
  assert cli.main(["watermark-weights", f"--workdir={run}", f"--out={loud}", "--tune_steps=0",
                   "--strength=0.1"]) == 0
  grey = np.full((2, 64, 64, 1), 128, np.uint8)
  rms = lambda wm: np.sqrt(np.mean((wm.mark(grey, "k").astype(float) - 128) ** 2)) / 127.5
  quiet, louder = rms(wm), rms(watermark.Watermark(str(loud)))
  np.testing.assert_allclose(louder / quiet, 0.1 / wm.encoder.strength, rtol=0.15)


def test_decoder_reads_what_it_is_tuned_on(shipped):
  """`tune_decoder` feeds the decoder `decoder_input`s it made once; read whole, a picture gives
  the same logits."""
  from gan_jax.models import watermark as nets
  x = jax.random.uniform(jax.random.key(0), (2, 40, 56, 3), minval=-1, maxval=1)
  whole = shipped.decoder.apply({"params": shipped.decoder_params}, x)
  prepared = shipped.decoder.apply({"params": shipped.decoder_params},
                                   nets.decoder_input(x, shipped.decoder.side), prepared=True)
  np.testing.assert_array_equal(whole, prepared)


def test_random_chain_draws_each_operation():
  picture = embedded.photo_crops("train", 64, 1)[0]
  rng = np.random.default_rng(0)
  outs = [attacks.random_chain(picture, rng) for _ in range(40)]
  assert all(o.dtype == np.uint8 and o.shape[-1] == 3 for o in outs)
  sides = [o.shape[0] for o in outs]
  assert min(sides) < 40 and sides.count(64) > 10  # downscaled to 40-100%, half the time
  assert sum(np.array_equal(o, picture) for o in outs) >= 1  # sometimes nothing happens
  assert len({o.tobytes() for o in outs}) > 30


@pytest.mark.parametrize("argv,expected", [
    (["watermark-weights"], "watermark-weights needs --workdir=..."),
    (["watermark-weights", "--workdir=/nonexistent/run"], "/nonexistent/run"),
    (["watermark-weights", "--workdir=/nonexistent/run", "--strength=0"], "would hide nothing"),
])
def test_weights_verb_errors(argv, expected, capsys):
  assert cli.main(argv) == 2
  assert_one_clear_error(capsys, expected)


def test_unreadable_weights_are_one_sentence(tmp_path):
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not an npz")
  with pytest.raises(UserError, match="could not be read"):
    watermark.Watermark(str(bad))


# --- the shipped weights ------------------------------------------------------------------------

def held_out_crops(side, num):
  return embedded.photo_crops("test", side, num, seed=1)


@pytest.fixture(scope="module")
def shipped():
  return watermark.Watermark()


def test_shipped_watermark_is_quiet_and_read_back(shipped):
  clean = held_out_crops(64, 16)
  keys = [f"test-{i}" for i in range(16)]
  marked = np.stack([shipped.mark(p, k) for p, k in zip(clean, keys)])
  as_float = lambda x: x.astype(np.float64) / 127.5 - 1.0
  assert pairs.psnr(as_float(marked), as_float(clean)) >= 38.0
  found = [shipped.check(p, k) for p, k in zip(marked, keys)]
  assert np.mean([f["detected"] for f in found]) >= 0.9
  assert np.mean([f["bit_accuracy"] for f in found]) >= 0.9
  false = [shipped.check(p, k)["detected"] for p, k in zip(clean, keys)]
  assert sum(false) <= 1
  # a PNG keeps the mark exactly; a picture marked with another key is not taken for this one
  png = io.BytesIO()
  Image.fromarray(marked[0]).save(png, "png")
  assert shipped.check(np.asarray(Image.open(png)), keys[0])["detected"]
  assert not shipped.check(marked[0], "someone else")["detected"]


def test_verbs_mark_what_they_write_unless_told_not_to(cgan, tmp_path, shipped):
  """`sample` marks its picture with the default key, or --watermark_key's; --no-watermark
  writes the model's pixels as they are."""
  for name, flags in (("plain", ["--no-watermark"]), ("default", []),
                      ("mine", ["--watermark_key=mine"])):
    assert cli.main(["sample", f"--workdir={cgan}", "--num=4", "--seed=3",
                     f"--out={tmp_path / name}.png", *flags]) == 0
  read = lambda name: np.asarray(Image.open(tmp_path / f"{name}.png"))
  plain, default, mine = read("plain"), read("default"), read("mine")
  assert 0 < np.abs(default.astype(int) - plain).mean() < 8
  grey = lambda p: p[..., None] if p.ndim == 2 else p
  assert watermark.apply(grey(plain)).shape == grey(plain).shape
  with watermark.marking(None):  # the module's switch, as --no-watermark sets it
    np.testing.assert_array_equal(watermark.apply(plain), plain)
  with watermark.marking("mine"):
    np.testing.assert_array_equal(watermark.apply(grey(plain)), grey(mine))


def test_detect_reports_each_file(tmp_path, shipped, capsys):
  from gan_jax import provenance, reporting
  pictures = held_out_crops(64, 3)
  fields = provenance.label("watermark_test", "/runs/x", 10, 0, "0123456789abcdef")
  root = tmp_path / "mixed"
  (root / "sub").mkdir(parents=True)
  reporting.save_picture(str(root / "marked.png"), pictures[0], provenance=fields)
  with watermark.marking(None):
    reporting.save_picture(str(root / "sub" / "unmarked.png"), pictures[1], provenance=fields)
  Image.fromarray(pictures[2]).save(root / "real.jpg", quality=95)
  reporting.save_animation(str(root / "clip.gif"), np.stack([pictures[0]] * 3), provenance=fields)
  (root / "broken.png").write_bytes(b"\x89PNG not really")
  out = tmp_path / "report.json"
  assert cli.main(["detect", str(root), f"--out={out}", "--noprogress"]) == 0
  assert "5 files:" in capsys.readouterr().out
  import json
  report = json.loads(out.read_text())
  by_path = {f["path"]: f for f in report["files"]}
  assert set(by_path) == {"marked.png", "sub/unmarked.png", "real.jpg", "clip.gif", "broken.png"}
  assert by_path["broken.png"]["error"].startswith("unreadable")
  assert by_path["marked.png"]["watermark"]["detected"]
  assert not by_path["sub/unmarked.png"]["watermark"]["detected"]
  assert not by_path["real.jpg"]["watermark"]["detected"] and by_path["real.jpg"]["labels"] is None
  assert by_path["marked.png"]["labels"]["config"] == "watermark_test"
  assert by_path["sub/unmarked.png"]["labels"] is not None  # labelled, not marked
  for f in report["files"]:  # the shipped detector scores every readable file, clips too
    scored = f["path"] != "broken.png"
    for score in ("detector_score", "spectral_score"):
      assert (0 <= f[score] <= 1) if scored else f[score] is None, (f["path"], score)
  s = report["summary"]
  assert (s["files"], s["unreadable"], s["labelled"], s["key"]) == (5, 1, 3, "gan_jax")
  assert s["watermarked"] >= 1
  assert s["detector_generated"] == sum(f["detector_score"] >= 0.5 for f in report["files"]
                                        if f["detector_score"] is not None)
  # another key finds no mark of its own; one file is printed as JSON
  assert cli.main(["detect", str(root / "marked.png"), "--key=other", "--noprogress"]) == 0
  single = json.loads(capsys.readouterr().out)
  assert single["files"][0]["path"] == str(root / "marked.png")
  assert not single["files"][0]["watermark"]["detected"]


@pytest.mark.parametrize("argv,expected", [
    (["detect"], "detect takes one path"),
    (["detect", "/nonexistent/x.png"], "does not exist"),
    (["detect", ".", "--key="], "non-empty string"),
    (["sample", "--workdir=/nonexistent", "--watermark_key="], "non-empty string"),
])
def test_detect_and_key_errors(argv, expected, capsys):
  assert cli.main(argv) == 2
  assert_one_clear_error(capsys, expected)


# Cropping moves the mark's cells, and the decoder reads them by position: after crop0.8 (and
# "all", which crops) the plain read is at chance; `check`'s reframed reads find it (next test).
@pytest.mark.parametrize("name", [a for a in attacks.ATTACKS if a not in ("crop0.8", "all")])
def test_shipped_watermark_survives_each_attack(shipped, name):
  clean = held_out_crops(128, 8)
  keys = [f"attack-{i}" for i in range(8)]
  marked = [attacks.ATTACKS[name](shipped.mark(p, k)) for p, k in zip(clean, keys)]
  accuracy = np.mean([shipped.check(p, k)["bit_accuracy"] for p, k in zip(marked, keys)])
  assert accuracy >= 0.85, (name, accuracy)


def test_shipped_watermark_survives_jpeg_after_halving_at_64(shipped):
  """The goal: 95% detected at 1% false positives after resize 0.5 then JPEG 75, from 64x64
  up (here 32 held-out pictures at 64, the smallest side, and their clean twins)."""
  clean = held_out_crops(64, 32)
  keys = [f"goal-{i}" for i in range(32)]
  attack = attacks.ATTACKS["jpeg75+resize0.5"]
  found = [shipped.check(attack(shipped.mark(p, k)), k)["detected"] for p, k in zip(clean, keys)]
  assert np.mean(found) >= 0.9
  assert sum(shipped.check(attack(p), k)["detected"] for p, k in zip(clean, keys)) <= 1


def test_shipped_watermark_is_found_in_crops(shipped):
  """A crop keeping 80% of each side: the plain read is chance, the reframed reads find most;
  clean crops stay unflagged (the reframed reads' p-values are multiplied by their number)."""
  clean = held_out_crops(128, 16)
  keys = [f"crop-{i}" for i in range(16)]
  cropped = [attacks.centre_crop(shipped.mark(p, k), 0.8) for p, k in zip(clean, keys)]
  plain = [shipped.verdict(shipped.read(p) > 0, k)["bit_accuracy"] for p, k in zip(cropped, keys)]
  assert np.mean(plain) < 0.65
  found = [shipped.check(p, k) for p, k in zip(cropped, keys)]
  assert np.mean([f["detected"] for f in found]) >= 0.5
  assert all(f.get("reframed") for f in found if f["detected"])
  false = [shipped.check(attacks.centre_crop(p, 0.8), k)["detected"] for p, k in zip(clean, keys)]
  assert sum(false) <= 1


@pytest.mark.parametrize("verb", [["sample"], ["translate", "--input=X", "--out=Y"],
                                  ["export-model", "--out=m.jax"], ["directions"]])
def test_generator_verbs_on_a_watermark_run_are_one_sentence(smoke_run, verb, capsys):
  assert cli.main([verb[0], f"--workdir={smoke_run / 'whole'}", *verb[1:]]) == 2
  assert_one_clear_error(capsys, "watermark-weights --workdir=")
