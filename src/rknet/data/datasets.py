"""The `Dataset` container and `load_dataset`, which reads any supported source into one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import partial

import torch

from rknet.data.checks import check_training_size
from rknet.data.cifar import load_cifar
from rknet.data.digits import load_digits
from rknet.data.npz import load_npz
from rknet.data.prepare import check_val_fraction, holdout_indices, normalisation_stats, normalise
from rknet.data.raw import RawSplits
from rknet.data.stl import load_stl10
from rknet.data.toy import load_toy

DATASETS: tuple[str, ...] = (
    "digits",
    "peaks",
    "swissroll",
    "circles",
    "npz:PATH",
    "cifar10:DIR",
    "cifar100:DIR",
    "stl10:DIR",
)
AUGMENTED = ("cifar10", "cifar100", "stl10")

BUILTIN_SOURCES: dict[str, Callable[[], RawSplits]] = {
    "digits": load_digits,
    "peaks": partial(load_toy, "peaks"),
    "swissroll": partial(load_toy, "swissroll"),
    "circles": partial(load_toy, "circles"),
}
FILE_SOURCES: dict[str, Callable[[str], RawSplits]] = {
    "npz": load_npz,
    "cifar10": partial(load_cifar, "cifar10"),
    "cifar100": partial(load_cifar, "cifar100"),
    "stl10": load_stl10,
}


@dataclass
class Dataset:
    """Normalised train/validation/test splits of one data set.

    `dims` is 0 for vectors (N, D), 1 for signals (N, C, L), 2 for images (N, C, H, W). `train_indices`
    and `val_indices` say which rows of the source's training set went to each split (store
    `val_indices` to resume on the same split). `mean`/`std` (per feature, or per channel) were
    computed on the training split and applied to all splits. `augment` marks the natural-image sets
    (cifar10, cifar100, stl10) that should be trained with random crops and flips.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    dims: int
    train_indices: torch.Tensor
    val_indices: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    augment: bool

    @property
    def in_channels(self) -> int:
        """Input features D for vectors, channels C for signals and images."""
        return self.x_train.shape[1]

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on `device`."""
        tensors = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v.to(device) for k, v in tensors.items() if isinstance(v, torch.Tensor)})


def load_dataset(
    spec: str, *, val_fraction: float = 0.1, seed: int = 0, val_indices: torch.Tensor | None = None
) -> Dataset:
    """Read the data set `spec` (one of DATASETS), hold out a validation set from its training set
    (`val_fraction` of it drawn with `seed`, or exactly the rows `val_indices`; ignored when an npz
    file brings its own x_val/y_val) and normalise with training-split statistics."""
    val_fraction = check_val_fraction(val_fraction)
    name, raw = _read(spec)
    if raw.x_val is not None and raw.y_val is not None:
        if val_indices is not None and len(val_indices):
            raise ValueError(f"{raw.source} has its own x_val/y_val; val_indices cannot select other rows")
        train_idx, val_idx = torch.arange(len(raw.x_train)), torch.zeros(0, dtype=torch.long)
        x_train, y_train, x_val, y_val = raw.x_train, raw.y_train, raw.x_val, raw.y_val
    else:
        train_idx, val_idx = holdout_indices(len(raw.x_train), val_fraction, seed, val_indices)
        x_train, y_train = raw.x_train[train_idx], raw.y_train[train_idx]
        x_val, y_val = raw.x_train[val_idx], raw.y_train[val_idx]
    check_training_size(len(x_train), len(x_val), raw.source)
    mean, std = normalisation_stats(x_train)
    return Dataset(
        name=name,
        x_train=normalise(x_train, mean, std, raw.source, "x_train"),
        y_train=y_train,
        x_val=normalise(x_val, mean, std, raw.source, "x_val"),
        y_val=y_val,
        x_test=normalise(raw.x_test, mean, std, raw.source, "x_test"),
        y_test=raw.y_test,
        num_classes=raw.num_classes,
        dims=raw.x_train.ndim - 2,
        train_indices=train_idx,
        val_indices=val_idx,
        mean=mean,
        std=std,
        augment=name in AUGMENTED,
    )


def parse_data_spec(spec: str) -> tuple[str, str | None]:
    """(source name, path or None) of a data set name such as `digits` or `cifar10:DIR`; a ValueError
    naming the valid data sets when it is not one."""
    name, colon, argument = spec.strip().partition(":")
    name = name.lower()
    valid = f"valid data sets: {', '.join(DATASETS)}"
    if name in BUILTIN_SOURCES:
        if colon:
            raise ValueError(f"data set {name!r} takes no argument, got {spec!r}; {valid}")
        return name, None
    if name in FILE_SOURCES:
        if not argument:
            raise ValueError(f"data set {name!r} needs a path, e.g. {name}:/path/to/data; {valid}")
        return name, argument
    raise ValueError(f"unknown data set {spec!r}; {valid}")


def _read(spec: str) -> tuple[str, RawSplits]:
    """The source name of `spec` and its raw splits."""
    name, path = parse_data_spec(spec)
    return name, BUILTIN_SOURCES[name]() if path is None else FILE_SOURCES[name](path)
