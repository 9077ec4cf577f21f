"""What one example looks like; saved in the workdir so `sample` runs without the data."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class DataSpec:
  shape: tuple      # of one example, e.g. (64, 64, 3) or (2,)
  dtype: str        # "uint8" images or "float32" points
  num_classes: int  # 0: unlabelled
  text_dim: int = 0  # width of each example's caption embedding ("text"); 0: no captions
