"""Scoring a generator: `gan-jax evaluate` and the evaluations the train loop runs.

Metrics, by name:
  fid, is, kid, pr, prdc  InceptionV3 (pytorch-fid's FID network) features and logits: FID, IS over
                          10 splits, KID, precision/recall (k=3), density/coverage (k=5); images.
  modes                   mode coverage: PacGAN's metrics on ring2d/grid2d, the 1000 modes of
                          stacked_digits (and label accuracy for conditional models).
  digits                  the offline digits classifier: digits FID, IS, class histogram (and label
                          accuracy for conditional models); the digits data only. For translators
                          of digit_edges / digit_styles: how often the output reads as its input's
                          digit, by a classifier of the target domain's drawing.
  l1, psnr, ssim          translators: outputs against their targets (data with aligned pairs).
  psnr_y, ssim_y          super-resolution: the SR literature's protocol (`metrics/sr.py`) on
                          held-out HR pictures (`eval.hr_dir`, else the data's held-out part:
                          photos:test), each downscaled by bicubic and upscaled whole by G;
                          bicubic upscaling's scores beside ("bicubic_psnr_y", ...).
  cas                     class-conditional image runs: Classification Accuracy Score
                          (`metrics/cas.py`): a pixel SVC trained on the samples (labels spread
                          evenly over the classes) tested on real labelled images of
                          `eval.test_dir` (class subfolders named as the run's classes), else the
                          data's held-out part (digits: the 360 of `digits_split()`, which the
                          digits source trains G on too); "cas_real": the same classifier trained
                          on as many real training images, where the data has them.
With no metrics named, the game's default (psnr_y,ssim_y for super-resolution), else the data's: modes for ring2d/grid2d/stacked_digits, digits for
digits, fid for other images; translators: digits + l1/psnr/ssim for the digit tasks, l1/psnr/ssim
for pairs, fid otherwise. Translators are scored on the data's held-out part where it has one
(the digit tasks' 360 held-out digits), else on the training data, in every direction they have
(keys prefixed "AtoB/" and "BtoA/" for two-way runs, which also get the cycle's L1 "cycle_l1").
"""
import json
import math
import os

import numpy as np
import tqdm

from gan_jax import api, config as config_lib, experiment
from gan_jax.data import embedded, sources
from gan_jax.errors import UserError

INCEPTION_METRICS = ("fid", "is", "kid", "pr", "prdc")
PAIR_METRICS = ("l1", "psnr", "ssim")
SR_METRICS = ("psnr_y", "ssim_y")
VIDEO_METRICS = ("motion", "fvd")  # clips: moving digits' offline measures, FVD
METRICS = (INCEPTION_METRICS + ("modes", "digits", "cas", "t2i", "clip") + PAIR_METRICS +
           SR_METRICS + VIDEO_METRICS)
MODE_SOURCES = ("ring2d", "grid2d", "stacked_digits")
# Translation data whose outputs a digits classifier can read: the style of domains A and B.
DIGIT_DOMAINS = {"digit_edges": (None, None), "digit_styles": (None, "digit_styles_b")}
ALIGNED_KINDS = sources.PAIRED_KINDS + ("digit_styles",)  # held-out digit_styles pairs A and B
# The fewest samples each metric is defined for: IS has 10 splits, PR and PRDC need k + 1 points,
# CAS's classifier two classes.
MIN_SAMPLES = {"fid": 2, "is": 10, "kid": 2, "pr": 4, "prdc": 6, "modes": 1, "digits": 2,
               "cas": 2, "t2i": 1, "clip": 1, "l1": 1, "psnr": 1, "ssim": 1, "psnr_y": 1,
               "ssim_y": 1, "motion": 10, "fvd": 2}
_CHUNK = 500  # samples generated (and scored by Inception) at a time


def settings(config):
  """The run's `eval` block, filled in with today's defaults (older runs saved none)."""
  block = config_lib.base_config().eval
  if "eval" in config:
    block.update(config.eval)
  return block


def default_metrics(source):
  if sources.kind(source) in sources.VIDEO_KINDS:
    return ["motion"] if source == "moving_digits" else ["fvd"]
  if source in MODE_SOURCES:
    return ["modes"]
  if source in DIGIT_DOMAINS:
    return ["digits"] + (list(PAIR_METRICS) if source == "digit_edges" else [])
  if sources.kind(source) in ALIGNED_KINDS:
    return list(PAIR_METRICS)
  if source == "t2i_digits":
    return ["t2i"]
  return ["digits"] if source == "digits" else ["fid"]


def parse_metrics(text, source, spec_shape, game_metrics=None):
  """`fid,kid` -> ["fid", "kid"], checked against the data; "" -> the default: the game's
  `game_metrics` where it has its own (super-resolution), else the data's."""
  names = [m.strip() for m in str(text or "").split(",") if m.strip()]
  names = list(dict.fromkeys(names)) or list(game_metrics or default_metrics(source))
  for name in names:
    if name not in METRICS:
      raise UserError(f"Unknown metric {name!r}: choose from {', '.join(METRICS)}.")
    if (name in SR_METRICS) != bool(game_metrics):
      run = "super-resolution runs" if game_metrics else "this run"
      raise UserError(f"Metric {name!r} does not score {run}: use "
                      f"--metrics={','.join(game_metrics or default_metrics(source))}.")
    if game_metrics:
      continue
    clips = len(spec_shape) == 4
    if clips != (name in VIDEO_METRICS) and not (clips and name in INCEPTION_METRICS):
      raise UserError(f"Metric {name!r} scores {'clips' if name in VIDEO_METRICS else 'images'}, "
                      f"and this run trained on {source}: use "
                      f"--metrics={default_metrics(source)[0]}.")
    if name == "motion" and source != "moving_digits":
      raise UserError(f"Metric 'motion' reads digits moving as moving_digits makes them, and "
                      f"this run trained on {source}: use --metrics=fvd.")
    if name in INCEPTION_METRICS and len(spec_shape) != 3 and not clips:
      raise UserError(f"Metric {name!r} scores images through InceptionV3, and {source} holds "
                      "2D points: use --metrics=modes.")
    if name == "cas" and len(spec_shape) != 3:
      raise UserError(f"Metric 'cas' classifies images, and {source} holds 2D points: use "
                      "--metrics=modes.")
    if name == "modes" and source not in MODE_SOURCES:
      raise UserError(f"Metric 'modes' needs data with known modes ({', '.join(MODE_SOURCES)}), "
                      f"and this run trained on {source}: use --metrics={default_metrics(source)[0]}.")
    if name == "digits" and source != "digits" and source not in DIGIT_DOMAINS:
      raise UserError(f"Metric 'digits' uses a classifier of the digits data, and this run trained "
                      f"on {source}: use --metrics={default_metrics(source)[0]}.")
    if name == "t2i" and source != "t2i_digits":
      raise UserError(f"Metric 't2i' reads prompts of the t2i_digits task, and this run trained on "
                      f"{source}: use --metrics={default_metrics(source)[0]}.")
    if name in PAIR_METRICS and sources.kind(source) not in ALIGNED_KINDS:
      raise UserError(f"Metric {name!r} compares outputs with their targets, and {source} has no "
                      f"aligned pairs: use --metrics={default_metrics(source)[0]}.")
  return names


class Evaluator:
  """Scores a train state with a fixed list of metrics; loads classifiers and statistics once."""

  def __init__(self, config, spec, metrics="", num_samples=10000, num_reference=10000,
               inception_weights="", seed=0, hr_dir="", test_dir="", class_labels=None,
               clip_weights="", i3d_weights="", progress=False):
    """`class_labels`: the run's class name -> label (its labels.json), which names `test_dir`'s
    subfolders; None: those of the training data, else the labels' own numbers ("0", "1", ...).
    `clip_weights`: the CLIPModel folder the `clip` metric scores with. `progress`: progress bars
    on stderr (`gan-jax evaluate`; the train loop's evaluations keep its own bar alone)."""
    self.config, self.spec, self.hr_dir, self.progress = config, spec, hr_dir, progress
    self.source_name = config.data.source
    from gan_jax import games  # pylint: disable=g-import-not-at-top  (games import models)
    game = games.get(config.get("game", "noise"))
    self.game_metrics = getattr(game, "default_metrics", None)
    self.metrics = parse_metrics(metrics, self.source_name, spec.shape, self.game_metrics)
    self.num_samples, self.num_reference, self.seed = int(num_samples), int(num_reference), seed
    fewest = max(MIN_SAMPLES[m] for m in self.metrics)
    if self.num_samples < fewest:
      raise UserError(f"num_samples={self.num_samples} is too few for metrics "
                      f"{','.join(self.metrics)}: use at least {fewest}.")
    self.extractor = self.reference = None
    if any(m in INCEPTION_METRICS for m in self.metrics):
      if self.num_reference < 6:
        raise UserError(f"num_reference={self.num_reference} is too few real images for Inception "
                        "metrics: use at least 6 (10000 or more for comparable FIDs).")
      from gan_jax.metrics import inception  # pylint: disable=g-import-not-at-top
      path = inception_weights or inception.default_weights_path()
      self.extractor = inception.InceptionExtractor(path)
      if len(spec.shape) == 4:  # clips: FID and its kin of their frames
        self.extractor = PerFrame(self.extractor)
    self.i3d = None
    if "fvd" in self.metrics:
      from gan_jax.metrics import i3d  # pylint: disable=g-import-not-at-top
      self.i3d = i3d.I3DExtractor(i3d_weights or i3d.default_weights_path())
    self.cas_test = self.cas_real = None
    if "cas" in self.metrics:
      conditional = (getattr(game, "can_generate", True) and spec.num_classes > 1
                     and config.model.get("conditional", False))
      if not conditional:
        raise UserError("cas needs a class-conditional run, one that draws images of a chosen "
                        "class (--config.model.conditional=True on labelled data), and this one "
                        f"is not: use --metrics={default_metrics(self.source_name)[0]}.")
      self.cas_test = cas_test_set(config, spec.num_classes, test_dir, class_labels)
    self.clip = None
    if "clip" in self.metrics:
      if not spec.text_dim:
        raise UserError("Metric 'clip' scores images against the captions they were drawn for, "
                        "and this run reads no captions: use it on a text-to-image run.")
      if not clip_weights:
        raise UserError("Metric 'clip' needs CLIP weights: pass --clip_weights=FOLDER, a Hugging "
                        "Face CLIPModel folder (config.json, model.safetensors, tokenizer.json).")
      from gan_jax.metrics import clip_score  # pylint: disable=g-import-not-at-top
      self.clip = clip_score.ClipScorer(os.path.expanduser(clip_weights))

  @classmethod
  def from_config(cls, config, spec, **overrides):
    """An evaluator from the config's `eval` block, any of its keys overridden."""
    e = settings(config)
    kwargs = dict(metrics=e.metrics, num_samples=e.num_samples, num_reference=e.num_reference,
                  inception_weights=e.inception_weights, seed=e.seed, hr_dir=e.hr_dir,
                  test_dir=e.test_dir, clip_weights=e.clip_weights,
                  i3d_weights=e.get("i3d_weights", ""))
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return cls(config, spec, **kwargs)

  def _reference(self):
    if self.reference is None:
      from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
      self.reference = reference.reference_stats(self.config, sources.build(self.config),
                                                 self.extractor, self.num_reference,
                                                 self.progress)
    return self.reference

  def _bar(self, total, desc, unit):
    """A progress bar over `total` units of one long loop, shown when `progress` is on."""
    return tqdm.tqdm(total=total, desc=desc, unit=unit, disable=not (self.progress and total))

  def _samples(self, exp, state, ema, truncate):
    """Yields (samples, labels) chunks: latents of chunk i come from seed (seed, i)."""
    classes = self.spec.num_classes if self.config.model.conditional else 0
    for i, start in enumerate(range(0, self.num_samples, _CHUNK)):
      n = min(_CHUNK, self.num_samples - start)
      labels = np.arange(start, start + n) % classes if classes else None
      samples, _ = exp.game.generate(state, n, seed=self.seed * 100003 + i, labels=labels, ema=ema,
                                     **truncate)
      yield samples, labels

  def __call__(self, exp, state, ema=True, truncate=None):
    """{"step", "ema", "num_samples", "metrics", <scores>} of `state`'s generator; `truncate`:
    generate's truncation arguments (games with an average style), also recorded."""
    if self.game_metrics:
      return self._superres(exp, state, ema)
    if not exp.game.can_generate:
      return self._translation(exp, state, ema)
    from gan_jax.metrics.stats import FeatureStats  # pylint: disable=g-import-not-at-top
    keep_samples = any(m in ("modes", "digits", "cas", "motion") for m in self.metrics)
    kept, kept_labels, pools, logits, stats = [], [], [], [], FeatureStats()
    videos = FeatureStats()
    draws = keep_samples or self.extractor is not None or self.i3d is not None
    bar = self._bar(self.num_samples if draws else 0, "generating and scoring",
                    "clip" if len(self.spec.shape) == 4 else "image")
    for samples, labels in self._samples(exp, state, ema, truncate or {}) if draws else ():
      if keep_samples:
        kept.append(samples)
        kept_labels.append(labels)
      if self.i3d is not None:
        videos.update(self.i3d(samples)[0])
      if self.extractor is not None:
        pool, logit = self.extractor(samples)
        stats.update(pool)
        pools.append(pool)
        logits.append(logit)
      bar.update(len(samples))
    bar.close()
    out = {"step": int(np.asarray(state.step)),
           "ema": bool(ema and state.g_ema is not None),
           "num_samples": self.num_samples, "metrics": list(self.metrics), **(truncate or {})}
    if self.extractor is not None:
      out.update(self._inception_scores(stats, np.concatenate(pools), np.concatenate(logits)))
    if keep_samples:
      samples = np.concatenate(kept)
      labels = None if kept_labels[0] is None else np.concatenate(kept_labels)
      if "modes" in self.metrics:
        out.update(self._modes(samples, labels))
      if "digits" in self.metrics:
        from gan_jax.metrics import digits  # pylint: disable=g-import-not-at-top
        out.update(digits.digits_metrics(samples, labels=labels))
      if "cas" in self.metrics:
        out.update(self._cas(samples, labels))
      if "motion" in self.metrics:
        from gan_jax.metrics import video  # pylint: disable=g-import-not-at-top
        out.update(video.moving_digit_measures(samples))
    if self.i3d is not None:
      out.update(self._fvd(videos, exp.spec.shape[0]))
    if "t2i" in self.metrics:
      out.update(self._t2i(exp, state, ema, truncate or {}))
    if self.clip is not None:
      out["clip_score"] = self._clip_score(exp, state, ema, truncate or {})
    return out

  def _fvd(self, stats, frames):
    """FVD of the generated clips' I3D features (`stats`) against `num_reference` real clips',
    with its protocol spelt out: published FVDs differ by protocol."""
    from gan_jax.metrics import reference, scores  # pylint: disable=g-import-not-at-top
    held_out = sources.build(self.config, split="test")
    config = self.config.copy_and_resolve_references()
    config.data.split = "train" if held_out is None else "test"  # the cache is keyed by split
    real_clips = sources.build(self.config) if held_out is None else held_out
    ref = reference.reference_stats(config, real_clips, self.i3d, self.num_reference,
                                    self.progress)
    real = len(ref["features"])
    which = "the training data" if held_out is None else "held-out data (clips not trained on)"
    return {"fvd": scores.frechet_distance(*stats.result(), ref["mean"], ref["cov"]),
            "fvd_protocol": (f"fvd{self.num_samples}_{frames}f: Frechet distance of I3D "
                             f"(Kinetics-400) logits, {self.num_samples} generated clips against "
                             f"{real} real clips of {which}, {frames} frames each, every "
                             "frame resized bilinearly to 224x224, pixels in [-1, 1]")}

  def _clip_score(self, exp, state, ema, truncate):
    """CLIP score (`metrics.clip_score`) of num_samples images, each drawn for a caption of the
    data picked by the seed, against that caption."""
    if exp.game.captions is None:
      raise UserError("Metric 'clip' draws images of the data's captions, and this run's "
                      "text_embeddings.npz is missing: resume training once to write it.")
    from gan_jax.metrics import clip_score  # pylint: disable=g-import-not-at-top
    texts, embeddings = exp.game.captions  # the data's distinct captions
    picks = np.random.default_rng(self.seed).integers(0, len(texts), self.num_samples)
    used = np.unique(picks)  # each caption CLIP-encoded once
    by_clip = self.clip.text.encode([texts[i] for i in used])
    image_embeddings = []
    with self._bar(self.num_samples, "CLIP score", "image") as bar:
      for i, start in enumerate(range(0, self.num_samples, _CHUNK)):
        chunk = picks[start:start + _CHUNK]
        samples, _ = exp.game.generate(state, len(chunk), seed=self.seed * 100003 + i,
                                       labels=embeddings[chunk], ema=ema, **truncate)
        image_embeddings.append(self.clip.vision.encode(samples))
        bar.update(len(chunk))
    return clip_score.clip_score(np.concatenate(image_embeddings),
                                 by_clip[np.searchsorted(used, picks)])

  def _t2i(self, exp, state, ema, truncate):
    """Attribute accuracy and R-precision on the t2i_digits prompts (`metrics.text`), per seen and
    held-out pairs and per wording. Text runs read the prompts through their sentence encoder; a
    cGAN on the same data reads each prompt's (digit, colour) class: the reference line."""
    from gan_jax.data import captions  # pylint: disable=g-import-not-at-top
    from gan_jax.metrics import text  # pylint: disable=g-import-not-at-top
    if exp.spec.text_dim:
      from gan_jax import encoders  # pylint: disable=g-import-not-at-top
      to_labels = encoders.get(self.config.text.encoder).encode
    elif self.config.model.get("conditional", False):
      to_labels = lambda texts: np.array([captions.label(captions.pair_of(t)) for t in texts])
    else:
      raise UserError("Metric 't2i' asks for digits of given colours, and this run draws no "
                      "chosen ones: train a text run (configs/t2i_digits.py) or a conditional one.")
    calls = iter(range(1 << 30))  # each batch of prompts its own latents

    def generate(texts):
      return exp.game.generate(state, len(texts), seed=self.seed * 100003 + next(calls),
                               labels=to_labels(list(texts)), ema=ema, **truncate)[0]
    return {f"t2i/{k}": v for k, v in text.prompt_metrics(generate, seed=self.seed).items()}

  def _cas(self, samples, labels):
    """CAS of the samples on the test set; and once per evaluator, the same classifier trained
    on as many real training images (`cas_real`), where the data has them."""
    from gan_jax.metrics import cas  # pylint: disable=g-import-not-at-top
    test = self.cas_test
    scores = cas.scores(samples, labels, test.images, test.labels, self.spec.num_classes)
    out = {"cas": scores["accuracy"], "cas_per_class": scores["per_class_accuracy"],
           "cas_test": test.name, "cas_test_size": len(test.labels)}
    if test.seen_by_g:
      out["cas_test_seen_by_g"] = True
    if self.cas_real is None:
      real = cas_real_train_set(self.config, len(samples), self.seed)
      self.cas_real = {} if real is None else {
          "cas_real": cas.accuracy(*real, test.images, test.labels),
          "cas_real_size": len(real[1])}
    out.update(self.cas_real)
    return out

  def every_seed(self, exp, state, ema=True, truncate=None, seed_index=None):
    """The scores of `state`, whose runs `exp` keeps stacked when it trained num_seeds > 1: of
    run `seed_index` (recorded as such), else of every run, combined by `across_seeds`."""
    if seed_index is not None and exp.num_seeds > 1:
      return {**self(exp, exp.seed_state(state, seed_index), ema, truncate),
              "seed_index": seed_index}
    if exp.num_seeds == 1:
      return self(exp, exp.seed_state(state, seed_index or 0), ema, truncate)
    return across_seeds([self(exp, exp.seed_state(state, i), ema, truncate)
                         for i in range(exp.num_seeds)], truncate)

  def _translation(self, exp, state, ema):
    """Scores a translator on held-out data (else the training data), every direction."""
    from gan_jax.metrics import pairs, stats as stats_lib  # pylint: disable=g-import-not-at-top
    game, name = exp.game, self.source_name
    data, split = sources.build(self.config, split="test"), "test"
    if data is None:
      data, split = sources.build(self.config), "train"
    views = _domains(data)
    out = {"step": int(np.asarray(state.step)), "ema": bool(ema and state.g_ema is not None),
           "split": split, "metrics": list(self.metrics)}
    for direction in game.directions:
      src, dst = (0, 1) if direction == "AtoB" else (1, 0)
      num = out["num_samples"] = min(self.num_samples, len(views[src]))
      prefix = f"{direction}/" if len(game.directions) > 1 else ""
      back = next((d for d in game.directions if d != direction), None)
      classifier = None
      if "digits" in self.metrics:
        from gan_jax.metrics import digits  # pylint: disable=g-import-not-at-top
        classifier = digits.DigitsClassifier.load_or_train(style=DIGIT_DOMAINS[name][dst])
      per_image, hits, cycle, stats, pools, logits = {}, [], [], stats_lib.FeatureStats(), [], []
      bar = self._bar(num, f"translating {direction}", "image")
      for start in range(0, num, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, num))
        batch = views[src].get(idx)
        x, labels = _to_float(batch["x"]), batch["label"]
        outputs = game.translate(state, x, direction, ema=ema)
        if set(PAIR_METRICS) & set(self.metrics):
          target = _to_float(views[dst].get(idx)["x"])
          for metric in PAIR_METRICS:
            per_image.setdefault(metric, []).append(
                getattr(pairs, metric)(outputs, target, per_image=True))
        if classifier is not None:
          hits.append(classifier.predict(outputs) == labels)
        if back:
          cycle.append(pairs.l1(game.translate(state, outputs, back, ema=ema), x, per_image=True))
        if self.extractor is not None:
          pool, logit = self.extractor(outputs)
          stats.update(pool)
          pools.append(pool)
          logits.append(logit)
        bar.update(len(idx))
      bar.close()
      scores = {m: float(np.concatenate(v).mean()) for m, v in per_image.items()
                if m in self.metrics}
      if hits:
        scores["digit_accuracy"] = float(np.concatenate(hits).mean())
      if back:
        scores["cycle_l1"] = float(np.concatenate(cycle).mean())
      if self.extractor is not None:
        from gan_jax.metrics import reference  # pylint: disable=g-import-not-at-top
        domain = self.config.copy_and_resolve_references()
        domain.data.split = f"{split}_{'AB'[dst]}"  # the reference cache is keyed by domain too
        ref = reference.reference_stats(domain, views[dst], self.extractor, self.num_reference,
                                        self.progress)
        scores.update(self._inception_scores(stats, np.concatenate(pools), np.concatenate(logits),
                                             ref))
      out.update({prefix + k: v for k, v in scores.items()})
    return out

  def _superres(self, exp, state, ema):
    """G and bicubic scored on held-out HR pictures, each downscaled x scale by bicubic."""
    from gan_jax import upscaling  # pylint: disable=g-import-not-at-top
    from gan_jax.data import degrade  # pylint: disable=g-import-not-at-top
    from gan_jax.metrics import sr  # pylint: disable=g-import-not-at-top
    game, (pictures, split) = exp.game, held_out_pictures(self.config, self.hr_dir)
    pictures = pictures[:self.num_samples]
    scale = game.scale
    fn = lambda x: game.upscale(state, x, ema=ema)
    hr, outputs, bicubic = [], [], []
    bar = self._bar(len(pictures), "upscaling held-out pictures", "picture")
    for picture in pictures:
      h, w = (n - n % scale for n in picture.shape[:2])  # whole LR pixels, as the protocol
      picture = picture[:h, :w]
      lr = degrade.imresize(picture, 1 / scale)
      hr.append(picture)
      outputs.append(upscaling.upscale_array(lr, fn, scale))
      bicubic.append(degrade.imresize(lr, scale))
      bar.update(1)
    bar.close()
    out = {"step": int(np.asarray(state.step)), "ema": bool(ema and state.g_ema is not None),
           "split": split, "num_samples": len(pictures), "metrics": list(self.metrics)}
    for prefix, images in (("", outputs), ("bicubic_", bicubic)):
      scores = sr.score_pairs(images, hr, crop=scale)
      out.update({prefix + m: scores[m] for m in self.metrics})
    return out

  def _inception_scores(self, stats, pool, logits, ref=None):
    from gan_jax.metrics import scores  # pylint: disable=g-import-not-at-top
    out = {}
    if ref is None and set(self.metrics) - {"is"}:
      ref = self._reference()
    if "fid" in self.metrics:
      out["fid"] = scores.frechet_distance(*stats.result(), ref["mean"], ref["cov"])
    if "is" in self.metrics:
      out["is"], out["is_std"] = scores.inception_score(logits, splits=10)
    if "kid" in self.metrics:
      out["kid"], out["kid_std"] = scores.kernel_inception_distance(ref["features"], pool)
    if "pr" in self.metrics:
      out.update(scores.precision_recall(ref["features"], pool, k=3))
    if "prdc" in self.metrics:
      out.update(scores.density_coverage(ref["features"], pool, k=5))
    return out

  def _modes(self, samples, labels):
    if self.source_name == "stacked_digits":
      from gan_jax.metrics import digits  # pylint: disable=g-import-not-at-top
      return digits.stacked_digit_modes(samples, labels)
    from gan_jax.metrics import modes2d  # pylint: disable=g-import-not-at-top
    modes, std = ((embedded.ring_modes(), embedded.RING_STD) if self.source_name == "ring2d"
                  else (embedded.grid_modes(), embedded.GRID_STD))
    return modes2d.mode_metrics(samples, modes, std)


class PerFrame:
  """An image feature extractor applied to every frame of clips [N, T, H, W, C]: the features of
  FID, KID, IS, PR and PRDC on a video run's frames (cached under its own name)."""

  def __init__(self, extractor):
    self.extractor = extractor
    self.name, self.weights_hash = f"{extractor.name}_frames", extractor.weights_hash

  def __call__(self, clips):
    clips = np.asarray(clips)
    return self.extractor(clips.reshape((-1,) + clips.shape[2:]))


class _Domain:
  """One domain of aligned two-domain data, read as a one-domain source ({"x", "label"})."""

  def __init__(self, data, key):
    self.data, self.key = data, key

  def __len__(self):
    return len(self.data)

  def get(self, indices):
    batch = self.data.get(indices)
    label = "label" if self.key == "x" else "y_label"
    return {"x": batch[self.key], "label": batch[label]}


def held_out_pictures(config, hr_dir=""):
  """(HR pictures as uint8 HWC arrays, where they come from) for super-resolution scores: those
  in the folder `hr_dir`, else the data's held-out pictures (photos:test)."""
  if hr_dir:
    from gan_jax.data import folder, images  # pylint: disable=g-import-not-at-top
    if not os.path.isdir(hr_dir):
      raise UserError(f"--config.eval.hr_dir={hr_dir} is not a folder: pass a folder of HR "
                      "pictures to score on.")
    relpaths = folder.check_readable(hr_dir, folder.find_images(hr_dir), 4)
    if not relpaths:
      raise UserError(f"--config.eval.hr_dir={hr_dir} holds no readable pictures: pass a folder "
                      "of png, jpg, webp or bmp images.")
    channels = config.data.channels
    return [images.read(os.path.join(hr_dir, p), channels) for p in relpaths], hr_dir
  held_out = sources.build(config, split="test")
  if held_out is None or not hasattr(held_out, "images"):
    raise UserError(f"{config.data.source} has no held-out pictures to score super-resolution "
                    "on: pass --config.eval.hr_dir=FOLDER of HR pictures.")
  return held_out.images(), "test"


class CasTestSet:
  """Real labelled images a CAS classifier is tested on (float NHWC in [-1, 1], the run's labels),
  where they come from, and whether G trained on them."""

  def __init__(self, images, labels, name, seen_by_g=False):
    self.images, self.labels, self.name, self.seen_by_g = images, labels, name, seen_by_g


def cas_test_set(config, num_classes, test_dir="", class_labels=None):
  """The CAS test set: the labelled folder `test_dir` (subfolders named as the run's classes),
  else the data's held-out part (the digits source: the 360 of `digits_split()`, at the run's
  resolution and channels as G saw them)."""
  d = config.data
  if test_dir:
    from gan_jax.data import folder  # pylint: disable=g-import-not-at-top
    test_dir = os.path.expanduser(test_dir)
    if not os.path.isdir(test_dir):
      raise UserError(f"--test_dir={test_dir} is not a folder: pass a folder of real images with "
                      "one subfolder per class, named as the run's classes.")
    found, _ = folder.walk_images(test_dir)
    if not any(folder.class_of(p) for p in found):
      raise UserError(f"--test_dir={test_dir} has no class subfolders with images: put each "
                      "class's images in a subfolder named as the run's class (see labels.json).")
    source = folder.FolderSource.scan(test_dir, d)
    ids = _class_ids(config, num_classes, class_labels)
    unknown = [n for n in source.class_names if n not in ids]
    if unknown:
      shown = ", ".join(sorted(ids, key=ids.get)[:12])
      raise UserError(f"--test_dir={test_dir} has subfolder {unknown[0]!r}, which is not a class "
                      f"of this run ({shown}): name the subfolders as the run's classes.")
    to_run = np.array([ids[n] for n in source.class_names], np.int32)
    images, labels = [], []
    for start in range(0, len(source), _CHUNK):
      batch = source.get(np.arange(start, min(start + _CHUNK, len(source))))
      images.append(_to_float(batch["x"]))
      labels.append(to_run[batch["label"]])
    return CasTestSet(np.concatenate(images), np.concatenate(labels), test_dir)
  if d.source == "digits":
    from gan_jax.metrics import digits  # pylint: disable=g-import-not-at-top
    _, test = digits.digits_split()
    images, labels = _digits_at(d, test)
    return CasTestSet(images, labels, "digits:test", seen_by_g=True)
  raise UserError(f"cas tests on real labelled images, and {d.source} has no held-out part: pass "
                  "--test_dir=FOLDER with one subfolder of real images per class.")


def cas_real_train_set(config, num, seed=0):
  """(images, labels): `num` real training images (or all there are), classes as even as the
  data allows, for `cas_real`; the digits source's come from the train part of `digits_split()`,
  kept apart from its held-out 360. None where the training data cannot be read any more."""
  from gan_jax.metrics import cas  # pylint: disable=g-import-not-at-top
  d = config.data
  if d.source == "digits":
    from gan_jax.metrics import digits  # pylint: disable=g-import-not-at-top
    train, _ = digits.digits_split()
    _, labels = embedded.digits(8)
    return _digits_at(d, train[cas.balanced_pick(labels[train], num, seed)])
  try:
    source = sources.build(config)
  except UserError:  # e.g. the training folder was moved since: score without cas_real
    return None
  data_labels = _all_labels(source)
  pick = cas.balanced_pick(data_labels, num, seed)
  images, labels = [], []
  for start in range(0, len(pick), _CHUNK):
    batch = source.get(pick[start:start + _CHUNK])
    images.append(_to_float(batch["x"]))
    labels.append(batch["label"])
  return np.concatenate(images), np.concatenate(labels)


def _all_labels(source):
  """The label of every example of a training source."""
  if isinstance(source, sources.Subset):
    return _all_labels(source.source)[source.indices]
  labels = getattr(source, "labels", None)
  if labels is None:  # sources that keep no label array: read them (decoding the images too)
    labels = np.concatenate([source.get(np.arange(s, min(s + _CHUNK, len(source))))["label"]
                             for s in range(0, len(source), _CHUNK)])
  return np.asarray(labels)


def _digits_at(d, indices):
  """The embedded digits `indices` as the digits source gives them to G, as floats; labels."""
  images, labels = embedded.digits(d.resolution)
  images = np.repeat(images[indices], d.channels, axis=-1)
  return _to_float(images), labels[indices]


def _class_ids(config, num_classes, class_labels):
  """Class name -> the run's label: labels.json's, else the training data's class names, else
  the labels' own numbers ("0", "1", ...)."""
  if class_labels:
    return dict(class_labels)
  names = None
  if sources.kind(config.data.source) in sources.FILE_KINDS:
    try:
      names = getattr(sources.build(config), "class_names", None)
    except UserError:
      names = None
  return {n: i for i, n in enumerate(names)} if names else {
      str(i): i for i in range(num_classes)}


def _domains(data):
  """(domain A, domain B) of translation data as sources: aligned pairs or independent domains."""
  return getattr(data, "domains", None) or (_Domain(data, "x"), _Domain(data, "y"))


def _to_float(images):
  return np.asarray(images, np.float32) / 127.5 - 1.0


def scalars(result):
  """The numeric scores of a result, for metrics.jsonl and TensorBoard."""
  return {k: float(v) for k, v in result.items()
          if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
          and k not in ("step", "num_samples", "cas_test_size", "cas_real_size")}


def across_seeds(results, truncate=None):
  """One result of the runs' `results`: each score as `name/seed_i`, their mean under `name` and
  their sample standard deviation (ddof 1) as `name/std`; what is not a score as run 0 has it."""
  scores = [k for k in scalars(results[0]) if k not in (truncate or {})]
  out = {k: v for k, v in results[0].items() if k not in scores}
  out["num_seeds"] = len(results)
  for k in scores:
    values = np.array([r[k] for r in results], np.float64)
    with np.errstate(invalid="ignore"):  # an infinite score (KL of no sample) has no spread
      out[k], out[f"{k}/std"] = float(values.mean()), float(values.std(ddof=1))
    out.update({f"{k}/seed_{i}": float(v) for i, v in enumerate(values)})
  return out


def to_json(result):
  """One JSON line; a score that is not finite (no high-quality sample: infinite KL) is null."""
  def clean(v):
    if isinstance(v, (list, tuple)):
      return [clean(x) for x in v]
    if isinstance(v, (float, np.floating)):
      return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
      return int(v)
    return v
  return json.dumps({k: clean(v) for k, v in result.items()})


def evaluate(workdir, metrics=None, num_samples=None, ema=True, inception_weights=None,
             num_reference=None, seed=None, truncation=None, truncation_cutoff=None,
             seed_index=None, hr_dir=None, test_dir=None, clip_weights=None, i3d_weights=None,
             progress=False):
  """Scores the latest checkpoint of `workdir`; appends the result to DIR/eval.jsonl; returns it.

  Unset arguments come from the run's `eval` config block (`hr_dir`: super-resolution's HR
  pictures; `test_dir`: cas's real labelled images, subfolders named as in the run's
  labels.json; `clip_weights`: the CLIPModel folder of `clip`; `i3d_weights`: the converted I3D
  .npz of `fvd`); `truncation` and `truncation_cutoff` as `gan-jax sample` takes them;
  `progress`: progress bars on stderr. A run of train.num_seeds > 1 is scored run by run with
  their mean and spread (`across_seeds`), or only run `seed_index`.
  """
  exp, ckpt = experiment.load(workdir)
  try:
    if seed_index is not None:
      exp.check_seed_index(seed_index)
    truncate = api.truncation_args(exp, workdir, truncation, truncation_cutoff)
    evaluator = Evaluator.from_config(
        exp.config, exp.spec, metrics=metrics, num_samples=num_samples,
        inception_weights=inception_weights, num_reference=num_reference, seed=seed,
        hr_dir=hr_dir, test_dir=test_dir, clip_weights=clip_weights, i3d_weights=i3d_weights,
        class_labels=sources.read_labels(workdir), progress=progress)
    state = experiment.restore_latest(exp, ckpt)
  finally:
    ckpt.close()
  result = evaluator.every_seed(exp, state, ema=ema, truncate=truncate, seed_index=seed_index)
  with open(os.path.join(workdir, "eval.jsonl"), "a") as f:
    f.write(to_json(result) + "\n")
  return result

