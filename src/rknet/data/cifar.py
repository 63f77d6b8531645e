"""CIFAR-10 and CIFAR-100 from their standard python-pickle batches.

The batches are pickles; they are read with `safe_pickle`, which builds only plain containers and
numpy arrays, so a crafted batch file cannot run code: it is refused with one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rknet.data.checks import labels_to_tensor
from rknet.data.paths import find_data_dir, require_file
from rknet.data.raw import RawSplits
from rknet.data.safe_pickle import ForbiddenGlobal, read_data_pickle

CIFAR_SHAPE = (3, 32, 32)
CIFAR_IMAGE_BYTES = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its batches and labels."""

    subdir: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int


CIFAR_LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), b"labels", 10
    ),
    "cifar100": CifarLayout("cifar-100-python", ("train",), ("test",), b"fine_labels", 100),
}


def load_cifar(kind: str, root: str) -> RawSplits:
    """`kind` ("cifar10" or "cifar100") from `root` or its archive's subfolder; images (N, 3, 32, 32)
    scaled to [0, 1]."""
    layout = CIFAR_LAYOUTS[kind]
    folder = find_data_dir(kind, root, layout.subdir, layout.train_files[0])
    x_train, y_train = _read_batches(kind, folder, layout.train_files, layout.label_key)
    x_test, y_test = _read_batches(kind, folder, layout.test_files, layout.label_key)
    return RawSplits(
        source=f"{kind} in {folder}",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=layout.num_classes,
    )


def _read_batches(
    kind: str, folder: Path, names: tuple[str, ...], label_key: bytes
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (float in [0, 1]) and labels of the batch files `names`, concatenated."""
    batches = [_read_batch(kind, require_file(kind, folder, name), label_key) for name in names]
    images = torch.from_numpy(np.concatenate([images for images, _ in batches]))
    labels = torch.from_numpy(np.concatenate([labels for _, labels in batches]))
    return images.float().div_(255), labels


def _read_batch(kind: str, path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's uint8 images (N, 3, 32, 32) and int64 labels."""
    try:
        batch = read_data_pickle(path)
    except ForbiddenGlobal as refused:
        raise ValueError(f"{kind}: {path} refused: its pickle asks for {refused}, which a CIFAR batch never holds "
                         "(only dicts, lists, strings, bytes and numpy arrays are read)") from None
    except Exception as err:  # unpickling a damaged file can fail in many ways
        reason = " ".join(str(err).split())  # one line, whatever the unpickler said
        raise ValueError(f"{kind}: {path} is truncated or corrupt ({type(err).__name__}: {reason})") from err
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        expected = f"a dict with b'data' and {label_key!r}"
        raise ValueError(f"{kind}: {path} is not a CIFAR batch (expected {expected})")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.size % CIFAR_IMAGE_BYTES:
        got = f"{data.dtype} with {data.size}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(
            f"{kind}: {path} is truncated or corrupt (b'data' must be uint8 with a multiple of "
            f"{CIFAR_IMAGE_BYTES} values, got {got})"
        )
    labels = labels_to_tensor(_label_array(kind, path, batch[label_key]), f"{kind}: {path}",
                              label_key.decode()).numpy()
    images = data.reshape(-1, *CIFAR_SHAPE)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{kind}: {path} has {len(images)} images but labels of shape {labels.shape}")
    return images, labels


def _label_array(kind: str, path: Path, labels: Any) -> np.ndarray:
    """The batch's labels (a list of integers in the real files) as an array."""
    try:
        return np.asarray(labels)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{kind}: {path}: the labels are not a list of integers ({err})") from None
