"""Methods by name or by value: every explicit tableau (a DynamicBlock), every implicit one (an
ImplicitBlock), the IMEX pairs (an ImexBlock) and the reversible schemes.

A method is a preset name (`TABLEAUS`, `IMPLICIT_TABLEAUS`), a reversible scheme (`leapfrog`, `hamiltonian`), a
`ButcherTableau`, a mapping with a, b, c and name, or the path of a tableau file (.toml/.json/.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .block import Block
from .configfiles import SUFFIXES, read_table
from .dynamic_block import DynamicBlock
from .imex import IMEX_PAIRS
from .imex_block import ImexBlock
from .implicit import NewtonKrylov
from .implicit_block import ImplicitBlock
from .implicit_stages import require_solvable
from .layers import Layer
from .reversible import HamiltonianBlock, LeapfrogBlock, ReversibleBlock
from .tableau import IMPLICIT_TABLEAUS, TABLEAUS, ButcherTableau, get_tableau

REVERSIBLE_SCHEMES: dict[str, type[ReversibleBlock]] = {"leapfrog": LeapfrogBlock, "hamiltonian": HamiltonianBlock}
METHODS: tuple[str, ...] = (*TABLEAUS, *IMPLICIT_TABLEAUS, *IMEX_PAIRS, *REVERSIBLE_SCHEMES)
"""Every method by name (`--method`): the explicit and implicit preset tableaus, the IMEX pairs, then the
reversible schemes."""
FAMILIES = {"runge-kutta": "y' = f(y, theta(t)), one state",
            "leapfrog": "y'' = f(y, theta(t)), a second-order equation",
            "hamiltonian": "two coupled states y and z",
            "imex": "y' = -L y + f(y, theta(t)), L = K^T K learned and solved exactly"}

Method = str | ButcherTableau


def is_tableau_file(method: Any) -> bool:
    return isinstance(method, str) and Path(method).suffix in SUFFIXES


def resolve_method(method: Any) -> Method:
    """A reversible scheme's name or a validated explicit or diagonally implicit tableau (read from a file
    when given a path)."""
    if isinstance(method, str) and method.strip().lower() in (*REVERSIBLE_SCHEMES, *IMEX_PAIRS):
        return method.strip().lower()
    if is_tableau_file(method):
        table = read_table(method, "tableau file")
        table.setdefault("name", Path(method).stem)
        try:
            method = ButcherTableau.from_dict(table)
        except ValueError as error:
            raise ValueError(f"tableau file {method}: {error}") from error
    if isinstance(method, str):
        key = method.strip().lower()
        if key not in TABLEAUS and key not in IMPLICIT_TABLEAUS:
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}, or a tableau file "
                             "(.toml/.json/.yaml with a, b, c and name)")
    elif not isinstance(method, (ButcherTableau, Mapping)):
        raise TypeError(f"method must be a name, a tableau file or a ButcherTableau, got {type(method).__name__}")
    return require_solvable(get_tableau(method))


def uses_solver(method: Method) -> bool:
    """Whether blocks of `method` solve implicit stages with a NewtonKrylov solver (implicit tableaus)."""
    return isinstance(method, ButcherTableau) and not method.explicit


def family(method: Method) -> str:
    """Blocks of one family can be re-discretised into each other."""
    if isinstance(method, str):
        return "imex" if method in IMEX_PAIRS else method
    return "runge-kutta"


def method_name(method: Method) -> str:
    return method if isinstance(method, str) else method.name


def block_type(method: Method) -> type[Block]:
    if isinstance(method, str):
        return ImexBlock if method in IMEX_PAIRS else REVERSIBLE_SCHEMES[method]
    return DynamicBlock if method.explicit else ImplicitBlock


def build_block(method: Method, layer: Layer, t_states: Sequence[float], t_controls: Sequence[float] | None,
                interpolation: str, gradient: str | None, solver: Mapping[str, Any] | None = None) -> Block:
    """A DynamicBlock for a tableau (an ImplicitBlock, with a NewtonKrylov of the `solver` options, for an
    implicit one), an ImexBlock for an IMEX pair, or a reversible block (one control per step, t_controls
    unused)."""
    if method in IMEX_PAIRS:
        return ImexBlock(layer, method, t_states, t_controls, interpolation, gradient)
    if isinstance(method, str):
        return REVERSIBLE_SCHEMES[method](layer, t_states=t_states, gradient=gradient)
    if uses_solver(method):
        return ImplicitBlock(layer, method, t_states, t_controls, interpolation, gradient,
                             NewtonKrylov.from_options(solver or {}))
    return DynamicBlock(layer, method, t_states, t_controls, interpolation, gradient)


def check_family(old: Method, new: Method) -> None:
    """Re-discretisation stays within a family: a Runge-Kutta network takes any tableau, a leapfrog or
    hamiltonian one only another grid."""
    if family(old) != family(new):
        raise ValueError(f"a {method_name(old)} network ({FAMILIES[family(old)]}) cannot be re-discretised with "
                         f"{method_name(new)} ({FAMILIES[family(new)]}); they integrate different equations")
