"""`gan-jax explore`'s latency: the time from a control change to the new image on screen, for
trained runs, measured as a user meets it.

  python benchmarks/explore_latency.py [--workdirs=/work/runs/dcgan_digits,/work/runs/cgan_digits]
      [--changes=40] [--browser|--nobrowser] [--json=PATH]

For each run it starts `gan-jax explore --port=0` in its own process (`startup_s`: import, load,
SeFa directions and the warm-up compile, until the URL is printed), then
- http: GET /image round trips over one kept-alive connection, each for a new seed, class,
  truncation or direction strength (`server_ms`: render and PNG inside the server, from its
  Server-Timing header);
- browser: headless Chromium on the page, one control changed at a time (seed slider, class,
  truncation, direction strength) and the page's own clock read: from the control's input event
  to the new image's load event (`window.explorerTimings`). Skipped, and said so, without
  selenium, Chromium or chromedriver.
Prints one JSON object (milliseconds: median, p90, max).
"""
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.parse

from absl import app, flags

import timing
from browser import chromium, wait_for

flags.DEFINE_list("workdirs", ["/work/runs/dcgan_digits", "/work/runs/cgan_digits"],
                  "trained runs to explore")
flags.DEFINE_integer("changes", 40, "control changes timed per run and client")
flags.DEFINE_bool("browser", True, "also time the page in headless Chromium")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS


def start(workdir):
  """(process, url, seconds until the URL was printed) of `gan-jax explore` on a free port."""
  t0 = time.perf_counter()
  proc = subprocess.Popen([sys.executable, "-m", "gan_jax", "explore", f"--workdir={workdir}",
                           "--port=0"], cwd=timing.REPO, stdout=subprocess.PIPE, text=True)
  line = proc.stdout.readline()
  if " at http://" not in line:
    proc.kill()
    raise SystemExit(f"gan-jax explore --workdir={workdir} did not start: {line!r}")
  return proc, line.split(" at ")[1].split()[0], time.perf_counter() - t0


def queries(info, n):
  """`n` /image queries, each one control away from the one before: seed, class, truncation
  and direction strength in turn (those the run has)."""
  state = {"seed": 0, **({"label": 0} if info["num_classes"] else {})}
  controls = ["seed"] + (["label"] if info["num_classes"] else []) + (
      ["truncation"] if info["truncation"] else []) + (
      ["strength"] if info["directions"] and info["directions"]["count"] else [])
  out = []
  for i in range(n):
    control = controls[i % len(controls)]
    if control == "seed":
      state["seed"] += 1
    elif control == "label":
      state["label"] = (state["label"] + 1) % info["num_classes"]
    elif control == "truncation":
      state["truncation"] = round(0.3 + 0.1 * (i % 15), 2)
    else:
      state.update(direction=i % info["directions"]["count"], strength=(i % 7) - 3)
    out.append((control, urllib.parse.urlencode(state)))
  return out


def spread(values):
  """Median, p90 and max of milliseconds."""
  ordered = sorted(values)
  return {"median": statistics.median(ordered), "p90": ordered[int(0.9 * (len(ordered) - 1))],
          "max": ordered[-1], "n": len(ordered)}


def time_http(url, info, n):
  """Round trips of GET /image over one kept-alive connection, and the server's own times."""
  parts = urllib.parse.urlsplit(url)
  conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
  total, server = [], []
  for _, query in queries(info, n):
    t = time.perf_counter()
    conn.request("GET", "/image?" + query)
    response = conn.getresponse()
    body = response.read()
    total.append(1e3 * (time.perf_counter() - t))
    assert response.status == 200 and body[:4] == b"\x89PNG", (response.status, body[:200])
    server.append(float(response.headers["Server-Timing"].split("dur=")[1]))
  conn.close()
  return {"round_trip_ms": spread(total), "server_ms": spread(server)}


# Sets one control as a user would and fires its event; the page starts its clock in the handler.
SET_CONTROL = """
const [id, value, event] = arguments;
const el = document.getElementById(id);
if (el.type === "checkbox") el.checked = value; else el.value = value;
el.dispatchEvent(new Event(event));
"""


def time_browser(driver, url, info, n):
  """The page's own times from a control change to the new image's load event."""
  driver.get(url)
  wait_for(driver, "return window.explorerTimings && window.explorerTimings.length === 1")
  if info["truncation"]:
    driver.execute_script("document.getElementById('truncate').checked = true;"
                          "document.getElementById('truncation').disabled = false;")
  if info["directions"] and info["directions"]["count"]:
    driver.execute_script(SET_CONTROL, "direction", "0", "change")
    wait_for(driver, "return window.explorerTimings.length === 2")
  by_control = {}
  for control, query in queries(info, n):
    values = dict(urllib.parse.parse_qsl(query))
    before = driver.execute_script("return window.explorerTimings.length")
    if control == "label":
      driver.execute_script(SET_CONTROL, "label", values["label"], "change")
    elif control == "strength" and driver.execute_script(
        "return document.getElementById('direction').value") != values["direction"]:
      driver.execute_script("document.getElementById('direction').value = arguments[0]",
                            values["direction"])
      driver.execute_script(SET_CONTROL, "strength", values["strength"], "input")
    else:
      driver.execute_script(SET_CONTROL, control, values[control], "input")
    wait_for(driver, f"return window.explorerTimings.length > {before}")
    ms = driver.execute_script("return window.explorerTimings[window.explorerTimings.length-1]")
    by_control.setdefault(control, []).append(ms)
  error = driver.execute_script("return document.getElementById('error').textContent")
  assert not error, error
  every = [ms for values in by_control.values() for ms in values]
  return {"change_to_image_ms": spread(every),
          "by_control_median_ms": {k: statistics.median(v) for k, v in by_control.items()}}


def measure(workdir, changes, driver):
  proc, url, startup = start(workdir)
  try:
    conn = http.client.HTTPConnection(*urllib.parse.urlsplit(url).netloc.split(":"))
    conn.request("GET", "/info")
    info = json.loads(conn.getresponse().read())
    conn.close()
    result = {"workdir": workdir, "model": info["model"], "step": info["step"],
              "size": info["size"], "num_classes": info["num_classes"],
              "directions": info["directions"] and info["directions"]["count"],
              "startup_s": startup, "http": time_http(url, info, changes)}
    if driver is not None:
      result["browser"] = time_browser(driver, url, info, changes)
    return result
  finally:
    proc.terminate()
    proc.wait(timeout=30)


def main(_):
  driver, skipped = None, None
  if FLAGS.browser:
    try:
      driver = chromium()
    except RuntimeError as e:
      skipped = f"browser not timed: {e}"
  try:
    runs = [measure(w, FLAGS.changes, driver) for w in FLAGS.workdirs]
  finally:
    if driver is not None:
      driver.quit()
  result = {"what": "gan-jax explore: control change to new image", "goal_ms": 300,
            "command": " ".join(["python", "benchmarks/explore_latency.py", *sys.argv[1:]]),
            "date": datetime.date.today().isoformat(), "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(), "runs": runs}
  if skipped:
    result["browser_skipped"] = skipped
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
