"""`--launcher ray`: one Ray task per run, on the cluster at `ray_address` (or a new local instance).

Each task calls `worker.run_task` with the run's CPUs and, when the cluster has GPUs, one GPU (or
`gpus_per_run`). When a worker or node is lost, Ray retries the task (`retries` times) and the retry
resumes the run from the last checkpoint in its folder; a task that is still lost is a failed run, which
the next invocation resumes. At most `max_parallel` tasks are in flight at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import ray

from rknet.compare.launchers.base import Launcher, Result, Task, failed
from rknet.compare.resources import Resources
from rknet.compare.worker import peak_resettable, run_task


class RayLauncher(Launcher):
    """Connects to (or starts) Ray, sends the tasks, and collects them as they finish."""

    name = "ray"

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.started = False  # whether this launcher started Ray (and so shuts it down)
        self.queue: list[tuple[int, Task]] = []
        self.flying: dict[Any, int] = {}
        self.remote: Any = None
        self.gpus = 0

    def describe(self) -> str:
        where = self.resources.ray_address or os.environ.get("RAY_ADDRESS") or "a new local Ray instance"
        gpus = "1 GPU if the cluster has GPUs" if self.resources.gpus_per_run is None else self.resources.gpus_per_run
        return f"Ray at {where}, one task per run ({self.resources.cpus_per_run} CPUs, {gpus})"

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"address": self.resources.ray_address, "log_to_driver": False}
        if self.resources.ray_address is None and not os.environ.get("RAY_ADDRESS"):  # a new local instance
            options["include_dashboard"] = False
            if self.resources.max_parallel is not None:
                options["num_cpus"] = self.resources.max_parallel * self.resources.cpus_per_run
        ray.init(**options)
        self.started = True

    def submit(self, tasks: dict[int, Task]) -> None:
        self._connect()
        gpus = self.resources.gpus_per_run
        self.gpus = (1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0) if gpus is None else gpus
        options: dict[str, Any] = {"num_cpus": self.resources.cpus_per_run, "num_gpus": self.gpus,
                                   "max_retries": self.resources.retries, "retry_exceptions": False,
                                   "max_calls": 0 if peak_resettable() else 1}  # 1: a fresh process per run
        if self.resources.mem_gb is not None:
            options["memory"] = int(self.resources.mem_gb * 2**30)
        self.remote = ray.remote(**options)(run_task)
        self.queue = list(tasks.items())
        self._fill()

    def _fill(self) -> None:
        limit = self.resources.max_parallel or len(self.queue) + len(self.flying)
        while self.queue and len(self.flying) < limit:
            index, task = self.queue.pop(0)
            self.flying[self.remote.remote(task)] = index

    def results(self) -> Iterator[tuple[int, Result]]:
        while self.flying:
            (ref,), _ = ray.wait(list(self.flying), num_returns=1)
            index = self.flying.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as error:  # worker or node lost beyond the retries, or cancelled
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                result = failed(f"the Ray task was lost ({type(error).__name__}: {first})")
            self._fill()
            yield index, result

    def stop(self) -> None:
        self.queue.clear()
        for ref in list(self.flying):
            ray.cancel(ref, force=True)
        self.close()

    def close(self) -> None:
        if self.started:
            ray.shutdown()
            self.started = False
