"""Saved models: model.pt holds the state_dict, the network spec that rebuilds the network, and the
training options; a run also writes the same network as a `save_pretrained` folder (OUT/pretrained/)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from rknet.io.contents import check_layout, check_values, layout_of
from rknet.io.layout import MODEL, PRETRAINED
from rknet.io.pretrained import from_pretrained, is_pretrained, save_pretrained, spec_from_saved, usable_device
from rknet.network.odenet import ODENet
from rknet.solvers.grid import GridWarning
from rknet.training.checkpoint import CheckpointError, atomic_save, load_file


def save_model(path: Path, model: ODENet, train_config: dict[str, Any]) -> None:
    """Write `model.pt`: {"state_dict", "network" (the NetworkSpec as a dict), "config" (training options)}."""
    atomic_save({"state_dict": model.state_dict(), "network": model.spec.to_dict(), "config": train_config}, path)


def save_run_model(folder: Path, model: ODENet, train_config: dict[str, Any]) -> None:
    """A run's final model: OUT/model.pt, and OUT/pretrained/ (model.safetensors + config.json) to share."""
    save_model(folder / MODEL, model, train_config)
    save_pretrained(model, folder / PRETRAINED)


def read_model(path: Path) -> tuple[ODENet, dict[str, Any]]:
    """The network saved in model file `path` (with its weights) and the file's other entries."""
    saved = load_file(path, "model file")
    if not isinstance(saved.get("state_dict"), dict) or not isinstance(saved.get("network"), dict):
        raise CheckpointError(f"model file {path} does not hold an rknet model (state_dict and network)")
    spec = spec_from_saved(saved["network"], path)
    try:
        check_layout(spec, layout_of(saved["state_dict"]), f"model file {path}")
        check_values(saved["state_dict"], f"model file {path}")
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridWarning)  # warned about when the run was configured
        model = ODENet.from_spec(spec)
    model.load_state_dict(saved["state_dict"])
    return model, saved


def load(path: str | Path, device: str | torch.device = "cpu") -> ODENet:
    """A trained network ready to use (eval mode), from a run folder, a model.pt, or a `save_pretrained`
    folder (or its model.safetensors)."""
    path = Path(path)
    if path.is_dir() and not (path / MODEL).is_file() or path.suffix == ".safetensors":
        folder = path if path.is_dir() else path.parent
        if not is_pretrained(folder):
            raise ValueError(f"{path} is not an rknet model: give a run folder, a model.pt, or a folder with "
                             f"model.safetensors and config.json")
        return from_pretrained(folder, device)
    device = usable_device(device)
    model, _ = read_model(path / MODEL if path.is_dir() else path)
    return model.to(device).eval()
