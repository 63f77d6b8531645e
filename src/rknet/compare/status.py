"""`rknet compare --status OUT`: the state of every run of a grid, read from the run folders alone.

It needs neither the launcher nor the process that started the grid, so it shows the progress of a grid
on SLURM or Ray from any machine that sees OUT (a login node, the head node), while it trains or after.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rknet.compare.plan import CompareSpec, plural, run_folder
from rknet.compare.runner import read_json
from rknet.io.layout import CHECKPOINT, COMPARE_SIDECAR, COMPARE_SPEC, CONFIG, LOCK, METRICS, SUMMARY
from rknet.training.metrics import read_metrics

STATES = ("complete", "failed", "training", "interrupted", "starting", "waiting")


@dataclass(frozen=True)
class RunStatus:
    """One run's state and a few words about it (accuracy, epoch, error)."""

    name: str
    state: str  # one of STATES
    detail: str = ""


def run_status(folder: Path, now: float) -> RunStatus:
    """complete (summary.json), failed (its sidecar says so, until the next attempt), training (holds the run
    lock; a process killed unnoticed, e.g. with the grid's own command, leaves it too, hence the age of the last
    checkpoint), interrupted (a checkpoint, no lock), starting (the
    lock but no checkpoint yet) or waiting (nothing written yet: queued, or not submitted)."""
    summary = read_json(folder / SUMMARY)
    if summary is not None:
        return RunStatus(folder.name, "complete", f"test acc {100 * summary.get('test_acc', float('nan')):.2f}%, "
                                                  f"{summary.get('wall_seconds', float('nan')):.1f} s")
    sidecar = read_json(folder / COMPARE_SIDECAR) or {}
    locked = (folder / LOCK).exists()
    if sidecar.get("status") == "failed":
        return RunStatus(folder.name, "failed", str(sidecar.get("error", "")))
    if not (folder / CHECKPOINT).is_file():
        return RunStatus(folder.name, "starting" if locked else "waiting")
    epochs = (read_json(folder / CONFIG) or {}).get("epochs", "?")
    done = len(read_metrics(folder)) if (folder / METRICS).is_file() else 0
    age = now - (folder / CHECKPOINT).stat().st_mtime
    detail = f"epoch {done}/{epochs}, last checkpoint {_age(age)} ago"
    return RunStatus(folder.name, "training" if locked else "interrupted", detail)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def grid_status(out: str | Path) -> list[RunStatus]:
    """The state of every run of the comparison in `out` (seed-major, as the grid trains them)."""
    spec_path = Path(out) / COMPARE_SPEC
    values = read_json(spec_path)
    if values is None:
        raise ValueError(f"{out} holds no comparison ({spec_path} is missing or unreadable); give the --out of "
                         "an rknet compare")
    spec = CompareSpec.coerce(dict(values, out=out))
    now = time.time()
    return [run_status(run_folder(out, setting, seed), now)
            for seed in spec.seed_list() for setting in spec.settings()]


def status_lines(out: str | Path) -> list[str]:
    """One line per run, then the counts, for `rknet compare --status OUT`."""
    statuses = grid_status(out)
    width = max(len(s.name) for s in statuses)
    lines = [f"{s.state:<11} {s.name:<{width}}  {s.detail}".rstrip() for s in statuses]
    counts = Counter(s.state for s in statuses)
    lines.append(f"{plural(len(statuses), 'run')}: " + ", ".join(f"{counts[state]} {state}" for state in STATES
                                                                   if counts[state]))
    return lines
