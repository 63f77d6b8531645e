"""Matrix-free linear algebra for the implicit stage solves: Jacobian-vector products and batched GMRES.

Tensors here are "rows": shape (B, ...) where each of the B leading slices is its own linear system (the
images of a batch, whose layer acts on each image alone), so GMRES builds one Krylov space per row, with
its own inner products, Hessenberg matrix and stopping test, while every operator application still runs
on the whole batch at once. A single system is the case B = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.autograd.forward_ad as forward_ad

Function = Callable[[torch.Tensor], torch.Tensor]


def jvp(f: Function, point: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """J(point) direction, the Jacobian-vector product of f by forward-mode AD (one dual evaluation)."""
    with forward_ad.dual_level():
        tangent = forward_ad.unpack_dual(f(forward_ad.make_dual(point, direction))).tangent
    return torch.zeros_like(point) if tangent is None else tangent


def row_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Inner products of corresponding rows, shape (B,), in float64."""
    return (x * y).reshape(x.shape[0], -1).sum(1).double()


def row_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each row, shape (B,), in float64."""
    return x.reshape(x.shape[0], -1).double().norm(dim=1)


def row_max(x: torch.Tensor) -> torch.Tensor:
    """Largest absolute entry of each row, shape (B,), in float64."""
    return x.reshape(x.shape[0], -1).abs().amax(1).double()


def per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) values shaped to broadcast against rows like `like`, in its dtype."""
    return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def _inverse_unless(done: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """1 / values, and 0 where `done` (where values may be 0: no division by zero, no 0 * inf)."""
    return torch.where(done, torch.zeros_like(values), 1 / torch.where(done, torch.ones_like(values), values))


def gmres(operator: Function, rhs: torch.Tensor, tolerance: torch.Tensor, max_iterations: int
          ) -> tuple[torch.Tensor, int, torch.Tensor]:
    """x with ||operator(x)_b - rhs_b|| <= tolerance_b in every row b (or the best in `max_iterations`
    steps): unrestarted GMRES per row, `operator` acting on all rows at once and on each row alone.
    Rows of `rhs` that are zero get zero, non-finite ones are returned as they are (so a divergence shows).
    Returns (x, operator applications, residual norm per row)."""
    beta = row_norm(rhs)
    broken = ~torch.isfinite(beta)  # a non-finite row stays non-finite in the answer, and alone
    done = (beta <= tolerance) | broken
    if bool(done.all()):
        return torch.where(per_row(broken, rhs).bool(), rhs, torch.zeros_like(rhs)), 0, beta
    rows = rhs.shape[0]
    hessenberg = torch.zeros(rows, max_iterations + 1, max_iterations, dtype=torch.float64)
    coefficients = torch.zeros(rows, max_iterations, dtype=torch.float64)
    residual = beta.clone()
    basis = [torch.where(per_row(done, rhs).bool(), 0.0, rhs * per_row(_inverse_unless(done, beta), rhs))]
    for j in range(max_iterations):
        w = operator(basis[j])
        for i, v in enumerate(basis):  # modified Gram-Schmidt, per row
            hessenberg[:, i, j] = row_dot(w, v)
            w = w - per_row(hessenberg[:, i, j], w) * v
        hessenberg[:, j + 1, j] = row_norm(w)
        target = torch.zeros(rows, j + 2, 1, dtype=torch.float64)
        target[:, 0, 0] = beta
        system = hessenberg[:, : j + 2, : j + 1]
        solved = torch.linalg.lstsq(system, target).solution
        reached = (system @ solved - target).norm(dim=(1, 2))
        active = ~done
        coefficients[active, : j + 1] = solved[active, :, 0]
        residual[active] = reached[active]
        breakdown = hessenberg[:, j + 1, j] <= 1e-14 * beta
        done = done | (residual <= tolerance) | breakdown
        if bool(done.all()):
            break
        basis.append(w * per_row(_inverse_unless(done, hessenberg[:, j + 1, j]), w))  # finished: zero
    solution = torch.zeros_like(rhs)
    for i, v in enumerate(basis[: j + 1]):
        solution = solution + per_row(coefficients[:, i], v) * v
    return torch.where(per_row(broken, rhs).bool(), rhs, solution), j + 1, residual
