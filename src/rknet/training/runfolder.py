"""Run folders: one process at a time, never inside a folder of other files, and no half-made folder left
behind by a new run that fails before its first checkpoint.

A run holds an exclusive lock on OUT/.lock (`fcntl.flock`) while it trains or resumes, and removes the
file when it ends; the operating system releases the lock of a process that ends otherwise (a stale
.lock file left by a killed run is simply locked again). Under `torchrun` only rank 0 (the process that
writes files) takes the lock and tidies up.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

from rknet.io.atomic import write_failed
from rknet.io.layout import (
    CHECKPOINT,
    COMPARE_LOG,
    COMPARE_SIDECAR,
    CONFIG,
    LOCK,
    METRICS,
    MODEL,
    PREVIOUS,
    TENSORBOARD,
)
from rknet.training.config import TrainConfig

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]

RUN_MARKERS = (CHECKPOINT, PREVIOUS, MODEL)  # a folder with one of these holds a run
# What a new run writes before its first checkpoint: removed when it fails (or was killed) by then.
EARLY_FILES = (CONFIG, CONFIG + ".tmp", METRICS, METRICS + ".tmp", TENSORBOARD, CHECKPOINT + ".tmp")
# rknet compare keeps its own log and sidecar in each run folder, next to the run's files.
COMPANION_FILES = (COMPARE_LOG, COMPARE_SIDECAR)


@contextmanager
def claimed_run_folder(folder: Path, new: bool) -> Iterator[None]:
    """Hold `folder` for one run: created (when `new`) and locked on entry, unlocked on exit.

    A new run refuses a folder that holds a run or other files (one ValueError line; a folder left by a
    run killed before its first checkpoint is cleared and reused); if it fails before writing its first
    checkpoint, what it wrote is removed, and the folder too when this run created it.
    """
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    created = new and not folder.exists()
    if new:
        _make_folder(folder)
        _check_free(folder, clear=False)  # before the lock file is made: a refused folder stays as it was
    lock = _acquire(folder)
    failed_early = False
    try:
        if new:
            _check_free(folder, clear=True)  # again, now that no other run can change the folder
        try:
            yield
        except BaseException:
            failed_early = new and not (folder / CHECKPOINT).exists()
            raise
    finally:
        if failed_early:
            _remove_early_files(folder)
        _release(folder, lock)
        if failed_early and created:
            with suppress(OSError):  # not empty: something else was put there meanwhile
                folder.rmdir()


def _make_folder(folder: Path) -> None:
    """mkdir -p, as one line naming the folder when it fails."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder; give --out a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_failed(folder, error) from error


def _acquire(folder: Path) -> int:
    """An open descriptor of folder/.lock holding an exclusive lock; a ValueError when another process
    holds it. A lock won on a file that its holder removed meanwhile (see `_release`) is retried on the
    new file."""
    path = folder / LOCK
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise write_failed(path, error) from error
        if fcntl is None:
            return descriptor
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "?"
            os.close(descriptor)
            raise ValueError(f"{folder} is in use by another rknet run (process {holder} holds {path}); wait "
                             "for it to end or choose another --out") from None
        if _same_file(descriptor, path):
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
            return descriptor
        os.close(descriptor)


def _same_file(descriptor: int, path: Path) -> bool:
    """Whether the open `descriptor` is still the file at `path`."""
    try:
        return os.path.samestat(os.fstat(descriptor), os.stat(path))
    except FileNotFoundError:
        return False


def _release(folder: Path, descriptor: int) -> None:
    """Remove folder/.lock, then release the lock by closing it (in this order, see `_acquire`)."""
    with suppress(OSError):
        (folder / LOCK).unlink()
    os.close(descriptor)


def _check_free(folder: Path, clear: bool) -> None:
    """A new run may use an empty folder, or one that holds only what a run killed before its first
    checkpoint left (cleared when `clear`) and rknet compare's files; anything else is refused."""
    names = sorted(entry.name for entry in folder.iterdir())
    if any(name in RUN_MARKERS for name in names):
        raise ValueError(f"{folder} already holds a run; continue it with --resume {folder} or choose another --out")
    foreign = [name for name in names if name not in (*EARLY_FILES, LOCK, *COMPANION_FILES)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ValueError(f"{folder} holds other files ({shown}) but no run; a run writes several files into --out: "
                         "choose a new or empty folder")
    if clear:
        _remove_early_files(folder)


def _remove_early_files(folder: Path) -> None:
    """Remove what a new run writes before its first checkpoint (EARLY_FILES)."""
    for name in EARLY_FILES:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def default_out(config: TrainConfig) -> Path:
    """runs/DATA-METHOD-LAYER-TIME, where a run goes without --out."""
    kind = config.data.split(":")[0]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    method = config.method if isinstance(config.method, str) else config.method["name"]
    return Path("runs") / f"{kind}-{method}-{config.layer}-{stamp}"
