"""`--launcher local`: the runs train in `workers` spawned worker processes on this machine."""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from rknet.compare.launchers.base import Launcher, Result, Task, failed
from rknet.compare.machine import Threads
from rknet.compare.plan import plural
from rknet.compare.worker import peak_resettable, prepare_worker, run_task

DIED = ("the worker process died (out of memory or killed; from a Python script, call run_grid under "
        "`if __name__ == '__main__':`)")


def init_worker(threads: int) -> None:
    """Pool initialiser: Ctrl-C is the caller's to handle (it stops the workers), then prepare the process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare_worker(threads)


class LocalLauncher(Launcher):
    """A process pool of `workers` spawned processes, each with `threads.per_worker` torch threads. Where
    the peak-RSS mark cannot be reset, every run gets a fresh process (Python 3.11+)."""

    name = "local"

    def __init__(self, workers: int, threads: Threads) -> None:
        self.workers, self.threads = workers, threads
        self.pool: ProcessPoolExecutor | None = None
        self.futures: dict[Future, int] = {}

    def describe(self) -> str:
        return (f"{plural(self.workers, 'worker')} x {plural(self.threads.per_worker, 'torch thread')} "
                f"({self.threads.source})")

    def submit(self, tasks: dict[int, Task]) -> None:
        fresh = {} if peak_resettable() or sys.version_info < (3, 11) else {"max_tasks_per_child": 1}
        self.pool = ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)),
                                        mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                                        initargs=(self.threads.per_worker,), **fresh)
        self.futures = {self.pool.submit(run_task, task): index for index, task in tasks.items()}

    def results(self) -> Iterator[tuple[int, Result]]:
        for future in as_completed(self.futures):
            try:
                result = future.result()
            except BrokenProcessPool:
                result = failed(DIED)
            yield self.futures[future], result

    def stop(self) -> None:
        """Cancel pending runs and terminate running ones (a run resumes from its last checkpoint)."""
        if self.pool is None:
            return
        terminate = getattr(self.pool, "terminate_workers", None)  # Python 3.14+
        if terminate is not None:
            terminate()
            return
        for process in list((getattr(self.pool, "_processes", None) or {}).values()):
            process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
