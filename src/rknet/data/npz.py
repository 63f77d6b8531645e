"""User data sets saved as one NumPy .npz archive of train/test (and optionally validation) arrays."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

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
        with np.load(file, allow_pickle=False) as archive:
            return {name: archive[name] for name in NPZ_REQUIRED + NPZ_OPTIONAL if name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"npz file {file} cannot be read: {err}") from err
