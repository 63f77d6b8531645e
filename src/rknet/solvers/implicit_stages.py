"""How an implicit tableau's stages are solved: one at a time (diagonally implicit, A lower triangular) or
all together (fully implicit, e.g. Gauss-Legendre), each solve by `rknet.solvers.newton_krylov.NewtonKrylov`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rknet.methods.implicit import is_coupled, require_solvable
from rknet.methods.tableau import ButcherTableau
from rknet.solvers.newton_krylov import NewtonKrylov

Slope = Callable[[int, torch.Tensor], torch.Tensor]
# solve(i, gamma, base) -> (k_i, Y_i): stage i's slope and state, Y_i = base + gamma k_i, k_i = f(Y_i)
Solve = Callable[[int, float, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class ImplicitStages:
    """The implicit part of stepping a tableau with `solver` (default `NewtonKrylov()`).

    `per_sample`: the slope acts on each image of a batch (dimension 0) alone, so each image is solved as
    its own system (blocks); otherwise the whole state is one system (`rknet.integrate` on any f).
    """

    def __init__(self, tableau: ButcherTableau, solver: NewtonKrylov | None = None,
                 per_sample: bool = False) -> None:
        require_solvable(tableau)
        self.tableau, self.name, self.per_sample = tableau, tableau.name, per_sample
        self.coupled = is_coupled(tableau)
        self.solver = solver if solver is not None else NewtonKrylov()
        if not isinstance(self.solver, NewtonKrylov):
            raise TypeError(f"solver must be an rknet.NewtonKrylov, got {type(self.solver).__name__}")

    def _rows(self, y: torch.Tensor) -> tuple[Callable, Callable]:
        """(to_rows, from_rows): y as rows (B, ...) and back (B = 1 unless per sample)."""
        if self.per_sample:
            if y.dim() == 0:
                raise ValueError("an implicit block's state needs a batch dimension")
            return (lambda x: x), (lambda x: x)
        return (lambda x: x.unsqueeze(0)), (lambda x: x.reshape(y.shape))

    def solve(self, slope: Slope, k: int = 0) -> Solve:
        """The stage solve of step k of a diagonally implicit tableau, for `rk_step`: given stage i's base
        (its explicit part) and gamma = h a_ii, the slope k_i = f(base + gamma k_i) and the stage state."""
        def solved(i: int, gamma: float, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            to_rows, from_rows = self._rows(base)
            stacked = lambda rows: to_rows(slope(i, from_rows(rows[:, 0]))).unsqueeze(1)  # noqa: E731
            slopes = self.solver.solve(stacked, to_rows(base).unsqueeze(1), [[gamma]],
                                       f"{self.name} step {k}, stage {i}")
            value = from_rows(slopes[:, 0])
            return value, base + gamma * value
        return solved

    def coupled_step(self, slope: Slope, y: torch.Tensor, step: float, k: int = 0) -> torch.Tensor:
        """y + h sum_i b_i k_i for a fully implicit tableau, all stages k_i = f_i(y + h sum_j a_ij k_j)
        solved together."""
        to_rows, from_rows = self._rows(y)
        s = self.tableau.stages

        def slopes(rows: torch.Tensor) -> torch.Tensor:
            return torch.stack([to_rows(slope(i, from_rows(rows[:, i]))) for i in range(s)], 1)

        rows = to_rows(y)
        base = rows.unsqueeze(1).expand(-1, s, *rows.shape[1:])
        matrix = [[step * a for a in row] for row in self.tableau.a]
        solved = self.solver.solve(slopes, base, matrix, f"{self.name} step {k}")
        result = y
        for i, b in enumerate(self.tableau.b):
            if b != 0.0:
                result = result + (step * b) * from_rows(solved[:, i])
        return result
