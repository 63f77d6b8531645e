"""Shareable models in the layout the Hugging Face ecosystem uses: a folder with `model.safetensors`
(every weight and batch-norm statistic) and a plain-JSON `config.json` (the network spec and a format
marker). Any safetensors reader gets the tensors without torch pickles or rknet; rknet rebuilds the network."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from rknet.common.limits import shown
from rknet.io.atomic import write_json
from rknet.io.contents import check_layout, check_values
from rknet.io.layout import PRETRAINED_CONFIG, PRETRAINED_WEIGHTS
from rknet.io.safetensors import load_tensors, read_header, save_tensors
from rknet.methods.registry import is_tableau_file
from rknet.network.odenet import ODENet
from rknet.network.spec import NetworkSpec
from rknet.solvers.grid import GridWarning

MODEL_TYPE = "rknet.ODENet"  # config.json's format marker
FORMAT_VERSION = 1


def save_pretrained(model: ODENet, folder: str | Path) -> Path:
    """Write `model` to `folder` (created if missing) as model.safetensors + config.json; returns the folder."""
    if not isinstance(model, ODENet):
        raise TypeError(f"save_pretrained takes an rknet.ODENet, got {type(model).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(model.state_dict(), folder / PRETRAINED_WEIGHTS, metadata={"format": "pt"})
    write_json(folder / PRETRAINED_CONFIG, {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION,
                                            **model.spec.to_dict()})
    return folder


def is_pretrained(folder: str | Path) -> bool:
    """Whether `folder` holds a model written by `save_pretrained`."""
    folder = Path(folder)
    return (folder / PRETRAINED_WEIGHTS).is_file() and (folder / PRETRAINED_CONFIG).is_file()


def read_pretrained_config(folder: str | Path) -> NetworkSpec:
    """The network spec of a `save_pretrained` folder; ValueError if config.json is not rknet's."""
    path = Path(folder) / PRETRAINED_CONFIG
    try:
        values: Any = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"cannot read {path}: {type(error).__name__}: {shown(str(error))}") from None
    if not isinstance(values, dict) or values.pop("model_type", None) != MODEL_TYPE:
        raise ValueError(f"{path} does not describe an rknet model (model_type {MODEL_TYPE!r})")
    version = values.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {version!r}; this rknet reads {FORMAT_VERSION}")
    return spec_from_saved(values, path)


def spec_from_saved(values: dict[str, Any], path: Path) -> NetworkSpec:
    """The NetworkSpec a saved file describes. A saved method is a name or a tableau by value, never a file
    path: a shared model reads nothing outside itself (a path would be read on the loading machine)."""
    method = values.get("method")
    if is_tableau_file(method):
        raise ValueError(f"{path} names its method by a file path ({shown(method)}); a saved model holds its "
                         "tableau by value (name, a, b, c) and reads no other file")
    return NetworkSpec.from_dict(values)


def usable_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device this machine has; ValueError naming it and what there is otherwise."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {shown(device)} is not a device name such as 'cpu' or 'cuda:0' "
                         f"({shown(str(error))})") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def from_pretrained(folder: str | Path, device: str | torch.device = "cpu") -> ODENet:
    """The network saved by `save_pretrained` in `folder`, with its weights, in eval mode on `device`."""
    folder = Path(folder)
    device = usable_device(device)
    if not is_pretrained(folder):
        raise ValueError(f"{folder} holds no {PRETRAINED_WEIGHTS} and {PRETRAINED_CONFIG} (a save_pretrained "
                         f"folder)")
    spec = read_pretrained_config(folder)
    weights = folder / PRETRAINED_WEIGHTS
    check_layout(spec, read_header(weights), str(weights))  # before the network of the spec's size is built
    tensors, _ = load_tensors(weights)
    check_values(tensors, str(weights))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridWarning)  # warned about when the network was first built
        model = ODENet.from_spec(spec)
    model.load_state_dict(tensors)
    return model.to(device).eval()
