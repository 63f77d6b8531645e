"""The machine a grid trains on: torch threads per worker, and whether other work competed for its cores.

Timings are the point of a comparison's cost columns, and they mean something only when each run had
the cores it was given. So the thread count follows the user (`--threads`, else `OMP_NUM_THREADS`,
else the cores shared out among the workers), and each run samples the 1-minute load average while it
trains: a peak above the machine's cores means runnable threads waited for a core, i.e. the timings were
taken under contention.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from rknet.common.checks import comma_items
from rknet.common.cpu import THREADS_ENV, cores, load_average

THREADS_OPTION = "--threads"
THREADS_DEFAULT = "cores // workers"
LOAD_INTERVAL = 2.0  # seconds between load-average samples


@dataclass(frozen=True)
class Threads:
    """Torch threads per worker process and where the number came from (one of the THREADS_* names)."""

    per_worker: int
    source: str


def machine_cores() -> int:
    """All cores of the machine: the scale of its load average, which counts every process on it."""
    return max(1, os.cpu_count() or 1)


def resolve_threads(workers: int, threads: int | None = None, environ: Mapping[str, str] | None = None) -> Threads:
    """`threads` when given (`--threads`); else OMP_NUM_THREADS when set (its first entry, as OpenMP
    reads a nested list such as `4,2`); else `max(1, cores // workers)`. A ValueError names a bad value."""
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive integer (torch threads per worker), got {threads!r}")
        return Threads(threads, THREADS_OPTION)
    text = (os.environ if environ is None else environ).get(THREADS_ENV, "").strip()
    if text:
        try:
            first = comma_items(THREADS_ENV, text)[0]
        except ValueError:  # an empty entry: refused below with the fix
            first = ""
        if not first.isdigit() or int(first) < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {text!r}; fix or unset it, or give "
                             f"{THREADS_OPTION} N")
        return Threads(int(first), THREADS_ENV)
    return Threads(max(1, cores() // workers), THREADS_DEFAULT)


class LoadSampler:
    """Samples the 1-minute load average every `interval` seconds in a daemon thread while in a `with`
    block (and once on entry and exit); `peak` is the largest sample, None where there is no load average."""

    def __init__(self, interval: float = LOAD_INTERVAL) -> None:
        self.interval = interval
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def _sample(self) -> None:
        value = load_average()
        if value is not None:
            self.peak = value if self.peak is None else max(self.peak, value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> LoadSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
