"""Adaptive stepping with an embedded pair: error estimate, PI step-size controller, automatic first step.

A pair's two solutions differ by `h sum_i (b_i - b_hat_i) k_i`, an estimate of the local error of the
lower-order one. A step is accepted when the RMS norm of that estimate, scaled by
`atol + rtol * max(|y_n|, |y_n+1|)` per element (the scale of scipy, torchdiffeq and Hairer's codes), is
at most 1. The next step is `h * safety * err^(-alpha) * err_prev^beta` with `beta = 0.2/k`,
`alpha = 1/k - 0.75 beta`, `k = q + 1` and `q` the lower of the two orders: the PI controller of Hairer's
DOPRI5 code (beta = 0.04 for k = 5; the previous error damps oscillating step sizes), clipped to
[0.2, 10], and never grown right after a rejection. The first step is Hairer's estimate from f and one
Euler step (two evaluations). Steps are shortened to land exactly on every requested time, so the states
there are solutions, not interpolants. The propagated solution is the one with weights `b` (order
`tableau.order`). Deciding to accept a step reads one number from the device per step (a host sync).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rknet.methods.tableau import ButcherTableau
from rknet.solvers.runge_kutta import rk_step, stage_terms

SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0
PI_BETA = 0.2  # beta * k
MAX_STEPS = 100_000


@dataclass
class AdaptiveStats:
    """What an adaptive solve cost: function evaluations, accepted and rejected steps."""

    evaluations: int = 0
    accepted: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"evaluations": self.evaluations, "accepted": self.accepted, "rejected": self.rejected}


def check_tolerances(rtol: float, atol: float) -> tuple[float, float]:
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol and atol cannot both be 0; give e.g. rtol=1e-6, atol=1e-9")
    return float(rtol), float(atol)


def require_pair(tableau: ButcherTableau) -> ButcherTableau:
    if tableau.b_hat is None:
        raise ValueError(f"adaptive stepping needs an embedded pair (a tableau with b_hat: bs3, fehlberg45, "
                         f"dopri5, tsit5); {tableau.name!r} has none; for it, give a fixed grid instead")
    return tableau.require_explicit()


def _rms(x: torch.Tensor) -> float:
    return x.abs().pow(2).mean().sqrt().item() if x.numel() else 0.0


class _Stepper:
    """One embedded-pair step, reusing the first stage (f at the step's start) when it is known."""

    def __init__(self, f: Callable, tableau: ButcherTableau, stats: AdaptiveStats) -> None:
        self.tableau, self.stats, self.raw = tableau, stats, f
        self.terms = stage_terms(tableau)._replace(needed=(True,) * tableau.stages)
        self.error = [(i, b - e) for i, (b, e) in enumerate(zip(tableau.b, tableau.b_hat)) if b != e]
        last = tableau.stages - 1
        self.fsal = (tableau.b[last] == 0 and tableau.c[last] == 1 and tableau.a[last][:last] == tableau.b[:last])

    def f(self, t: float, y: torch.Tensor) -> torch.Tensor:
        self.stats.evaluations += 1
        return self.raw(t, y)

    def step(self, t: float, y: torch.Tensor, h: float, first: torch.Tensor):
        """(y_new, error estimate, f(t + h, y_new) when the pair gives it for free, else None)."""
        slopes: list[torch.Tensor] = []

        def slope(i: int, state: torch.Tensor) -> torch.Tensor:
            slopes.append(first if i == 0 else self.f(t + self.tableau.c[i] * h, state))
            return slopes[-1]

        y_new = rk_step(slope, y, h, self.terms)
        error = sum(slopes[i] * (h * w) for i, w in self.error)
        return y_new, error, slopes[-1] if self.fsal else None


def initial_step(f: Callable, t0: float, y0: torch.Tensor, f0: torch.Tensor, order: int, rtol: float,
                 atol: float, span: float) -> float:
    """Hairer, Norsett & Wanner (Solving ODEs I, II.4): a first step from |y0|, |f0| and one Euler step."""
    with torch.no_grad():
        scale = atol + rtol * y0.abs()
        d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h0 = min(h0, span)
        d2 = _rms((f(t0 + h0, y0 + h0 * f0) - f0) / scale) / h0
        h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100 * h0, h1, span)


def solve_adaptive(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, times: tuple[float, ...],
                   tableau: ButcherTableau, rtol: float, atol: float, first_step: float | None = None,
                   max_steps: int = MAX_STEPS) -> tuple[torch.Tensor, AdaptiveStats]:
    """States at every time of `times` (stacked along a new first dimension) and the solve's cost.

    Differentiable through the accepted steps (the step sizes are treated as constants).
    """
    require_pair(tableau)
    rtol, atol = check_tolerances(rtol, atol)
    stats = AdaptiveStats()
    stepper = _Stepper(f, tableau, stats)
    k = min(tableau.order, tableau.embedded_order) + 1
    t, y = times[0], y0
    first = stepper.f(t, y)
    h = first_step or initial_step(stepper.f, t, y, first, k - 1, rtol, atol, times[-1] - times[0])
    states, previous, rejected_last = [y0], 1.0, False
    for target in times[1:]:
        while t < target:
            if stats.accepted + stats.rejected >= max_steps:
                raise ValueError(f"adaptive solve gave up after {max_steps} steps at t={t:g} (step {h:.3g}); "
                                 "the problem may be stiff, or atol = 0 with a zero state: loosen rtol/atol, give "
                                 "atol > 0, or use a fixed grid")
            last = t + h >= target - 1e-12 * max(1.0, abs(target))
            size = target - t if last else h
            y_new, error, fsal = stepper.step(t, y, size, first)
            with torch.no_grad():
                ratio = _rms(error / (atol + rtol * torch.maximum(y.abs(), y_new.abs())))
            if not math.isfinite(ratio) or not math.isfinite(h):
                raise ValueError(f"adaptive solve: the error estimate at t={t:g} is not finite; with atol = 0 a "
                                 "state entry of exactly 0 makes the relative test undefined: give atol > 0")
            if ratio <= 1.0:
                stats.accepted += 1
                t, y = (target if last else t + size), y_new
                first = fsal if fsal is not None else stepper.f(t, y)
                factor = SAFETY * max(ratio, 1e-10) ** (0.75 * PI_BETA / k - 1 / k) * previous ** (PI_BETA / k)
                factor = min(MAX_FACTOR, max(MIN_FACTOR, factor))
                grown = size * (min(factor, 1.0) if rejected_last else factor)
                h = max(grown, h) if last else grown  # a step cut short to land on `target` says little
                previous, rejected_last = max(ratio, 1e-4), False
            else:
                stats.rejected += 1
                h = size * max(MIN_FACTOR, SAFETY * ratio ** (-1.0 / k))
                rejected_last = True
            if h < 1e-14 * max(1.0, abs(t)):
                raise RuntimeError(f"adaptive step size fell to {h:.3g} at t={t:g}: the solution may blow up there")
        states.append(y)
    return torch.stack(states), stats
