"""Params trees as flat arrays, "name/a/b" -> array: the layout of the weights files the package
trains and ships (the watermark's, the detector's), read and written with numpy alone."""
import jax
import jax.numpy as jnp
import numpy as np


def flatten(params, name):
  """{"name/a/b": numpy array} of a params tree."""
  return {"/".join([name] + [k.key for k in keys]): np.asarray(value)
          for keys, value in jax.tree_util.tree_flatten_with_path(params)[0]}


def unflatten(arrays, name):
  """The params tree `flatten` wrote under `name` (other names' arrays are left out)."""
  tree = {}
  for path, value in arrays.items():
    head, *keys = path.split("/")
    if head != name:
      continue
    node = tree
    for k in keys[:-1]:
      node = node.setdefault(k, {})
    node[keys[-1]] = jnp.asarray(value)
  return tree
