"""Divergence: a non-finite loss, weight or statistic stops the run in one line.

Part of the bad-input suite (issue 13): each explicit test feeds one bad input and asserts the exception
type or exit code and the first words of the one-line message; the Hypothesis tests throw random input at
the same readers and assert that each loads cleanly or ends in a one-line ValueError. Add a test for every
new way in which bad input is found to slip through.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bad_input import one_line
from conftest import run_cli
from rknet.data import load_dataset
from rknet.training.checkpoint import (
    CHECKPOINT,
    load_file,
)
from rknet.training.divergence import TrainingDiverged, check_epoch_finite
from rknet.training.metrics import read_metrics


def test_nan_validation_loss_is_divergence(tmp_path, capsys):
    """A learning rate of 1e6 on one full batch: the training loss stays finite, the validation loss does not."""
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--data", "circles", "--out", str(out), "--widths", "4,6", "--steps", "2",
                            "--epochs", "3", "--lr", "1e6", "--batch-size", "2000"], capsys)
    assert code == 3
    assert one_line(err).startswith("rknet train: training diverged in epoch 2: the validation loss is nan; the "
                                    "last good checkpoint (epoch 1) is kept")
    kept = load_file(out / CHECKPOINT)
    assert kept["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in kept["model"].values() if tensor.is_floating_point())
    assert all(record["epoch"] == 1 for record in read_metrics(out))


@pytest.mark.parametrize(("poison", "expected"), [
    ("running_var", r"buffer \S+running_var holds non-finite values"),
    ("weight", r"parameter \S+weight holds non-finite values"),
])
def test_non_finite_weights_or_statistics_are_divergence(poison, expected):
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    check_epoch_finite(4, {"train_loss": 0.1, "val_loss": 0.2}, model)  # finite: passes
    tensor = dict(model.named_buffers(), **dict(model.named_parameters()))[f"1.{poison}"]
    with torch.no_grad():
        tensor[1] = float("inf")
    with pytest.raises(TrainingDiverged, match=rf"^training diverged in epoch 4: {expected}; the last good "
                                               r"checkpoint \(epoch 3\) is kept"):
        check_epoch_finite(4, {"train_loss": 0.1, "val_loss": 0.2}, model)


def test_a_subnormal_deviation_counts_as_constant(tmp_path):
    """Found by Hypothesis: training inputs [0, 1e-42] have a deviation float32 cannot divide by."""
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=np.array([[0.0], [1e-42]]), y_train=np.array([0, 1]), x_test=np.array([[1.0]]),
             y_test=np.array([0]))
    data = load_dataset(f"npz:{path}", val_fraction=0.0)
    assert torch.isfinite(data.x_test).all() and data.x_test.abs().max() <= 1
