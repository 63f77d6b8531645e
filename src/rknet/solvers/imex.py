"""The IMEX step and `integrate_imex`: dy/dt = -L y + f(t, y), f explicit, L solved exactly."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rknet.methods.imex_pairs import ImexPair, get_imex_pair
from rknet.solvers.grid import as_times, stage_times, step_sizes
from rknet.solvers.operators import SymmetricOperator

Slope = Callable[[int, torch.Tensor], torch.Tensor]


def imex_step(slope: Slope, operator: Callable[[int], SymmetricOperator], y: torch.Tensor, step: float,
              pair: ImexPair) -> torch.Tensor:
    """One IMEX step: slope(i, Y) is f at stage i, operator(i) the stage's L."""
    explicit, implicit = pair.explicit, pair.implicit
    slopes_f: list[torch.Tensor | None] = []
    slopes_g: list[torch.Tensor | None] = []
    for i in range(pair.stages):
        state = y
        for j in range(i):
            for coefficients, slopes in ((explicit.a[i][j], slopes_f), (implicit.a[i][j], slopes_g)):
                if coefficients != 0.0:
                    state = state.add(slopes[j], alpha=step * coefficients)
        gamma = step * pair.diagonal[i]
        if gamma != 0.0:
            solved = operator(i).solve(gamma, state)
            slopes_g.append((solved - state) / gamma)  # = -L Y_i, without applying L again
            state = solved
        else:
            slopes_g.append(-operator(i).apply(state) if pair.needed_g[i] else None)
        slopes_f.append(slope(i, state) if pair.needed_f[i] else None)
    result = y
    for weights, slopes in ((explicit.b, slopes_f), (implicit.b, slopes_g)):
        for weight, value in zip(weights, slopes):
            if weight != 0.0:
                result = result.add(value, alpha=step * weight)
    return result


def integrate_imex(f: Callable[[float, torch.Tensor], torch.Tensor], kernel: torch.Tensor, y0: torch.Tensor, t,
                   method: str | ImexPair = "ars222", dims: int = 0) -> torch.Tensor:
    """y at t[-1] for dy/dt = -K^T K y + f(t, y) from y(t[0]) = y0, with the IMEX pair `method`; `kernel` is
    K (a C x C matrix for dims=0, a periodic 3 or 3x3 convolution kernel for dims 1 or 2)."""
    pair, times = get_imex_pair(method), as_times(t, "t")
    operator = SymmetricOperator(kernel, dims)
    stages, sizes = stage_times(times, pair.explicit.c), step_sizes(times)
    y = y0
    for k, size in enumerate(sizes):
        y = imex_step(lambda i, state, k=k: f(stages[k][i], state), lambda i: operator, y, size, pair)
    return y
