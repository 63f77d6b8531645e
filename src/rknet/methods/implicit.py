"""Properties of implicit tableaus: their diagonal, whether stages couple, whether A is solvable."""

from __future__ import annotations

import torch

from rknet.methods.tableau import ButcherTableau

_TOLERANCE = 1e-12


def is_coupled(tableau: ButcherTableau) -> bool:
    """Whether some a_ij != 0 lies above the diagonal (the stages must be solved together)."""
    return any(abs(tableau.a[i][j]) > _TOLERANCE for i in range(tableau.stages) for j in range(i + 1, tableau.stages))


def diagonal(tableau: ButcherTableau) -> tuple[float, ...]:
    """The diagonal a_ii of a diagonally implicit tableau; ValueError for one with a_ij != 0 above it."""
    if is_coupled(tableau):
        raise ValueError(f"tableau {tableau.name!r} is fully implicit (some a_ij != 0 lies above the diagonal); "
                         "this needs a diagonally implicit tableau (A lower triangular)")
    return tuple(tableau.a[i][i] for i in range(tableau.stages))


def require_solvable(tableau: ButcherTableau) -> ButcherTableau:
    """`tableau` if rknet can step it: explicit, diagonally implicit, or fully implicit with A invertible."""
    matrix = torch.tensor(tableau.a, dtype=torch.float64, device="cpu")  # also under a meta-device context
    if is_coupled(tableau) and abs(torch.linalg.det(matrix)) < 1e-12:
        raise ValueError(f"tableau {tableau.name!r} is fully implicit with a singular A; rknet solves the "
                         "coupled stages of fully implicit tableaus with A invertible (e.g. Gauss-Legendre), "
                         "and explicit or diagonally implicit ones (A lower triangular) stage by stage")
    return tableau
