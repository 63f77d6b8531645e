"""Data sets, augmentation and batching for rknet: everything lives as tensors, read without downloads."""

from .augment import random_crop_flip
from .datasets import DATASETS, Dataset, load_dataset
from .loader import BatchLoader

__all__ = ["DATASETS", "BatchLoader", "Dataset", "load_dataset", "random_crop_flip"]
