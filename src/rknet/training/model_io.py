"""Saved models: model.pt holds the state_dict and the configuration needed to rebuild the network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..network import ODENet
from .checkpoint import CheckpointError, atomic_save, load_file

MODEL = "model.pt"


def save_model(path: Path, model: ODENet, train_config: dict[str, Any]) -> None:
    """Write `model.pt`: {"state_dict", "network" (ODENet arguments), "config" (training options)}."""
    atomic_save({"state_dict": model.state_dict(), "network": model.config, "config": train_config}, path)


def build_network(network: dict[str, Any]) -> ODENet:
    """An ODENet from its saved constructor arguments."""
    return ODENet(**network)


def load(path: str | Path, device: str | torch.device = "cpu") -> ODENet:
    """A trained network ready to use (eval mode), from a run folder or its model.pt."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL
    saved = load_file(path, "model file")
    if "state_dict" not in saved or "network" not in saved:
        raise CheckpointError(f"model file {path} does not hold an rknet model (state_dict and network)")
    model = build_network(saved["network"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()
