"""Training one run of a grid, in whatever process a launcher gives it, and measuring its peak memory.

Every launcher (local worker processes, SLURM jobs, Ray tasks) calls `run_task`: it prepares the
process once (torch threads, a tiny warm-up training run so that torch's lazy imports and first-use
kernels are not charged to the first real run), warms up once more per data set with one epoch of the first
run's own configuration (the data set's loaders, caches and first-use allocations, e.g. sklearn for digits,
otherwise charged to each worker's first run only), then trains the run, or resumes it when its folder holds
a checkpoint (decided when the run starts, so a requeued job or a retried task continues where the lost
one stopped), and writes the run's sidecar OUT/runs/NAME/compare.json.

Peak memory on the CPU is the growth of the peak resident set size during the run. The kernel's
high-water mark (VmHWM; `resource.getrusage` reports it as ru_maxrss) only ever grows, so on Linux a
worker releases freed memory (gc, malloc_trim), resets the mark (/proc/self/clear_refs) and takes the
resident size before each run: peak = VmHWM after the run - VmRSS before it. Where the mark cannot be
reset, every run gets a fresh process and peak = ru_maxrss after the run - ru_maxrss before it. On CUDA,
peak = torch.cuda.max_memory_allocated (reset before each run).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any

from rknet.compare.machine import LoadSampler, machine_cores
from rknet.io.atomic import write_json
from rknet.io.layout import CHECKPOINT, COMPARE_LOG, COMPARE_SIDECAR, SUMMARY

CPU_MEMORY = "cpu peak RSS growth (VmHWM = ru_maxrss, reset per run)"
CPU_MEMORY_FRESH = "cpu peak RSS growth (ru_maxrss, fresh process per run)"
CUDA_MEMORY = "cuda max_memory_allocated"
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_prepared: list[int] = []  # the torch threads this process was prepared with (empty: not yet)
_warmed_data: set[str] = set()  # the data sets this process has trained one warm-up epoch on


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


def prepare_worker(threads: int) -> None:
    """Once per process: torch threads, then a tiny warm-up training run (not measured)."""
    import torch
    import torch.nn.functional as F

    from rknet.network.odenet import ODENet
    from rknet.training import train

    torch.set_num_threads(threads)
    if _prepared:
        return
    _prepared.append(threads)
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


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """What every launcher runs for one run: prepare this process, then `train_run` in the directory the
    grid was started from (relative paths of the run's folder and data mean the same to every launcher)."""
    prepare_worker(task["threads"])
    os.chdir(task["cwd"])
    warm_up_on(task["config"])
    return train_run(task)


def warm_up_on(config: dict[str, Any]) -> None:
    """Once per process and data set: one unmeasured epoch of this run's configuration in a temporary folder,
    so that every measured run of the grid starts from the same warmed-up process (seed 0 and seed 1 of a
    method then measure the same peak). Best effort: a failure here shows again in the run, which reports it."""
    from rknet.training import train

    if config.get("data") in _warmed_data:
        return
    _warmed_data.add(config.get("data"))
    warmup = dict(config, epochs=1, patience=None, multilevel=None, logger=None, logger_group=None)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            train(dict(warmup, out=str(Path(folder) / "warmup")), show_progress=False, log=lambda line: None)
        except Exception:
            pass


def train_run(task: dict[str, Any]) -> dict[str, Any]:
    """Train one run, or resume it from the checkpoint in its folder, or skip it when it is complete;
    write OUT/runs/NAME/compare.json and return {"status", "error", "warnings"}.

    The run's own log goes to compare.log in its folder; warnings are returned so the caller can show
    them. A failed run's sidecar says so (`rknet compare --status` reads it).
    """
    import torch

    from rknet.training import TrainConfig, TrainingDiverged, train
    from rknet.training.trainer import resolve_device

    folder = Path(task["folder"])
    if (folder / SUMMARY).is_file():  # finished meanwhile (a retried task, or a second grid on the same OUT)
        return {"status": "skipped", "error": None, "warnings": []}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPARE_SIDECAR).unlink(missing_ok=True)  # it described an earlier, unfinished attempt
    resume = (folder / CHECKPOINT).is_file()
    config = TrainConfig.from_dict(task["config"])
    device = resolve_device(config.device)
    memory = PeakRSS()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        memory.start()
    status, error = ("resumed" if resume else "trained"), None
    with (open(folder / COMPARE_LOG, "a") as handle, warnings.catch_warnings(record=True) as caught,
          LoadSampler() as load):
        warnings.simplefilter("always")

        def write(line: str) -> None:
            handle.write(line + "\n")
            handle.flush()

        try:
            if resume:
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
        write_json(folder / COMPARE_SIDECAR, {"status": status, "error": error})
        return {"status": status, "error": error, "warnings": messages}
    if device.type == "cuda":
        peak, source = torch.cuda.max_memory_allocated(device) / 2**20, CUDA_MEMORY
    else:
        peak, source = memory.stop(), memory.source
    sidecar = {"status": status, "peak_memory_mb": peak, "memory_source": source, "resumed": resume,
               "threads": torch.get_num_threads(), "threads_source": task["threads_source"],
               "launcher": task["launcher"], "workers": task["workers"], "load_peak": load.peak,
               "machine_cores": machine_cores()}
    write_json(folder / COMPARE_SIDECAR, sidecar)
    return {"status": status, "error": None, "warnings": messages}
