"""Bytes a forward pass leaves allocated for the backward pass, against the number of steps, per memory mode.

Run: python benchmarks/memory.py   (CPU, a minute or two; float32; DoubleSym, 16 channels, 32x32, batch 8)
     python benchmarks/memory.py --compiled   (the default CIFAR-shaped ODENet as on the fast path:
     torch.compile, bf16 autocast, channels_last; each memory mode; several minutes of compiling on a CPU)

What is counted (`rknet.analysis.memory.held_for_backward`): every storage created during the forward
pass that is still alive when it returns, other than the output's, each once at its full size. That is
what autograd's graph, checkpointing and selective checkpointing's caches and the reversible blocks' and
the adjoint strategy's Functions hold until backward. The input batch and the parameters are not counted
(they exist anyway).
Not counted either: the transient memory of one step recomputed during the backward pass.
The sdirk2 row is an implicit block (Newton-Krylov stages, gradient by the implicit function theorem); a
second table holds its bytes at three solver tolerances, to show they do not grow with the iterations.

With --compiled the dispatch-level count is blind (compiled code allocates directly), so the tensors the
compiled forward saves for backward are counted instead, as `saved_tensors_hooks` see them (distinct
storages, parameters excluded), per image.
"""

from __future__ import annotations

import argparse

import torch

import rknet
from rknet import DynamicBlock, ImplicitBlock, NewtonKrylov
from rknet.analysis.memory import held_for_backward
from rknet.blocks.reversible import HamiltonianBlock, LeapfrogBlock
from rknet.layers import DoubleSym

STEPS = (8, 16, 32, 64)
MODES = ("backprop", "selective", "checkpoint", "adjoint", "leapfrog", "hamiltonian", "sdirk2")
REVERSIBLE_GROWTH = 1.2
CHECKPOINT_SLOPE = 0.25


def make_block(mode: str, steps: int, channels: int, norm: str | None, tol: float | None = None) -> torch.nn.Module:
    layer = DoubleSym(channels, dims=2, norm=norm)
    grid = rknet.uniform_grid(steps, 4.0)
    if mode == "leapfrog":
        return LeapfrogBlock(layer, grid)
    if mode == "hamiltonian":
        return HamiltonianBlock(layer, t_states=grid)
    if mode == "adjoint":  # keeps one state per control time: 5 of them, whatever the steps
        return DynamicBlock(layer, "rk4", grid, rknet.uniform_grid(4, 4.0), gradient=mode)
    if mode == "sdirk2":  # implicit stages: Newton-Krylov, gradient by the implicit function theorem
        return ImplicitBlock(layer, "sdirk2", grid, solver=NewtonKrylov(tol=tol))
    return DynamicBlock(layer, "rk4", grid, gradient=mode)


def growth(counts: list[int]) -> float:
    """Bytes held at the most steps over bytes held at the fewest (1 when both are 0: the adjoint's case)."""
    return counts[-1] / counts[0] if counts[0] else (1.0 if counts[-1] == 0 else float("inf"))


def held(block: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes held for backward by block(x)."""
    return held_for_backward(lambda: block(x))


def saved_by_compiled(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct non-parameter storages that the compiled model(x) saves for backward."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    held: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            held[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            model(x).sum().backward()
    return sum(held.values())


def compiled_network(batch: int) -> None:
    """Saved bytes per image of the default ODENet compiled with bf16 autocast, per memory mode."""
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    print(f"Saved for backward by the compiled default ODENet (bf16 autocast, channels_last, batch {batch}), "
          f"MiB per image\n\n| mode | MiB per image | vs backprop |\n|---|---|---|")
    per_image = {}
    for mode in ("backprop", "selective", "checkpoint"):
        torch.manual_seed(0)
        model = torch.compile(rknet.ODENet(3, 10, gradient=mode))
        saved_by_compiled(model, x)  # compiles
        per_image[mode] = saved_by_compiled(model, x) / batch / 2 ** 20
        print(f"| {mode} | {per_image[mode]:.2f} | {per_image[mode] / per_image['backprop']:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiled", action="store_true",
                        help="the compiled default network per memory mode, instead of the step table")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--norm", default="tv", choices=["tv", "none"])
    args = parser.parse_args()
    if args.compiled:
        compiled_network(args.batch)
        return
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.channels, args.size, args.size, requires_grad=True)
    norm = None if args.norm == "none" else args.norm
    table = {mode: [held(make_block(mode, n, args.channels, norm), x) for n in STEPS] for mode in MODES}

    mib = 2 ** 20
    print(f"Held for backward (MiB), DoubleSym {args.channels} channels, {args.size}x{args.size}, batch "
          f"{args.batch}, norm {args.norm}, float32; one state = {x.numel() * x.element_size() / mib:g} MiB\n")
    print("| mode | " + " | ".join(f"{n} steps" for n in STEPS) + f" | growth {STEPS[0]}->{STEPS[-1]} |")
    print("|---" * (len(STEPS) + 2) + "|")
    for mode, counts in table.items():
        cells = " | ".join(f"{c / mib:.2f}" for c in counts)
        print(f"| {mode} | {cells} | {growth(counts):.2f}x |")

    slope = {mode: (counts[-1] - counts[0]) / (STEPS[-1] - STEPS[0]) for mode, counts in table.items()}
    reversible = max(growth(table[m]) for m in ("leapfrog", "hamiltonian", "adjoint"))
    ratio = slope["checkpoint"] / slope["backprop"]
    print(f"\nreversible and adjoint growth {STEPS[0]}->{STEPS[-1]}: {reversible:.2f}x "
          f"(goal <= {REVERSIBLE_GROWTH}x): {'holds' if reversible <= REVERSIBLE_GROWTH else 'FAILS'}")
    print(f"checkpoint bytes per extra step / backprop's: {ratio:.3f} (goal <= {CHECKPOINT_SLOPE}): "
          f"{'holds' if ratio <= CHECKPOINT_SLOPE else 'FAILS'}")
    print(f"selective bytes per extra step / backprop's: {slope['selective'] / slope['backprop']:.3f} "
          "(no convolution recomputed)")
    implicit_iterations(x, args.channels, norm)


def implicit_iterations(x: torch.Tensor, channels: int, norm: str | None, steps: int = STEPS[0]) -> None:
    """sdirk2's held bytes at a loose and a tight solver tolerance: more iterations, the same memory."""
    print(f"\nsdirk2, {steps} steps: held for backward against the stage solves' iterations\n\n"
          "| tolerance | Newton + GMRES iterations | MiB held |\n|---|---|---|")
    for tol in (1e-2, 1e-4, 1e-6):
        torch.manual_seed(0)
        block = make_block("sdirk2", steps, channels, norm, tol)
        count = held(block, x)
        print(f"| {tol:g} | {block.report.newton + block.report.krylov} | {count / 2 ** 20:.2f} |")


if __name__ == "__main__":
    main()
