"""Per-epoch metrics: metrics.jsonl (one JSON object per epoch), TensorBoard events if installed, and the
experiment tracker of `--logger` if chosen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rknet.io.atomic import atomic_write_text, json_text, write_failed
from rknet.io.layout import METRICS
from rknet.training.trackers import open_tracker


class MetricsLog:
    """Appends one record per epoch. On resume the file is rewritten from the checkpoint's history,
    so every epoch appears exactly once even if the run was killed between checkpoint and log.

    Lines are strict JSON: a NaN or infinite value is written as null. With `config` (the resolved training
    options as a dict) naming a `logger`, its tracker gets the options, the history so far, every new record
    and the summary.
    """

    def __init__(self, folder: Path, history: list[dict[str, Any]], config: dict[str, Any] | None = None) -> None:
        self.path = folder / METRICS
        atomic_write_text(self.path, "".join(json_text(record) + "\n" for record in history))
        self.writer = _tensorboard_writer(folder)
        self.tracker, self.finished = None, False
        if config is not None and config.get("logger"):
            self.tracker = open_tracker(config["logger"], config, folder, config.get("logger_group"))
            for record in history:
                self.tracker.log_epoch(record)

    def append(self, record: dict[str, Any]) -> None:
        """Log `record` (one epoch) to metrics.jsonl and TensorBoard."""
        try:
            with open(self.path, "a") as handle:
                handle.write(json_text(record) + "\n")
        except OSError as error:
            raise write_failed(self.path, error) from error
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()
        if self.tracker is not None:
            self.tracker.log_epoch(record)

    def summary(self, summary: dict[str, Any]) -> None:
        """The run's final summary (summary.json), for the tracker; the run counts as finished."""
        if self.tracker is not None:
            self.tracker.log_summary(summary)
        self.finished = True

    def close(self) -> None:
        """Close TensorBoard and the tracker (a run closed before its summary is marked failed there)."""
        if self.writer is not None:
            self.writer.close()
        if self.tracker is not None:
            self.tracker.close(self.finished)


def _tensorboard_writer(folder: Path):
    """A SummaryWriter in folder/tensorboard, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder / "tensorboard"))


def read_metrics(folder: str | Path) -> list[dict[str, Any]]:
    """The records of folder/metrics.jsonl, one per epoch."""
    path = Path(folder) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def format_epoch(record: dict[str, Any], epochs: int) -> str:
    """One human-readable line per epoch."""
    line = (f"epoch {record['epoch']:>3}/{epochs}  lr {record['lr']:.4g}  "
            f"train loss {record['train_loss']:.4f} acc {100 * record['train_acc']:.2f}%")
    if record.get("val_acc") is not None:
        line += f"  val loss {record['val_loss']:.4f} acc {100 * record['val_acc']:.2f}%"
    return line + f"  {record['seconds']:.1f}s  {record['images_per_s']:.0f} img/s"
