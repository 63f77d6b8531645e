"""Import a checkpoint of the reference implementation (DynamicBlocks, Onken, Ruthotto et al.).

Its state dict keys: `open.conv.*`, `open.normLayer.*`, per block b and control time j
`dynamicBlocks.{b}.controlLayers.{j}.weight` (the kernel K, used by both its `.conv` and `.convt`),
`.conv.bias` (b1), `.convt.bias` (beta, the reference computes -(K^T z + beta), so b2 = -beta),
`.normLayer.bias` (the TV norm's shift) and `.normLayer.weight` (the TV norm's scale, fixed at 1),
then `connectors.{b}.conv.*`, `connectors.{b}.normLayer.*` and `linear.*`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from rknet.network.odenet import ODENet

_CONTROL = re.compile(r"dynamicBlocks\.(\d+)\.controlLayers\.(\d+)\.")
_BATCH_NORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def _take(state: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"not a DynamicBlocks state dict: key {key!r} is missing")
    return state[key]


def from_dynamicblocks(state_dict: Mapping[str, torch.Tensor], **options: Any) -> ODENet:
    """An ODENet holding the weights of a DynamicBlocks checkpoint, with the same outputs.

    Widths, input channels and classes are read off the tensors; the number of control times of each block
    gives its controls on the state grid (t_states = 0, 1, ..., n-1, as the reference network's unit
    steps). `options` are further NetworkSpec options (e.g. a method other than RK4) for networks other
    than the reference one. The TV norm's scale must be 1 (rknet's TV norm has no scale).
    """
    state = dict(state_dict)
    blocks = _count(state, r"dynamicBlocks\.(\d+)\.")
    if blocks == 0:
        raise ValueError("not a DynamicBlocks state dict: no dynamicBlocks.* keys")
    kernels = [_take(state, f"dynamicBlocks.{b}.controlLayers.0.weight") for b in range(blocks)]
    widths = [kernel.shape[0] for kernel in kernels] + [_take(state, "linear.weight").shape[1]]
    controls = _count(state, r"dynamicBlocks\.0\.controlLayers\.(\d+)\.")
    options.setdefault("t_states", tuple(float(t) for t in range(controls)))
    net = ODENet(in_channels=_take(state, "open.conv.weight").shape[1],
                 num_classes=_take(state, "linear.weight").shape[0], widths=tuple(widths), **options)
    converted = {f"opening.0.{name}": _take(state, f"open.conv.{name}") for name in ("weight", "bias")}
    converted.update({f"opening.1.{name}": _take(state, f"open.normLayer.{name}") for name in _BATCH_NORM})
    for b in range(blocks):
        layer = [f"dynamicBlocks.{b}.controlLayers.{j}." for j in range(controls)]
        scale = torch.stack([_take(state, prefix + "normLayer.weight") for prefix in layer])
        if not torch.all(scale == 1):
            raise ValueError(f"block {b}: the TV norm's scale (normLayer.weight) must be 1; rknet's TV norm has none")
        stacked = {"K": "weight", "b1": "conv.bias", "norm_bias": "normLayer.bias"}
        for name, key in stacked.items():
            converted[f"blocks.{b}.controls.{name}"] = torch.stack([_take(state, p + key) for p in layer])
        converted[f"blocks.{b}.controls.b2"] = -torch.stack([_take(state, p + "convt.bias") for p in layer])
        converted.update({f"connectors.{b}.conv.{name}": _take(state, f"connectors.{b}.conv.{name}")
                          for name in ("weight", "bias")})
        converted.update({f"connectors.{b}.norm.{name}": _take(state, f"connectors.{b}.normLayer.{name}")
                          for name in _BATCH_NORM})
    converted.update({f"classifier.{name}": _take(state, f"linear.{name}") for name in ("weight", "bias")})
    net.load_state_dict(converted)
    return net
