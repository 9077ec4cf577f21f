"""What users run on a text-to-image run: `sample --text`, `evaluate --metrics=t2i` and the Python
API, on a smoke run of configs/t2i_digits.py (captions embedded by MiniLM)."""
import io
import json

import numpy as np
import pytest
from PIL import Image

import gan_jax
from gan_jax import cli, reporting


def main(*argv):
  return cli.main(list(map(str, argv)))


def test_sample_text_npz_holds_each_samples_caption_and_embedding(t2i, tmp_path):
  out = tmp_path / "s.npz"
  assert main("sample", f"--workdir={t2i}", "--text=a red seven", "--text=a blue 4",
              "--num=3", f"--out={out}") == 0
  with np.load(out) as z:
    samples, texts, labels = z["samples"], z["texts"], z["labels"]
  assert samples.shape[0] == 6 and samples.dtype == np.float32
  assert list(texts) == ["a red seven"] * 3 + ["a blue 4"] * 3
  model = gan_jax.load(t2i)
  expected = model.encode(["a red seven", "a blue 4"])
  np.testing.assert_allclose(labels, np.repeat(expected, 3, axis=0), atol=1e-6)
  # The caption reaches G: the same latents with another caption draw other images.
  other = tmp_path / "o.npz"
  assert main("sample", f"--workdir={t2i}", "--text=a white zero", "--text=a blue 4",
              "--num=3", f"--out={other}") == 0
  with np.load(other) as z:
    # z the same, caption changed. DF-GAN's affines start as the identity (text has no effect)
    # and the smoke run's EMA has moved little from there: small, but a G that ignored the
    # caption would draw exactly the same pixels.
    assert np.abs(z["samples"][:3] - samples[:3]).max() > 1e-6
    np.testing.assert_array_equal(z["samples"][3:], samples[3:])  # both the same


def test_sample_text_png_has_a_captioned_row_per_prompt(t2i, tmp_path):
  prompts = tmp_path / "prompts.txt"
  prompts.write_text("a red seven\n\nthe digit 2 in yellow\n")
  out = tmp_path / "s.png"
  assert main("sample", f"--workdir={t2i}", f"--text-file={prompts}", "--num=2",
              f"--out={out}") == 0
  picture = np.asarray(Image.open(out).convert("RGB"))
  side = gan_jax.load(t2i).exp.spec.shape[0]
  zoom = -(-reporting.CAPTION_WIDTH // (2 * side))
  grid_height = 2 * (side * zoom + 1) + 1
  assert picture.shape[1] >= reporting.CAPTION_WIDTH
  assert picture.shape[0] > grid_height  # two rows, each with a band of text under it


@pytest.mark.parametrize("argv, words", [
    (["--num=2"], "draws from captions"),
    (["--text=a red seven", "--label=3"], "drop --mix, --interpolate, --latent and --label"),
    (["--text= "], "no empty ones"),
    (["--text_file={missing}"], "could not be read"),
    (["--text_file={empty}"], "holds no captions"),
])
def test_bad_text_input_is_one_sentence(t2i, tmp_path, capsys, argv, words):
  (tmp_path / "empty.txt").write_text("\n \n")
  argv = [a.format(missing=tmp_path / "none.txt", empty=tmp_path / "empty.txt") for a in argv]
  assert main("sample", f"--workdir={t2i}", f"--out={tmp_path / 'x.png'}", *argv) == 2
  err = capsys.readouterr().err.strip()
  assert words in err and "\n" not in err and "Traceback" not in err
  assert not (tmp_path / "x.png").exists()


def test_text_on_a_run_without_captions_is_one_sentence(cgan, tmp_path, capsys):
  assert main("sample", f"--workdir={cgan}", "--text=a red seven",
              f"--out={tmp_path / 'x.png'}") == 2
  err = capsys.readouterr().err.strip()
  assert "needs a text-to-image run" in err and "\n" not in err


def test_python_api_draws_the_data_captions_without_texts(t2i):
  model = gan_jax.load(t2i)
  texts, embeddings = model.game.captions
  assert len(texts) == len(embeddings) and "a red seven" in texts
  _, labels = model.noise(5, seed=1)
  # Every embedding drawn is one of the data's captions', not a random vector.
  assert np.abs(labels @ embeddings.T).max(axis=1).min() > 0.9999
  assert model.sample(2, labels=model.encode("a red seven")[0]).shape[0] == 2


def test_evaluate_t2i_scores_seen_and_held_out_prompts(t2i, capsys):
  assert main("evaluate", f"--workdir={t2i}") == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["metrics"] == ["t2i"]
  for group in ("seen", "held_out"):
    for wording in ("templates", "paraphrases"):
      for key in ("digit", "colour", "both", "r_precision"):
        assert 0.0 <= result[f"t2i/{group}/{wording}/{key}"] <= 1.0


def test_t2i_metric_needs_the_t2i_digits_data(cgan, capsys):
  assert main("evaluate", f"--workdir={cgan}", "--metrics=t2i") == 2
  assert "reads prompts of the t2i_digits task" in capsys.readouterr().err



def test_evaluate_clip_scores_each_image_against_its_caption(t2i, tmp_path, capsys):
  from test_encoders import random_clip_model
  from gan_jax.metrics import clip_score
  random_clip_model(tmp_path)
  assert main("evaluate", f"--workdir={t2i}", "--metrics=clip", f"--clip_weights={tmp_path}",
              "--num_samples=6") == 0
  got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["clip_score"]
  # by hand: captions of the data picked by seed 0, one image drawn for each, scored in pairs
  model = gan_jax.load(t2i)
  texts, embeddings = model.game.captions
  picks = np.random.default_rng(0).integers(0, len(texts), 6)
  images = model.sample(6, seed=0, labels=embeddings[picks])
  want = clip_score.ClipScorer(str(tmp_path))(images, [texts[i] for i in picks])
  assert got == pytest.approx(want, rel=1e-5) and 0 <= got <= 100


def test_clip_metric_errors_are_one_sentence(t2i, cgan, tmp_path, capsys):
  for workdir, flags, words in ((cgan, [f"--clip_weights={tmp_path}"], "reads no captions"),
                                (t2i, [], "needs CLIP weights")):
    assert main("evaluate", f"--workdir={workdir}", "--metrics=clip", *flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_explorer_caption_box_in_a_headless_browser(t2i):
  """The page of a text run shows a caption box; a new caption (Enter) asks for and shows the
  model's own sample of that caption. A request without a caption is one sentence."""
  from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.common.keys import Keys  # pylint: disable=import-outside-toplevel
  from test_explore import browser, pixels, request, serving, wait_for
  with serving(t2i) as server:
    info = json.loads(request(server, "/info")[2])
    assert info["text"] in gan_jax.load(t2i).game.captions[0]
    status, _, body = request(server, "/image?seed=0")
    assert status == 400 and b"draws from captions" in body
    driver = browser()
    try:
      driver.get(server.url)
      query = "return document.getElementById('sample').dataset.query"
      first = wait_for(driver, query)
      box = driver.find_element(By.ID, "text")
      assert box.is_displayed() and box.get_attribute("value") == info["text"]
      box.clear()
      box.send_keys("a blue four", Keys.ENTER)
      wait_for(driver, query + " === 'seed=0&text=a+blue+four'")
      served = pixels(request(server, "/image?seed=0&text=a+blue+four")[2])
      shown = driver.find_element(By.ID, "sample").screenshot_as_png
      np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(shown)).convert("RGB")),
                                    served[..., :3])
      assert first != "seed=0&text=a+blue+four"
      # What was served is the model's sample of that caption (a smoke run's captions change
      # its pixels by less than one grey level, so the caption is checked here, not by eye).
      model = gan_jax.load(t2i)
      want = model.sample(1, seed=0, labels=model.encode("a blue four")[0], uint8=True)[0]
      zoom = served.shape[0] // want.shape[0]
      np.testing.assert_array_equal(served[::zoom, ::zoom, :3], want)
      assert driver.find_element(By.ID, "error").text == ""
    finally:
      driver.quit()
