"""Inference outside Python: a trained network as a `torch.export` program or an ONNX file.

Every block type with a fixed sequence of operations exports (explicit Runge-Kutta with any gradient
strategy, IMEX, leapfrog, hamiltonian): in eval mode the grids, stage terms and interpolation weights are
plain numbers fixed at construction and batch norm reads its per-evaluation running statistics. Gradient
strategies only change what is kept for the backward pass, which an inference graph does not have.
Implicit tableaus are refused: their Newton-Krylov stage solves stop after a data-dependent number of
iterations, which a traced graph cannot hold (`rknet.rediscretize` the network onto an explicit tableau
first). The batch dimension stays dynamic. ONNX needs the `onnx` extra (`pip install 'rknet[onnx]'`:
onnx, onnxscript and onnxruntime to run the file).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from rknet.methods.registry import uses_solver
from rknet.network.odenet import ODENet


def export_program(model: ODENet, example: torch.Tensor) -> torch.export.ExportedProgram:
    """`model` in eval mode as a `torch.export` program for inputs shaped like `example` (any batch size)."""
    if not isinstance(model, ODENet):
        raise TypeError(f"export takes an rknet.ODENet, got {type(model).__name__}")
    if not isinstance(example, torch.Tensor) or example.dim() < 2:
        raise ValueError("example must be a batch of inputs, shaped (batch, ...) as the network takes them")
    if uses_solver(model.spec.method):
        raise ValueError(f"cannot export {model.spec.method_name} (an implicit method): its stage solves run a "
                         "data-dependent number of Newton-Krylov iterations, which torch.export cannot trace; "
                         "re-discretise onto an explicit method first, e.g. rknet.rediscretize(model, 'rk4')")
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
