"""README's explorer figure: a screenshot of `gan-jax explore`'s page in headless Chromium, with
its controls set as a user would set them (a class, a seed, truncation and a SeFa direction).

  python benchmarks/explore_figure.py [--workdir=/work/runs/cgan_digits] [--out=docs/explore.png]
      [--seed=7] [--label=7] [--truncation=1.0] [--direction=0] [--strength=2]
"""
import threading
import time

from absl import app, flags

from browser import chromium, wait_for
from gan_jax import cache, explorer

flags.DEFINE_string("workdir", "/work/runs/cgan_digits", "a trained run")
flags.DEFINE_string("out", "docs/explore.png", "where to write the PNG")
flags.DEFINE_integer("seed", 7, "the seed control")
flags.DEFINE_integer("label", 7, "the class control (conditional runs)")
flags.DEFINE_float("truncation", 1.0, "the truncation control (None: off)")
flags.DEFINE_integer("direction", 0, "the direction control (None: none)")
flags.DEFINE_float("strength", 2.0, "the strength control")
FLAGS = flags.FLAGS

# The controls, set in the page's own order, each followed by the event its handler listens to.
SET = """
const set = (id, value, event) => {
  const el = document.getElementById(id);
  if (el.type === "checkbox") el.checked = value; else el.value = value;
  el.dispatchEvent(new Event(event));
};
const [seed, label, truncation, direction, strength] = arguments;
set("seed-number", seed, "input");
if (label !== null && !document.getElementById("label").hidden) set("label", label, "change");
if (truncation !== null) {
  set("truncate", true, "change");
  set("truncation", truncation, "input");
}
if (direction !== null) {
  set("direction", direction, "change");
  set("strength", strength, "input");
}
"""


def main(_):
  cache.enable_compilation_cache()
  server = explorer.open_server(FLAGS.workdir, port=0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  driver = chromium(width=1000, height=620, args=["--hide-scrollbars"])
  try:
    driver.get(server.url)
    wait_for(driver, "return document.getElementById('sample').dataset.query")
    driver.execute_script(SET, FLAGS.seed, FLAGS.label, FLAGS.truncation, FLAGS.direction,
                          FLAGS.strength)
    want = f"strength={FLAGS.strength:g}" if FLAGS.direction is not None else f"seed={FLAGS.seed}"
    wait_for(driver, "const q = document.getElementById('sample').dataset.query;"
         f"return q && q.includes('{want}')")
    time.sleep(0.5)  # let the last image paint
    driver.save_screenshot(FLAGS.out)
  finally:
    driver.quit()
    server.shutdown()
    server.server_close()
  print(FLAGS.out)


if __name__ == "__main__":
  app.run(main)
