"""Games: what a family trains and what inference means, one module each.

A game is built from (config, data spec, pmap axis name or None) and offers
  validate(config)               one clear UserError for settings it cannot play (a staticmethod)
  init() -> GANState             the fresh state of config.seed (jit it: one compiled init)
  train_step(state, batch)       pure (state, metrics); the strategies, `steps_per_call` scan and
                                 non-finite check of `step.make_multi_step` wrap it unchanged
  preview_inputs(source, held_out), preview(state, inputs) -> picture
                                 what the sample grids written during training show
  can_generate, generate(...)    draws from noise (`gan-jax sample`, `evaluate`, `export`)
  discriminate(state, images, labels)
                                 D's scores, higher more real (`export --filter=discriminator:Q`)
  latents, render                generate's two halves (codes, then images)
  spaces, code_shapes(), map(...)
                                 the latent spaces G reads (z; w and w+ behind a mapping
                                 network), one code's shape in each, z -> ws (`gan_jax.latents`)
  latent_map(state, ema), features(state, z, labels, ema)
                                 the linear map that first reads the latent, and the features of
                                 that layer (SeFa and GANSpace directions, `gan_jax.directions`)
  can_truncate, style_groups()   an average style to truncate toward; ws by coarse, middle, fine
                                 (`sample --truncation`, `--mix`; none for plain z)
  directions, translate(...)     maps images to images (`gan-jax translate`, `evaluate`)
  scale, upscale(...)            maps images to `scale` times larger ones (`gan-jax upscale`)
  generator(state, ema, direction[, space]) -> (fn, variables)
                                 G in inference mode as a pure, jittable fn(variables, inputs):
                                 codes of `space` (and labels), or an image batch (`gan_jax.api`,
                                 `export-model`, `project`)
`config.game` picks one; nothing outside the game modules branches on its name. With
train.num_seeds > 1, `build` wraps the game in `seeds.Seeds`: N runs vmapped in one program.
"""
from gan_jax.errors import UserError
from gan_jax.games import (cycle, noise, paired, r3gan, seeds, style, superres, text, video,
                           video_sparse, watermark)

GAMES = {"noise": noise.NoiseGame, "paired": paired.PairedGame, "cycle": cycle.CycleGame,
         "stylegan2": style.StyleGame, "superres": superres.SuperResGame, "text": text.TextGame,
         "r3gan": r3gan.R3Game, "video": video.VideoGame,
         "video_sparse": video_sparse.SparseVideoGame, "watermark": watermark.WatermarkGame}


def get(name):
  if name not in GAMES:
    raise UserError(f"--config.game={name!r} is not a game: choose one of {', '.join(GAMES)}.")
  return GAMES[name]


def num_seeds(config):
  """Runs trained side by side (older runs saved no train.num_seeds: one)."""
  return config.train.get("num_seeds", 1)


def build(config, spec, axis_name=None):
  game = get(config.get("game", "noise"))(config, spec, axis_name)
  return seeds.Seeds(game, num_seeds(config)) if num_seeds(config) > 1 else game
