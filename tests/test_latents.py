"""Latent codes, walks and directions (`gan_jax.latents`, `sampling.walk`, `gan_jax.directions`):
closed forms, the spaces of a StyleGAN2, and the `interpolate` and `directions` verbs end to end."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import gan_jax
from gan_jax import cli, directions, latents
from gan_jax.models import dcgan, resnet
from runs import trained


@pytest.fixture(scope="module")
def style(tmp_path_factory):
  return trained(tmp_path_factory, "stylegan2_digits")


def run(*argv):
  return cli.main(list(map(str, argv)))


# --- closed forms ------------------------------------------------------------------------------

def test_slerp_keeps_the_ends_and_the_norm_of_equal_length_codes():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 64))
  b *= np.linalg.norm(a) / np.linalg.norm(b)
  t = np.linspace(0, 1, 9)[:, None]
  path = latents.slerp(a[None], b[None], t)
  np.testing.assert_allclose(path[0], a, atol=1e-5)
  np.testing.assert_allclose(path[-1], b, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
  # The chord's midpoint is shorter: slerp does not pass near the origin as lerp does.
  assert np.linalg.norm(latents.lerp(a, b, 0.5)) < 0.9 * np.linalg.norm(path[4])
  np.testing.assert_allclose(latents.slerp(a[None], a[None], t), np.repeat(a[None], 9, 0),
                             atol=1e-5)  # equal ends: no division by sin(0)


def test_sefa_directions_are_the_closed_form_of_a_random_linear_layer():
  """SeFa's directions maximise ||A_n^T d|| over unit d (A_n: A with unit columns): orthonormal,
  in the order of their gain, and no random unit vector gains more than the first."""
  rng = np.random.default_rng(1)
  weights = rng.normal(size=(16, 40)) * rng.uniform(0.1, 3, size=(1, 40))
  vectors = directions.sefa_vectors(weights, 5)
  unit = weights / np.linalg.norm(weights, axis=0, keepdims=True)
  np.testing.assert_allclose(vectors @ vectors.T, np.eye(5), atol=1e-6)
  gains = np.linalg.norm(vectors @ unit, axis=1)
  singular = np.linalg.svd(unit, compute_uv=False)
  np.testing.assert_allclose(gains, singular[:5], rtol=1e-6)
  trials = rng.normal(size=(2000, 16))
  trials /= np.linalg.norm(trials, axis=1, keepdims=True)
  assert np.linalg.norm(trials @ unit, axis=1).max() <= gains[0] + 1e-9


def test_the_first_layer_reading_z_is_found_in_conditional_g(cgan):
  """SeFa's weights for a DCGAN are the z rows of G's first dense kernel (the label's rows,
  which do not read z, left out), found from G without naming the layer."""
  model = gan_jax.load(cgan)
  space, weights = model.game.latent_map(model.state, model.ema)
  kernel = np.asarray(model.generator()[1]["params"]["Dense_0"]["kernel"])
  assert space == "z"
  np.testing.assert_allclose(weights, kernel[:model.config.model.latent_dim], atol=1e-6)


@pytest.mark.parametrize("build", [
    lambda: dcgan.Generator(resolution=8, channels=1, width=8, num_classes=10),
    lambda: resnet.Generator(resolution=32, channels=3, width=8, num_classes=10),
    lambda: resnet.Generator(resolution=32, channels=3, width=8, num_classes=10, shared_dim=8)],
    ids=["dcgan", "sngan", "biggan"])
def test_class_weights_draw_what_class_ids_draw(build):
  """Label walks give G class weights [B, C]: a one-hot weight draws exactly its class (StyleGAN2
  takes NVIDIA's c, weights already)."""
  g = build()
  z, ids = jax.random.normal(jax.random.key(0), (4, 32)), jnp.array([1, 2, 3, 9])
  variables = g.init(jax.random.key(1), z, ids, train=False)
  noisy = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.key(2), x.shape)
                       if x.dtype == jnp.float32 else x, variables)  # embeddings start at 0
  draw = jax.jit(lambda labels: g.apply(noisy, z, labels, train=False))
  by_id, by_weight = draw(ids), draw(jax.nn.one_hot(ids, 10))
  # to rounding: a gather and a one-hot product compile to differently fused programs
  np.testing.assert_allclose(by_id, by_weight, atol=1e-4)
  mixed = draw(0.5 * jax.nn.one_hot(ids, 10) + 0.5 * jax.nn.one_hot(ids - 1, 10))
  assert np.abs(np.asarray(mixed - by_id)).max() > 1e-4


# --- a trained model's codes -------------------------------------------------------------------

def test_latents_render_what_sample_draws_and_save_as_files(cgan, tmp_path):
  model = gan_jax.load(cgan)
  codes = model.latents(6, seed=3, labels=4)
  np.testing.assert_array_equal(model.render(codes), model.sample(6, seed=3, labels=4))
  path = codes.save(tmp_path / "c.npz", step=model.step)
  again = latents.load(str(path))
  assert again.space == "z" and again.labels.tolist() == [4] * 6
  np.testing.assert_array_equal(again.codes, codes.codes)
  (tmp_path / "bad.npz").write_bytes(b"not a zip")
  with pytest.raises(gan_jax.UserError, match="is not a latent file"):
    latents.load(str(tmp_path / "bad.npz"))


def test_stylegan2_codes_move_forward_through_its_spaces(style):
  model = gan_jax.load(style)
  assert model.spaces == ("z", "w", "w+")
  z = model.latents(3, seed=5, space="z")
  w, wplus = model.to_space(z, "w"), model.to_space(z, "w+")
  assert wplus.codes.shape[1:] == model.game.code_shapes()["w+"]
  samples = model.sample(3, seed=5)
  for codes in (z, w, wplus, model.latents(3, seed=5)):
    np.testing.assert_allclose(model.render(codes), samples, atol=1e-5)
  fn, variables = model.generator(space="w")  # the pure form `project` differentiates
  np.testing.assert_allclose(jax.jit(fn)(variables, w.codes), samples, atol=1e-5)
  with pytest.raises(gan_jax.UserError, match="no inverse"):
    model.to_space(w, "z")
  with pytest.raises(gan_jax.UserError, match="cannot carry it"):
    model.latents(2, space="z", truncation=0.5)


# --- verbs -------------------------------------------------------------------------------------

def test_interpolate_walks_from_seed_to_seed_and_through_latent_files(cgan, tmp_path):
  model = gan_jax.load(cgan)
  out = tmp_path / "walk.npz"
  assert run("interpolate", f"--workdir={cgan}", "--seeds=1,2,3", "--steps=4", f"--out={out}",
             "--label=7") == 0
  walk = np.load(out)
  assert walk["samples"].shape == (9, 16, 16, 1) and walk["space"] == "z"
  for frame, seed in ((0, 1), (4, 2), (8, 3)):  # keyframes are the seeds' first samples
    np.testing.assert_allclose(walk["samples"][frame], model.sample(1, seed=seed, labels=7)[0],
                               atol=1e-5)
  # A latent file (`sample --out=X.npz`) is a keyframe too; labels walk as class weights.
  assert run("sample", f"--workdir={cgan}", "--num=1", "--seed=9", "--label=5",
             f"--out={tmp_path / 's.npz'}") == 0
  assert run("interpolate", f"--workdir={cgan}", f"--seeds=1,{tmp_path / 's.npz'}",
             "--steps=4", "--labels=0,5", f"--out={tmp_path / 'w2.npz'}") == 0
  walk = np.load(tmp_path / "w2.npz")
  np.testing.assert_allclose(walk["labels"][2], 0.5 * (np.eye(10)[0] + np.eye(10)[5]))
  np.testing.assert_allclose(walk["samples"][-1], np.load(tmp_path / "s.npz")["samples"][0],
                             atol=1e-5)
  for name in ("walk.gif", "walk.png"):
    assert run("interpolate", f"--workdir={cgan}", "--seeds=1,2,3", "--steps=4",
               f"--out={tmp_path / name}") == 0
  with Image.open(tmp_path / "walk.gif") as movie:
    assert movie.n_frames == 9
  assert Image.open(tmp_path / "walk.png").size == (5 * 17 + 1, 2 * 17 + 1)  # a row per leg


def test_interpolate_in_w_for_a_mapping_network(style, tmp_path):
  out = tmp_path / "w.npz"
  assert run("interpolate", f"--workdir={style}", "--seeds=0,1", "--steps=2", f"--out={out}",
             "--space=w") == 0
  walk = np.load(out)
  assert walk["space"] == "w" and len(walk["codes"]) == 3
  np.testing.assert_allclose(walk["codes"][1], walk["codes"][[0, 2]].mean(0), atol=1e-5)


def test_directions_verb_writes_directions_and_their_grid(cgan, tmp_path):
  out, dim = tmp_path / "dirs.npz", gan_jax.load(cgan).config.model.latent_dim
  for method in directions.METHODS:
    assert run("directions", f"--workdir={cgan}", f"--method={method}", "--num=3",
               f"--out={out}") == 0
    found = directions.load(str(out))
    assert found.space == "z" and found.method == method and found.vectors.shape == (3, dim)
    np.testing.assert_allclose(np.linalg.norm(found.vectors, axis=1), 1, atol=1e-5)
    grid = Image.open(tmp_path / "dirs.png")
    assert grid.size == (7 * 17 + 1, 3 * 17 + 1)  # rows: directions; columns: -3..3 sigma
  # sample --direction moves the same codes by strength sigmas along the direction.
  model = gan_jax.load(cgan)
  assert run("sample", f"--workdir={cgan}", "--num=4", "--seed=2", f"--direction={out}:1",
             "--strength=2.5", f"--out={tmp_path / 'm.npz'}") == 0
  moved = np.load(tmp_path / "m.npz")
  start = model.latents(4, seed=2).codes
  np.testing.assert_allclose(moved["codes"] - start,
                             np.broadcast_to(2.5 * found.vectors[1], start.shape), atol=1e-5)
  assert np.abs(moved["samples"] - model.sample(4, seed=2)).max() > 1e-3


def test_stylegan2_directions_are_in_w(style, tmp_path):
  out = tmp_path / "dirs.npz"
  assert run("directions", f"--workdir={style}", "--num=2", f"--out={out}") == 0
  found = directions.load(str(out))
  model = gan_jax.load(style)
  assert found.space == "w" and found.vectors.shape == (2, model.game.code_shapes()["w"][0])
  assert (found.sigmas > 0).all()
  w = model.latents(2, seed=1, space="w")
  moved = directions.move(model, w, found, 0, 1.0)
  np.testing.assert_allclose(moved.codes - w.codes,
                             np.broadcast_to(found.sigmas[0] * found.vectors[0], w.codes.shape),
                             atol=1e-5)


BAD = {
    "one keyframe": (["interpolate", "--workdir={cgan}", "--seeds=3"], "needs two or more"),
    "walk to a jpg": (["interpolate", "--workdir={cgan}", "--seeds=1,2", "--out=w.jpg"],
                      "must end in .gif"),
    "labels of other count": (["interpolate", "--workdir={cgan}", "--seeds=1,2", "--labels=1"],
                              "one per keyframe"),
    "w in a z-only model": (["interpolate", "--workdir={cgan}", "--seeds=1,2", "--space=w"],
                            "not a latent space"),
    "missing latent file": (["interpolate", "--workdir={cgan}", "--seeds=1,nope.npz"],
                            "does not exist"),
    "unknown direction index": (["sample", "--workdir={cgan}", "--direction={dirs}:7"],
                                "holds 2 (0 to 1)"),
    "direction without index": (["sample", "--workdir={cgan}", "--direction={dirs}"],
                                "must be FILE:INDEX"),
    "directions to a png": (["directions", "--workdir={cgan}", "--out=d.png"], "must end in .npz"),
    "unknown method": (["directions", "--workdir={cgan}", "--method=pca"], "sefa"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_are_one_sentence(case, cgan, tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)
  dirs = tmp_path / "dirs.npz"
  directions.Directions("z", np.eye(2, 64, dtype=np.float32), np.ones(2, np.float32),
                        "sefa").save(dirs)
  argv, message = BAD[case]
  assert cli.main([a.format(cgan=cgan, dirs=dirs) for a in argv]) == 2
  err = capsys.readouterr().err.strip()
  assert message in err and err.count("\n") == 0
