"""Helpers of the bad-input tests (test_bad_*.py, test_run_folders.py, test_divergence.py, ...)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from conftest import run_cli
from rknet.data import load_dataset

TINY = ["--widths", "4,6", "--steps", "2", "--final-time", "1", "--batch-size", "128", "--epochs", "1"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_line(err: str) -> str:
    """The single line of `err`; fails if there are several."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def npz_file(path: Path, n_train: int = 12, n_test: int = 4, features: int = 3, **arrays: np.ndarray | None) -> Path:
    """A valid npz data set (2 classes) with some arrays replaced (None drops one)."""
    rng = np.random.default_rng(0)
    content = {"x_train": rng.normal(size=(n_train, features)), "y_train": np.arange(n_train) % 2,
               "x_test": rng.normal(size=(n_test, features)), "y_test": np.arange(n_test) % 2}
    content.update(arrays)
    np.savez(path, **{name: array for name, array in content.items() if array is not None})
    return path


def refused(spec: str) -> str:
    """The one-line ValueError that `load_dataset(spec)` raises."""
    with pytest.raises(ValueError) as caught:
        load_dataset(spec, val_fraction=0)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def with_value(array: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    changed = array.astype(np.float64)
    changed[index] = value
    return changed


class RunsShell:
    """Unpickling calls os.system: the classic pickle exploit."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def trained_run(folder: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    """A finished two-epoch run on circles (so checkpoint.pt is epoch 2, checkpoint.prev.pt epoch 1)."""
    code, _, err = run_cli(["train", "--data", "circles", "--out", str(folder), *TINY, "--epochs", "2", *extra],
                           capsys)
    assert code == 0, err
    return folder


def cifar_folder(root: Path, test_batch: object) -> Path:
    """A CIFAR-10 folder of valid training batches and the given test batch object."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [i % 10, (i + 1) % 10]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    (folder / "test_batch").write_bytes(pickle.dumps(test_batch))
    return folder / "test_batch"
