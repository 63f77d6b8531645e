"""Methods by name or by value: every explicit and implicit tableau, the IMEX pairs and the reversible schemes.

A method is a preset name (`TABLEAUS`, `IMPLICIT_TABLEAUS`), a reversible scheme (`leapfrog`, `hamiltonian`), a
`ButcherTableau`, a mapping with a, b, c and name, or the path of a tableau file (.toml/.json/.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rknet.common.tablefiles import SUFFIXES, read_table
from rknet.methods.imex_pairs import IMEX_PAIRS
from rknet.methods.implicit import require_solvable
from rknet.methods.tableau import IMPLICIT_TABLEAUS, TABLEAUS, ButcherTableau, get_tableau

REVERSIBLE_SCHEMES: tuple[str, ...] = ("leapfrog", "hamiltonian")
"""The reversible schemes by name (their block types: `rknet.blocks.registry`)."""
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
