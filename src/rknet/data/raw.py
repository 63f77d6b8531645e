"""The contract between the readers of each source and `load_dataset`: splits as read, checked once."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SHAPE_FORMS = "(N, D), (N, C, L) or (N, C, H, W)"


@dataclass
class RawSplits:
    """Float32 inputs and int64 labels as a source provides them, before the validation hold-out and
    normalisation. `x_val`/`y_val` are set only when the source has its own validation set; `source`
    names where the data came from, for error messages."""

    source: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(f"{self.source}: x_val and y_val must be given together")
        if self.x_train.ndim not in (2, 3, 4):
            raise ValueError(
                f"{self.source}: x_train must be shaped {SHAPE_FORMS}, got shape {tuple(self.x_train.shape)}"
            )
        if len(self.x_train) == 0:
            raise ValueError(f"{self.source}: the training set is empty")
        for split, (x, y) in self.splits().items():
            self._check_split(split, x, y)

    def splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The present splits by name, as (inputs, labels)."""
        pairs = {"train": (self.x_train, self.y_train), "test": (self.x_test, self.y_test)}
        if self.x_val is not None and self.y_val is not None:
            pairs["val"] = (self.x_val, self.y_val)
        return pairs

    def _check_split(self, split: str, x: torch.Tensor, y: torch.Tensor) -> None:
        """Every split must match the training inputs' per-sample shape and carry one label per row."""
        if x.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(
                f"{self.source}: x_{split} has per-sample shape {tuple(x.shape[1:])}, "
                f"but x_train has {tuple(self.x_train.shape[1:])}"
            )
        if y.ndim != 1:
            raise ValueError(f"{self.source}: y_{split} must be 1-D, got shape {tuple(y.shape)}")
        if len(x) != len(y):
            raise ValueError(f"{self.source}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(
                f"{self.source}: y_{split} labels must be in 0..{self.num_classes - 1}, "
                f"found {int(y.min())}..{int(y.max())}"
            )
