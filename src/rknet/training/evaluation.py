"""`rknet eval`: test accuracy of a saved run, as trained or re-discretised."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rknet.data import Dataset, load_dataset
from rknet.io.atomic import atomic_write_text, write_json
from rknet.io.layout import MODEL
from rknet.network.odenet import ODENet
from rknet.network.rediscretize import rediscretize
from rknet.solvers.adaptive import check_tolerances
from rknet.training.adaptive_eval import embedded_pair, evaluate_adaptive
from rknet.training.checkpoint import CheckpointError
from rknet.training.config import TrainConfig
from rknet.training.loop import evaluate
from rknet.training.model_io import read_model
from rknet.training.trainer import resolve_device

ADAPTIVE_ATOL = 1e-6
COLUMNS = ("method", "steps", "rtol", "test_acc", "test_loss", "evaluations_per_image", "trained")


@dataclass
class SavedRun:
    """A finished run's model (eval mode, on `device`), its configuration and its data."""

    model: ODENet
    config: TrainConfig
    data: Dataset
    device: torch.device


def load_run(folder: str | Path, device: str = "auto") -> SavedRun:
    """Rebuild a run from its folder (or model.pt): the best model and the very same data split."""
    folder = Path(folder)
    torch_device = resolve_device(device)
    model, saved = read_model(folder / MODEL if folder.is_dir() else folder)
    if not isinstance(saved.get("config"), dict):
        raise CheckpointError(f"{folder} does not hold the training options of an rknet run")
    config = TrainConfig.from_dict(saved["config"])
    data = load_dataset(config.data, val_fraction=config.val_fraction, seed=config.seed)
    return SavedRun(model.to(torch_device).eval(), config, data, torch_device)


def evaluate_run(folder: str | Path, methods: Sequence[str] | None = None, steps: Sequence[int] | None = None,
                 device: str = "auto", batch_size: int = 512, rtols: Sequence[float] | None = None,
                 atol: float = ADAPTIVE_ATOL) -> list[dict[str, Any]]:
    """Test loss, accuracy and layer evaluations per image for every (method, steps) pair (None keeps the
    trained value), or with `rtols` for every (method, rtol) pair, each an embedded pair stepping adaptively
    (see `rknet.training.adaptive_eval`)."""
    for rtol in rtols or ():
        check_tolerances(rtol, atol)
    run = load_run(folder, device)
    model, torch_device = run.model, run.device
    x, y = run.data.x_test.to(torch_device), run.data.y_test.to(torch_device)
    trained = model.spec
    rows = []
    for method in methods or [trained.method]:
        if rtols:
            pair = embedded_pair(method)
            for rtol in rtols:
                loss, accuracy, evaluations = evaluate_adaptive(model, x, y, pair, rtol, atol)
                rows.append(_row(pair.name, None, rtol, loss, accuracy, evaluations, False))
            continue
        for count in steps or [trained.num_steps]:
            variant = rediscretize(model, method, count).to(torch_device)
            loss, accuracy = evaluate(variant, x, y, batch_size, torch_device)
            rows.append(_row(variant.spec.method_name, count, None, loss, accuracy, variant.evaluations_per_forward,
                             variant.spec.method == trained.method and count == trained.num_steps))
    return rows


def _row(method: str, steps: int | None, rtol: float | None, loss: float, accuracy: float, evaluations: float,
         trained: bool) -> dict[str, Any]:
    return {"method": method, "steps": steps, "rtol": rtol, "test_acc": accuracy, "test_loss": loss,
            "evaluations_per_image": evaluations, "trained": trained}


def check_rows_file(path: str | Path) -> Path:
    """`path` if it names a .json or .csv file (checked before any evaluation runs)."""
    path = Path(path)
    if path.suffix not in (".json", ".csv"):
        raise ValueError(f"evaluation output {path} must end in .json or .csv")
    return path


def write_rows(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """The rows as JSON (a list of objects) or CSV, chosen by the file's suffix; written atomically."""
    path = check_rows_file(path)
    if path.suffix == ".json":
        write_json(path, rows)
    else:
        cell = lambda value: "" if value is None else str(value)  # noqa: E731
        lines = [",".join(COLUMNS)] + [",".join(cell(row[key]) for key in COLUMNS) for row in rows]
        atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as the table `rknet eval` prints: one line per method and steps (or tolerance)."""
    lines = [f"{'method':<10}{'steps':>11}{'test acc':>10}{'test loss':>11}{'f-evals/image':>15}", "-" * 57]
    for row in rows:
        mark = "  (as trained)" if row["trained"] else ""
        steps = f"rtol {row['rtol']:.0e}" if row["steps"] is None else str(row["steps"])
        lines.append(f"{row['method']:<10}{steps:>11}{100 * row['test_acc']:>9.2f}%{row['test_loss']:>11.4f}"
                     f"{row['evaluations_per_image']:>15.1f}{mark}")
    return "\n".join(lines)
