"""The text tower of CLIP (Radford et al. 2021) in Flax, from a local checkpoint folder.

A pre-LayerNorm transformer over token + position embeddings with a causal mask (ViT-B/32's tower:
width 512, 12 layers, 8 heads, context 77, QuickGELU; ViT-L/14's: width 768, 12 heads), a final
LayerNorm, the hidden state at the end-of-text token, and the text projection (bias-free);
`encode` L2-normalises it. The end-of-text token is found as transformers' CLIPTextModel finds
it: the largest id where the config's eos_token_id is the legacy 2 (OpenAI's checkpoints, whose
<|endoftext|> is the largest id), else the first eos_token_id.

`encoders.get("clip:PATH")` reads the folder PATH in one of two layouts:
- Hugging Face: config.json (CLIPModel's, with text_config, or CLIPTextModelWithProjection's),
  model.safetensors (keys text_model.* and text_projection.weight; the vision tower's are
  ignored) and tokenizer.json;
- open_clip's hub layout: open_clip_config.json, open_clip_model.safetensors (the CLIP class's
  keys: token_embedding, positional_embedding, transformer.resblocks.N.*, ln_final,
  text_projection) and tokenizer.json; only the plain text tower (argmax pooling, causal mask,
  no layer scale, no class token, no projection bias or custom attention), with GELU or
  QuickGELU as its `quick_gelu` says. The checkpoint's name is its folder's, so `name`
  ("clip:" + absolute path) keys caches by it.
Texts are truncated to the context length, <|startoftext|> and <|endoftext|> kept.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.encoders import text
from gan_jax.errors import UserError

# open_clip's text_cfg keys whose value this loader reads or whose default it implements.
OPEN_CLIP_PLAIN = {"ls_init_value": None, "embed_cls": False, "no_causal_mask": False,
                   "final_ln_after_pool": False, "pool_type": "argmax", "proj_bias": False,
                   "proj_type": "linear", "hf_model_name": None, "qk_norm": False,
                   "scaled_cosine_attn": False, "scale_heads": False, "scale_attn_inner": False,
                   "scale_attn": False, "scale_fc": False, "act_kwargs": None,
                   "norm_kwargs": None}


@dataclasses.dataclass(frozen=True)
class ClipTextConfig:
  vocab_size: int = 49408
  width: int = 512
  layers: int = 12
  heads: int = 8
  intermediate: int = 2048
  context: int = 77
  projection: int = 512
  act: str = "quick_gelu"
  eps: float = 1e-5
  eos_token_id: int = 49407  # 2: the legacy rule, the largest id is the end of text


def hf_config(path: str) -> ClipTextConfig:
  """The text tower's settings from a Hugging Face config.json (missing ones: transformers'
  defaults, ViT-B/32's)."""
  with open(path) as f:
    c = json.load(f)
  t = c.get("text_config") or c
  # CLIPModel projects to its own projection_dim; CLIPTextModelWithProjection to text_config's.
  projection = c.get("projection_dim") if "text_config" in c else t.get("projection_dim")
  d = ClipTextConfig()
  act = t.get("hidden_act", d.act)
  if act not in text.ACTIVATIONS:
    raise UserError(f"{path} asks for activation {act!r}: this CLIP text tower knows "
                    f"{', '.join(text.ACTIVATIONS)}.")
  return ClipTextConfig(
      t.get("vocab_size", d.vocab_size), t.get("hidden_size", d.width),
      t.get("num_hidden_layers", d.layers), t.get("num_attention_heads", d.heads),
      t.get("intermediate_size", d.intermediate), t.get("max_position_embeddings", d.context),
      projection or d.projection, act, t.get("layer_norm_eps", d.eps),
      t.get("eos_token_id", d.eos_token_id))


def open_clip_config(path: str) -> ClipTextConfig:
  """The text tower's settings from open_clip's open_clip_config.json (its CLIPTextCfg)."""
  with open(path) as f:
    c = json.load(f)
  m = c.get("model_cfg", c)
  t = m.get("text_cfg", {})
  fancy = [k for k, plain in OPEN_CLIP_PLAIN.items() if t.get(k, plain) != plain]
  if fancy or "text_cfg" not in m:
    raise UserError(f"{path} describes an open_clip text tower this loader does not read "
                    f"({', '.join(fancy) or 'no text_cfg'}): convert it to the Hugging Face "
                    "CLIP layout (config.json, model.safetensors).")
  width = t.get("width", 512)
  return ClipTextConfig(
      t.get("vocab_size", 49408), width, t.get("layers", 12), t.get("heads", 8),
      int(width * t.get("mlp_ratio", 4.0)), t.get("context_length", 77), m["embed_dim"],
      "quick_gelu" if m.get("quick_gelu") else "gelu", 1e-5, 2)  # 2: argmax pooling


def open_clip_to_hf(tensors: dict) -> dict:
  """open_clip's text-tower tensors under transformers' names (the packed q, k, v split)."""
  if "text.token_embedding.weight" in tensors:  # CustomTextCLIP keeps its tower under text.
    tensors = {k[len("text."):]: v for k, v in tensors.items() if k.startswith("text.")}
  out = {}
  rename = {"token_embedding.weight": "embeddings.token_embedding.weight",
            "positional_embedding": "embeddings.position_embedding.weight",
            "ln_final.weight": "final_layer_norm.weight", "ln_final.bias": "final_layer_norm.bias"}
  block = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
           "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
  for key, value in tensors.items():
    if key in rename:
      out["text_model." + rename[key]] = value
    elif key == "text_projection":
      out["text_projection.weight"] = value.T  # open_clip multiplies x @ P; Linear stores P.T
    elif key.startswith("transformer.resblocks."):
      i, rest = key[len("transformer.resblocks."):].split(".", 1)
      prefix = f"text_model.encoder.layers.{i}."
      if rest.startswith("attn.in_proj_"):
        kind = rest[len("attn.in_proj_"):]
        for name, part in zip("qkv", np.split(value, 3, axis=0)):
          out[f"{prefix}self_attn.{name}_proj.{kind}"] = part
      else:
        module, leaf = rest.rsplit(".", 1)
        if module in block:
          out[f"{prefix}{block[module]}.{leaf}"] = value
  return out


class ClipLayer(nn.Module):
  """Pre-LN: x + attention(LN(x)), then x + MLP(LN(x))."""
  config: ClipTextConfig

  @nn.compact
  def __call__(self, x, mask):
    c = self.config
    h = nn.LayerNorm(c.eps, name="layer_norm1")(x)
    q, k, v = (nn.Dense(c.width, name=f"self_attn.{n}_proj")(h) for n in "qkv")
    x = x + nn.Dense(c.width, name="self_attn.out_proj")(text.attention(q, k, v, c.heads, mask))
    h = nn.LayerNorm(c.eps, name="layer_norm2")(x)
    h = text.ACTIVATIONS[c.act](nn.Dense(c.intermediate, name="mlp.fc1")(h))
    return x + nn.Dense(c.width, name="mlp.fc2")(h)


class ClipTextTower(nn.Module):
  """ids [B, L] (L <= context), lengths [B] -> the projected end-of-text state, [B, projection]
  (not normalised)."""
  config: ClipTextConfig

  @nn.compact
  def __call__(self, ids, lengths):
    c = self.config
    length = ids.shape[1]
    x = (nn.Embed(c.vocab_size, c.width, name="text_model.embeddings.token_embedding")(ids)
         + nn.Embed(c.context, c.width, name="text_model.embeddings.position_embedding")(
             jnp.arange(length))[None])
    # Causal: padding after a text's end of text never reaches it, so batches can be trimmed.
    causal = jnp.tril(jnp.ones((length, length), bool))[None, None]
    for i in range(c.layers):
      x = ClipLayer(c, name=f"text_model.encoder.layers.{i}")(x, causal)
    x = nn.LayerNorm(c.eps, name="text_model.final_layer_norm")(x)
    valid = jnp.arange(length)[None, :] < lengths[:, None]
    key = jnp.where(valid, ids, -1) if c.eos_token_id == 2 else (ids == c.eos_token_id) & valid
    pooled = x[jnp.arange(x.shape[0]), jnp.argmax(key, axis=-1)]
    return nn.Dense(c.projection, use_bias=False, name="text_projection")(pooled)


@functools.partial(jax.jit, static_argnums=0)
def _apply(config, params, ids, lengths):
  return text.l2_normalize(ClipTextTower(config).apply({"params": params}, ids, lengths))


def read_checkpoint(folder: str) -> tuple[ClipTextConfig, dict, str]:
  """(config, tensors under transformers' names, weights file) of a checkpoint folder."""
  hf = [os.path.join(folder, f) for f in ("config.json", "model.safetensors")]
  oc = [os.path.join(folder, f) for f in ("open_clip_config.json", "open_clip_model.safetensors")]
  if all(map(os.path.exists, hf)):
    return hf_config(hf[0]), text.read_safetensors(hf[1]), hf[1]
  if all(map(os.path.exists, oc)):
    return open_clip_config(oc[0]), open_clip_to_hf(text.read_safetensors(oc[1])), oc[1]
  raise UserError(f"{folder} holds no CLIP checkpoint: pass a folder with config.json, "
                  "model.safetensors and tokenizer.json (Hugging Face) or open_clip_config.json, "
                  "open_clip_model.safetensors and tokenizer.json (open_clip).")


class ClipText(text.TextEncoder):
  """CLIP text embeddings: `encode(texts)` -> float32 [N, projection], rows L2-normalised."""

  def __init__(self, folder: str):
    if not folder or not os.path.isdir(folder):
      raise UserError(f"clip:{folder} names no folder: pass clip:PATH with PATH a local CLIP "
                      "checkpoint folder (config.json, model.safetensors, tokenizer.json).")
    folder = os.path.abspath(folder)
    self.name = "clip:" + folder
    self.config, tensors, weights = read_checkpoint(folder)
    self.dim = self.config.projection
    self.max_length = self.config.context
    tokenizer = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(tokenizer):
      raise UserError(f"{folder} has no tokenizer.json: save the checkpoint's tokenizer with it "
                      "(CLIPTokenizerFast.save_pretrained writes one).")
    from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
    self.tokenizer = Tokenizer.from_file(tokenizer)
    self.tokenizer.no_padding()
    self.tokenizer.enable_truncation(self.max_length)
    shapes = jax.eval_shape(
        lambda: ClipTextTower(self.config).init(jax.random.key(0), jnp.zeros((1, 1), jnp.int32),
                                                jnp.ones((1,), jnp.int32)))["params"]
    self.params = jax.device_put(text.params_from_torch(tensors, shapes, weights))
    self._apply = functools.partial(_apply, self.config)

  def token_ids(self, texts):
    return [np.asarray(e.ids, np.int32) for e in self.tokenizer.encode_batch(texts)]
