"""Reading pickles that may only hold plain data and numpy arrays (the CIFAR batches).

`pickle.load` calls whatever a file names, so a crafted batch file could run any code. This unpickler
resolves only the few globals that numpy arrays and plain containers need; anything else is refused
before it is looked up, let alone called.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from rknet.common.limits import expanded_items


def _numpy_function(module: str, name: str) -> Any:
    """numpy's `module.name` (numpy 2 keeps its internals in numpy._core, numpy 1 in numpy.core)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes, restricted to latin-1."""
    if encoding.lower() not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} (only latin1 is accepted)")
    return codecs.encode(text, "latin1")


_RECONSTRUCT = _numpy_function("multiarray", "_reconstruct")
_FROMBUFFER = _numpy_function("numeric", "_frombuffer")

# What CIFAR batches need: numpy arrays as pickle protocols 0-4 (`_reconstruct`, `ndarray`, `dtype`,
# `_codecs.encode` for bytes under protocol < 3) and 5 (`_frombuffer`) write them, and plain containers.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    **{("builtins", kind.__name__): kind for kind in (dict, list, str, bytes)},
    **{("__builtin__", kind.__name__): kind for kind in (dict, list, str, bytes)},  # Python 2 pickles
}


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that plain data and numpy arrays never need."""


class DataUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` resolves only ALLOWED_GLOBALS."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ForbiddenGlobal(f"{module}.{name}") from None


def load_data_pickle(handle: BinaryIO) -> Any:
    """Unpickle plain data and numpy arrays from `handle` (Python 2 strings as bytes); ForbiddenGlobal
    when the pickle names anything else, TooLarge when it expands past MAX_PICKLE_ITEMS."""
    value = DataUnpickler(handle, encoding="bytes").load()
    expanded_items(value)
    return value


def read_data_pickle(path: Path) -> Any:
    """`load_data_pickle` of the file `path`."""
    with open(path, "rb") as handle:
        return load_data_pickle(handle)
