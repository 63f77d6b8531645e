"""IMEX additive Runge-Kutta pairs for dy/dt = -L y + f(t, y): f explicit, the linear stiff part implicit.

A pair is two tableaus on the same nodes c: an explicit one for f and a diagonally implicit one for -L y.
Stage i solves `(I + h a_ii L) Y_i = y + h sum_{j<i} (a~_ij F_j + a_ij G_j)` exactly (L = K^T K, see
`rknet.solvers.operators`), with F_j = f(Y_j) and G_j = -L Y_j; the step is y + h sum_i (b~_i F_i + b_i G_i).
Presets: forward-backward Euler (`imex_euler`, order 1), ARS(2,2,2) and ARS(4,4,3) of Ascher, Ruuth &
Spiteri (1997), orders 2 and 3 (checked numerically in tests/test_imex.py).
"""

from __future__ import annotations

import torch

from rknet.methods.implicit import diagonal
from rknet.methods.tableau import ButcherTableau


class ImexPair:
    """An explicit and a diagonally implicit tableau on the same nodes, with the pair's order."""

    def __init__(self, name: str, explicit: ButcherTableau, implicit: ButcherTableau, order: int) -> None:
        if not explicit.explicit:
            raise ValueError(f"IMEX pair {name}: the first tableau must be explicit")
        self.diagonal = diagonal(implicit)
        if explicit.stages != implicit.stages or any(abs(x - y) > 1e-12 for x, y in zip(explicit.c, implicit.c)):
            raise ValueError(f"IMEX pair {name}: both tableaus need the same stages and nodes c")
        self.name, self.explicit, self.implicit, self.order = name, explicit, implicit, order
        s = explicit.stages
        self.needed_f = _needed(explicit, s)
        self.needed_g = _needed(implicit, s)

    @property
    def stages(self) -> int:
        return self.explicit.stages

    def stability(self, z_explicit: torch.Tensor, z_implicit: complex | float) -> torch.Tensor:
        """R for y' = (lambda_E + lambda_I) y with z_E = h lambda_E explicit and z_I = h lambda_I implicit:
        1 + (z_E b~ + z_I b)^T (I - z_E A~ - z_I A)^{-1} 1, at every z_E of a tensor (complex result)."""
        dtype = torch.complex128
        zs = torch.as_tensor(z_explicit).to(dtype).reshape(-1, 1, 1)
        tensor = lambda values: torch.tensor(values, dtype=dtype)  # noqa: E731
        a_e, a_i, b_e, b_i = (tensor(self.explicit.a), tensor(self.implicit.a), tensor(self.explicit.b),
                              tensor(self.implicit.b))
        eye, ones = torch.eye(self.stages, dtype=dtype), torch.ones(self.stages, 1, dtype=dtype)
        solved = torch.linalg.solve(eye - zs * a_e - z_implicit * a_i, ones.expand(zs.shape[0], -1, -1))
        weights = zs.reshape(-1, 1) * b_e + z_implicit * b_i
        return (1 + (weights * solved.squeeze(-1)).sum(-1)).reshape(torch.as_tensor(z_explicit).shape)

    def __repr__(self) -> str:
        return f"ImexPair(name={self.name!r}, stages={self.stages}, order={self.order})"


def _needed(tableau: ButcherTableau, stages: int) -> tuple[bool, ...]:
    """Whether stage i's slope enters any later stage or the step."""
    return tuple(tableau.b[i] != 0 or any(tableau.a[j][i] != 0 for j in range(i + 1, stages))
                 for i in range(stages))


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
