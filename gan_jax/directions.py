"""`gan-jax directions`: directions in a generator's latent space that change one thing at a time,
found without labels, and `sample --direction` that moves codes along one.

- SeFa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): the layer
  that first reads the latent is a linear map A; the unit codes it changes most are the top
  eigenvectors of A A^T (A's output columns normalised first, as the paper does). For plain
  models A is G's first layer on z; for StyleGAN2 the style affines of every layer, on w.
- GANSpace (Harkonen et al. 2020): principal components of sampled codes' early features. In
  StyleGAN2 the features are w themselves; in plain models the first layer's outputs, whose
  components are carried back to z by a least-squares fit of z on them (the paper's BigGAN
  recipe).

A `Directions` file holds unit vectors and each one's sigma: the spread of sampled codes along it,
so a strength counts in sigmas (+-3 sigma spans nearly all codes) in either space.
"""
import dataclasses
import json
import os

import numpy as np

from gan_jax import api, provenance, reporting
from gan_jax.errors import UserError
from gan_jax.latents import Latents

METHODS = ("sefa", "ganspace")
GRID_SIGMAS = (-3, -2, -1, 0, 1, 2, 3)
SAMPLES = 5000  # codes drawn for sigmas and GANSpace's PCA


@dataclasses.dataclass(frozen=True)
class Directions:
  """K unit directions in `space` ("z" or "w"): vectors [K, dim], sigmas [K], and the method."""
  space: str
  vectors: np.ndarray
  sigmas: np.ndarray
  method: str

  def __len__(self):
    return len(self.vectors)

  def save(self, path, **info):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, space=self.space, vectors=self.vectors, sigmas=self.sigmas, method=self.method,
             **{k: np.asarray(v) for k, v in info.items() if v is not None})
    return path


def load(path):
  """The Directions of an .npz `gan-jax directions` wrote; one UserError otherwise."""
  if not os.path.isfile(path):
    raise UserError(f"Directions file {path} does not exist: make one with `gan-jax directions "
                    f"--workdir=DIR --out={path}`.")
  try:
    with np.load(path) as f:
      return Directions(str(f["space"]), np.asarray(f["vectors"], np.float32),
                        np.asarray(f["sigmas"], np.float32), str(f["method"]))
  except Exception:  # pylint: disable=broad-except  (np.load and KeyError alike)
    raise UserError(f"{path} is not a directions file: make one with `gan-jax directions "
                    f"--workdir=DIR --out={path}`.") from None


def parse(spec):
  """`dirs.npz:I` -> (Directions, I); one UserError for a missing index or one out of range."""
  path, _, index = spec.rpartition(":")
  if not path or not index.isdigit():
    raise UserError(f"--direction={spec} must be FILE:INDEX, such as dirs.npz:0 (the first "
                    "direction of a file `gan-jax directions` wrote).")
  directions = load(path)
  if int(index) >= len(directions):
    raise UserError(f"--direction={spec} names direction {index}, and {path} holds "
                    f"{len(directions)} (0 to {len(directions) - 1}): pick one of those.")
  return directions, int(index)


def top_eigenvectors(matrix, num):
  """The `num` eigenvectors of a symmetric matrix with the largest eigenvalues, as rows, and
  those eigenvalues (descending)."""
  values, vectors = np.linalg.eigh(matrix.astype(np.float64))
  order = np.argsort(values)[::-1][:num]
  return vectors[:, order].T, values[order]


def sefa_vectors(weights, num):
  """SeFa's closed form: unit rows d maximising ||A^T d|| for weights A [dim, F], columns
  normalised to unit length first."""
  a = weights / np.maximum(np.linalg.norm(weights, axis=0, keepdims=True), 1e-12)
  return top_eigenvectors(a @ a.T, num)[0]


def _sample(model, num, seed):
  """(z, labels, codes in the model's direction space) of `num` fresh latents."""
  z = model.latents(num, seed=seed, space="z")
  return z, model.to_space(z, "w" if "w" in model.spaces else "z")


def sefa(model, num=5, seed=0):
  """SeFa's top `num` directions of `model` (a loaded noise run)."""
  space, weights = model.game.latent_map(model.state, model.ema)
  vectors = sefa_vectors(weights, min(num, weights.shape[0]))
  return Directions(space, vectors.astype(np.float32),
                    sigmas(model, space, vectors, seed), "sefa")


def ganspace(model, num=5, seed=0, samples=SAMPLES):
  """GANSpace's top `num` principal directions of `model`, from `samples` fresh latents."""
  z, _ = _sample(model, samples, seed)
  features = model.game.features(model.state, z.codes, z.labels, model.ema).astype(np.float64)
  centred = features - features.mean(0)
  num = min(num, *centred.shape)
  # The principal axes are the covariance's top eigenvectors (cheaper than an SVD of the samples).
  components, variances = top_eigenvectors(centred.T @ centred / (len(centred) - 1), num)
  if "w" in model.spaces:  # the features are w: the components are the directions
    return Directions("w", components.astype(np.float32),
                      np.sqrt(np.maximum(variances, 0)).astype(np.float32), "ganspace")
  coords = centred @ components.T  # [N, num]; z ~ coords @ back, fitted by least squares
  back = np.linalg.lstsq(coords, z.codes.astype(np.float64), rcond=None)[0]
  vectors = back / np.linalg.norm(back, axis=1, keepdims=True)
  return Directions("z", vectors.astype(np.float32), sigmas(model, "z", vectors, seed),
                    "ganspace")


def sigmas(model, space, vectors, seed):
  """The spread of sampled codes along each unit vector (1 for z: a standard normal's)."""
  if space == "z":
    return np.ones(len(vectors), np.float32)
  _, codes = _sample(model, SAMPLES, seed)
  return np.std(codes.codes @ np.asarray(vectors, np.float32).T, axis=0).astype(np.float32)


def move(model, latents, directions, index, strength):
  """`latents` moved `strength` sigmas along direction `index` (every w of w+ codes alike);
  z directions move z codes only."""
  if directions.space not in model.spaces:
    raise UserError(f"These directions are in {directions.space} and {model.workdir}'s "
                    f"{model.config.model.name} reads {' and '.join(model.spaces)}: they were "
                    "found for another model; run `gan-jax directions` on this one.")
  want = model.game.code_shapes()[directions.space][-1]
  if directions.vectors.shape[1] != want:
    raise UserError(f"These {directions.space} directions have {directions.vectors.shape[1]} "
                    f"dimensions and {model.workdir} reads {want}: they were found for another "
                    "model; run `gan-jax directions` on this one.")
  if directions.space == "z" and latents.space != "z":
    raise UserError(f"z directions move z codes, and these codes are in {latents.space}: find "
                    "w directions (`gan-jax directions` on this model) or project in z.")
  if latents.space == "z" and directions.space == "w":
    latents = model.to_space(latents, "w")
  step = strength * directions.sigmas[index] * directions.vectors[index]
  return Latents(latents.space, latents.codes + step, latents.labels)


def grid(model, directions, seed=0, label=None, sigmas=GRID_SIGMAS):
  """The picture of every direction: one row each, columns moved by `sigmas` (a sample of
  `seed` in the middle column)."""
  start = model.latents(1, seed=seed, labels=label,
                        space="w" if directions.space == "w" else "z")
  cells = [move(model, start, directions, i, s) for i in range(len(directions)) for s in sigmas]
  codes = np.concatenate([c.codes for c in cells])
  images = model.render(Latents(cells[0].space, codes, np.repeat(start.labels, len(cells), 0)))
  return reporting.image_grid(images, cols=len(sigmas))


def find(workdir, out, method="sefa", num=5, seed=0, label=None, ema=True, seed_index=0):
  """Finds `num` directions of the run in `workdir` with `method`, writes them to `out` (.npz)
  and their grid beside it (.png); returns both paths."""
  if method not in METHODS:
    raise UserError(f"--method={method} is not one of {', '.join(METHODS)}.")
  if num < 1:
    raise UserError(f"--num={num} must be a positive number of directions.")
  if not out.endswith(".npz"):
    raise UserError(f"--out={out} must end in .npz (the grid is written beside it as .png).")
  model = api.load(workdir, ema=ema, seed_index=seed_index, needs="sample")
  model.check_labels(label)
  if len(model.exp.spec.shape) != 3:
    raise UserError(f"{workdir} learned {model.learned}, which have no directions to show: use "
                    "an image model.")
  directions = (sefa if method == "sefa" else ganspace)(model, num, seed)
  made = provenance.of_model(model, seed)
  directions.save(out, workdir=os.path.abspath(workdir), step=model.step,
                  provenance=json.dumps(made))
  picture = os.path.splitext(out)[0] + ".png"
  reporting.save_picture(picture, grid(model, directions, seed, label), made)
  return out, picture
