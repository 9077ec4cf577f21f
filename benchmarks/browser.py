"""Headless Chromium for the explorer's benchmark and browser test (Debian's chromium and
chromium-driver, driven by selenium)."""
import shutil
import time


def chromium(width=900, height=600, args=()):
  """A selenium driver of headless Chromium (`args`: more command-line switches); RuntimeError
  saying how to install what is missing (tests/test_explore.py skips with it)."""
  try:
    from selenium import webdriver  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise RuntimeError("needs selenium: pip install selenium (or .[test])") from None
  browser = shutil.which("chromium") or shutil.which("chromium-browser")
  driver = shutil.which("chromedriver")
  if not (browser and driver):
    raise RuntimeError("needs Chromium and its driver: apt install chromium chromium-driver "
                       "(Debian; Ubuntu's chromium-browser works too)")
  options = webdriver.ChromeOptions()
  options.binary_location = browser
  for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--force-device-scale-factor=1", *args):
    options.add_argument(arg)
  return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def wait_for(driver, script, timeout=60, poll=0.01):
  """The first truthy value `script` returns within `timeout` seconds; AssertionError naming the
  page's error line otherwise."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    value = driver.execute_script(script)
    if value:
      return value
    time.sleep(poll)
  error = driver.execute_script(
      "const e = document.getElementById('error'); return e && e.textContent")
  raise AssertionError(f"not true within {timeout} s: {script} (the page's error: {error!r})")
