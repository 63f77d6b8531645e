"""Diagonally implicit Runge-Kutta stages: Newton-Krylov solves, gradients by the implicit function theorem.

A stage with a_ii != 0 solves `Y = base + gamma f(Y)` (gamma = h a_ii, base = y + h sum_{j<i} a_ij k_j)
for Y by Newton's method, each Newton system `(I - gamma J) d = -G` by GMRES on Jacobian-vector products
(forward-mode AD), so no Jacobian is ever formed. The iterations run without a graph. Afterwards one
evaluation `Y = base + gamma f(Y*)` at the detached solution Y* is recorded, and a hook on Y replaces the
incoming gradient g by the adjoint w solving `(I - gamma J^T) w = g` (GMRES on vector-Jacobian products):
exactly the implicit function theorem's gradient with respect to base and the weights. So the memory kept
for backward is one layer evaluation per stage, whatever the number of iterations, and nothing is
unrolled. A solve that misses its tolerance raises `ImplicitSolveError`, never returns a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as forward_ad

from .tableau import ButcherTableau

_TOLERANCE = 1e-12
_HALVINGS = 8
Function = Callable[[torch.Tensor], torch.Tensor]


class ImplicitSolveError(ValueError):
    """A Newton or adjoint solve of an implicit stage missed its tolerance (step too large for the solver,
    tolerance too tight for the precision, or too few iterations allowed)."""


def diagonal(tableau: ButcherTableau) -> tuple[float, ...]:
    """The diagonal a_ii of a diagonally implicit tableau; ValueError for one with a_ij != 0 above it."""
    upper = [(i, j) for i in range(tableau.stages) for j in range(i + 1, tableau.stages)
             if abs(tableau.a[i][j]) > _TOLERANCE]
    if upper:
        i, j = upper[0]
        raise ValueError(f"tableau {tableau.name!r} is fully implicit (a[{i}][{j}] = {tableau.a[i][j]:g} lies above "
                         "the diagonal); rknet integrates explicit and diagonally implicit tableaus (A lower "
                         "triangular), solving one stage at a time")
    return tuple(tableau.a[i][i] for i in range(tableau.stages))


def require_solvable(tableau: ButcherTableau) -> ButcherTableau:
    """`tableau` if it is explicit or diagonally implicit, else a ValueError saying what is accepted."""
    diagonal(tableau)
    return tableau


@dataclass
class SolveReport:
    """Iteration counts summed over the implicit stages of the forward passes (and backward passes) since
    the last `reset`, and the largest relative residual accepted."""

    stages: int = 0
    newton: int = 0
    krylov: int = 0
    adjoint_stages: int = 0
    adjoint_krylov: int = 0
    residual: float = 0.0

    def text(self) -> str:
        per = lambda count, stages: f"{count / stages:.2f}" if stages else "-"  # noqa: E731
        return (f"{self.stages} stage solves: {per(self.newton, self.stages)} Newton and "
                f"{per(self.krylov, self.stages)} GMRES iterations per solve; {self.adjoint_stages} adjoint "
                f"solves: {per(self.adjoint_krylov, self.adjoint_stages)} GMRES iterations each; largest "
                f"residual {self.residual:.2e}")


class NewtonKrylov:
    """Newton's method with GMRES on Jacobian-vector products, for the stages of implicit blocks.

    A stage counts as solved when `max|G(Y)| <= tol * (1 + max|Y|)`, G(Y) = Y - base - gamma f(Y);
    `tol=None` means 1e-11 in float64 and 1e-5 in lower precision. Each Newton system, and each adjoint
    system in the backward pass, is solved by GMRES to `forcing` times its right-hand side's norm (the
    adjoint one to `tol`), in at most `max_krylov` iterations. `report` counts the iterations.
    """

    def __init__(self, tol: float | None = None, max_newton: int = 25, max_krylov: int = 40,
                 forcing: float = 1e-3) -> None:
        for name, value in (("max_newton", max_newton), ("max_krylov", max_krylov)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, value in (("tol", tol), ("forcing", forcing)):
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < 1):
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
        self.tol, self.max_newton, self.max_krylov, self.forcing = tol, max_newton, max_krylov, forcing
        self.report = SolveReport()

    def tolerance(self, dtype: torch.dtype) -> float:
        if self.tol is not None:
            return self.tol
        return 1e-11 if dtype == torch.float64 else 1e-5

    def reset(self) -> SolveReport:
        """Start counting afresh; returns the counts so far."""
        report, self.report = self.report, SolveReport()
        return report

    def __repr__(self) -> str:
        return (f"NewtonKrylov(tol={self.tol}, max_newton={self.max_newton}, max_krylov={self.max_krylov}, "
                f"forcing={self.forcing})")

    def solve(self, f: Function, base: torch.Tensor, gamma: float, where: str = "stage") -> torch.Tensor:
        """The stage's slope k = f(Y) with Y = base + gamma k, differentiable by the implicit function theorem."""
        solution, value = self._newton(f, base.detach(), gamma, where)
        if not torch.is_grad_enabled():
            return value
        recorded = f(solution)
        state = base + gamma * recorded
        if not state.requires_grad:
            return recorded
        state.register_hook(lambda grad: self._adjoint(f, solution, gamma, grad, where))
        return (state - base) / gamma

    def _newton(self, f: Function, base: torch.Tensor, gamma: float, where: str):
        """Newton's method with a backtracking line search on ||G|| (halving the step up to `_HALVINGS` times),
        which the strongly nonlinear norms (TV) need at large steps."""
        tol = self.tolerance(base.dtype)
        with torch.no_grad():
            state, value = base, f(base)
            residual = state - base - gamma * value
            for iteration in range(self.max_newton + 1):
                error = residual.abs().max().item() / (1 + state.abs().max().item())
                if error <= tol:
                    self.report.stages += 1
                    self.report.newton += iteration
                    self.report.residual = max(self.report.residual, error)
                    return state, value
                if error != error or iteration == self.max_newton:
                    break
                linear = lambda v, state=state: v - gamma * jvp(f, state, v)  # noqa: E731
                size = residual.norm().item()
                delta, count, _ = gmres(linear, -residual, self.forcing * size, self.max_krylov)
                self.report.krylov += count
                fraction = 1.0
                for _ in range(_HALVINGS + 1):
                    trial = state + fraction * delta
                    trial_value = f(trial)
                    trial_residual = trial - base - gamma * trial_value
                    if trial_residual.norm().item() <= (1 - 1e-4 * fraction) * size:
                        break
                    fraction /= 2
                state, value, residual = trial, trial_value, trial_residual
        raise ImplicitSolveError(f"{where}: Newton's method did not converge in {self.max_newton} iterations "
                                 f"(relative residual {error:.3g}, tolerance {tol:.3g}); use smaller steps, "
                                 "raise max_newton/max_krylov, or loosen tol")

    def _adjoint(self, f: Function, solution: torch.Tensor, gamma: float, grad: torch.Tensor,
                 where: str) -> torch.Tensor | None:
        if grad is None:  # an undefined gradient (autograd's convention for zero)
            return None
        with torch.enable_grad():
            point = solution.detach().requires_grad_()
            value = f(point)
        transposed = lambda w: w - gamma * torch.autograd.grad(value, point, w, retain_graph=True)[0]  # noqa: E731
        target = self.tolerance(grad.dtype) * grad.norm().item()
        adjoint, count, residual = gmres(transposed, grad, target, self.max_krylov)
        if residual > target:
            raise ImplicitSolveError(f"{where}: the adjoint solve (I - h a_ii J^T) w = g of the backward pass "
                                     f"did not converge in {self.max_krylov} GMRES iterations (residual "
                                     f"{residual:.3g} > {target:.3g}); raise max_krylov or loosen tol")
        self.report.adjoint_stages += 1
        self.report.adjoint_krylov += count
        return adjoint


def jvp(f: Function, point: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """J(point) direction, the Jacobian-vector product of f by forward-mode AD (one dual evaluation)."""
    with forward_ad.dual_level():
        tangent = forward_ad.unpack_dual(f(forward_ad.make_dual(point, direction))).tangent
    return torch.zeros_like(point) if tangent is None else tangent


def gmres(operator: Function, rhs: torch.Tensor, tolerance: float, max_iterations: int
          ) -> tuple[torch.Tensor, int, float]:
    """x with ||operator(x) - rhs|| <= tolerance (or the best in `max_iterations` steps): unrestarted GMRES
    over tensors of any shape. Returns (x, iterations, residual norm)."""
    beta = rhs.norm().item()
    if beta <= tolerance or beta == 0.0:
        return torch.zeros_like(rhs), 0, beta
    basis = [rhs / beta]
    hessenberg = torch.zeros(max_iterations + 1, max_iterations, dtype=torch.float64)
    for j in range(max_iterations):
        w = operator(basis[j])
        for i, v in enumerate(basis):  # modified Gram-Schmidt
            hessenberg[i, j] = (w * v).sum().item()
            w = w - hessenberg[i, j].item() * v
        hessenberg[j + 1, j] = w.norm().item()
        target = torch.zeros(j + 2, dtype=torch.float64)
        target[0] = beta
        system = hessenberg[: j + 2, : j + 1]
        coefficients = torch.linalg.lstsq(system, target[:, None]).solution[:, 0]
        residual = (system @ coefficients - target).norm().item()
        if residual <= tolerance or hessenberg[j + 1, j] <= 1e-14 * beta:
            break
        basis.append(w / hessenberg[j + 1, j].item())
    solution = torch.zeros_like(rhs)
    for c, v in zip(coefficients.tolist(), basis):
        solution = solution.add(v, alpha=c)
    return solution, j + 1, residual


class ImplicitStages:
    """Wraps a Runge-Kutta slope callback so that stages with a_ii != 0 are solved: what `rk_step` needs to
    step a diagonally implicit tableau (it passes the explicit part of each stage as the state)."""

    def __init__(self, tableau: ButcherTableau, solver: NewtonKrylov | None = None) -> None:
        self.diagonal = diagonal(tableau)
        self.name = tableau.name
        self.solver = solver if solver is not None else NewtonKrylov()
        if not isinstance(self.solver, NewtonKrylov):
            raise TypeError(f"solver must be an rknet.NewtonKrylov, got {type(self.solver).__name__}")

    def slope(self, slope: Callable[[int, torch.Tensor], torch.Tensor], step: float, k: int = 0
              ) -> Callable[[int, torch.Tensor], torch.Tensor]:
        """slope(i, state) for step k of size `step`, with the diagonal terms solved for."""
        def solved(i: int, base: torch.Tensor) -> torch.Tensor:
            gamma = step * self.diagonal[i]
            if gamma == 0.0:
                return slope(i, base)
            return self.solver.solve(lambda state: slope(i, state), base, gamma,
                                     f"{self.name} step {k}, stage {i}")
        return solved
