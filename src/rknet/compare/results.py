"""Per-setting results of a grid, read back from the run folders, and OUT/results.csv."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rknet.compare.plan import Run, Setting, widths_text
from rknet.compare.robustness import step_robustness
from rknet.compare.runner import contended, read_json
from rknet.io.layout import COMPARE_SIDECAR, SUMMARY
from rknet.training.metrics import read_metrics
from rknet.training.model_io import load

COLUMNS = ("method", "layer", "steps", "control_steps", "widths", "seeds", "test_acc_mean", "test_acc_std",
           "half_step_acc_mean", "twice_step_acc_mean", "params", "wall_seconds_mean", "seconds_per_epoch_mean",
           "peak_memory_mb", "evaluations_per_forward", "failed", "device", "memory_source")


@dataclass
class SettingResult:
    """The completed seeds of one setting and what they measured (lists are per completed seed)."""

    setting: Setting
    seeds: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    half_step_acc: list[float | None] = field(default_factory=list)  # re-discretised at half the step size
    twice_step_acc: list[float | None] = field(default_factory=list)  # ... and at twice it (None: odd steps)
    wall_seconds: list[float] = field(default_factory=list)
    seconds_per_epoch: list[float] = field(default_factory=list)
    peak_memory_mb: list[float] = field(default_factory=list)
    curves: list[list[float]] = field(default_factory=list)
    curve_metric: str = "val_acc"
    params: int | None = None
    evaluations_per_forward: int | None = None
    devices: list[str] = field(default_factory=list)
    memory_sources: list[str] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)  # torch threads of each seed's run, where recorded
    load_peaks: list[float] = field(default_factory=list)  # peak 1-minute load average per run, where measured
    contended: list[int] = field(default_factory=list)  # seeds whose run saw a load average above the cores
    machine_cores: int | None = None
    shapes: tuple[tuple[str, tuple[int, ...]], ...] | None = None  # the network's parameter names and shapes

    @property
    def label(self) -> str:
        return f"{self.setting.method_label} / {self.setting.layer}"

    @property
    def acc_mean(self) -> float | None:
        return statistics.fmean(self.test_acc) if self.test_acc else None

    @property
    def acc_std(self) -> float | None:
        """Sample standard deviation over seeds; None with fewer than two seeds."""
        return statistics.stdev(self.test_acc) if len(self.test_acc) > 1 else None

    def curve(self) -> tuple[list[float], list[float] | None]:
        """Mean (and sample std, with two or more seeds) of the per-epoch curve over seeds."""
        length = min(len(c) for c in self.curves)
        columns = [[c[i] for c in self.curves] for i in range(length)]
        mean = [statistics.fmean(column) for column in columns]
        std = [statistics.stdev(column) for column in columns] if len(self.curves) > 1 else None
        return mean, std

    @staticmethod
    def mean_of(values: list[float | None]) -> float | None:
        """Mean over the seeds that have a value; None when none has."""
        known = [v for v in values if v is not None]
        return statistics.fmean(known) if known else None

    def row(self) -> dict[str, Any]:
        """One results.csv row (accuracy as a fraction, like summary.json; None where unknown)."""
        s = self.setting
        return {"method": s.method_label, "layer": s.layer, "steps": s.steps, "control_steps": s.control_steps,
                "widths": widths_text(s.widths), "seeds": len(self.seeds), "test_acc_mean": self.acc_mean,
                "test_acc_std": self.acc_std, "half_step_acc_mean": self.mean_of(self.half_step_acc),
                "twice_step_acc_mean": self.mean_of(self.twice_step_acc), "params": self.params,
                "wall_seconds_mean": _mean(self.wall_seconds),
                "seconds_per_epoch_mean": _mean(self.seconds_per_epoch),
                "peak_memory_mb": max(self.peak_memory_mb) if self.peak_memory_mb else None,
                "evaluations_per_forward": self.evaluations_per_forward, "failed": len(self.failed),
                "device": ", ".join(dict.fromkeys(self.devices)),
                "memory_source": ", ".join(dict.fromkeys(self.memory_sources))}


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def collect(runs: list[Run]) -> list[SettingResult]:
    """Read every run folder back; one result per setting, in grid order. Incomplete runs count as failed."""
    results: dict[Setting, SettingResult] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        result = results.setdefault(run.setting, SettingResult(run.setting))
        summary = read_json(run.folder / SUMMARY)
        if summary is None:
            result.failed.append(run.seed)
            continue
        result.seeds.append(run.seed)
        result.test_acc.append(summary["test_acc"])
        result.wall_seconds.append(summary["wall_seconds"])
        result.devices.append(str(summary.get("device", "")))
        if result.params is None:
            model = load(run.folder)
            result.params, result.evaluations_per_forward = summary["params"], model.evaluations_per_forward
            result.shapes = tuple((name, tuple(value.shape)) for name, value in model.state_dict().items())
        half, twice = step_robustness(run.folder, run.setting.steps)
        result.half_step_acc.append(half)
        result.twice_step_acc.append(twice)
        records = read_metrics(run.folder)
        if records:
            result.seconds_per_epoch.append(statistics.fmean(r["seconds"] for r in records))
            metric = "val_acc" if all(r.get("val_acc") is not None for r in records) else "train_acc"
            if metric == "train_acc":
                result.curve_metric = metric
            result.curves.append([r[metric] for r in records])
        sidecar = read_json(run.folder / COMPARE_SIDECAR) or {}
        if sidecar.get("peak_memory_mb") is not None:
            result.peak_memory_mb.append(sidecar["peak_memory_mb"])
            result.memory_sources.append(sidecar["memory_source"])
        _read_machine(result, run.seed, sidecar)
    ordered = {run.setting: None for run in runs}
    return [results[setting] for setting in ordered]


def _read_machine(result: SettingResult, seed: int, sidecar: dict[str, Any]) -> None:
    """Threads and load of one run from its sidecar (absent in sidecars of older versions)."""
    if sidecar.get("threads") is not None:
        result.threads.append(sidecar["threads"])
    if sidecar.get("load_peak") is not None:
        result.load_peaks.append(sidecar["load_peak"])
        result.machine_cores = sidecar.get("machine_cores", result.machine_cores)
    if contended(sidecar):
        result.contended.append(seed)


def write_csv(results: list[SettingResult], path: Path, extra_columns: Sequence[str] = (),
              extra: Callable[[SettingResult], dict[str, Any]] = lambda result: {}) -> Path:
    """OUT/results.csv: one row per setting, empty cells where a value is unknown; `extra` gives a setting's
    cells of `extra_columns` (the paired differences to a baseline)."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, *extra_columns])
        writer.writeheader()
        for result in results:
            writer.writerow({k: "" if v is None else v for k, v in dict(result.row(), **extra(result)).items()})
    temporary.replace(path)
    return path
