"""Training: configuration, the trainer, checkpoints, saved models and re-discretised evaluation."""

from rknet.training.checkpoint import CheckpointError
from rknet.training.config import TrainConfig, read_config_file
from rknet.training.evaluation import evaluate_run, format_table
from rknet.training.finish import TrainResult
from rknet.training.model_io import load
from rknet.training.trainer import TrainingDiverged, train

__all__ = ["CheckpointError", "TrainConfig", "TrainResult", "TrainingDiverged", "evaluate_run",
           "format_table", "load", "read_config_file", "train"]
