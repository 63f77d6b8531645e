"""Writing small files so that an interrupted or failed write never leaves a half-written one behind.

Every writer here reports a failed write (a full disk, a read-only folder) as one OSError line that
names the file, and leaves the file it would have replaced untouched. JSON is written strictly: NaN
and infinities become null (JSON has no token for them), and `allow_nan=False` makes any other
non-finite number that slips through fail loudly instead of writing a file other tools cannot read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO


class WriteError(OSError):
    """A file that could not be written, in one line naming it (the errno of the cause is kept)."""


def write_failed(path: Path, error: OSError) -> WriteError:
    """The WriteError saying that `path` could not be written, and why."""
    if isinstance(error, WriteError):
        return error
    reason = error.strerror or str(error) or type(error).__name__
    failure = WriteError(f"cannot write {path}: {reason}; the files already there are unchanged")
    failure.errno = error.errno
    return failure


def atomic_write(path: Path, write: Callable[[BinaryIO], None], sync: bool = False,
                 before_replace: Callable[[], None] | None = None) -> None:
    """Call `write` on a temporary file beside `path` (flushed to disk when `sync`), call `before_replace`
    (if given), then rename the temporary file over `path`. On failure the temporary file is removed,
    `path` is left as it was, and a WriteError raised."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise write_failed(path, error) from error


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    atomic_write(path, lambda handle: handle.write(text.encode()))


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (NaN, inf) replaced by None, in nested dicts, lists and tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def json_text(value: Any, indent: int | None = None) -> str:
    """Strict JSON of `value`: non-finite floats written as null, anything else non-finite refused."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False)


def write_json(path: Path, value: Any) -> None:
    """`value` as indented strict JSON (`json_text`), written atomically."""
    atomic_write_text(path, json_text(value, indent=2) + "\n")
