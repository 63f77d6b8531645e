"""Implicit Runge-Kutta stages: Newton-Krylov solves, gradients by the implicit function theorem.

The stages being solved (one stage of a diagonally implicit tableau, or all stages of a fully implicit one)
are stacked along dimension 1: with rows of shape (B, s, ...), they solve `Y = base + M F(Y)`, where
F(Y)_i = f_i(Y_i) is the slope at stage i, M = h A (for one DIRK stage the 1 x 1 matrix h a_ii) and
`base` the explicit part. Newton's method solves it, each Newton system `(I - M J) d = -G` by GMRES on
Jacobian-vector products (forward-mode AD), so no Jacobian is ever formed; the iterations run without a
graph. When the slope acts on each image of a batch alone (every layer norm but batch norm), each image is
its own system: its own Krylov space, line search and convergence test (`rknet.solvers.gmres`), and images that
have converged drop out of the iteration.

Afterwards one evaluation `F(Y*)` at the detached solution Y* is recorded, and a hook on the recorded
`state = base + M F(Y*)` replaces the incoming gradient g by the adjoint w solving `(I - M J)^T w = g`
(GMRES on vector-Jacobian products): exactly the implicit function theorem's gradient with respect to base
and the weights. So the memory kept for backward is one layer evaluation per stage, whatever the number
of iterations, and nothing is unrolled. A solve that misses its tolerance raises `ImplicitSolveError`,
never returns a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rknet.common.checks import finite_number, positive_int
from rknet.common.limits import KRYLOV, NEWTON
from rknet.solvers.gmres import Function, gmres, jvp, per_row, row_max, row_norm

_HALVINGS = 8
_STALL = 10  # Newton iterations without a lower residual in an image: its solve has stagnated
MAX_TOL = 1e-2
"""The loosest `tol`: a relative residual above 1% leaves the stages wrong in their second digit."""
_ADJOINT_RESTARTS = 3  # the adjoint solve must reach its tolerance: GMRES restarts up to this many times


class ImplicitSolveError(ValueError):
    """A Newton or adjoint solve of implicit stages missed its tolerance (step too large for the solver,
    tolerance too tight for the precision, or too few iterations allowed)."""


@dataclass
class SolveReport:
    """Iteration counts summed over the implicit solves of the forward passes (and backward passes) since
    the last `reset`, and the largest relative residual accepted. A solve covers one stage of a diagonally
    implicit tableau (all stages of a fully implicit one) for a whole batch; its Newton count is that of
    the slowest image."""

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


def stage_mix(matrix: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """K -> (M K)_i = sum_j M_ij K_j over the stage dimension 1 of rows (B, s, ...)."""
    return lambda stacked: torch.einsum("ij,bj...->bi...", matrix.to(stacked.dtype), stacked)


class NewtonKrylov:
    """Newton's method with GMRES on Jacobian-vector products, for the stages of implicit blocks.

    A system counts as solved when `max|G(Y)| <= tol * (1 + max|Y|)` in every image, G(Y) = Y - base - M F(Y);
    `tol=None` means 1e-11 in float64 and 1e-5 in lower precision. Each Newton system, and each adjoint
    system in the backward pass, is solved by GMRES to `forcing` times its right-hand side's norm in at
    most `max_krylov` iterations; the adjoint one to `tol`, restarting GMRES(max_krylov) up to 3 times from
    the true residual. A solve whose residual in some image has not decreased for 10 iterations stops as
    stagnated (ImplicitSolveError saying so) rather than run on to `max_newton`. `report` counts the iterations.
    """

    def __init__(self, tol: float | None = None, max_newton: int = 25, max_krylov: int = 40,
                 forcing: float = 0.1) -> None:
        NEWTON.check("max_newton", positive_int("max_newton", max_newton))
        KRYLOV.check("max_krylov", positive_int("max_krylov", max_krylov))
        if tol is not None:
            finite_number("tol", tol, 0, strict=True, maximum=MAX_TOL)
        finite_number("forcing", forcing, 0, strict=True, maximum=1, below=True)
        self.tol, self.max_newton, self.max_krylov, self.forcing = tol, max_newton, max_krylov, forcing
        self.report = SolveReport()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> NewtonKrylov:
        """A solver from a table of its options (a network spec's `solver`), naming any unknown one."""
        known = ("tol", "max_newton", "max_krylov", "forcing")
        if not isinstance(options, Mapping):
            raise ValueError(f"solver options must be a table of {', '.join(known)}, got {options!r}")
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown solver option {unknown[0]!r}; valid: {', '.join(known)}")
        return cls(**options)

    def options(self) -> dict:
        """The settings as keyword arguments (what `NewtonKrylov(**options)` rebuilds)."""
        return {"tol": self.tol, "max_newton": self.max_newton, "max_krylov": self.max_krylov,
                "forcing": self.forcing}

    def tolerance(self, dtype: torch.dtype) -> float:
        if self.tol is not None:
            return self.tol
        return 1e-11 if dtype == torch.float64 else 1e-5

    def reset(self) -> SolveReport:
        """Start counting afresh; returns the counts so far."""
        report, self.report = self.report, SolveReport()
        return report

    def __repr__(self) -> str:
        return "NewtonKrylov(" + ", ".join(f"{k}={v}" for k, v in self.options().items()) + ")"

    def solve(self, slopes: Function, base: torch.Tensor, matrix: Sequence[Sequence[float]],
              where: str = "stage") -> torch.Tensor:
        """The slopes K = F(Y) with Y = base + M K, rows (B, s, ...), differentiable by the implicit
        function theorem. `slopes` must act on any subset of the B rows alone; M must be invertible."""
        matrix = torch.tensor(matrix, dtype=torch.float64)
        mix, transposed, inverse = stage_mix(matrix), stage_mix(matrix.T), stage_mix(torch.linalg.inv(matrix))
        solution, value = self._newton(slopes, base.detach(), mix, where)
        if not torch.is_grad_enabled():
            return value
        state = base + mix(slopes(solution))
        if not state.requires_grad:
            return value
        state.register_hook(lambda grad: self._adjoint(slopes, solution, transposed, grad, where))
        return inverse(state - base)

    def _newton(self, slopes: Function, base: torch.Tensor, mix: Function, where: str):
        """Newton's method, each row with its own backtracking line search on its ||G|| (halving the step up
        to `_HALVINGS` times), which the strongly nonlinear norms (TV) need at large steps."""
        tol = self.tolerance(base.dtype)
        with torch.no_grad():
            state, value = base.clone(), slopes(base)
            residual = state - base - mix(value)
            error = row_max(residual) / (1 + row_max(state))
            best, since = error.clone(), torch.zeros_like(error)
            for iteration in range(self.max_newton + 1):
                unsolved = (error > tol) | error.isnan()
                if not bool(unsolved.any()):
                    self.report.stages += 1
                    self.report.newton += iteration
                    self.report.residual = max(self.report.residual, error.max().item())
                    return state, value
                since = torch.where(error < best, 0, since + 1)
                best = torch.minimum(best, error)
                if bool(error.isnan().any()) or iteration == self.max_newton or bool((since[unsolved] >= _STALL).any()):
                    break
                rows = unsolved.nonzero()[:, 0]
                point, target = state[rows], base[rows]
                linear = lambda v, point=point: v - mix(jvp(slopes, point, v))  # noqa: E731
                size = row_norm(residual[rows])
                delta, count, _ = gmres(linear, -residual[rows], self.forcing * size, self.max_krylov)
                self.report.krylov += count
                trial = self._line_search(slopes, mix, point, target, delta, size)
                state[rows], value[rows], residual[rows] = trial
                error[rows] = row_max(trial[2]) / (1 + row_max(trial[0]))
        failed = int(unsolved.sum())
        rows_note = f" in {failed} of {len(error)} images" if len(error) > 1 else ""
        stalled = bool((since[unsolved] >= _STALL).any()) and iteration < self.max_newton
        how = (f"stagnated: its residual has not decreased in {_STALL} iterations" if stalled
               else f"did not converge in {self.max_newton} iterations")
        advice = ("loosen tol (round-off in this precision may be the floor), raise max_krylov or use smaller steps"
                  if stalled else "use smaller steps, raise max_newton/max_krylov, or loosen tol")
        raise ImplicitSolveError(f"{where}: Newton's method {how} (relative residual {error.max().item():.3g}"
                                 f"{rows_note}, tolerance {tol:.3g}); {advice}")

    @staticmethod
    def _line_search(slopes: Function, mix: Function, point: torch.Tensor, base: torch.Tensor,
                     delta: torch.Tensor, size: torch.Tensor):
        """(state, value, residual) after each row's longest step point + delta / 2^m (m <= `_HALVINGS`)
        that lowers its residual norm; rows that find none take the shortest step tried."""
        states, values, residuals = point.clone(), torch.empty_like(point), torch.empty_like(point)
        pending = torch.arange(point.shape[0])
        fraction = torch.ones(point.shape[0], dtype=torch.float64)
        for halving in range(_HALVINGS + 1):
            trial = point[pending] + per_row(fraction[pending], point) * delta[pending]
            value = slopes(trial)
            residual = trial - base[pending] - mix(value)
            taken = row_norm(residual) <= (1 - 1e-4 * fraction[pending]) * size[pending]
            if halving == _HALVINGS:
                taken[:] = True
            chosen = pending[taken]
            states[chosen], values[chosen], residuals[chosen] = trial[taken], value[taken], residual[taken]
            pending = pending[~taken]
            if not len(pending):
                break
            fraction[pending] /= 2
        return states, values, residuals

    def _adjoint(self, slopes: Function, solution: torch.Tensor, transposed: Function, grad: torch.Tensor,
                 where: str) -> torch.Tensor | None:
        if grad is None:  # an undefined gradient (autograd's convention for zero)
            return None
        with torch.enable_grad():
            point = solution.detach().requires_grad_()
            value = slopes(point)
        operator = lambda w: w - torch.autograd.grad(value, point, transposed(w), retain_graph=True)[0]  # noqa: E731
        target = self.tolerance(grad.dtype) * row_norm(grad)
        adjoint, remaining, count = torch.zeros_like(grad), grad, 0
        for _ in range(_ADJOINT_RESTARTS + 1):  # GMRES(max_krylov), restarted from the true residual
            correction, iterations, residual = gmres(operator, remaining, target, self.max_krylov)
            adjoint, count = adjoint + correction, count + iterations
            unsolved = residual > target  # GMRES's own residual: the true one has a round-off floor
            if not bool(unsolved.any()):
                break
            remaining = torch.where(per_row(unsolved, grad).bool(), grad - operator(adjoint), 0.0)
        else:
            worst = (residual - target).argmax()
            raise ImplicitSolveError(f"{where}: the adjoint solve (I - h A J)^T w = g of the backward pass "
                                     f"did not converge in {_ADJOINT_RESTARTS + 1} x {self.max_krylov} GMRES "
                                     f"iterations (residual {residual[worst]:.3g} > {target[worst]:.3g}); raise "
                                     "max_krylov, loosen tol or take smaller steps")
        self.report.adjoint_stages += 1
        self.report.adjoint_krylov += count
        return adjoint
