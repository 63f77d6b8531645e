"""Data sets, augmentation and batching for rknet: everything lives as tensors, read without downloads."""

from rknet.data.augment import random_crop_flip
from rknet.data.datasets import DATASETS, Dataset, load_dataset
from rknet.data.loader import BatchLoader

__all__ = ["DATASETS", "BatchLoader", "Dataset", "load_dataset", "random_crop_flip"]
