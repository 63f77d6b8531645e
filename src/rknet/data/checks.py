"""Checks every data set passes once, at the boundary: arrays as a file stores them, then the splits.

Each check raises a one-line ValueError that names the source, the array and the first bad index, and
says what is accepted. The rules (docs/data.md):

* inputs are real numbers (integers, floats or booleans; not complex), finite, within float32 range;
* labels are integers 0..K-1 (floats are accepted when every value is integral, such as 3.0);
* K is at most MAX_CLASSES, and, where K is implied by the labels (npz files), at most the number of
  training samples, so that every class can have a training example;
* the training split keeps at least MIN_TRAIN samples after the validation hold-out (batch norm
  needs two values per channel) and the test split is not empty.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

MAX_CLASSES = 10_000
MIN_TRAIN = 2
FLOAT32_MAX = float(np.finfo(np.float32).max)
ROWS_PER_CHUNK_BYTES = 1 << 26  # scan large tensors in pieces of about 64 MiB


def format_index(index: tuple[int, ...]) -> str:
    """`[3, 0, 1]` for the index (3, 0, 1)."""
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def first_index(mask: np.ndarray) -> tuple[int, ...]:
    """The first index (in C order) where the boolean array `mask` is true; `mask` must have one."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def inputs_to_tensor(array: np.ndarray, source: str, name: str) -> torch.Tensor:
    """Float32 inputs from a stored array of real numbers; a ValueError for other dtypes or for
    values that float32 cannot hold (NaN and inf are left to `check_finite`, which names them)."""
    if array.dtype.kind == "c":
        raise ValueError(f"{source}: {name} is complex ({array.dtype}); inputs must be real numbers: store the "
                         "real and imaginary parts as separate features or channels")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{source}: {name} must be numeric (integers, floats or booleans), got dtype {array.dtype}")
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:
        with np.errstate(invalid="ignore"):
            too_large = np.isfinite(array) & (np.abs(array) > FLOAT32_MAX)
        if too_large.any():
            index = first_index(too_large)
            raise ValueError(f"{source}: {name}{format_index(index)} = {array[index]:.4g} is outside the float32 "
                             f"range that inputs are stored in (|x| <= {FLOAT32_MAX:.4g}); rescale the data")
    return torch.from_numpy(array.astype(np.float32))


def labels_to_tensor(array: np.ndarray, source: str, name: str) -> torch.Tensor:
    """Int64 labels from a stored array of integers (or of integral floats) in 0..MAX_CLASSES-1."""
    accepted = f"labels must be integers 0..K-1 with K <= {MAX_CLASSES:,}"
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{source}: {name} must hold integer labels, got dtype {array.dtype}; {accepted}")
    if array.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            fractional = ~np.isfinite(array) | (array != np.floor(array))
        if fractional.any():
            index = first_index(fractional)
            raise ValueError(f"{source}: {name}{format_index(index)} = {array[index].item()!r} is not an integer; "
                             f"{accepted} (integral floats such as 3.0 are accepted)")
    outside = (array < 0) | (array >= MAX_CLASSES)
    if outside.any():
        index = first_index(outside)
        raise ValueError(f"{source}: {name}{format_index(index)} = {_plain(array[index])} is out of range; {accepted}")
    return torch.from_numpy(array.astype(np.int64))


def _plain(value: np.generic) -> str:
    """A label as written: 7 for 7.0, the full integer for uint64."""
    number = value.item()
    return str(int(number)) if float(number).is_integer() else repr(number)


def implied_num_classes(labels: dict[str, torch.Tensor], n_train: int, source: str) -> int:
    """K = largest label + 1 over all splits, for sources whose labels define the classes; a ValueError
    when K is not supported by the data: fewer than 2 classes, or more classes than training samples."""
    present = {name: y for name, y in labels.items() if y.numel()}
    if not present:
        raise ValueError(f"{source}: no labels found; labels must be integers 0..K-1")
    num_classes = 1 + max(int(y.max()) for y in present.values())
    if num_classes < 2:
        raise ValueError(f"{source}: every label is 0; a classifier needs at least 2 classes (labels 0..K-1)")
    if num_classes > n_train:
        name, y = next((name, y) for name, y in present.items() if int(y.max()) == num_classes - 1)
        index = (int(torch.argmax(y)),)
        raise ValueError(f"{source}: {name}{format_index(index)} = {num_classes - 1} implies {num_classes:,} classes, "
                         f"more than the {n_train:,} training samples; labels must be 0..K-1 with K at most the "
                         "number of training samples")
    return num_classes


def check_training_size(n_train: int, n_val: int, source: str) -> None:
    """A ValueError when fewer than MIN_TRAIN samples are left to train on (batch norm needs two values
    per channel, and one sample cannot be told apart from its mean)."""
    if n_train < MIN_TRAIN:
        held = f" after holding out {n_val} for validation" if n_val else ""
        advice = "add samples or lower --val-fraction" if n_val else "add samples"
        raise ValueError(f"{source}: {n_train} training sample(s){held}; training needs at least {MIN_TRAIN}: "
                         f"{advice}")


def first_non_finite(x: torch.Tensor) -> tuple[int, ...] | None:
    """The index of the first NaN or infinite entry of `x` (rows of at least one dimension), or None."""
    for start, chunk in row_chunks(x):
        bad = ~torch.isfinite(chunk)
        if bad.any():
            index = first_index(bad.cpu().numpy())
            return (start + index[0], *index[1:])
    return None


def check_finite(x: torch.Tensor, source: str, name: str) -> None:
    """A ValueError naming the first NaN or infinite entry of `x`, if it has one."""
    index = first_non_finite(x)
    if index is not None:
        raise ValueError(f"{source}: {name}{format_index(index)} is {float(x[index]):g}; inputs must be finite numbers")


def row_chunks(x: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """(first row, rows) pieces of `x` of about ROWS_PER_CHUNK_BYTES each, for scans in bounded memory."""
    row_bytes = max(1, x[0].numel() * x.element_size()) if len(x) else 1
    rows = max(1, ROWS_PER_CHUNK_BYTES // row_bytes)
    for start in range(0, len(x), rows):
        yield start, x[start:start + rows]
