"""Bad input never passes silently: every case issue 13 found, kept here, plus property-based fuzzing.

Each explicit test feeds one bad input (a data file, a checkpoint, a run folder, a diverging run) and
asserts the exception type or exit code and the first words of the one-line message. The Hypothesis
tests throw random arrays, bytes and byte flips at the same readers and assert that each one either
loads cleanly (and then is sound) or ends in a one-line ValueError, never in another exception.
Add a test here for every new way in which bad input is found to slip through.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import rknet.files
from rknet.cli import main
from rknet.data import load_dataset
from rknet.files import json_text, write_json
from rknet.training.metrics import MetricsLog, read_metrics

TINY = ["--widths", "4,6", "--steps", "2", "--final-time", "1", "--batch-size", "128", "--epochs", "1"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`rknet ARGS` in this process: exit code, stdout, stderr."""
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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


# ---------------------------------------------------------------- metrics and summary: strict JSON


def strict_json(text: str):
    def refuse(token: str):
        raise AssertionError(f"non-JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_metrics_are_written_as_null(tmp_path):
    log = MetricsLog(tmp_path, [{"epoch": 1, "val_loss": float("inf")}])
    log.append({"epoch": 2, "train_loss": 0.5, "val_loss": float("nan"), "grad_norm/blocks.0": float("-inf")})
    log.close()
    records = [strict_json(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == [{"epoch": 1, "val_loss": None},
                       {"epoch": 2, "train_loss": 0.5, "val_loss": None, "grad_norm/blocks.0": None}]
    assert read_metrics(tmp_path) == records


def test_summary_json_is_strict(tmp_path, monkeypatch):
    write_json(tmp_path / "summary.json", {"test_loss": float("nan"), "refinements": [{"acc": float("inf")}]})
    assert strict_json((tmp_path / "summary.json").read_text()) == {"test_loss": None, "refinements": [{"acc": None}]}
    monkeypatch.setattr(rknet.files, "json_safe", lambda value: value)  # a slip: NaN no longer turned into null
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_text({"test_loss": float("nan")})
