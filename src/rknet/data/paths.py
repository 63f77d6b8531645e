"""Locating a data set's files on disk, as its archive unpacks (in DIR or in a named subfolder)."""

from __future__ import annotations

from pathlib import Path


def find_data_dir(kind: str, root: str, subdir: str, marker: str) -> Path:
    """The folder holding `kind`'s files: `root` itself or `root/subdir`, whichever has `marker`."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ValueError(f"{kind}: directory not found: {base}")
    for folder in (base, base / subdir):
        if (folder / marker).is_file():
            return folder
    raise ValueError(f"{kind}: file {marker!r} not found in {base} or {base / subdir}")


def require_file(kind: str, folder: Path, name: str) -> Path:
    """`folder/name`, or a ValueError naming the missing file."""
    path = folder / name
    if not path.is_file():
        raise ValueError(f"{kind}: missing file {name!r} in {folder}")
    return path
