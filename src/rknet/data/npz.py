"""User data sets saved as one NumPy .npz archive of train/test (and optionally validation) arrays."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from rknet.common.limits import INFLATION_FLOOR, MAX_INFLATION, TooLarge, array_budget, shown
from rknet.data.checks import inputs_to_tensor, labels_to_tensor
from rknet.data.raw import RawSplits

NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
NPZ_OPTIONAL = ("x_val", "y_val")
NPZ_FORM = "expected arrays x_train, y_train, x_test, y_test (optional x_val, y_val)"


def load_npz(path: str) -> RawSplits:
    """Arrays from `path`; inputs are used as stored (cast to float32, no rescaling), labels must be
    integers 0..K-1 (integral floats accepted) and K = largest label + 1 over all splits."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"npz file not found: {file}")
    arrays = _read_arrays(file)
    source = f"npz file {file}"
    missing = [name for name in NPZ_REQUIRED if name not in arrays]
    if missing:
        raise ValueError(f"{source}: missing array(s) {', '.join(missing)}; {NPZ_FORM}")
    tensors = {
        name: (inputs_to_tensor if name.startswith("x_") else labels_to_tensor)(array, source, name)
        for name, array in arrays.items()
    }
    return RawSplits(source=source, num_classes=None, **tensors)


def _read_arrays(file: Path) -> dict[str, np.ndarray]:
    """The known arrays of the archive (others are ignored), or a ValueError if it cannot be read."""
    if not zipfile.is_zipfile(file):
        raise ValueError(f"npz file {file} is not an .npz archive (as written by numpy.savez)")
    try:
        _check_sizes(file)
        with np.load(file, allow_pickle=False) as archive:
            return {name: archive[name] for name in NPZ_REQUIRED + NPZ_OPTIONAL if name in archive.files}
    except TooLarge:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"npz file {file} cannot be read: {err}") from err


def _check_sizes(file: Path) -> None:
    """Each known array's declared size (its .npy header's shape and dtype) checked before numpy allocates
    it: it must fit what the zip member holds, inflate at most MAX_INFLATION times, and all together stay
    within `array_budget()`. ValueError naming the array and the limit."""
    total = 0
    with zipfile.ZipFile(file) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        for name in (n for n in NPZ_REQUIRED + NPZ_OPTIONAL if n in members):
            info = members[name]
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(member)
                header = member.tell()
            size = math.prod(shape) * dtype.itemsize
            if size + header > info.file_size:
                raise TooLarge(f"npz file {file}: {name} declares shape {shown(shape)} of {dtype} ({size:,} "
                                 f"bytes) but holds {info.file_size - header:,}")
            if info.file_size > INFLATION_FLOOR and info.file_size > MAX_INFLATION * info.compress_size:
                raise TooLarge(f"npz file {file}: {name} inflates from {info.compress_size:,} to {info.file_size:,}"
                                 f" bytes, over {MAX_INFLATION} times (a zip bomb, or an array of constants)")
            total += size
    if total > array_budget():
        raise TooLarge(f"npz file {file}: its arrays take {total:,} bytes, more than half this machine's memory "
                         f"({array_budget():,} bytes)")
