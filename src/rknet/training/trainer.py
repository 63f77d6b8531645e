"""`train(config)`: data, network, optimiser, epochs, checkpoints, best model, test, summary."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from ..data import BatchLoader, Dataset, load_dataset
from ..network import ODENet
from .checkpoint import CHECKPOINT, load_file, save_checkpoint
from .config import TrainConfig
from .loop import evaluate, train_epoch
from .metrics import MetricsLog, format_epoch
from .model_io import MODEL, save_model
from .optim import make_optimizer, make_scheduler

SUMMARY = "summary.json"
CONFIG = "config.json"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What a finished run produced; the same figures are in OUT/summary.json."""

    out: Path
    test_loss: float
    test_acc: float
    params: int
    epochs: int
    wall_seconds: float
    device: str
    model: ODENet


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def default_out(config: TrainConfig) -> Path:
    kind = config.data.split(":")[0]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{kind}-{config.method}-{config.layer}-{stamp}"


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(temporary, path)


def _new_run_folder(config: TrainConfig) -> Path:
    folder = Path(config.out) if config.out else default_out(config)
    if (folder / CHECKPOINT).exists() or (folder / MODEL).exists():
        raise ValueError(f"{folder} already holds a run; continue it with --resume {folder} or choose "
                         "another --out")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _rng_state(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state(), "loader": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loader"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def build_model(config: TrainConfig, data: Dataset) -> ODENet:
    return ODENet(in_channels=data.in_channels, num_classes=data.num_classes, dims=data.dims,
                  **config.network_options())


def train(config: TrainConfig | dict[str, Any] | None = None, *, resume: str | Path | None = None,
          show_progress: bool | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train an ODENet as configured (or continue the run in folder `resume`) and return the result.

    Writes to the run folder: config.json, metrics.jsonl, checkpoint.pt (every epoch, atomically),
    model.pt (best-by-validation weights) and summary.json. Raises TrainingDiverged on a non-finite loss.
    """
    started = time.perf_counter()
    checkpoint: dict[str, Any] | None = None
    if resume is not None:
        folder = Path(resume)
        checkpoint = load_file(folder / CHECKPOINT)
        config = TrainConfig.from_dict(checkpoint["config"]).validate()
    else:
        config = (config if isinstance(config, TrainConfig)
                  else TrainConfig.from_dict(config or {})).validate()
        folder = _new_run_folder(config)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    val_indices = checkpoint["val_indices"] if checkpoint is not None and len(checkpoint["val_indices"]) else None
    data = load_dataset(config.data, val_fraction=config.val_fraction, seed=config.seed,
                        val_indices=val_indices).to(device)
    if config.batch_size > len(data.x_train) and config.compile:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(data.x_train)} training samples")
    model = build_model(config, data).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    loader = BatchLoader(data.x_train, data.y_train, config.batch_size, shuffle=True, generator=generator,
                         augment=data.augment, drop_last=config.compile)
    optimizer = make_optimizer(model, config, fused=device.type == "cuda")
    scheduler = make_scheduler(optimizer, config, len(loader))
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"val_acc": None, "epoch": 0, "state": None}
    first_epoch, elapsed_before = 1, 0.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        _restore_rng(checkpoint["rng"], generator, device)
        history, best = checkpoint["history"], checkpoint["best"]
        first_epoch, elapsed_before = checkpoint["epoch"] + 1, checkpoint["wall_seconds"]
        log(f"resuming {folder} after epoch {checkpoint['epoch']}/{config.epochs}")
    else:
        _write_json(folder / CONFIG, config.to_dict())
        log("configuration:\n" + json.dumps(config.to_dict(), indent=2))
    params = sum(p.numel() for p in model.parameters())
    log(f"{params:,} parameters, {data.name} data: {len(data.x_train)} train / {len(data.x_val)} val / "
        f"{len(data.x_test)} test, device {device}, output {folder}")
    runner = torch.compile(model) if config.compile else model
    metrics = MetricsLog(folder, history)
    try:
        for epoch in range(first_epoch, config.epochs + 1):
            record = _run_epoch(epoch, config, runner, loader, optimizer, scheduler, data, device, show_progress)
            history.append(record)
            if best["state"] is None or (record["val_acc"] is not None and record["val_acc"] > best["val_acc"]):
                best = {"val_acc": record["val_acc"], "epoch": epoch,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            save_checkpoint({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": _rng_state(generator, device), "epoch": epoch,
                "history": history, "best": best, "val_indices": data.val_indices.cpu(),
                "config": config.to_dict(),
                "wall_seconds": elapsed_before + time.perf_counter() - started}, folder)
            metrics.append(record)
            log(format_epoch(record, config.epochs))
    finally:
        metrics.close()
    return _finish(folder, config, model, best, data, device, params,
                   elapsed_before + time.perf_counter() - started, log)


def _run_epoch(epoch: int, config: TrainConfig, runner, loader: BatchLoader, optimizer, scheduler,
               data: Dataset, device: torch.device, show_progress: bool | None) -> dict[str, Any]:
    """Train one epoch, evaluate on the validation split, return the metrics record."""
    lr = optimizer.param_groups[0]["lr"]
    start = time.perf_counter()
    train_loss, train_acc, samples = train_epoch(runner, loader, len(loader), optimizer, scheduler, device,
                                                 config.precision, show_progress,
                                                 f"epoch {epoch}/{config.epochs}")
    train_seconds = time.perf_counter() - start
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"training diverged in epoch {epoch}: the loss is {train_loss}; the last "
                               f"good checkpoint (epoch {epoch - 1}) is kept; try a smaller --lr")
    val_loss = val_acc = None
    if len(data.x_val):
        val_loss, val_acc = evaluate(runner, data.x_val, data.y_val, config.batch_size * 4, device,
                                     config.precision)
    return {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": val_loss, "val_acc": val_acc, "seconds": time.perf_counter() - start,
            "images_per_s": samples / train_seconds}


def _finish(folder: Path, config: TrainConfig, model: ODENet, best: dict[str, Any], data: Dataset,
            device: torch.device, params: int, wall_seconds: float, log) -> TrainResult:
    """Test the best model, write model.pt and summary.json."""
    model.load_state_dict(best["state"])
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test, config.batch_size * 4, device,
                                   config.precision)
    save_model(folder / MODEL, model, config.to_dict())
    summary = {"test_loss": test_loss, "test_acc": test_acc, "params": params, "epochs": config.epochs,
               "best_epoch": best["epoch"], "best_val_acc": best["val_acc"], "wall_seconds": wall_seconds,
               "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
               "config": config.to_dict()}
    _write_json(folder / SUMMARY, summary)
    log(f"test accuracy {100 * test_acc:.2f}% (loss {test_loss:.4f}) with the epoch-{best['epoch']} model; "
        f"{wall_seconds:.1f}s in all; saved {folder / MODEL}")
    return TrainResult(folder, test_loss, test_acc, params, config.epochs, wall_seconds, summary["device"],
                       model.eval())
