"""Block types by name, methods -> block types, and building one.

`BLOCK_TYPES` names every block type (one line per type: what the CLI's help and the docs list, with the
gradient strategies each accepts); `block_type` says which type steps a method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rknet.blocks.base import Block
from rknet.blocks.imex import ImexBlock
from rknet.blocks.implicit import ImplicitBlock
from rknet.blocks.reversible import HamiltonianBlock, LeapfrogBlock, ReversibleBlock
from rknet.blocks.runge_kutta import DynamicBlock
from rknet.gradients.capabilities import capabilities_of
from rknet.layers import Layer
from rknet.methods.imex_pairs import IMEX_PAIRS
from rknet.methods.registry import FAMILIES, Method, family, method_name, uses_solver
from rknet.solvers.newton_krylov import NewtonKrylov

BLOCK_TYPES: dict[str, type[Block]] = {
    "explicit": DynamicBlock,
    "implicit": ImplicitBlock,
    "imex": ImexBlock,
    "leapfrog": LeapfrogBlock,
    "hamiltonian": HamiltonianBlock,
}
"""Every block type by name."""

REVERSIBLE_BLOCKS: dict[str, type[ReversibleBlock]] = {"leapfrog": LeapfrogBlock, "hamiltonian": HamiltonianBlock}


def block_type(method: Method) -> type[Block]:
    if isinstance(method, str):
        return ImexBlock if method in IMEX_PAIRS else REVERSIBLE_BLOCKS[method]
    return DynamicBlock if method.explicit else ImplicitBlock


def check_rediscretization(old: Method, new: Method) -> None:
    """Re-discretisation goes only where the old method's block type declares it can go (a Runge-Kutta
    network takes any tableau, a leapfrog or hamiltonian one only another grid)."""
    if family(new) not in capabilities_of(block_type(old)).rediscretize_into:
        raise ValueError(f"a {method_name(old)} network ({FAMILIES[family(old)]}) cannot be re-discretised with "
                         f"{method_name(new)} ({FAMILIES[family(new)]}); they integrate different equations")


def build_block(method: Method, layer: Layer, t_states: Sequence[float], t_controls: Sequence[float] | None,
                interpolation: str, gradient: str | None, solver: Mapping[str, Any] | None = None) -> Block:
    """A DynamicBlock for a tableau (an ImplicitBlock, with a NewtonKrylov of the `solver` options, for an
    implicit one), an ImexBlock for an IMEX pair, or a reversible block (one control per step, t_controls
    unused)."""
    if method in IMEX_PAIRS:
        return ImexBlock(layer, method, t_states, t_controls, interpolation, gradient)
    if isinstance(method, str):
        return REVERSIBLE_BLOCKS[method](layer, t_states=t_states, gradient=gradient)
    if uses_solver(method):
        return ImplicitBlock(layer, method, t_states, t_controls, interpolation, gradient,
                             NewtonKrylov.from_options(solver or {}))
    return DynamicBlock(layer, method, t_states, t_controls, interpolation, gradient)
