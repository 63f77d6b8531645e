"""STL-10 from its standard binary files (labelled train and test splits; the unlabelled set is unused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rknet.data.paths import find_data_dir, require_file
from rknet.data.raw import RawSplits

STL_SHAPE = (3, 96, 96)
STL_IMAGE_BYTES = 3 * 96 * 96
STL_CLASSES = 10


def load_stl10(root: str) -> RawSplits:
    """STL-10 from `root` or `root/stl10_binary`; images (N, 3, 96, 96) scaled to [0, 1], labels 0..9."""
    folder = find_data_dir("stl10", root, "stl10_binary", "train_X.bin")
    return RawSplits(
        source=f"stl10 in {folder}",
        x_train=_read_images(require_file("stl10", folder, "train_X.bin")),
        y_train=_read_labels(require_file("stl10", folder, "train_y.bin")),
        x_test=_read_images(require_file("stl10", folder, "test_X.bin")),
        y_test=_read_labels(require_file("stl10", folder, "test_y.bin")),
        num_classes=STL_CLASSES,
    )


def _read_images(path: Path) -> torch.Tensor:
    """Images stored column-major (each C x W x H on disk), returned as float (N, C, H, W) in [0, 1]."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % STL_IMAGE_BYTES:
        raise ValueError(
            f"stl10: {path} has {raw.size} bytes, not a multiple of the image size "
            f"3*96*96 = {STL_IMAGE_BYTES} (truncated or corrupt)"
        )
    images = raw.reshape(-1, *STL_SHAPE).transpose(0, 1, 3, 2)
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)


def _read_labels(path: Path) -> torch.Tensor:
    """Labels stored as bytes 1..10, returned as int64 0..9."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > STL_CLASSES):
        found = f"{labels.min()}..{labels.max()}"
        raise ValueError(f"stl10: {path} must hold labels 1..{STL_CLASSES}, found {found}")
    return torch.from_numpy(labels - 1)
