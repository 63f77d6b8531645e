"""Metrics and summaries are strict JSON: non-finite values are written as null.

Part of the bad-input suite (issue 13): each explicit test feeds one bad input and asserts the exception
type or exit code and the first words of the one-line message; the Hypothesis tests throw random input at
the same readers and assert that each loads cleanly or ends in a one-line ValueError. Add a test for every
new way in which bad input is found to slip through.
"""

from __future__ import annotations

import json

import pytest

import rknet.io.atomic
from rknet.io.atomic import json_text, write_json
from rknet.training.metrics import MetricsLog, read_metrics


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
    monkeypatch.setattr(rknet.io.atomic, "json_safe", lambda value: value)  # a slip: NaN no longer turned into null
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_text({"test_loss": float("nan")})
