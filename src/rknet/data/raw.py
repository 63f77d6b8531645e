"""The contract between the readers of each source and `load_dataset`: splits as read, checked once."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rknet.data.checks import MAX_CLASSES, check_finite, check_training_size, format_index, implied_num_classes

SHAPE_FORMS = "(N, D), (N, C, L) or (N, C, H, W)"


@dataclass
class RawSplits:
    """Float32 inputs and int64 labels as a source provides them, before the validation hold-out and
    normalisation. `x_val`/`y_val` are set only when the source has its own validation set; `source`
    names where the data came from, for error messages. `num_classes` None means K = largest label + 1
    (a source without a fixed class list, such as an npz file).

    Construction checks every split (see `checks`): shapes, one label per row, labels in 0..K-1,
    finite inputs, at least MIN_TRAIN training samples and a non-empty test split.
    """

    source: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int | None
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(f"{self.source}: x_val and y_val must be given together")
        if self.x_train.ndim not in (2, 3, 4) or 0 in self.x_train.shape[1:]:
            raise ValueError(f"{self.source}: x_train must be shaped {SHAPE_FORMS} with every size but N at "
                             f"least 1, got shape {tuple(self.x_train.shape)}")
        for split, (x, y) in self.splits().items():
            self._check_shapes(split, x, y)
        check_training_size(len(self.x_train), 0, self.source)
        if len(self.x_test) == 0:
            raise ValueError(f"{self.source}: the test split is empty (x_test has no rows); every data set needs "
                             "test samples")
        if self.num_classes is None:
            labels = {f"y_{split}": y for split, (_, y) in self.splits().items()}
            self.num_classes = implied_num_classes(labels, len(self.x_train), self.source)
        for split, (x, y) in self.splits().items():
            self._check_labels(split, y)
            check_finite(x, self.source, f"x_{split}")

    def splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The present splits by name, as (inputs, labels)."""
        pairs = {"train": (self.x_train, self.y_train), "test": (self.x_test, self.y_test)}
        if self.x_val is not None and self.y_val is not None:
            pairs["val"] = (self.x_val, self.y_val)
        return pairs

    def _check_shapes(self, split: str, x: torch.Tensor, y: torch.Tensor) -> None:
        """Every split must match the training inputs' per-sample shape and carry one label per row."""
        if x.ndim != self.x_train.ndim or x.shape[1:] != self.x_train.shape[1:]:
            raise ValueError(
                f"{self.source}: x_{split} has per-sample shape {tuple(x.shape[1:])}, "
                f"but x_train has {tuple(self.x_train.shape[1:])}"
            )
        if y.ndim != 1:
            raise ValueError(f"{self.source}: y_{split} must be 1-D, got shape {tuple(y.shape)}")
        if len(x) != len(y):
            raise ValueError(f"{self.source}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")

    def _check_labels(self, split: str, y: torch.Tensor) -> None:
        """Labels lie in 0..num_classes-1, and num_classes is at most MAX_CLASSES."""
        assert self.num_classes is not None  # set in __post_init__
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f"{self.source}: {self.num_classes} classes; at most {MAX_CLASSES:,} are supported")
        outside = (y < 0) | (y >= self.num_classes)
        if outside.any():
            index = (int(outside.int().argmax()),)
            raise ValueError(
                f"{self.source}: y_{split} labels must be in 0..{self.num_classes - 1}, "
                f"found {int(y.min())}..{int(y.max())} (first outside at y_{split}{format_index(index)})"
            )
