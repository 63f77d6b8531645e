"""The end of a run: test the selected model and the last epoch's, write model.pt and summary.json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rknet.common import distributed
from rknet.data import Dataset
from rknet.io.atomic import write_json
from rknet.io.layout import MODEL, SUMMARY
from rknet.network.odenet import ODENet
from rknet.training.config import TrainConfig
from rknet.training.loop import evaluate
from rknet.training.metrics import MetricsLog
from rknet.training.model_io import save_run_model
from rknet.training.selection import SELECTION_WORDS


@dataclass
class TrainResult:
    """What a finished run produced; the same figures are in OUT/summary.json. `test_acc` and `test_loss`
    are the selected model's (`--select`), `last_test_acc` the last epoch's model's."""

    out: Path
    test_loss: float
    test_acc: float
    params: int
    epochs: int
    wall_seconds: float
    device: str
    model: ODENet
    selected_epoch: int = 0
    last_test_acc: float | None = None


def parameters(model: torch.nn.Module) -> int:
    """The number of learned parameters of `model`."""
    return sum(p.numel() for p in model.parameters())


def finish(folder: Path, config: TrainConfig, model: ODENet, best: dict[str, Any], last_epoch: int, data: Dataset,
           device: torch.device, wall_seconds: float, log: Callable[[str], None], metrics: MetricsLog | None,
           extra: dict[str, Any]) -> TrainResult:
    """Test the last epoch's model (`model` as trained) and the selected one; rank 0 (the process with
    `metrics`) writes the selected model as model.pt and the summary. `extra` joins the summary."""
    def test() -> tuple[float, float]:
        return evaluate(model, data.x_test, data.y_test, config.batch_size * 4, device, config.precision,
                        config.channels_last)

    last_loss, last_acc = test()
    selected_epoch = last_epoch
    test_loss, test_acc = last_loss, last_acc
    if config.select == "best" and best["epoch"] != last_epoch:
        model.load_state_dict(best["state"])
        selected_epoch = best["epoch"]
        test_loss, test_acc = test()
    summary = {"test_loss": test_loss, "test_acc": test_acc, "selected_epoch": selected_epoch,
               "select": config.select, "last_test_loss": last_loss, "last_test_acc": last_acc,
               "params": parameters(model), "epochs": config.epochs, "best_epoch": best["epoch"],
               "best_val_acc": best["val_acc"], "best_val_loss": best.get("val_loss"), "wall_seconds": wall_seconds,
               "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
               "processes": distributed.world_size(), "threads": torch.get_num_threads(), **extra,
               "config": config.to_dict()}
    if metrics is not None:
        save_run_model(folder, model, config.to_dict())
        write_json(folder / SUMMARY, summary)
        metrics.summary(summary)
    log(f"test accuracy {100 * test_acc:.2f}% (loss {test_loss:.4f}) with the epoch-{selected_epoch} model "
        f"(selected: {SELECTION_WORDS[config.select]}); last epoch {100 * last_acc:.2f}%; {wall_seconds:.1f}s in "
        f"all; saved {folder / MODEL}")
    return TrainResult(folder, test_loss, test_acc, summary["params"], config.epochs, wall_seconds,
                       summary["device"], model.eval(), selected_epoch, last_acc)
