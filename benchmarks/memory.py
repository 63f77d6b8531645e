"""Bytes the autograd graph holds for the backward pass, against the number of steps, per memory mode.

Run: python benchmarks/memory.py   (CPU, a minute or two; float32; DoubleSym, 16 channels, 32x32, batch 8)

What is counted: every tensor packed by `torch.autograd.graph.saved_tensors_hooks` during the forward
pass, deduplicated by storage (`untyped_storage().data_ptr()`), each storage counted once at its full
`nbytes()` (a saved view holds its whole storage). Storages of the model's parameters are left out: the
model holds them whatever the mode. The input batch is counted where the graph saves it.

Checkpoint: non-reentrant `torch.utils.checkpoint` packs the tensors saved inside each step with its
own inner hooks into placeholders that hold nothing; the step's inputs are saved through an outer no-op
Function, which these (outer) hooks see. So the count is what the graph really holds between forward and
backward: one state per step. Not counted: the transient memory of one step recomputed during backward.
Reversible: the custom Function saves the final pair of states (and the parameters, left out); nothing
per step.
"""

from __future__ import annotations

import argparse

import torch

import rknet
from rknet.block import DynamicBlock
from rknet.layers import DoubleSym
from rknet.reversible import HamiltonianBlock, LeapfrogBlock

STEPS = (8, 16, 32, 64)
MODES = ("backprop", "checkpoint", "leapfrog", "hamiltonian")
REVERSIBLE_GROWTH = 1.2
CHECKPOINT_SLOPE = 0.25


def make_block(mode: str, steps: int, channels: int, norm: str | None) -> torch.nn.Module:
    layer = DoubleSym(channels, dims=2, norm=norm)
    grid = rknet.uniform_grid(steps, 4.0)
    if mode == "leapfrog":
        return LeapfrogBlock(layer, grid)
    if mode == "hamiltonian":
        return HamiltonianBlock(layer, t_states=grid)
    return DynamicBlock(layer, "rk4", grid, memory=mode)


def saved_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct non-parameter storages saved for backward by model(x)."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    held: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            held[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(x.requires_grad_())
    del output
    return sum(held.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--norm", default="tv", choices=["tv", "none"])
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    norm = None if args.norm == "none" else args.norm
    table = {mode: [saved_bytes(make_block(mode, n, args.channels, norm), x.clone()) for n in STEPS]
             for mode in MODES}

    mib = 2 ** 20
    print(f"Saved for backward (MiB), DoubleSym {args.channels} channels, {args.size}x{args.size}, batch "
          f"{args.batch}, norm {args.norm}, float32; one state = {x.numel() * x.element_size() / mib:g} MiB\n")
    print("| mode | " + " | ".join(f"{n} steps" for n in STEPS) + f" | growth {STEPS[0]}->{STEPS[-1]} |")
    print("|---" * (len(STEPS) + 2) + "|")
    for mode, counts in table.items():
        cells = " | ".join(f"{c / mib:.2f}" for c in counts)
        print(f"| {mode} | {cells} | {counts[-1] / counts[0]:.2f}x |")

    slope = {mode: (counts[-1] - counts[0]) / (STEPS[-1] - STEPS[0]) for mode, counts in table.items()}
    reversible = max(table[m][-1] / table[m][0] for m in ("leapfrog", "hamiltonian"))
    ratio = slope["checkpoint"] / slope["backprop"]
    print(f"\nreversible growth {STEPS[0]}->{STEPS[-1]}: {reversible:.2f}x (goal <= {REVERSIBLE_GROWTH}x): "
          f"{'holds' if reversible <= REVERSIBLE_GROWTH else 'FAILS'}")
    print(f"checkpoint bytes per extra step / backprop's: {ratio:.3f} (goal <= {CHECKPOINT_SLOPE}): "
          f"{'holds' if ratio <= CHECKPOINT_SLOPE else 'FAILS'}")


if __name__ == "__main__":
    main()
