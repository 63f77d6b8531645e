"""Adaptive stepping with an embedded pair: error estimate, step-size controller, automatic first step.

A pair's two solutions differ by `h sum_i (b_i - b_hat_i) k_i`, an estimate of the local error of the
lower-order one. A step is accepted when the norm (default RMS) of that estimate, scaled by
`atol + rtol * max(|y_n|, |y_n+1|)` per element (the scale of scipy, torchdiffeq and Hairer's codes), is at
most 1. With `controller="pi"` (default) the next step is `h * safety * err^(-alpha) * err_prev^beta` with
`beta = 0.2/k`, `alpha = 1/k - 0.75 beta`, `k = q + 1` and `q` the lower of the two orders: the PI controller
of Hairer's DOPRI5 code, clipped to [dfactor, ifactor] and never grown right after a rejection. With
`controller="integral"` it is torchdiffeq's `h * min(ifactor, max(safety * err^(-1/k), dfactor))`, never
below h after an accepted step. The first step is Hairer's estimate from f and one Euler step (two
evaluations). The propagated solution is the one with weights `b` (order `tableau.order`). Deciding to accept
a step reads one number from the device per step (a host sync); times and steps are Python floats.

Entry points (all options in `rknet.solvers.adaptive_options.AdaptiveOptions`):

* `solve_adaptive(f, y0, times, tableau, rtol, atol, options=..., callbacks=...) -> (states, stats)`: the states
  at every time of the increasing `times`, stepping onto them (`interp="step"`) or interpolating the dense
  output of the steps (`interp="dense"`, `rknet.solvers.dense_output`).
* `PairIntegrator`: the step-by-step object (`attempt()` one step, `t`, `y`, `interpolant` of the last accepted
  step), used by `solve_adaptive` and by `rknet.solvers.events.solve_until_event`.

`f(t, y)` takes t as a Python float in the solver's (increasing) time. Stages at c = 1 are evaluated one unit
in the last place before the step's end, and after a step that ends on a `jump_t` f is evaluated one unit
after it (torchdiffeq's `Perturb.PREV` / `Perturb.NEXT`; the unit is that of the state's real dtype).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rknet.common.checks import tolerance
from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.adaptive_options import MAX_STEPS, AdaptiveOptions
from rknet.solvers.dense_output import StepInterpolant, midpoint_weights
from rknet.solvers.hooks import NO_CALLBACKS, Callbacks, norm_value, nudge
from rknet.solvers.runge_kutta import rk_step, stage_terms

PI_BETA = 0.2  # beta * k
Tolerance = float | torch.Tensor


@dataclass
class AdaptiveStats:
    """What an adaptive solve cost: function evaluations, accepted and rejected steps."""

    evaluations: int = 0
    accepted: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"evaluations": self.evaluations, "accepted": self.accepted, "rejected": self.rejected}


def check_tolerances(rtol: Tolerance, atol: Tolerance) -> tuple[Tolerance, Tolerance]:
    """rtol and atol as floats (or, per element, as tensors), checked finite, non-negative, rtol < 1 (a relative
    error of 100% controls nothing) and not both zero."""
    rtol, atol = tolerance("rtol", rtol, below=1), tolerance("atol", atol)
    if not any(bool((torch.as_tensor(v) > 0).any()) for v in (rtol, atol)):
        raise ValueError("rtol and atol cannot both be 0; give e.g. rtol=1e-6, atol=1e-9")
    return tuple(v.detach() if isinstance(v, torch.Tensor) else float(v) for v in (rtol, atol))


def require_pair(tableau: ButcherTableau) -> ButcherTableau:
    if tableau.b_hat is None:
        raise ValueError(f"adaptive stepping needs an embedded pair (a tableau with b_hat: bs3, fehlberg45, "
                         f"dopri5, tsit5); {tableau.name!r} has none; for it, give a fixed grid instead")
    return tableau.require_explicit()


def initial_step(f: Callable, t0: float, y0: torch.Tensor, f0: torch.Tensor, order: int, rtol: Tolerance,
                 atol: Tolerance, span: float, norm: Callable | None = None) -> float:
    """Hairer, Norsett & Wanner (Solving ODEs I, II.4): a first step from |y0|, |f0| and one Euler step."""
    with torch.no_grad():
        scale = atol + rtol * y0.abs()
        d0, d1 = norm_value(norm, y0 / scale), norm_value(norm, f0 / scale)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        h0 = min(h0, span)
        d2 = norm_value(norm, (f(t0 + h0, y0 + h0 * f0) - f0) / scale) / h0
        h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100 * h0, h1, span)


class PairIntegrator:
    """Steps dy/dt = f(t, y) from (t0, y0) with an embedded pair, one attempt at a time."""

    def __init__(self, f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t0: float,
                 tableau: str | ButcherTableau, rtol: Tolerance, atol: Tolerance, options: AdaptiveOptions,
                 callbacks: Callbacks = NO_CALLBACKS, span: float = math.inf) -> None:
        tableau = require_pair(get_tableau(tableau))
        self.rtol, self.atol = check_tolerances(rtol, atol)
        self.raw, self.tableau, self.options, self.callbacks = f, tableau, options, callbacks
        self.stats = AdaptiveStats()
        self.terms = stage_terms(tableau, every_stage=True)
        self.error_weights = [(i, b - e) for i, (b, e) in enumerate(zip(tableau.b, tableau.b_hat)) if b != e]
        last = tableau.stages - 1
        self.fsal = tableau.b[last] == 0 and tableau.c[last] == 1 and tableau.a[last][:last] == tableau.b[:last]
        self.mid = midpoint_weights(tableau) if options.interp == "dense" else None
        self.order = min(tableau.order, tableau.embedded_order) + 1
        self.eval_dtype = y0.abs().dtype
        self.round = options.time_rounding(self.eval_dtype)
        self.step_t = [s for s in options.step_t if s > t0]
        self.jump_t = [s for s in options.jump_t if s > t0]
        self.t, self.y = t0, y0
        self.first = self.f(t0, y0)
        self.h = options.first_step or initial_step(self.f, t0, y0, self.first, self.order - 1, self.rtol,
                                                    self.atol, span, options.norm)
        self.previous, self.rejected_last = 1.0, False
        self.interpolant: StepInterpolant | None = None

    def f(self, t: float, y: torch.Tensor) -> torch.Tensor:
        self.stats.evaluations += 1
        return self.raw(t, y)

    def _end(self, size: float, target: float | None) -> float:
        """Where a step of `size` ends: cut at the next step_t / jump_t inside it, or at `target` (the output
        time in "step" mode) when it reaches it or nearly does."""
        end = self.t + size
        for stops in (self.step_t, self.jump_t):
            if stops and self.t < stops[0] < end:
                end = stops[0]
        if target is not None and end >= target - 1e-12 * max(1.0, abs(target)):
            return target
        return self.round(end)

    def _step(self, size: float, end: float):
        """(y_new, error estimate, stage slopes) of one step from self.t to end = self.t + size."""
        t, slopes, c = self.t, [], self.tableau.c

        def slope(i: int, state: torch.Tensor) -> torch.Tensor:
            if i == 0:
                slopes.append(self.first)
            else:
                slopes.append(self.f(nudge(end, -1, self.eval_dtype) if c[i] == 1 else t + c[i] * size, state))
            return slopes[-1]

        y_new = rk_step(slope, self.y, size, self.terms)
        error = sum(slopes[i] * (size * w) for i, w in self.error_weights)
        return y_new, error, slopes

    def attempt(self, target: float | None = None) -> bool:
        """One step attempt (landing on `target` if given and reached); True if it was accepted."""
        options = self.options
        h = min(max(self.h, options.min_step), options.max_step) if math.isfinite(self.h) else options.min_step
        if self.callbacks.step is not None:
            self.callbacks.step(self.t, self.y, h)
        end = self._end(h, target)
        size = end - self.t
        if not size > 0:
            raise RuntimeError(f"adaptive step size fell to {size:.3g} at t={self.t:g}: the solution may blow up "
                               "there (or min_step is 0 and the step underflowed)")
        y_new, error, slopes = self._step(size, end)
        with torch.no_grad():
            ratio = norm_value(options.norm, error / (self.atol + self.rtol * torch.maximum(self.y.abs(),
                                                                                           y_new.abs())))
        if not math.isfinite(ratio):
            raise ValueError(f"adaptive solve: the error estimate at t={self.t:g} is not finite; with atol = 0 a "
                             "state entry of exactly 0 makes the relative test undefined: give atol > 0")
        accepted = ratio <= 1.0 or size <= options.min_step  # h is within [min_step, max_step]
        cut = end != self.t + h
        if accepted:
            self._accept(end, size, y_new, slopes)
        else:
            if self.callbacks.reject is not None:
                self.callbacks.reject(self.t, self.y, size)
            self.stats.rejected += 1
        self.h = self._next_step(h, size, ratio, accepted, cut)
        return accepted

    def _accept(self, end: float, size: float, y_new: torch.Tensor, slopes: list[torch.Tensor]) -> None:
        if self.callbacks.accept is not None:
            self.callbacks.accept(self.t, self.y, size)
        at_jump = bool(self.jump_t) and end == self.jump_t[0]
        for stops in (self.step_t, self.jump_t):
            if stops and end >= stops[0]:
                del stops[:bisect.bisect_right(stops, end)]
        after = self.f(nudge(end, 1, self.eval_dtype), y_new) if at_jump else None
        f_end = slopes[-1] if self.fsal else after if after is not None else self.f(end, y_new)
        self.interpolant = StepInterpolant(self.t, end, self.y, y_new, self.first, f_end, slopes, self.mid)
        self.first = after if after is not None else f_end
        self.t, self.y = end, y_new
        self.stats.accepted += 1

    def _next_step(self, h: float, size: float, ratio: float, accepted: bool, cut: bool) -> float:
        options, k = self.options, self.order
        if options.controller == "integral":
            if ratio == 0:
                return size * options.ifactor
            floor = 1.0 if ratio < 1 else options.dfactor
            return size * min(options.ifactor, max(options.safety / ratio ** (1 / k), floor))
        if not accepted:
            self.rejected_last = True
            return size * max(options.dfactor, options.safety * ratio ** (-1.0 / k))
        factor = options.safety * max(ratio, 1e-10) ** (0.75 * PI_BETA / k - 1 / k) * self.previous ** (PI_BETA / k)
        factor = min(options.ifactor, max(options.dfactor, factor))
        grown = size * (min(factor, 1.0) if self.rejected_last else factor)
        self.previous, self.rejected_last = max(ratio, 1e-4), False
        return max(grown, h) if cut else grown  # a step cut short to land on a time says little


def solve_adaptive(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, times: Sequence[float],
                   tableau: str | ButcherTableau, rtol: Tolerance, atol: Tolerance, first_step: float | None = None,
                   max_steps: int = MAX_STEPS, *, options: AdaptiveOptions | None = None,
                   callbacks: Callbacks = NO_CALLBACKS) -> tuple[torch.Tensor, AdaptiveStats]:
    """States at every time of the increasing `times` (stacked along a new first dimension) and the solve's cost.

    `options` (default: `AdaptiveOptions(first_step=first_step, max_num_steps=max_steps)`, which steps onto
    every time) sets the step control and output mode. Differentiable through the accepted steps and the
    interpolants (the step sizes are treated as constants).
    """
    options = options or AdaptiveOptions(first_step=first_step, max_num_steps=max_steps)
    solver = PairIntegrator(f, y0, times[0], tableau, rtol, atol, options, callbacks, times[-1] - times[0])
    dense, states = options.interp == "dense", [y0]
    for target in times[1:]:
        attempts = 0
        while solver.t < target:
            if attempts >= options.max_num_steps:
                raise ValueError(f"adaptive solve gave up after {attempts} steps at t={solver.t:g} (step "
                                 f"{solver.h:.3g}); the problem may be stiff, or atol = 0 with a zero state: "
                                 "loosen rtol/atol, give atol > 0, raise max_num_steps, or use a fixed grid")
            solver.attempt(None if dense else target)
            attempts += 1
        states.append(solver.interpolant(target) if dense else solver.y)
    return torch.stack(states), solver.stats
