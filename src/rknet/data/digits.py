"""scikit-learn's 8x8 handwritten digits, with a fixed stratified test split (sklearn ships none)."""

from __future__ import annotations

import numpy as np
import torch

from rknet.data.raw import RawSplits

DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0  # fixed, independent of the run's seed, so the test set never changes
DIGITS_MAX_PIXEL = 16.0


def load_digits() -> RawSplits:
    """1797 images (N, 1, 8, 8) scaled to [0, 1], 10 classes; 20% held out as a stratified test set."""
    from sklearn.datasets import load_digits as sklearn_digits  # imported here: scikit-learn is slow to load
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = (bunch.images / DIGITS_MAX_PIXEL).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        bunch.target,
        test_size=DIGITS_TEST_FRACTION,
        stratify=bunch.target,
        random_state=DIGITS_TEST_SEED,
    )
    return RawSplits(
        source="digits",
        x_train=torch.from_numpy(x_train),
        y_train=torch.from_numpy(y_train).long(),
        x_test=torch.from_numpy(x_test),
        y_test=torch.from_numpy(y_test).long(),
        num_classes=10,
    )
