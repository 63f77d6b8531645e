"""CPU cores, load, and how many torch threads a run should use.

torch starts with one thread per core. When other processes already keep some cores busy, threads that
wait for a core spin and hand each other work late, and a small network's epochs slow down tenfold or
more (seen on a loaded 2-core machine: 5 s per epoch alone, 90-577 s shared). So a run asks for the
cores that are idle right now (measured from /proc/stat over a fifth of a second, at least one), unless the
user said otherwise. The 1-minute load average is the fallback where /proc/stat is missing; it is not the
first choice because it still counts a run that just ended (a second run started right after the first
would take one thread too few).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

THREADS_ENV = "OMP_NUM_THREADS"
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic
IDLE_WINDOW = 0.2  # seconds over which idle time is measured
_PROC_STAT = Path("/proc/stat")
_PROC_CPUINFO = Path("/proc/cpuinfo")


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


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat; None where it cannot be read."""
    try:
        fields = [int(v) for v in _PROC_STAT.read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def idle_cores(window: float = IDLE_WINDOW) -> float | None:
    """How many of the machine's cores were idle during the next `window` seconds (this process sleeps
    meanwhile, so it counts only other work); None without /proc/stat."""
    before = _cpu_times()
    time.sleep(window)
    after = _cpu_times()
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def free_cores() -> int:
    """Cores not busy with other work: idle now (/proc/stat), else by the 1-minute load average, else all."""
    idle = idle_cores()
    if idle is not None:
        return max(1, min(cores(), round(idle)))
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
    return torch.get_num_threads(), f"the idle cores of {cores()}"


def _cpuinfo_field(name: str) -> str | None:
    """The first CPU's value of a /proc/cpuinfo field, or None where there is none (or no /proc/cpuinfo)."""
    try:
        lines = _PROC_CPUINFO.read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == name), None)


def cpu_model() -> str:
    """The CPU's model name (for benchmark figures, which are meaningless without it)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    return set((_cpuinfo_field("flags") or "").split())


def has_bf16_units() -> bool:
    """Whether this CPU does bf16 arithmetic natively (AVX512-BF16 or AMX-BF16; read from /proc/cpuinfo,
    so False where it cannot be read). There bf16 autocast pays: 2.2x torchdiffeq's fp32 CIFAR-shaped
    training step on an AMD EPYC with avx512_bf16 (BENCHMARKS.md); elsewhere bf16 is emulated and slower."""
    return not cpu_flags().isdisjoint(BF16_FLAGS)
