"""IMEX additive Runge-Kutta pairs for dy/dt = -L y + f(t, y): f explicit, the linear stiff part implicit.

A pair is two tableaus on the same nodes c: an explicit one for f and a diagonally implicit one for -L y.
Stage i solves `(I + h a_ii L) Y_i = y + h sum_{j<i} (a~_ij F_j + a_ij G_j)` exactly (L = K^T K, see
`rknet.solvers.operators`), with F_j = f(Y_j) and G_j = -L Y_j; the step is y + h sum_i (b~_i F_i + b_i G_i).
Presets: forward-backward Euler (`imex_euler`, order 1), ARS(2,2,2) and ARS(4,4,3) of Ascher, Ruuth &
Spiteri (1997), orders 2 and 3 (checked numerically in tests/test_imex.py).
"""

from __future__ import annotations

from rknet.methods.implicit import diagonal
from rknet.methods.tableau import ButcherTableau


class ImexPair:
    """An explicit and a diagonally implicit tableau on the same nodes, with the pair's order."""

    def __init__(self, name: str, explicit: ButcherTableau, implicit: ButcherTableau, order: int) -> None:
        if not explicit.explicit:
            raise ValueError(f"IMEX pair {name}: the first tableau must be explicit")
        diagonal(implicit)  # a ValueError for a fully implicit tableau
        if explicit.stages != implicit.stages or any(abs(x - y) > 1e-12 for x, y in zip(explicit.c, implicit.c)):
            raise ValueError(f"IMEX pair {name}: both tableaus need the same stages and nodes c")
        self.name, self.explicit, self.implicit, self.order = name, explicit, implicit, order

    @property
    def stages(self) -> int:
        return self.explicit.stages

    def __repr__(self) -> str:
        return f"ImexPair(name={self.name!r}, stages={self.stages}, order={self.order})"


def _pair(name: str, explicit: list, b_explicit: list, implicit: list, b_implicit: list, c: list,
          order: int) -> ImexPair:
    text = lambda values: [str(v) for v in values]  # noqa: E731
    make = lambda a, b, part: ButcherTableau([text(row) for row in a], text(b), text(c), name=f"{name}-{part}")  # noqa: E731
    return ImexPair(name, make(explicit, b_explicit, "explicit"), make(implicit, b_implicit, "implicit"), order)


_G = 1 - 2**0.5 / 2  # ARS(2,2,2): gamma = 1 - 1/sqrt(2), delta = 1 - 1/(2 gamma)


_D = 1 - 1 / (2 * _G)


IMEX_PAIRS: dict[str, ImexPair] = {
    "imex_euler": _pair("imex_euler", [[0, 0], [1, 0]], [1, 0], [[0, 0], [0, 1]], [0, 1], [0, 1], 1),
    "ars222": _pair("ars222", [[0, 0, 0], [_G, 0, 0], [_D, 1 - _D, 0]], [_D, 1 - _D, 0],
                    [[0, 0, 0], [0, _G, 0], [0, 1 - _G, _G]], [0, 1 - _G, _G], [0, _G, 1], 2),
    "ars443": _pair("ars443",
                    [[0] * 5, ["1/2", 0, 0, 0, 0], ["11/18", "1/18", 0, 0, 0], ["5/6", "-5/6", "1/2", 0, 0],
                     ["1/4", "7/4", "3/4", "-7/4", 0]], ["1/4", "7/4", "3/4", "-7/4", 0],
                    [[0] * 5, [0, "1/2", 0, 0, 0], [0, "1/6", "1/2", 0, 0], [0, "-1/2", "1/2", "1/2", 0],
                     [0, "3/2", "-3/2", "1/2", "1/2"]], [0, "3/2", "-3/2", "1/2", "1/2"],
                    [0, "1/2", "2/3", "1/2", 1], 3),
}
"""The IMEX pairs by name (`--method ars222`): an explicit tableau for f and a diagonally implicit one for
-L y, stepped together."""


def get_imex_pair(method: str | ImexPair) -> ImexPair:
    """The IMEX pair named `method` (see `IMEX_PAIRS`), or `method` itself."""
    if isinstance(method, ImexPair):
        return method
    key = method.strip().lower() if isinstance(method, str) else method
    if key not in IMEX_PAIRS:
        raise ValueError(f"unknown IMEX pair {method!r}; valid: {', '.join(IMEX_PAIRS)}")
    return IMEX_PAIRS[key]
