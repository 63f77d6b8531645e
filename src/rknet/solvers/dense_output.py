"""Dense output: the solution between the ends of an accepted step, from what the step already computed.

For a pair whose midpoint weights are known (`MIDPOINT_WEIGHTS`: dopri5 from Shampine's dense output,
tsit5 from Tsitouras', bs3 and torchdiffeq's low-order pairs from their midpoint stage), the interpolant is
the quartic through y0, y_mid = y0 + h sum_i m_i k_i and y1 with slopes f0 and f1 at the ends (no extra
evaluation; torchdiffeq's interpolant). For any other pair it is the cubic Hermite polynomial through
(y0, f0) and (y1, f1). `linear` and `hermite` are the fixed-grid interpolants of torchdiffeq's `interp`
option. Each polynomial is evaluated at `x = (t - t0) / h` in [0, 1]; x = 0 and x = 1 give y0 and y1 exactly.
"""

from __future__ import annotations

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
    "bs3": (0.0, 0.5, 0.0, 0.0),
    "fehlberg2": (0.0, 0.5, 0.0),
    "adaptive_heun": (0.5, 0.0),
}


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
    """The dense output of one accepted step from t0 to t1 = t0 + h; its polynomial is built on first use."""

    def __init__(self, t0: float, t1: float, y0: torch.Tensor, y1: torch.Tensor, f0: torch.Tensor,
                 f1: torch.Tensor, y_mid: torch.Tensor | None = None) -> None:
        self.t0, self.t1, self.y0, self.y1, self.f0, self.f1, self.y_mid = t0, t1, y0, y1, f0, f1, y_mid
        self.coefficients: list[torch.Tensor] | None = None

    def __call__(self, t: float) -> torch.Tensor:
        """The interpolated state at t (t0 <= t <= t1 expected)."""
        if t == self.t1:
            return self.y1
        if t == self.t0:
            return self.y0
        if self.coefficients is None:  # built with a graph even when first used under no_grad (event bisection)
            h = self.t1 - self.t0
            with torch.enable_grad():
                self.coefficients = (quartic(self.y0, self.y1, self.y_mid, self.f0 * h, self.f1 * h)
                                     if self.y_mid is not None else cubic(self.y0, self.y1, self.f0 * h, self.f1 * h))
        return horner(self.coefficients, (t - self.t0) / (self.t1 - self.t0))


def quartic(y0, y1, y_mid, d0, d1) -> list[torch.Tensor]:
    """Coefficients (x^0 .. x^4) of p with p(0) = y0, p(1) = y1, p(1/2) = y_mid, p'(0) = d0, p'(1) = d1."""
    c4 = 2 * (d1 - d0) - 8 * (y1 + y0) + 16 * y_mid
    c3 = 5 * d0 - 3 * d1 + 18 * y0 + 14 * y1 - 32 * y_mid
    c2 = d1 - 4 * d0 - 11 * y0 - 5 * y1 + 16 * y_mid
    return [y0, d0, c2, c3, c4]


def cubic(y0, y1, d0, d1) -> list[torch.Tensor]:
    """Coefficients (x^0 .. x^3) of the Hermite cubic with p(0) = y0, p(1) = y1, p'(0) = d0, p'(1) = d1."""
    jump = y1 - y0
    return [y0, d0, 3 * jump - 2 * d0 - d1, d0 + d1 - 2 * jump]


def horner(coefficients: list[torch.Tensor], x: float) -> torch.Tensor:
    """sum_k coefficients[k] x^k."""
    total = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        total = torch.add(c, total, alpha=x)
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
    h = t1 - t0
    return horner(cubic(y0, y1, f0 * h, f1 * h), (t - t0) / h)
