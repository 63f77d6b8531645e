"""Dense output: the solution between the ends of an accepted step, from what the step already computed.

For a pair whose midpoint weights are known (`MIDPOINT_WEIGHTS`: dopri5 from Shampine's dense output,
tsit5 from Tsitouras', dopri8 torchdiffeq's), the interpolant is
the quartic through y0, y_mid = y0 + h sum_i m_i k_i and y1 with slopes f0 and f1 at the ends (no extra
evaluation; torchdiffeq's interpolant). For any other pair it is the cubic Hermite polynomial through
(y0, f0) and (y1, f1). `linear` and `hermite` are the fixed-grid interpolants of torchdiffeq's `interp`
option. Each polynomial is evaluated at `x = (t - t0) / h` in [0, 1] as a weighted sum of the step's vectors
(nothing is fitted until an output time falls in the step); t = t0 and t = t1 give y0 and y1 exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction as F

import torch

from rknet.methods.tableau import ButcherTableau, get_tableau


def _tsit5_midpoint() -> tuple[float, ...]:
    """Tsitouras's (2011) dense-output weights b_i(theta) at theta = 1/2, times theta."""
    x = 0.5
    return (-1.0530884977290216 * x * (x - 1.329989018975412) * (x * x - 1.4364028541716351 * x + 0.7139816917074209),
            0.1017 * x * x * (x * x - 2.1966568338249754 * x + 1.2949852507374631),
            2.490627285651252793 * x * x * (x * x - 2.38535645472061657 * x + 1.57803468208092486),
            -16.54810288924490272 * (x - 1.21712927295533244) * (x - 0.61620406037800089) * x * x,
            47.37952196281928122 * (x - 1.203071208372362603) * (x - 0.658047292653547382) * x * x,
            -34.87065786149660974 * (x - 1.2) * (x - 2 / 3) * x * x,
            2.5 * (x - 1) * (x - 0.6) * x * x)


#: Weights m_i of the stage slopes k_i giving y(t0 + h/2) ~ y0 + h sum_i m_i k_i, by tableau name.
MIDPOINT_WEIGHTS: dict[str, tuple[float, ...]] = {
    "dopri5": tuple(float(w / 2) for w in (F(6025192743, 30085553152), F(0), F(51252292925, 65400821598),
                                           F(-2691868925, 45128329728), F(187940372067, 1594534317056),
                                           F(-1776094331, 19743644256), F(11237099, 235043384))),
    "tsit5": _tsit5_midpoint(),
    # torchdiffeq's dopri8 midpoint weights (over its 13 stages and the 14th, f at the new state): without
    # them an 8th-order pair falls back to the Hermite cubic (measured 1.5e-4 error against 4.2e-6).
    "dopri8": (0.04103130360739393, 0.0, 0.0, 0.0, 0.0, 0.05100562801991382, 0.2388930677412202,
               0.3096870143996103, -0.2172325471755352, 0.07833405679331928, -0.0018614369715579948,
               0.007072844202678841, 0.00690847373200576, -0.013838404349047373),
}
# torchdiffeq also fits its quartic to bosh3, fehlberg2 and adaptive_heun, with a midpoint from one midpoint
# or Euler stage (second or first order); the Hermite cubic through both ends is more accurate for them
# (bs3 on a damped oscillator, 201 outputs, rtol 1e-7: 1.1e-6 against 3.7e-5), at no extra evaluation.


def midpoint_weights(tableau: ButcherTableau) -> tuple[float, ...] | None:
    """The midpoint weights of `tableau` (found by its a, b and c, whatever its name and b_hat: they depend
    on the propagated solution only), or None: then the Hermite cubic is used."""
    for name, weights in MIDPOINT_WEIGHTS.items():
        try:
            preset = get_tableau(name)
        except ValueError:
            continue
        if (preset.a, preset.b, preset.c) == (tableau.a, tableau.b, tableau.c) and len(weights) <= tableau.stages:
            return weights
    return None


class StepInterpolant:
    """The dense output of one accepted step from t0 to t1 = t0 + h, from the step's own vectors: y0, y1, the
    slopes f0 and f1 at its ends, and with midpoint weights m the stage slopes giving y_mid. Evaluated as
    one weighted sum of those vectors (the polynomial's basis functions at x), a handful of tensor ops."""

    def __init__(self, t0: float, t1: float, y0: torch.Tensor, y1: torch.Tensor, f0: torch.Tensor,
                 f1: torch.Tensor, slopes: Sequence[torch.Tensor] = (), mid: Sequence[float] | None = None) -> None:
        self.t0, self.t1, self.y0, self.y1, self.f0, self.f1 = t0, t1, y0, y1, f0, f1
        self.slopes, self.mid = slopes, mid

    def __call__(self, t: float) -> torch.Tensor:
        """The interpolated state at t (t0 <= t <= t1 expected)."""
        if t == self.t1:
            return self.y1
        if t == self.t0:
            return self.y0
        h = self.t1 - self.t0
        x = (t - self.t0) / h
        if self.mid is None:
            return weighted_sum([(self.y0, 1 - x * x * (3 - 2 * x)), (self.y1, x * x * (3 - 2 * x)),
                                 (self.f0, h * x * (1 - x) ** 2), (self.f1, h * x * x * (x - 1))])
        w_mid = 16 * x * x * (1 - x) ** 2
        terms = [(self.y0, 1 - x * x * (11 - 18 * x + 8 * x * x) + w_mid),
                 (self.y1, x * x * (-5 + 14 * x - 8 * x * x)),
                 (self.f0, h * x * (1 - 4 * x + 5 * x * x - 2 * x ** 3)),
                 (self.f1, h * x * x * (1 - 3 * x + 2 * x * x))]
        terms += [(k, h * w_mid * m) for k, m in zip(self.slopes, self.mid) if m != 0]
        return weighted_sum(terms)


def weighted_sum(terms: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """sum_j w_j v_j over (v_j, w_j), each distinct tensor once (f0 and f1 are often stage slopes too)."""
    merged: dict[int, list] = {}
    for vector, weight in terms:
        merged.setdefault(id(vector), [vector, 0.0])[1] += weight
    (first, w), *rest = merged.values()
    total = first * w
    for vector, weight in rest:
        total = total.add(vector, alpha=weight)
    return total


def linear(t0: float, t1: float, y0: torch.Tensor, y1: torch.Tensor, t: float) -> torch.Tensor:
    """The straight line through (t0, y0) and (t1, y1) at t (exactly y0 / y1 at the ends)."""
    if t == t0:
        return y0
    if t == t1:
        return y1
    return torch.add(y0, y1 - y0, alpha=(t - t0) / (t1 - t0))


def hermite(t0: float, t1: float, y0: torch.Tensor, y1: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor,
            t: float) -> torch.Tensor:
    """The cubic Hermite polynomial through (t0, y0, f0) and (t1, y1, f1) at t."""
    return StepInterpolant(t0, t1, y0, y1, f0, f1)(t)
