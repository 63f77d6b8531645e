"""Inference outside Python: a trained network as a `torch.export` program or an ONNX file.

Every block type exports (Runge-Kutta with any tableau and gradient strategy, leapfrog, hamiltonian):
in eval mode a forward pass is a fixed sequence of tensor operations, since the grids, stage terms and
interpolation weights are plain numbers fixed at construction and batch norm reads its per-evaluation
running statistics. Gradient strategies only change what is kept for the backward pass, which an
inference graph does not have. The batch dimension stays dynamic. ONNX needs the `onnx` extra
(`pip install 'rknet[onnx]'`: onnx, onnxscript and onnxruntime to run the file).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from rknet.network.odenet import ODENet


def export_program(model: ODENet, example: torch.Tensor) -> torch.export.ExportedProgram:
    """`model` in eval mode as a `torch.export` program for inputs shaped like `example` (any batch size)."""
    if not isinstance(model, ODENet):
        raise TypeError(f"export takes an rknet.ODENet, got {type(model).__name__}")
    if not isinstance(example, torch.Tensor) or example.dim() < 2:
        raise ValueError("example must be a batch of inputs, shaped (batch, ...) as the network takes them")
    was_training = model.training
    model.eval()
    try:
        batch = torch.export.Dim("batch", min=1)
        return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    finally:
        model.train(was_training)


def export_onnx(model: ODENet, path: str | Path, example: torch.Tensor) -> Path:
    """Write `model` (eval mode) as an ONNX file with input `x`, output `logits` and a dynamic batch size."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"ONNX export needs {' and '.join(missing)}: pip install 'rknet[onnx]'")
    program = export_program(model, example)
    path = Path(path)
    onnx_program = torch.onnx.export(program, (example,), input_names=["x"], output_names=["logits"],
                                     dynamo=True, verbose=False)
    onnx_program.save(str(path))
    return path
