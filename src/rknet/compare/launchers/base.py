"""The interface every launcher implements: hand it the runs' tasks, then collect their results.

A task is the picklable description of one run (`runner.task`); whatever engine carries it, the run is
trained by `worker.run_task` in a process of the engine's choosing and writes only its own folder, so
the grid's guarantees (one folder per run, skip complete runs, resume interrupted ones, the report read
from the folders) hold for every launcher. A result is `run_task`'s {"status", "error", "warnings"}.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import ModuleType
from typing import Any

Task = dict[str, Any]
Result = dict[str, Any]


class Launcher(ABC):
    """One engine that trains a grid's runs (local processes, SLURM jobs, Ray tasks)."""

    name: str = ""

    @abstractmethod
    def submit(self, tasks: dict[int, Task]) -> None:
        """Hand every task (by its index in the grid) to the engine; returns without waiting."""

    @abstractmethod
    def results(self) -> Iterator[tuple[int, Result]]:
        """(index, result) for every submitted task, as each finishes; a run that the engine lost (a killed
        process, a cancelled job) yields a failed result, never an exception."""

    @abstractmethod
    def stop(self) -> None:
        """Cancel what has not finished (Ctrl-C); an interrupted run resumes from its checkpoint on rerun."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine once every result is in."""

    def describe(self) -> str:
        """A few words for the log: where and how the runs train."""
        return self.name


def failed(error: str) -> Result:
    """The result of a run that ended without reporting back."""
    return {"status": "failed", "error": error, "warnings": []}


def require(module: str, launcher: str) -> ModuleType:
    """Import an optional engine, or a ValueError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ValueError(f"--launcher {launcher} needs {module}, which is not installed: pip install "
                         f"'rknet[{launcher}]' (or pip install {module})") from error
