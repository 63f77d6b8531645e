"""Training the runs of a grid in worker processes and measuring their peak memory.

Runs train in `workers` spawned worker processes (never in the caller's process), each with the torch
threads `machine.resolve_threads` gives (`--threads`, `OMP_NUM_THREADS`, or the cores shared out). Each
run records the threads it really had and the peak load average while it trained. A worker first
warms up (a tiny training run: torch's lazy imports, e.g. torch._dynamo pulled in by the optimiser,
and first-use kernels) so that none of that is charged to the first real run it trains.

Peak memory on the CPU is the growth of the peak resident set size during the run. The kernel's
high-water mark (VmHWM; `resource.getrusage` reports it as ru_maxrss) only ever grows, so on Linux a
worker releases freed memory (gc, malloc_trim), resets the mark (/proc/self/clear_refs) and takes the
resident size before each run: peak = VmHWM after the run - VmRSS before it. Where the mark cannot be
reset, every run gets a fresh worker process (`max_tasks_per_child=1`) and peak = ru_maxrss after the
run - ru_maxrss before it. On CUDA, peak = torch.cuda.max_memory_allocated (reset before each run).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import write_json
from ..runfiles import COMPARE_LOG, COMPARE_SIDECAR
from .machine import LoadSampler, Threads, machine_cores
from .plan import Run

CPU_MEMORY = "cpu peak RSS growth (VmHWM = ru_maxrss, reset per run)"
CPU_MEMORY_FRESH = "cpu peak RSS growth (ru_maxrss, fresh process per run)"
CUDA_MEMORY = "cuda max_memory_allocated"
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Outcome:
    """What happened to one run in this invocation."""

    run: Run
    status: str  # trained | resumed | skipped | failed
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def execute(runs: list[Run], workers: int, threads: Threads, show_progress: bool | None,
            log: Callable[[str], None]) -> list[Outcome]:
    """Train every run that is not complete, `workers` at a time with `threads` torch threads each; one
    line per run (skipped ones too), in finishing order."""
    from tqdm import tqdm

    if show_progress is None:
        show_progress = sys.stderr.isatty()
    total = len(runs)
    outcomes: dict[int, Outcome] = {}
    todo = [i for i, run in enumerate(runs) if run.state != "complete"]
    pending = set(todo)
    with tqdm(total=total, desc="compare", unit="run", disable=not show_progress, dynamic_ncols=True) as bar:
        def report(index: int, outcome: Outcome) -> None:
            outcomes[index] = outcome
            bar.update(1)
            with tqdm.external_write_mode():
                log(f"[{len(outcomes)}/{total}] {describe(outcome)}")

        for index, run in enumerate(runs):
            if index not in pending:
                report(index, Outcome(run, "skipped"))
        if todo:
            context = multiprocessing.get_context("spawn")
            # a fresh process per run where the peak-RSS mark cannot be reset (needs Python 3.11+)
            fresh = {} if peak_resettable() or sys.version_info < (3, 11) else {"max_tasks_per_child": 1}
            pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                                       initializer=init_worker, initargs=(threads.per_worker,), **fresh)
            try:
                futures = {pool.submit(train_run, task(runs[i], threads, workers)): i for i in todo}
                for future in as_completed(futures):
                    index = futures[future]
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        result = {"status": "failed", "warnings": [], "error": (
                            "the worker process died (out of memory or killed; from a Python script, call "
                            "run_grid under `if __name__ == '__main__':`)")}
                    report(index, Outcome(runs[index], result["status"], result.get("error"),
                                          result.get("warnings", [])))
            except BaseException:  # Ctrl-C (or an error here): stop the workers now; checkpoints are atomic
                _stop_workers(pool)
                raise
            pool.shutdown()
    return [outcomes[i] for i in range(total)]


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel pending runs and terminate running ones (a run resumes from its last checkpoint)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def task(run: Run, threads: Threads, workers: int) -> dict[str, Any]:
    """The picklable description of a run for a worker process."""
    return {"config": run.config.to_dict(), "folder": str(run.folder), "resume": run.state == "interrupted",
            "threads_source": threads.source, "workers": workers}


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


def peak_resettable() -> bool:
    """Whether this process can reset its peak-RSS mark (Linux: /proc/self/clear_refs)."""
    return sys.platform.startswith("linux") and _STATUS.is_file() and os.access(_CLEAR_REFS, os.W_OK)


def _status_mb(key: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise OSError(f"{key} not in {_STATUS}")


def _max_rss_mb() -> float | None:
    """ru_maxrss in MB (the unit is KiB on Linux, bytes on macOS); None where `resource` is missing."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class PeakRSS:
    """Peak resident-set growth of this process between `start()` and `stop()`, in MB."""

    def __init__(self) -> None:
        self.resettable = peak_resettable()
        self.source = CPU_MEMORY if self.resettable else CPU_MEMORY_FRESH
        self.base: float | None = None

    def start(self) -> None:
        if self.resettable:
            gc.collect()
            _malloc_trim()
            _CLEAR_REFS.write_text("5")  # reset VmHWM (the ru_maxrss counter) to the current RSS
            self.base = _status_mb("VmRSS")
        else:
            self.base = _max_rss_mb()

    def stop(self) -> float | None:
        after = _status_mb("VmHWM") if self.resettable else _max_rss_mb()
        return None if after is None or self.base is None else max(0.0, after - self.base)


def _malloc_trim() -> None:
    """Give memory freed by earlier runs back to the system (glibc), so it is not reused unseen."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def init_worker(threads: int) -> None:
    """Worker initialiser: torch threads, then a tiny warm-up training run (not measured)."""
    import torch
    import torch.nn.functional as F

    from ..network import ODENet
    from ..training import train

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle: it stops the workers
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            train({"data": "circles", "widths": [2, 2], "steps": 1, "epochs": 1, "batch_size": 512,
                   "device": "cpu", "out": str(Path(folder) / "warmup")}, show_progress=False, log=lambda line: None)
            for dims in (1, 2):  # convolution kernels for signal and image data
                model = ODENet(2, 2, widths=(2, 2), t_states=(0, 1), dims=dims)
                F.cross_entropy(model(torch.randn(4, 2, *(4,) * dims)), torch.tensor([0, 1, 0, 1])).backward()
        except Exception:  # best effort: whatever fails here fails again in a run, which reports it
            pass


def train_run(task: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point: train (or resume) one run, write OUT/runs/NAME/compare.json, return its status.

    The run's own log goes to compare.log in its folder; warnings are returned so the caller can show
    them.
    """
    import torch

    from ..training import TrainConfig, TrainingDiverged, train
    from ..training.trainer import resolve_device

    folder = Path(task["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    config = TrainConfig.from_dict(task["config"])
    device = resolve_device(config.device)
    memory = PeakRSS()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        memory.start()
    status, error = ("resumed" if task["resume"] else "trained"), None
    with (open(folder / COMPARE_LOG, "a") as handle, warnings.catch_warnings(record=True) as caught,
          LoadSampler() as load):
        warnings.simplefilter("always")

        def write(line: str) -> None:
            handle.write(line + "\n")
            handle.flush()

        try:
            if task["resume"]:
                train(resume=folder, show_progress=False, log=write)
            else:
                train(config, show_progress=False, log=write)
        except TrainingDiverged as diverged:
            status, error = "failed", str(diverged)
        except Exception as failure:  # one failed run must not stop the grid; the log has the traceback
            write(traceback.format_exc())
            message = str(failure).splitlines()[0] if str(failure) else ""
            status, error = "failed", f"{type(failure).__name__}: {message} (see {folder / COMPARE_LOG})"
        messages = list(dict.fromkeys(str(w.message) for w in caught))
        for message in messages:
            write(f"warning: {message}")
    if status == "failed":
        return {"status": status, "error": error, "warnings": messages}
    if device.type == "cuda":
        peak, source = torch.cuda.max_memory_allocated(device) / 2**20, CUDA_MEMORY
    else:
        peak, source = memory.stop(), memory.source
    sidecar = {"peak_memory_mb": peak, "memory_source": source, "resumed": task["resume"],
               "threads": torch.get_num_threads(), "threads_source": task["threads_source"],
               "workers": task["workers"], "load_peak": load.peak, "machine_cores": machine_cores()}
    write_json(folder / COMPARE_SIDECAR, sidecar)
    return {"status": status, "error": None, "warnings": messages}
