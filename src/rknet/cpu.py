"""CPU cores, load, and how many torch threads a run should use.

torch starts with one thread per core. When other processes already keep some cores busy, threads that
wait for a core spin and hand each other work late, and a small network's epochs slow down tenfold or
more (seen on a loaded 2-core machine: 5 s per epoch alone, 90-577 s shared). So a run asks for the
cores that are free (cores minus the 1-minute load average, at least one), unless the user said otherwise.
"""

from __future__ import annotations

import os

import torch

THREADS_ENV = "OMP_NUM_THREADS"


def cores() -> int:
    """CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def load_average() -> float | None:
    """The 1-minute load average, or None where the system has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def free_cores() -> int:
    """Cores not busy with other work by the 1-minute load average (all of them where it is unknown)."""
    load = load_average()
    return cores() if load is None else max(1, min(cores(), cores() - round(load)))


def use_threads(requested: int | None) -> tuple[int, str]:
    """Set torch's threads for a run and say why: `requested` (--threads), else what OMP_NUM_THREADS or the
    calling process set, else the free cores."""
    if requested is not None:
        torch.set_num_threads(requested)
        return requested, "--threads"
    if os.environ.get(THREADS_ENV, "").strip():
        return torch.get_num_threads(), THREADS_ENV
    if torch.get_num_threads() != cores():
        return torch.get_num_threads(), "set by the calling process"
    torch.set_num_threads(free_cores())
    return torch.get_num_threads(), f"free cores of {cores()} (1-minute load {load_average() or 0:.1f})"
