"""Training: configuration, the trainer, checkpoints, saved models and re-discretised evaluation."""

from .checkpoint import CheckpointError
from .config import TrainConfig, read_config_file
from .evaluation import evaluate_run, format_table
from .model_io import load
from .trainer import TrainingDiverged, TrainResult, train

__all__ = ["CheckpointError", "TrainConfig", "TrainResult", "TrainingDiverged", "evaluate_run",
           "format_table", "load", "read_config_file", "train"]
