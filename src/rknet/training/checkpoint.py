"""Checkpoints written atomically and sealed with a checksum, read with `weights_only=True` and verified
before they are trusted, with the previous one kept and used when the latest is damaged."""

from __future__ import annotations

import hashlib
import io
import shutil
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from rknet.common.limits import TooLarge, expanded_items, shown
from rknet.common.tablefiles import not_a_file
from rknet.io.atomic import atomic_write, write_failed
from rknet.io.contents import check_values
from rknet.io.layout import CHECKPOINT, PREVIOUS

DIGEST = "sha256"
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "epoch", "level", "history", "best",
                   "refinements", "val_indices", "config", "wall_seconds")


class CheckpointError(ValueError):
    """A checkpoint or model file that cannot be read."""


def content_digest(value: Any) -> str:
    """SHA-256 of `value`'s content: tensors by dtype, shape and bytes (on any device), containers
    item by item, other values by type and repr. A value read back from a file has the same digest
    as the one that was saved, unless the file changed in between."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().resolve_conj().resolve_neg().contiguous()
        digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"map {len(value)};".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'list' if isinstance(value, list) else 'tuple'} {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r};".encode())


def atomic_save(obj: Any, path: Path, before_replace: Callable[[], None] | None = None) -> None:
    """torch.save `obj` (a dict is sealed with its `content_digest` under DIGEST) to a temporary file in
    the same folder, flush it to disk, call `before_replace`, then rename it over `path`. A failed write
    (disk full) raises one OSError line naming the file; `path` stays as it was."""
    if isinstance(obj, dict):
        obj = {**obj, DIGEST: content_digest(obj)}
    buffer = io.BytesIO()
    torch.save(obj, buffer)  # serialised in memory first: a full disk then fails in a plain write
    atomic_write(path, lambda handle: handle.write(buffer.getbuffer()), sync=True, before_replace=before_replace)


def save_checkpoint(state: dict[str, Any], folder: Path) -> None:
    """Save `state` as the run's checkpoint; the one it replaces stays as checkpoint.prev.pt.

    The new checkpoint is written in full first; only then is the old one copied aside and the new one
    renamed over it. So at every moment the folder holds a complete checkpoint.pt, and a failed write
    (a full disk) leaves both files as they were. A damaged checkpoint.pt (see `load_file`) is not
    copied aside: checkpoint.prev.pt keeps the last checkpoint that passed its check.
    """
    current, previous = folder / CHECKPOINT, folder / PREVIOUS

    def keep_current() -> None:
        if current.exists() and _intact(current):
            temporary = folder / (PREVIOUS + ".tmp")
            try:
                shutil.copyfile(current, temporary)
                temporary.replace(previous)
            except OSError as error:
                temporary.unlink(missing_ok=True)
                raise write_failed(previous, error) from error

    atomic_save(state, current, before_replace=keep_current)


def _intact(path: Path) -> bool:
    """Whether `path` reads and passes its checksum."""
    try:
        load_file(path)
    except CheckpointError:
        return False
    return True


def load_file(path: Path, what: str = "checkpoint") -> dict[str, Any]:
    """torch.load with weights_only=True, then the checksum verified; an unreadable, unsealed or altered
    file raises CheckpointError in one line naming it. (A file without a seal is refused rather than
    trusted: a flipped bit in the seal's own key would otherwise pass as an unsealed file.)"""
    if not path.is_file():
        raise CheckpointError(f"{what} {path} {not_a_file(path)}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, bad pickle, wrong format: all mean "unreadable"
        raise CheckpointError(f"{what} {path} is truncated, corrupted or not written by rknet "
                              f"({_reason(error)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} does not hold an rknet {what} (found a {type(state).__name__})")
    if DIGEST not in state:
        raise CheckpointError(f"{what} {path} has no SHA-256 seal: it is damaged, or was not written by this "
                              "version of rknet")
    try:
        expanded_items(state)  # before anything walks it: shared lists would expand in content_digest
    except TooLarge as error:
        raise CheckpointError(f"{what} {path} is refused: {error}") from None
    expected = state.pop(DIGEST)
    if expected != content_digest(state):
        raise CheckpointError(f"{what} {path} fails its SHA-256 check: its content changed after it was written "
                              "(a damaged disk or copy)")
    return state


def _reason(error: Exception) -> str:
    """What torch said about an unreadable file, without its advice to load with weights_only=False
    (never safe for a file that failed the safe load)."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = next((line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()), "")
        return f"it holds something other than tensors and plain data: {detail}" if detail else type(error).__name__
    first = text.splitlines()[0] if text else type(error).__name__
    return type(error).__name__ if "weights_only" in first else first


def load_checkpoint(folder: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """The training checkpoint of the run in `folder`, verified; when checkpoint.pt is damaged, the
    previous one (checkpoint.prev.pt) with one line to `log` saying so. CheckpointError when the folder
    holds no usable checkpoint."""
    if not folder.is_dir():
        raise CheckpointError(f"run folder {folder} does not exist")
    current, previous = folder / CHECKPOINT, folder / PREVIOUS
    if not current.is_file() and not previous.is_file():
        raise CheckpointError(f"{folder} holds no checkpoint ({CHECKPOINT}): it is not a run folder, or its run "
                              f"stopped before the end of its first epoch; start a new run with --out {folder}")
    try:
        return _training_state(current)
    except CheckpointError as damaged:
        if not previous.is_file():
            raise
        try:
            state = _training_state(previous)
        except CheckpointError as also:
            raise CheckpointError(f"{damaged}; the previous one cannot be used either: {also}") from None
        log(f"{damaged}; resuming from the previous checkpoint {previous} (epoch {state['epoch']})")
        return state


def _training_state(path: Path) -> dict[str, Any]:
    """`load_file(path)`, which must hold every key a training checkpoint has."""
    state = load_file(path)
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        held = " (it holds a saved model, as model.pt does)" if "state_dict" in state else ""
        raise CheckpointError(f"checkpoint {path} is not an rknet training checkpoint{held}: it lacks "
                              f"{', '.join(missing)}")
    epoch = state["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise CheckpointError(f"checkpoint {path} holds epoch {shown(epoch)}; a checkpoint's epoch is a count "
                              "of epochs done, 0 or more")
    if not isinstance(state["model"], dict):
        raise CheckpointError(f"checkpoint {path} holds no model weights (a {type(state['model']).__name__})")
    try:
        check_values(state["model"], f"checkpoint {path}")
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    return state
