"""Captions per second of the MiniLM text encoder: ours (gan_jax.encoders, JAX) against
sentence-transformers' PyTorch forward of the same weights, alternating runs (A B A B ...).

  python benchmarks/encoder_speed.py [--captions=1024] [--batch_size=256] [--rounds=3]
      [--calls=2] [--padded_rounds=1] [--json=PATH]

On a machine other jobs share, run it under `chrt -f 10` (as README's Performance figures):
`scheduler` in the result says how it ran.

Each run is a fresh process (as compare.py's), so neither side's threads linger in the other's
time, and encodes the same captions ("a red seven", "the digit 7 in red", ...) end to end
(tokenize, forward, pool, normalise) once untimed (our compiles) and `--calls` times timed:
- ours: batches trimmed to a length bucket (8 or 12 word pieces for these captions);
- ours_padded_128: every batch padded to 128, what tokenizer.json does by itself, so the gain of
  trimming is measured rather than assumed (slow: only in the first --padded_rounds rounds);
- peer: SentenceTransformer.encode on CPU, torch given as many threads as this process may use;
- peer_1_thread: the same with one torch thread (OpenMP's threads suffer most when other jobs
  share the cores: `load_average` says how busy the machine was).
Each pair of runs gives a ratio ours/peer of captions per second; the median ratio is the figure
to quote. `max_abs_difference` compares ours and the peer's embeddings. Prints one JSON object.
"""
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

import timing

SIDES = ("ours", "ours_padded_128", "peer", "peer_1_thread")
flags.DEFINE_integer("captions", 1024, "captions per encode call")
flags.DEFINE_integer("batch_size", 256, "captions per batch (both sides)")
flags.DEFINE_integer("rounds", 3, "rounds of runs (each: ours, the peer at all and one thread)")
flags.DEFINE_integer("calls", 2, "timed encode calls per run")
flags.DEFINE_integer("padded_rounds", 1, "the first rounds that also run ours padded to 128")
flags.DEFINE_enum("side", None, SIDES, "run this one side here (what the rounds start)")
flags.DEFINE_string("save", None, "with --side: write its embeddings to this .npy")
flags.DEFINE_string("json", None, "also write the result here")
FLAGS = flags.FLAGS

COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEMPLATES = ("a {c} {w}", "the digit {d} in {c}", "a {c} digit {w} on a dark background",
             "a handwritten {w}, drawn in {c} ink", "{c} {d}", "the number {w} written in {c}")


def captions(n):
  """n short digit captions, cycling through templates, colours and digits."""
  out = []
  while len(out) < n:
    i = len(out)
    out.append(TEMPLATES[i % len(TEMPLATES)].format(
        c=COLORS[(i // len(TEMPLATES)) % len(COLORS)], d=(i // 7) % 10, w=DIGITS[(i // 7) % 10]))
  return out


def encoder(side, threads):
  """The side's encode(texts) and a record of what ran it."""
  if side.startswith("ours"):
    import jax  # pylint: disable=g-import-not-at-top
    from gan_jax import encoders  # pylint: disable=g-import-not-at-top
    from gan_jax.encoders import text  # pylint: disable=g-import-not-at-top
    if side == "ours_padded_128":
      text.LENGTH_BUCKETS = (128,)  # every batch of these short captions padded to 128
    enc = encoders.get("minilm")
    return (lambda texts: enc.encode(texts, batch_size=FLAGS.batch_size),
            {"backend": "jax " + jax.default_backend(), "jax": jax.__version__})
  import torch  # pylint: disable=g-import-not-at-top
  import sentence_transformers  # pylint: disable=g-import-not-at-top
  from gan_jax.encoders import minilm  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(1 if side == "peer_1_thread" else threads)
  model = sentence_transformers.SentenceTransformer(minilm.model_dir(), device="cpu")
  return (lambda texts: model.encode(texts, batch_size=FLAGS.batch_size, convert_to_numpy=True,
                                     show_progress_bar=False),
          {"backend": "torch cpu", "torch": torch.__version__, "torch_threads":
           torch.get_num_threads(), "sentence_transformers": sentence_transformers.__version__})


def run_side(side):
  import numpy as np  # pylint: disable=g-import-not-at-top
  threads = len(os.sched_getaffinity(0))
  texts = captions(FLAGS.captions)
  encode, info = encoder(side, threads)
  first, times = timing.time_calls(lambda: encode(texts), FLAGS.calls, 0)
  if FLAGS.save:
    np.save(FLAGS.save, encode(texts))
  print(json.dumps({"side": side, **info, "seconds": times, "first_call_s": first,
                    "sentences_per_sec": len(texts) / statistics.median(times)}))


def scheduler():
  """This process's scheduling ("fifo 10" under `chrt -f 10`: the cores whenever it runs)."""
  policy = os.sched_getscheduler(0)
  names = {os.SCHED_OTHER: "other", os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}
  return f"{names.get(policy, policy)} {os.sched_getparam(0).sched_priority}"


def run_json(cmd):
  # this checkout's gan_jax, whatever is installed
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [timing.REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  out = subprocess.run([sys.executable] + cmd, check=True, capture_output=True, text=True,
                       env=env).stdout
  return json.loads(out[out.index("{"):])


def main(argv):
  del argv
  if FLAGS.side:
    return run_side(FLAGS.side)
  import numpy as np  # pylint: disable=g-import-not-at-top
  common = [os.path.abspath(__file__), f"--captions={FLAGS.captions}",
            f"--batch_size={FLAGS.batch_size}", f"--calls={FLAGS.calls}"]
  tmp = tempfile.mkdtemp()
  load, runs = [os.getloadavg()[0]], {s: [] for s in SIDES}
  for r in range(FLAGS.rounds):
    for side in SIDES:
      if side == "ours_padded_128" and r >= FLAGS.padded_rounds:
        continue
      save = [f"--save={os.path.join(tmp, side)}.npy"] if r == 0 else []
      runs[side].append(run_json(common + [f"--side={side}"] + save))
      print(f"round {r}: {side} {runs[side][-1]['sentences_per_sec']:.1f} captions/s",
            file=sys.stderr, flush=True)
  load.append(os.getloadavg()[0])
  rate = {s: [run["sentences_per_sec"] for run in v] for s, v in runs.items()}
  ratio = lambda a, b: [x / y for x, y in zip(rate[a], rate[b])]
  emb = {s: np.load(os.path.join(tmp, s) + ".npy") for s in ("ours", "peer")}
  texts = captions(FLAGS.captions)
  result = {
      "benchmark": "encoder_speed", "encoder": "all-MiniLM-L6-v2",
      "command": "python " + " ".join([os.path.relpath(__file__, timing.REPO)] + sys.argv[1:]),
      "date": datetime.date.today().isoformat(), "cpu_count": os.cpu_count(),
      "threads": len(os.sched_getaffinity(0)), "scheduler": scheduler(),
      "load_average": {"start": load[0], "end": load[1]},
      "captions": len(texts), "examples": texts[:6], "batch_size": FLAGS.batch_size,
      "rounds": FLAGS.rounds, "calls": FLAGS.calls,
      "sentences_per_sec": {s: statistics.median(v) for s, v in rate.items()},
      "ratios": {"peer": ratio("ours", "peer"), "peer_1_thread": ratio("ours", "peer_1_thread"),
                 "trim": ratio("ours", "ours_padded_128")},
      "median_ratio": statistics.median(ratio("ours", "peer")),
      "median_ratio_1_thread": statistics.median(ratio("ours", "peer_1_thread")),
      "median_trim_gain": statistics.median(ratio("ours", "ours_padded_128")),
      "max_abs_difference": float(np.abs(emb["ours"] - emb["peer"]).max()),
      "runs": runs,
  }
  timing.emit(result, FLAGS.json)


if __name__ == "__main__":
  app.run(main)
