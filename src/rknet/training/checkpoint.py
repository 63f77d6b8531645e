"""Checkpoints written atomically, read with `weights_only=True`, with the previous one kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"


class CheckpointError(ValueError):
    """A checkpoint or model file that cannot be read."""


def atomic_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over `path`."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def save_checkpoint(state: dict[str, Any], folder: Path) -> None:
    """Save `state` as the run's checkpoint; the one it replaces stays as checkpoint.prev.pt.

    At every moment the folder holds a complete checkpoint.pt: the old one is copied aside before
    the new one is renamed over it.
    """
    current = folder / CHECKPOINT
    if current.exists():
        temporary = folder / (PREVIOUS + ".tmp")
        shutil.copyfile(current, temporary)
        os.replace(temporary, folder / PREVIOUS)
    atomic_save(state, current)


def load_file(path: Path, what: str = "checkpoint") -> dict[str, Any]:
    """torch.load with weights_only=True; an unreadable file raises CheckpointError in one line."""
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, bad pickle, wrong format: all mean "unreadable"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        hint = ""
        previous = path.with_name(PREVIOUS)
        if path.name == CHECKPOINT and previous.is_file():
            hint = f"; the previous checkpoint {previous} is kept: copy it to {path} to resume from it"
        raise CheckpointError(f"{what} {path} is truncated or corrupted ({reason}){hint}") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} does not hold an rknet {what}")
    return state
