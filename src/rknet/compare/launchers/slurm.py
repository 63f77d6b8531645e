"""`--launcher slurm`: one SLURM job per run, submitted as one job array through submitit.

Each job calls `worker.run_task`, wrapped in a submitit `Checkpointable`: when SLURM preempts the job or
it reaches its time limit, submitit calls `checkpoint`, which requeues the same call, and the requeued job
resumes the run from the last checkpoint in its folder (written after every epoch). Job scripts and logs
go to OUT/slurm. `submitit_cluster="local"` runs the same jobs with submitit's local executor.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import submitit

from rknet.compare.launchers.base import Launcher, Result, Task, failed
from rknet.compare.resources import Resources
from rknet.compare.worker import run_task

POLL_SECONDS = 0.5


class RunJob(submitit.helpers.Checkpointable):
    """The callable of one job: train (or resume) one run. Checkpointable's `checkpoint` resubmits this
    same call; the run itself then picks up its own checkpoint."""

    def __call__(self, task: Task) -> Result:
        return run_task(task)


def job_parameters(resources: Resources) -> dict:
    """submitit's parameters for one run: one task on one node, with the run's CPUs, GPUs, memory and time."""
    parameters = {"nodes": 1, "tasks_per_node": 1, "cpus_per_task": resources.cpus_per_run,
                  "gpus_per_node": resources.gpus_per_run or 0, "timeout_min": resources.time_limit,
                  "name": "rknet-compare"}
    if resources.mem_gb is not None:
        parameters["mem_gb"] = resources.mem_gb
    if resources.partition is not None:
        parameters["slurm_partition"] = resources.partition
    if resources.max_parallel is not None:
        parameters["slurm_array_parallelism"] = resources.max_parallel
    if resources.slurm_options:
        parameters["slurm_additional_parameters"] = dict(resources.slurm_options)
    return parameters


class SlurmLauncher(Launcher):
    """Submits every run as one job array and polls the jobs until each has a result."""

    name = "slurm"

    def __init__(self, resources: Resources, folder: Path) -> None:
        if resources.submitit_cluster == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--launcher slurm needs SLURM's sbatch on PATH (run it on a login node of the cluster), "
                             "or --submitit-cluster local to try the grid on this machine")
        self.resources, self.folder = resources, folder
        self.executor = submitit.AutoExecutor(folder=folder, cluster=resources.submitit_cluster,
                                              slurm_max_num_timeout=resources.retries)
        self.executor.update_parameters(**job_parameters(resources))
        self.jobs: dict[int, submitit.Job] = {}

    def describe(self) -> str:
        where = ("SLURM" + (f" partition {self.resources.partition}" if self.resources.partition else "")
                 if self.resources.submitit_cluster == "slurm" else "submitit's local executor")
        return (f"{where}, one job per run ({self.resources.cpus_per_run} CPUs, {self.resources.gpus_per_run or 0} "
                f"GPUs, {self.resources.time_limit} min); job files in {self.folder}")

    def submit(self, tasks: dict[int, Task]) -> None:
        with self.executor.batch():
            pending = [(index, self.executor.submit(RunJob(), task)) for index, task in tasks.items()]
        self.jobs = dict(pending)

    def results(self) -> Iterator[tuple[int, Result]]:
        waiting = dict(self.jobs)
        while waiting:
            finished = [index for index, job in waiting.items() if job.done()]
            for index in finished:
                yield index, self._result(waiting.pop(index))
            if waiting and not finished:
                time.sleep(POLL_SECONDS)

    @staticmethod
    def _result(job: submitit.Job) -> Result:
        try:
            return job.result()
        except Exception as error:  # the job died, was cancelled or timed out too often: the run is listed
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return failed(f"job {job.job_id} ended without a result ({first}); its log: {job.paths.stderr}")

    def close(self) -> None:
        """Nothing to release: the jobs are done and submitit keeps no connection open."""

    def stop(self) -> None:
        for job in self.jobs.values():
            if not job.done():
                job.cancel(check=False)
