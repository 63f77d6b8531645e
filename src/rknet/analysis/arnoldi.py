"""Arnoldi iteration: the largest-magnitude eigenvalues of an operator known only through products."""

from __future__ import annotations

from collections.abc import Callable

import torch

# Relative size of a new Krylov direction below which the subspace is invariant (Ritz values exact).
_BREAKDOWN = 1e-12


def arnoldi_eigenvalues(matvec: Callable[[torch.Tensor], torch.Tensor], size: int, krylov_dim: int,
                        top: int, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """Estimate the `top` largest-magnitude eigenvalues of the `size` x `size` operator `matvec`.

    Builds an orthonormal basis of the Krylov space span{v, Av, ..., A^(m-1) v} (m = `krylov_dim`, from a
    random start), reorthogonalising twice so the basis stays orthogonal in floating point, and returns
    the eigenvalues of the projected Hessenberg matrix (Ritz values), largest magnitude first. The
    outermost eigenvalues converge first, which are the ones that limit an explicit method's step.
    `matvec` takes and returns float64 vectors of length `size`.
    """
    dim = min(krylov_dim, size)
    basis = torch.zeros(dim + 1, size, dtype=torch.float64, device=device)
    hessenberg = torch.zeros(dim + 1, dim, dtype=torch.float64, device=device)
    start = torch.randn(size, dtype=torch.float64, generator=generator).to(device)
    basis[0] = start / start.norm()
    for j in range(dim):
        direction = matvec(basis[j])
        for _ in range(2):
            coefficients = basis[: j + 1] @ direction
            direction = direction - coefficients @ basis[: j + 1]
            hessenberg[: j + 1, j] += coefficients
        hessenberg[j + 1, j] = direction.norm()
        if hessenberg[j + 1, j] <= _BREAKDOWN * hessenberg[: j + 1, j].norm():
            dim = j + 1
            break
        basis[j + 1] = direction / hessenberg[j + 1, j]
    ritz = torch.linalg.eigvals(hessenberg[:dim, :dim])
    return ritz[ritz.abs().argsort(descending=True)][:top]
