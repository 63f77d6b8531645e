"""Running a grid's runs through a launcher: skip complete runs, hand the rest to the launcher, report each
outcome as it comes back (one log line each, a progress bar on a terminal).

The launcher decides where runs train (`launchers`: local worker processes, SLURM jobs, Ray tasks); every
one of them trains a run with `worker.run_task`, which writes only that run's folder.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rknet.compare.launchers.base import Launcher
from rknet.compare.machine import Threads
from rknet.compare.plan import Run
from rknet.io.atomic import write_json
from rknet.io.layout import COMPARE_SIDECAR


@dataclass
class Outcome:
    """What happened to one run in this invocation."""

    run: Run
    status: str  # trained | resumed | skipped | failed
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def execute(runs: list[Run], launcher: Launcher, threads: Threads, workers: int, show_progress: bool | None,
            log: Callable[[str], None]) -> list[Outcome]:
    """Train every run that is not complete through `launcher`; one line per run (skipped ones too), in
    finishing order. Ctrl-C (or an error here) stops the launcher's runs; they resume on rerun."""
    from tqdm import tqdm

    if show_progress is None:
        show_progress = sys.stderr.isatty()
    total = len(runs)
    outcomes: dict[int, Outcome] = {}
    todo = {i: task(run, threads, workers, launcher.name) for i, run in enumerate(runs) if run.state != "complete"}
    with tqdm(total=total, desc="compare", unit="run", disable=not show_progress, dynamic_ncols=True) as bar:
        def report(index: int, outcome: Outcome) -> None:
            outcomes[index] = outcome
            if outcome.status == "failed":  # also when the run's process died before it could say so
                mark_failed(outcome)
            bar.update(1)
            with tqdm.external_write_mode():
                log(f"[{len(outcomes)}/{total}] {describe(outcome)}")

        for index, run in enumerate(runs):
            if index not in todo:
                report(index, Outcome(run, "skipped"))
        if todo:
            try:
                launcher.submit(todo)
                for index, result in launcher.results():
                    report(index, Outcome(runs[index], result["status"], result.get("error"),
                                          result.get("warnings", [])))
            except BaseException:
                launcher.stop()
                raise
            launcher.close()
    return [outcomes[i] for i in range(total)]


def mark_failed(outcome: Outcome) -> None:
    """Record a failed run's error in its sidecar, where `rknet compare --status` reads it (the next attempt
    at the run removes it)."""
    outcome.run.folder.mkdir(parents=True, exist_ok=True)
    write_json(outcome.run.folder / COMPARE_SIDECAR, {"status": "failed", "error": outcome.error})


def task(run: Run, threads: Threads, workers: int, launcher: str) -> dict[str, Any]:
    """The picklable description of a run for `worker.run_task`, wherever it trains. Paths in the run's
    configuration (its folder, a data set's files) are read from the directory the grid was started in."""
    return {"config": run.config.to_dict(), "folder": str(run.folder), "cwd": os.getcwd(),
            "threads": threads.per_worker, "threads_source": threads.source, "workers": workers,
            "launcher": launcher}


def describe(outcome: Outcome) -> str:
    """One line for a finished (or skipped) run."""
    name = outcome.run.name
    if outcome.status == "failed":
        return f"failed  {name}: {outcome.error}"
    summary = read_json(outcome.run.folder / "summary.json") or {}
    sidecar = read_json(outcome.run.folder / COMPARE_SIDECAR) or {}
    line = f"{outcome.status:<7} {name}: test acc {100 * summary.get('test_acc', float('nan')):.2f}%"
    line += f", {summary.get('wall_seconds', float('nan')):.1f} s"
    if sidecar.get("peak_memory_mb") is not None:
        line += f", peak memory {sidecar['peak_memory_mb']:.1f} MB"
    if contended(sidecar):
        line += (f", under contention (1-minute load average up to {sidecar['load_peak']:.1f} on "
                 f"{sidecar['machine_cores']} cores)")
    if outcome.status == "skipped":
        line += " (already complete)"
    for message in outcome.warnings:
        line += f"\n        warning: {message}"
    return line


def contended(sidecar: dict[str, Any]) -> bool:
    """Whether a run's sidecar says other work competed for the cores: its peak 1-minute load average
    exceeded the machine's cores."""
    load, machine = sidecar.get("load_peak"), sidecar.get("machine_cores")
    return load is not None and machine is not None and load > machine


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
