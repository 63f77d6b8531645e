"""The IMEX step and `integrate_imex`: dy/dt = -L y + f(t, y), f explicit, L solved exactly."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rknet.methods.imex_pairs import ImexPair, get_imex_pair
from rknet.solvers.grid import as_times, stage_times, step_sizes
from rknet.solvers.operators import SymmetricOperator
from rknet.solvers.runge_kutta import Part, Slope, StageTerms, pair_terms, step_parts


def operator_part(terms: StageTerms, operator: Callable[[int], SymmetricOperator]) -> Part:
    """The stiff part -L y of an IMEX step: slope -L Y, and where a_ii != 0 the exact solve
    (I + gamma L) Y = base, whose slope is (Y - base) / gamma = -L Y without applying L again."""
    def solve(i: int, gamma: float, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        solved = operator(i).solve(gamma, base)
        return (solved - base) / gamma, solved

    return Part(terms, lambda i, state: -operator(i).apply(state), solve)


def imex_step(slope: Slope, operator: Callable[[int], SymmetricOperator], y: torch.Tensor, step: float,
              terms: tuple[StageTerms, StageTerms]) -> torch.Tensor:
    """One IMEX step through the one stage loop: slope(i, Y) is f at stage i, operator(i) the stage's L,
    `terms` the pair's (`pair_terms`)."""
    return step_parts((Part(terms[0], slope), operator_part(terms[1], operator)), y, step)


def integrate_imex(f: Callable[[float, torch.Tensor], torch.Tensor], kernel: torch.Tensor, y0: torch.Tensor, t,
                   method: str | ImexPair = "ars222", dims: int = 0) -> torch.Tensor:
    """y at t[-1] for dy/dt = -K^T K y + f(t, y) from y(t[0]) = y0, with the IMEX pair `method`; `kernel` is
    K (a C x C matrix for dims=0, a periodic 3 or 3x3 convolution kernel for dims 1 or 2)."""
    pair, times = get_imex_pair(method), as_times(t, "t")
    operator = SymmetricOperator(kernel, dims)
    stages, sizes = stage_times(times, pair.explicit.c), step_sizes(times)
    terms = pair_terms(pair.explicit, pair.implicit)
    y = y0
    for k, size in enumerate(sizes):
        y = imex_step(lambda i, state, k=k: f(stages[k][i], state), lambda i: operator, y, size, terms)
    return y
