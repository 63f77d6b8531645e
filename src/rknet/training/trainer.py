"""`train(config)`: data, network, optimiser, epochs, checkpoints, best model, test, summary."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from rknet.common import distributed
from rknet.common.checks import choice
from rknet.common.cpu import use_threads
from rknet.data import BatchLoader, Dataset, load_dataset
from rknet.io.atomic import write_json
from rknet.io.layout import CONFIG
from rknet.network.odenet import ODENet
from rknet.training.batch_stats import recompute_batch_stats
from rknet.training.checkpoint import load_checkpoint, save_checkpoint
from rknet.training.config import DEVICES, TrainConfig
from rknet.training.divergence import TrainingDiverged as TrainingDiverged
from rknet.training.divergence import check_epoch_finite, diverged
from rknet.training.finish import TrainResult, finish, parameters
from rknet.training.loop import StepOptions, evaluate, train_epoch
from rknet.training.metrics import MetricsLog, format_epoch
from rknet.training.optim import make_optimizer, make_scheduler, sync_learning_rate
from rknet.training.rng import restore_rng, rng_state
from rknet.training.runfolder import claimed_run_folder, default_out
from rknet.training.selection import improves, kept, no_best
from rknet.training.stopping import check_patience, patience_exhausted, stop_record
from rknet.training.trackers import check_tracker


def resolve_device(name: str) -> torch.device:
    """The torch device for `auto`, `cpu` or `cuda`; ValueError for another name or a missing GPU."""
    choice("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available; use --device cpu")
    return torch.device(name)


def build_model(config: TrainConfig, data: Dataset, level: int = 0) -> ODENet:
    """The run's network at multilevel `level` (0: the configured grid)."""
    model = ODENet.from_spec(config.network_spec(data.in_channels, data.num_classes, data.dims))
    levels = config.levels()
    for coarse, fine in zip(levels[:level], levels[1:level + 1]):
        model = model.refine(fine // coarse, controls=config.refines_controls())
    return model


# torch deprecates two APIs that data-parallel training uses as they are, with a FutureWarning on every rank of
# every run that the user cannot act on: DDP's `broadcast_buffers=False` (its replacement still syncs buffers at
# construction) and `torch.distributed.nn.functional.all_reduce`, batch norm's differentiable all-reduce of the
# global statistics (its replacement lives in a private module).
DDP_DEPRECATIONS = (r"`broadcast_buffers` is deprecated",
                    r"torch\.distributed\.nn\.functional\.all_reduce is deprecated")


def _level_start(config: TrainConfig, level: int) -> int:
    """The first epoch (1-based) of multilevel `level`."""
    return 1 + sum(config.level_epochs()[:level])


class _Run:
    """The mutable state of a run at one level: model, its runner (DDP / compiled), optimiser, schedule."""

    def __init__(self, config: TrainConfig, model: ODENet, level: int, iterations_per_epoch: int,
                 device: torch.device) -> None:
        self.model, self.level = model.to(device), level
        # The fused optimizer step: one kernel per step on GPUs, and on CPUs a quarter of the for-each
        # step's time for the small networks there (benchmarks/small_networks.py).
        self.optimizer = make_optimizer(self.model, config, fused=device.type in ("cuda", "cpu"))
        if config.level_schedule == "restart":  # a fresh schedule over the level's epochs
            self.scheduler = make_scheduler(self.optimizer, config, iterations_per_epoch,
                                            config.level_epochs()[level])
        else:  # one schedule over the whole run, picked up where the level starts
            self.scheduler = make_scheduler(self.optimizer, config, iterations_per_epoch,
                                            start=(_level_start(config, level) - 1) * iterations_per_epoch)
        runner: torch.nn.Module = self.model
        if distributed.active():
            for message in DDP_DEPRECATIONS:
                warnings.filterwarnings("ignore", message=message, category=FutureWarning)
            runner = DistributedDataParallel(runner, broadcast_buffers=False)
        self.runner = torch.compile(runner, mode=config.compile_mode) if config.compile else runner
        if config.compile and device.type == "cuda":
            # Compiled runs see one batch shape (the last partial batch is dropped): let cuDNN time its
            # convolution algorithms once for it.
            torch.backends.cudnn.benchmark = True


def train(config: TrainConfig | dict[str, Any] | None = None, *, resume: str | Path | None = None,
          epochs: int | None = None, show_progress: bool | None = None,
          log: Callable[[str], None] = print, verbose: bool = False) -> TrainResult:
    """Train an ODENet as configured (or continue the run in folder `resume`) and return the result.

    With `resume`, `epochs` extends the run (finished or not) to that many epochs in all: the learning-rate
    schedule is then the one of a run configured with `epochs` from the start, followed from the epoch
    reached (a cosine schedule that had decayed to zero rises to where the longer schedule stands).

    Writes to the run folder: config.json, metrics.jsonl, checkpoint.pt (every epoch, atomically), model.pt
    (the selected model, `select`; also as pretrained/model.safetensors + config.json) and summary.json.
    `log` gets the progress lines; with `verbose` (as `rknet train`) also the whole configuration.
    Raises TrainingDiverged on a non-finite loss.
    Under `torchrun` it trains data-parallel; only rank 0 writes files and logs.
    """
    started = time.perf_counter()
    checkpoint: dict[str, Any] | None = None
    if resume is not None:
        folder = Path(resume)
        checkpoint = load_checkpoint(folder, log)
        config = TrainConfig.from_dict(checkpoint["config"]).validate()
        if epochs is not None:
            config = config.extended(epochs, checkpoint["epoch"])
    else:
        if epochs is not None:
            raise ValueError("epochs= extends a resumed run; for a new run give epochs in its configuration")
        if config is not None and not isinstance(config, (TrainConfig, dict)):
            raise ValueError(f"rknet.train takes a TrainConfig or a dict of options such as {{'data': 'peaks'}}, "
                             f"got {config!r}")
        config = (config if isinstance(config, TrainConfig)
                  else TrainConfig.from_dict(config or {})).validate().resolved()
        if config.logger is not None:
            check_tracker(config.logger)  # before the run folder is made
        if distributed.launched_by_torchrun() and config.out is None:
            raise ValueError("under torchrun give --out, so that every process uses the same run folder")
        folder = Path(config.out) if config.out else default_out(config)
    with claimed_run_folder(folder, new=checkpoint is None):
        return _train_in(folder, config, checkpoint, started, show_progress, log, verbose)


def _train_in(folder: Path, config: TrainConfig, checkpoint: dict[str, Any] | None, started: float,
              show_progress: bool | None, log: Callable[[str], None], verbose: bool) -> TrainResult:
    """`train`'s work once the run folder is claimed."""
    device = distributed.setup(resolve_device(config.device))
    threads, threads_source = use_threads(config.threads)
    main_process = distributed.rank() == 0
    if not main_process:
        log = _silent
    torch.manual_seed(config.seed)
    val_indices = checkpoint["val_indices"] if checkpoint is not None else None
    data = load_dataset(config.data, val_fraction=config.val_fraction, seed=config.seed,
                        val_indices=val_indices if val_indices is not None and len(val_indices) else None
                        ).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    loader = BatchLoader(data.x_train, data.y_train, config.batch_size, shuffle=True, generator=generator,
                         augment=data.augment, drop_last=config.compile)
    if len(loader) == 0:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(data.x_train)} training samples")
    check_patience(config.patience, len(data.x_val))
    level = checkpoint["level"] if checkpoint is not None else 0
    run = _Run(config, build_model(config, data, level), level, len(loader), device)
    history: list[dict[str, Any]] = []
    refinements: list[dict[str, Any]] = []
    best = no_best()
    first_epoch, elapsed_before = 1, 0.0
    if checkpoint is not None:
        run.model.load_state_dict(checkpoint["model"])
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        run.scheduler.load_state_dict(checkpoint["scheduler"])
        sync_learning_rate(run.scheduler)  # the schedule of the (possibly extended) configuration
        restore_rng(checkpoint["rng"], generator, device)
        history, best, refinements = checkpoint["history"], checkpoint["best"], checkpoint["refinements"]
        first_epoch, elapsed_before = checkpoint["epoch"] + 1, checkpoint["wall_seconds"]
        log(f"resuming {folder} after epoch {checkpoint['epoch']}/{config.epochs}")
        if main_process and config.epochs != checkpoint["config"]["epochs"]:  # extended by train(epochs=)
            write_json(folder / CONFIG, config.to_dict())
    elif main_process:
        write_json(folder / CONFIG, config.to_dict())
        if verbose:
            log("configuration:\n" + json.dumps(config.to_dict(), indent=2))
    log(f"{parameters(run.model):,} parameters, {data.name} data: {len(data.x_train)} train / {len(data.x_val)} "
        f"val / {len(data.x_test)} test, device {device} x {distributed.world_size()} process(es), "
        f"{threads} torch thread(s) ({threads_source}), output {folder}")
    metrics = MetricsLog(folder, history, config.to_dict()) if main_process else None
    try:
        for epoch in range(first_epoch, config.epochs + 1):
            if patience_exhausted(config.patience, epoch - 1, best["epoch"]):
                break  # checked before an epoch, so that a resumed run stops where it would have
            if run.level + 1 < len(config.levels()) and epoch == _level_start(config, run.level + 1):
                run.model.load_state_dict(best["state"])  # the level's best-by-validation network
                run = _refine(run, config, data, device, len(loader), epoch, refinements, log)
                best = no_best()
            record = _run_epoch(epoch, config, run, loader, data, device, show_progress)
            check_epoch_finite(epoch, record, run.model)
            history.append(record)
            if improves(record, best):  # without a validation split, the latest model
                best = kept(record, run.model)
            if main_process:
                save_checkpoint({
                    "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                    "scheduler": run.scheduler.state_dict(), "rng": rng_state(generator, device),
                    "epoch": epoch, "level": run.level, "history": history, "best": best,
                    "refinements": refinements, "val_indices": data.val_indices.cpu(),
                    "config": config.to_dict(),
                    "wall_seconds": elapsed_before + time.perf_counter() - started}, folder)
                metrics.append(record)
            log(format_epoch(record, config.epochs))
        last_epoch = history[-1]["epoch"] if history else 0
        stopped = stop_record(config.patience, config.epochs, last_epoch, best)
        if "message" in stopped:
            log(stopped["message"])
        result = finish(folder, config, run.model, best, last_epoch, data, device,
                        elapsed_before + time.perf_counter() - started, log, metrics,
                        {"refinements": refinements, "stopped": stopped})
    finally:
        if metrics is not None:
            metrics.close()
    distributed.teardown()
    return result


def _silent(line: str) -> None:
    """The log of processes other than rank 0."""


def _refine(run: _Run, config: TrainConfig, data: Dataset, device: torch.device, iterations_per_epoch: int,
            epoch: int, refinements: list[dict[str, Any]], log) -> _Run:
    """Move to the next multilevel level: refine the network, record accuracy before and after (as the
    run evaluates: same precision and memory format)."""
    levels = config.levels()
    split = "validation" if len(data.x_val) else "training"
    def accuracy(model: ODENet) -> float:
        return evaluate(model, *_selection_split(data), config.batch_size * 4, device, config.precision,
                        config.channels_last)[1]

    before = accuracy(run.model)
    steps_before = run.model.spec.num_steps
    refined = run.model.refine(levels[run.level + 1] // levels[run.level], controls=config.refines_controls())
    run = _Run(config, refined, run.level + 1, iterations_per_epoch, device)
    after = accuracy(run.model)
    steps_after = run.model.spec.num_steps
    refinements.append({"epoch": epoch, "steps_before": steps_before, "steps_after": steps_after,
                        "val_acc_before": before, "val_acc_after": after, "params": parameters(run.model)})
    log(f"refined {steps_before} -> {steps_after} steps per block before epoch {epoch}: {split} accuracy "
        f"{100 * before:.2f}% before, {100 * after:.2f}% right after ({parameters(run.model):,} parameters)")
    return run


def _selection_split(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation split, or the training split when there is none."""
    return (data.x_val, data.y_val) if len(data.x_val) else (data.x_train, data.y_train)


def _run_epoch(epoch: int, config: TrainConfig, run: _Run, loader: BatchLoader, data: Dataset,
               device: torch.device, show_progress: bool | None) -> dict[str, Any]:
    """Train one epoch, evaluate on the validation split, return the metrics record."""
    lr = run.optimizer.param_groups[0]["lr"]
    start = time.perf_counter()
    options = StepOptions(config.precision, config.time_reg, config.clip, config.channels_last)
    try:
        result = train_epoch(run.runner, run.model, loader, len(loader), run.optimizer, run.scheduler, device,
                             options, show_progress, f"epoch {epoch}/{config.epochs}")
        train_seconds = time.perf_counter() - start
        if not math.isfinite(result.loss):
            raise diverged(epoch, f"the loss is {result.loss}")
        val_loss = val_acc = None
        if config.bn_recompute:  # statistics of this epoch's weights, not the trailing running averages
            recompute_batch_stats(run.model, data.x_train[:config.bn_recompute], config.batch_size, device,
                                  config.precision, config.channels_last)
        if len(data.x_val):
            val_loss, val_acc = evaluate(run.model, data.x_val, data.y_val, config.batch_size * 4, device,
                                         config.precision, config.channels_last)
    except torch.linalg.LinAlgError as error:  # an IMEX block's exact solve, once its operator's weights blew up
        raise diverged(epoch, f"a linear solve failed ({str(error).splitlines()[0]})") from error
    record = {"epoch": epoch, "lr": lr, "train_loss": result.loss, "train_acc": result.accuracy,
              "val_loss": val_loss, "val_acc": val_acc, "seconds": time.perf_counter() - start,
              "images_per_s": result.samples / train_seconds, "steps": run.model.spec.num_steps}
    if config.time_reg:
        record["time_reg"] = result.time_reg
    record.update({f"grad_norm/{name}": value for name, value in result.gradient_norms.items()})
    return record
