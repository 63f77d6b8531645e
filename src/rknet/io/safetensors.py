"""The safetensors file format, read and written with torch alone.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping each tensor's name to
its dtype, shape and byte range, and the raw little-endian bytes. The format is this simple and fixed, so
rknet writes and reads it itself instead of adding a dependency to the base install; the tests check that
the `safetensors` package reads rknet's files and that rknet reads the package's files. Reading checks
every byte range against the header (no gaps, overlaps or sizes other than the shape's), as the package
does, and never unpickles anything.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

from rknet.common.limits import shown
from rknet.io.atomic import atomic_write

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}
MAX_HEADER = 100_000_000  # bytes; the safetensors package's own limit


def _check_byte_order() -> None:
    if sys.byteorder != "little":
        raise ValueError("safetensors files hold little-endian bytes; this machine is big-endian")


def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | Path,
                 metadata: Mapping[str, str] | None = None) -> None:
    """Write `tensors` (name -> tensor, any device) to a safetensors file, atomically."""
    _check_byte_order()
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    chunks, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name]
        if not isinstance(tensor, torch.Tensor) or tensor.dtype not in _NAMES:
            raise ValueError(f"tensor {name!r} cannot be written to safetensors; accepted dtypes: "
                             f"{', '.join(str(d) for d in DTYPES.values())}")
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        header[name] = {"dtype": _NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data start on an 8-byte boundary

    def write(handle) -> None:
        handle.write(len(text).to_bytes(8, "little"))
        handle.write(text)
        for chunk in chunks:
            handle.write(chunk)
    atomic_write(Path(path), write)


def read_header(path: str | Path) -> dict[str, tuple[torch.dtype, list[int]]]:
    """Each tensor's dtype and shape from a safetensors file's header, read without its data (so a spec can
    be compared with the file before anything of the spec's size is allocated)."""
    _check_byte_order()
    with open(path, "rb") as handle:
        start = handle.read(8)
        size = int.from_bytes(start, "little")
        text = handle.read(min(size, MAX_HEADER + 1)) if len(start) == 8 else b""
        total = handle.seek(0, 2)
    header, _ = _parse_header(path, start, text, total)
    return {name: _entry(path, name, entry)[:2] for name, entry in header.items()}


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (on the CPU) and the metadata of a safetensors file; ValueError naming what is wrong."""
    _check_byte_order()
    raw = bytearray(Path(path).read_bytes())
    header, metadata = _parse_header(path, raw[:8], raw[8:8 + int.from_bytes(raw[:8], "little")], len(raw))
    size = int.from_bytes(raw[:8], "little")
    data = memoryview(raw)[8 + size:]
    tensors, spans = {}, []
    for name, entry in header.items():
        dtype, shape, (begin, end) = _entry(path, name, entry)
        if not 0 <= begin <= end <= len(data) or end - begin != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"{path}: tensor {name!r} has byte range {shown([begin, end])}, which does not fit "
                             f"its shape {shown(shape)} and dtype, or the {len(data)} data bytes")
        spans.append((begin, end))
        tensors[name] = (torch.frombuffer(data[begin:end], dtype=dtype).reshape(shape) if end > begin
                         else torch.empty(shape, dtype=dtype))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ValueError(f"{path}: the tensors' byte ranges overlap or leave a gap at byte {position}")
        position = end
    if position != len(data):
        raise ValueError(f"{path}: {len(data) - position} bytes after the last tensor")
    return tensors, dict(metadata)


def _parse_header(path: str | Path, start: bytes, text: bytes, total: int) -> tuple[dict, dict[str, str]]:
    """The header's tensor entries and its metadata, from the first 8 bytes, the header bytes and the size."""
    if total < 8:
        raise ValueError(f"{path} is not a safetensors file: {total} bytes, shorter than its header length")
    size = int.from_bytes(start, "little")
    if size > min(MAX_HEADER, total - 8):
        raise ValueError(f"{path} is not a safetensors file: header of {size} bytes in a {total}-byte file")
    try:
        header = json.loads(bytes(text).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{path} is not a safetensors file: its header is not JSON "
                         f"({type(error).__name__})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path}: __metadata__ must map names to strings")
    return header, metadata


def _entry(path: str | Path, name: str, entry: object) -> tuple[torch.dtype, list[int], list[int]]:
    """A header entry's dtype, shape and byte range, checked for type."""
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) or entry["dtype"] not in DTYPES:
        raise ValueError(f"{path}: tensor {shown(name)} needs a dtype, one of {', '.join(DTYPES)}")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise ValueError(f"{path}: tensor {shown(name)} needs a shape of non-negative integers, got {shown(shape)}")
    if math.prod(n for n in shape if n) * DTYPES[entry["dtype"]].itemsize >= 2**62:
        raise ValueError(f"{path}: tensor {shown(name)} has shape {shown(shape)}, too large for any machine")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)):
        raise ValueError(f"{path}: tensor {shown(name)} needs data_offsets [begin, end], got {shown(offsets)}")
    return DTYPES[entry["dtype"]], shape, offsets
