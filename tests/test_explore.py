"""`gan-jax explore`: the page driven by a real headless Chromium, its HTTP endpoints on smoke runs,
and every bad input as one sentence (HTTP 400 for requests; exit code 2 for the CLI)."""
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

import gan_jax
from conftest import REPO
from gan_jax import cli, directions, explorer
from gan_jax.errors import UserError

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from browser import chromium, wait_for  # noqa: E402  (benchmarks/explore_latency.py drives it too)

ARTIFACTS = "GAN_JAX_TEST_ARTIFACTS"  # a folder to copy the browser test's screenshot into


@contextlib.contextmanager
def serving(workdir):
  """An explorer of `workdir` serving on a free port from a thread of this process."""
  server = explorer.open_server(workdir, port=0)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield server
  finally:
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def cgan_server(cgan):
  with serving(cgan) as server:
    yield server


def request(server, path, data=None):
  """(status, content type, body) of GET `path` (POST with `data`)."""
  req = urllib.request.Request(server.url.rstrip("/") + path, data=data,
                               method="POST" if data is not None else "GET")
  try:
    with urllib.request.urlopen(req, timeout=60) as r:
      return r.status, r.headers["Content-Type"], r.read()
  except urllib.error.HTTPError as e:
    return e.code, e.headers["Content-Type"], e.read()


def pixels(body):
  return np.asarray(Image.open(io.BytesIO(body)))


def png_bytes(array):
  out = io.BytesIO()
  Image.fromarray(array).save(out, format="PNG")
  return out.getvalue()


def assert_one_sentence(text, *expected):
  text = text.decode() if isinstance(text, bytes) else text
  for part in expected:
    assert part in text, text
  assert "\n" not in text.strip() and text.strip().endswith("."), text


def test_info_says_what_the_run_is(cgan_server, cgan):
  status, kind, body = request(cgan_server, "/info")
  info = json.loads(body)
  assert (status, kind) == (200, "application/json")
  assert (info["kind"], info["num_classes"], info["spaces"], info["step"]) == (
      "sample", 10, ["z"], 4)
  assert info["classes"] == list(range(10)) and info["workdir"] == str(cgan)
  assert info["truncation"]["kind"] == "threshold" and info["project"] is True
  assert (info["directions"]["method"], info["directions"]["space"]) == ("sefa", "z")
  assert info["directions"]["count"] == len(info["directions"]["sigmas"]) > 0
  assert cgan_server.server_address[0] == "127.0.0.1"
  status, kind, body = request(cgan_server, "/")
  assert status == 200 and kind.startswith("text/html") and b"gan-jax explore" in body


def test_image_is_the_models_sample_enlarged(cgan_server, cgan):
  model = gan_jax.load(cgan)
  status, kind, body = request(cgan_server, "/image?seed=3&label=5")
  assert (status, kind) == (200, "image/png")
  shown = pixels(body)
  assert shown.shape == (256, 256)  # 16 px enlarged 16x, nearest-neighbour
  want = model.sample(1, seed=3, labels=[5], uint8=True)[0, ..., 0]
  np.testing.assert_array_equal(shown[::16, ::16], want)
  np.testing.assert_array_equal(shown, np.repeat(np.repeat(want, 16, 0), 16, 1))
  other = pixels(request(cgan_server, "/image?seed=4&label=5")[2])
  truncated = pixels(request(cgan_server, "/image?seed=3&label=5&truncation=0.5")[2])
  assert not np.array_equal(shown, other) and not np.array_equal(shown, truncated)
  np.testing.assert_array_equal(truncated[::16, ::16], model.sample(
      1, seed=3, labels=[5], truncation=0.5, uint8=True)[0, ..., 0])


def test_a_direction_moves_the_sample_as_directions_move_does(cgan_server, cgan):
  model = gan_jax.load(cgan)
  found = directions.sefa(model)
  np.testing.assert_allclose(found.vectors, cgan_server.explorer.directions.vectors, atol=1e-6)
  start = model.latents(1, seed=3, labels=[5])
  want = model.render(directions.move(model, start, found, 1, -2.5), uint8=True)[0, ..., 0]
  moved = pixels(request(cgan_server, "/image?seed=3&label=5&direction=1&strength=-2.5")[2])
  np.testing.assert_array_equal(moved[::16, ::16], want)
  still = pixels(request(cgan_server, "/image?seed=3&label=5&direction=1&strength=0")[2])
  assert not np.array_equal(moved, still)
  np.testing.assert_array_equal(still, pixels(request(cgan_server, "/image?seed=3&label=5")[2]))


def test_directions_from_a_file(cgan, tmp_path):
  model = gan_jax.load(cgan)
  path = directions.sefa(model, 2).save(str(tmp_path / "dirs.npz"))
  server = explorer.open_server(cgan, port=0, directions=path)
  try:
    assert server.explorer.info()["directions"]["count"] == 2
  finally:
    server.server_close()
  other = directions.Directions("z", np.ones((2, 7), np.float32), np.ones(2, np.float32), "sefa")
  with pytest.raises(UserError) as error:
    explorer.open_server(cgan, port=0, directions=other.save(str(tmp_path / "other.npz")))
  assert_one_sentence(str(error.value), "have 7 dimensions")


@pytest.mark.parametrize("query,expected", [
    ("direction=99&strength=1", "direction=99"),
    ("label=10", "out of range"),
    ("seed=-1", "seed=-1 is out of range"),
    ("truncation=abc", "truncation='abc' is not a number"),
    ("strength=nan", "strength=nan is out of range"),
    ("colour=red", "Unknown parameter 'colour'"),
])
def test_bad_image_requests_are_400_with_one_sentence(cgan_server, query, expected):
  status, kind, body = request(cgan_server, "/image?" + query)
  assert status == 400 and kind.startswith("text/plain"), (status, body)
  assert_one_sentence(body, expected)
  assert request(cgan_server, "/image?seed=1")[0] == 200  # and it keeps serving
  assert request(cgan_server, "/nothing")[0] == 404


def test_requests_for_another_host_are_refused(cgan_server):
  """A page that rebinds its own name to 127.0.0.1 must not read the explorer (DNS rebinding)."""
  req = urllib.request.Request(cgan_server.url + "info", headers={"Host": "evil.example:80"})
  with pytest.raises(urllib.error.HTTPError) as error:
    urllib.request.urlopen(req, timeout=30)
  assert error.value.code == 403
  assert_one_sentence(error.value.read(), "not 'evil.example'")
  req = urllib.request.Request(cgan_server.url + "info", headers={
      "Host": f"localhost:{cgan_server.server_address[1]}"})
  with urllib.request.urlopen(req, timeout=30) as r:
    assert r.status == 200


def test_project_upload_shows_the_picture_beside_its_projection(cgan_server, cgan):
  """An upload is fitted to the run's size and projected as `gan-jax project` does (fewer
  steps); the answer is the target beside the image its latent renders to."""
  cgan_server.explorer.project_steps = 20
  model = gan_jax.load(cgan)
  target = model.sample(1, seed=2, labels=3, uint8=True)[0]
  status, kind, body = request(cgan_server, "/project", data=png_bytes(target[..., 0]))
  assert (status, kind) == (200, "image/png"), body
  shown = pixels(body)
  side = target.shape[0]
  scale = shown.shape[0] // side
  assert shown.shape == (side * scale, 2 * side * scale)
  np.testing.assert_array_equal(shown[::scale, ::scale][:, :side], target[..., 0])
  projected = shown[::scale, ::scale][:, side:].astype(np.float32)
  assert np.abs(projected - target[..., 0]).mean() < 40  # near the target after 20 steps
  colour = png_bytes(np.stack([target[..., 0]] * 3, -1))
  status, _, body = request(cgan_server, "/project", data=colour)
  assert status == 400
  assert_one_sentence(body, "is in colour")


def test_translator_upload_shows_translates_output(pix2pix):
  model = gan_jax.load(pix2pix)
  digit = (np.arange(16 * 16).reshape(16, 16) % 256).astype(np.uint8)
  with serving(pix2pix) as server:
    info = json.loads(request(server, "/info")[2])
    assert (info["kind"], info["translate_directions"], info["truncation"]) == (
        "translate", ["AtoB"], None)
    status, kind, body = request(server, "/translate", data=png_bytes(digit))
    assert (status, kind) == (200, "image/png")
    want = model.translate(digit[..., None], uint8=True)[..., 0]
    np.testing.assert_array_equal(pixels(body)[::16, ::16], want)
    colour = np.stack([digit] * 3, -1)
    for data, query, expected in [
        (png_bytes(colour), "", "The uploaded image is in colour"),
        (b"not an image", "", "not an image pillow can read"),
        (b"", "", "The upload is empty"),
        (png_bytes(np.zeros((1025, 1024), np.uint8)), "", "1024 x 1025 pixels, more than"),
        (png_bytes(digit), "?direction=BtoA", "--direction=BtoA is not a direction"),
    ]:
      status, _, body = request(server, "/translate" + query, data=data)
      assert status == 400, body
      assert_one_sentence(body, expected)
    status, _, body = request(server, "/image?seed=1")
    assert status == 400
    assert_one_sentence(body, "translates images rather than drawing from noise")


def run_cli(capsys, *args):
  code = cli.main(["explore", *args])
  err = capsys.readouterr().err.strip()
  return code, err


def test_cli_refuses_a_workdir_it_cannot_read(tmp_path, capsys, monkeypatch):
  code, err = run_cli(capsys, f"--workdir={tmp_path / 'missing'}")
  assert code == 2 and "\n" not in err and "does not exist" in err
  code, err = run_cli(capsys, f"--workdir={tmp_path}")
  assert code == 2 and "\n" not in err and "holds no training run" in err
  monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as for another user's run (root here)
  code, err = run_cli(capsys, f"--workdir={tmp_path}")
  assert code == 2 and "\n" not in err and "cannot be read (permission denied)" in err
  code, err = run_cli(capsys)
  assert code == 2 and "explore needs --workdir" in err


def test_cli_refuses_a_port_in_use(cgan, capsys):
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    start = time.perf_counter()
    code, err = run_cli(capsys, f"--workdir={cgan}", f"--port={port}")
  assert code == 2 and "\n" not in err and f"Port {port} on 127.0.0.1 is in use" in err, err
  assert time.perf_counter() - start < 5  # refused before the model is loaded
  code, err = run_cli(capsys, f"--workdir={cgan}", "--port=70000")
  assert code == 2 and "is not a TCP port" in err


def test_cli_prints_the_url_and_exits_0_on_ctrl_c(cgan):
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  proc = subprocess.Popen([sys.executable, "-m", "gan_jax", "explore", f"--workdir={cgan}",
                           "--port=0"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    line = proc.stdout.readline()
    assert line.startswith(f"exploring {cgan} at http://127.0.0.1:"), (line, proc.stderr.read())
    url = line.split(" at ")[1].split()[0]
    with urllib.request.urlopen(url + "image?seed=2&label=1", timeout=60) as r:
      assert r.status == 200 and r.headers["Content-Type"] == "image/png"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 0  # exiting (JAX's teardown) is slow on a loaded machine
  finally:
    proc.kill()
    proc.communicate()


def browser():
  """A headless Chromium driven by selenium; skips saying how to install what is missing."""
  try:
    return chromium()
  except RuntimeError as e:
    pytest.skip(f"the browser test {e}")


def test_page_in_a_headless_browser(cgan_server, tmp_path):
  from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
  from selenium.webdriver.common.keys import Keys  # pylint: disable=import-outside-toplevel
  driver = browser()
  try:
    driver.get(cgan_server.url)
    query = "return document.getElementById('sample').dataset.query"
    assert wait_for(driver, query) == "seed=0&label=0"
    assert "cgan_digits" in driver.find_element(By.ID, "run").text
    image = driver.find_element(By.ID, "sample")
    before = np.asarray(Image.open(io.BytesIO(image.screenshot_as_png)).convert("L"))
    driver.find_element(By.ID, "seed").send_keys(Keys.ARROW_RIGHT)  # the seed slider, moved
    wait_for(driver, query + " === 'seed=1&label=0'")
    after = np.asarray(Image.open(io.BytesIO(image.screenshot_as_png)).convert("L"))
    assert (before != after).any(), "moving the seed did not change the image"
    for shown, query in [(before, "seed=0&label=0"), (after, "seed=1&label=0")]:
      served = pixels(request(cgan_server, "/image?" + query)[2])
      assert shown.shape == served.shape, (shown.shape, served.shape)
      np.testing.assert_array_equal(shown, served)  # on screen: exactly what the model drew
    assert driver.find_element(By.ID, "seed-number").get_attribute("value") == "1"
    assert driver.find_element(By.ID, "error").text == ""
    timings = driver.execute_script("return window.explorerTimings")
    assert len(timings) == 2 and all(t > 0 for t in timings)
    shot = tmp_path / "explore.png"
    driver.save_screenshot(str(shot))
    assert Image.open(shot).size[0] > 0
    if os.environ.get(ARTIFACTS):
      os.makedirs(os.environ[ARTIFACTS], exist_ok=True)
      shutil.copy(shot, os.path.join(os.environ[ARTIFACTS], "explore.png"))
  finally:
    driver.quit()


def test_translator_page_in_a_headless_browser(pix2pix, tmp_path):
  from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
  digit = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
  Image.fromarray(digit).save(tmp_path / "digit.png")
  driver = browser()
  try:
    with serving(pix2pix) as server:
      driver.get(server.url)
      wait_for(driver, "return document.body.dataset.ready")
      assert not driver.find_element(By.ID, "noise").is_displayed()  # no seed for a translator
      assert driver.find_element(By.ID, "upload").is_displayed()
      driver.find_element(By.ID, "file").send_keys(str(tmp_path / "digit.png"))
      wait_for(driver, "return document.getElementById('output').dataset.name === 'digit.png'")
      shown = driver.find_element(By.ID, "output").screenshot_as_png
      served = request(server, "/translate", data=(tmp_path / "digit.png").read_bytes())[2]
      np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(shown)).convert("L")),
                                    pixels(served))
      assert driver.find_element(By.ID, "error").text == ""
  finally:
    driver.quit()


def test_directions_fall_back_to_ganspace_where_sefa_has_no_closed_form(cgan, monkeypatch):
  # e.g. R3GAN's G, whose first step reads z inside the generator module itself
  def no_closed_form(model):
    raise UserError("The first layer of G that reads z is not linear in it.")
  monkeypatch.setattr(directions, "sefa", no_closed_form)
  found = explorer.load_directions(gan_jax.load(cgan))
  assert found.method == "ganspace" and len(found) == 5
