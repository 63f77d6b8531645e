"""Stability regions of Runge-Kutta methods: |R(z)| on a grid of the complex plane, and a membership test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rknet.methods.tableau import ButcherTableau, get_tableau

# |R(z)| may exceed 1 by rounding where it is exactly 1 (e.g. z = 0): such points count as stable.
STABILITY_TOLERANCE = 1e-6


def _interval(bounds: Sequence[float], what: str) -> tuple[float, float]:
    try:
        low, high = (float(value) for value in bounds)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must be a pair of numbers (low, high), got {bounds!r}") from error
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{what} must be finite with low < high, got ({low:g}, {high:g})")
    return low, high


def stability_grid(tableau: str | ButcherTableau, re: Sequence[float] = (-5.0, 1.0),
                   im: Sequence[float] = (-3.5, 3.5),
                   resolution: int = 400) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """|R(z)| on a `resolution` x `resolution` grid over re x im, for drawing the region |R(z)| <= 1.

    Returns (real parts, imaginary parts, |R|), three float64 tensors of shape (resolution, resolution)
    laid out like `numpy.meshgrid(re_values, im_values)`: rows run along the imaginary axis.
    """
    method = get_tableau(tableau)
    re_low, re_high = _interval(re, "re")
    im_low, im_high = _interval(im, "im")
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2 (points per axis), got {resolution!r}")
    real, imag = torch.meshgrid(torch.linspace(re_low, re_high, resolution, dtype=torch.float64),
                                torch.linspace(im_low, im_high, resolution, dtype=torch.float64),
                                indexing="xy")
    return real, imag, method.stability(torch.complex(real, imag)).abs()


def is_stable(tableau: str | ButcherTableau, z: torch.Tensor) -> torch.Tensor:
    """Whether each z = h lambda lies in the method's stability region |R(z)| <= 1 (boolean tensor)."""
    return get_tableau(tableau).stability(z).abs() <= 1 + STABILITY_TOLERANCE


@dataclass(frozen=True)
class StabilityCount:
    """How many scaled eigenvalues z = h lambda lie outside a method's stability region, and the worst one:
    what a researcher needs to judge a step's linear stability, with nothing rounded away."""

    total: int
    outside: int
    max_amplification: float  # the largest |R(z)|: above 1, that mode grows by this factor per step
    worst: complex  # the z with the largest |R(z)|
    largest: complex  # the z of largest modulus: with all inside, the one nearest to leaving as h grows

    @property
    def inside(self) -> int:
        return self.total - self.outside

    @property
    def fraction_inside(self) -> float:
        return self.inside / self.total if self.total else 1.0

    def text(self, symbol: str = "hλ") -> str:
        """`99.95 % inside, 8 of 16,384 outside; largest |R(hλ)| 2.124 at hλ = -3.31+0i`, or with none
        outside `all 4,096 inside, largest |R(hλ)| 1; largest |hλ| 2.41 at hλ = -2.41+0i`. The percentage is
        rounded down, so a single eigenvalue outside never reads as 100 %."""
        if not self.total:
            return "no eigenvalues"
        amplification = f"largest |R({symbol})| {amplification_text(self.max_amplification)}"
        if self.outside:
            return (f"{percent_down(self.inside, self.total)} % inside, {self.outside:,} of {self.total:,} outside; "
                    f"{amplification} at {symbol} = {complex_text(self.worst)}")
        return (f"all {self.total:,} inside, {amplification}; largest |{symbol}| {abs(self.largest):.4g} at "
                f"{symbol} = {complex_text(self.largest)}")


def count_unstable(tableau: str | ButcherTableau, z: torch.Tensor) -> StabilityCount:
    """Count the z = h lambda outside the method's stability region; find the one with the largest |R|
    and the one of largest modulus."""
    z = torch.as_tensor(z).reshape(-1).to(torch.complex128)
    if not z.numel():
        return StabilityCount(0, 0, 0.0, 0j, 0j)
    amplification = get_tableau(tableau).stability(z).abs()
    worst, largest = int(amplification.argmax()), int(z.abs().argmax())
    return StabilityCount(z.numel(), int((amplification > 1 + STABILITY_TOLERANCE).sum()),
                          amplification[worst].item(), complex(z[worst].item()), complex(z[largest].item()))


def percent_down(part: int, total: int, decimals: int = 2) -> str:
    """100 * part / total rounded DOWN to `decimals` places, in exact integer arithmetic (8 of 16,384
    missing gives 99.95, and 1 of a million missing gives 99.99, never 100.00)."""
    scale = 10**decimals
    hundredths = (100 * scale * part) // total
    return f"{hundredths // scale}.{hundredths % scale:0{decimals}d}" if decimals else str(hundredths)


def amplification_text(value: float) -> str:
    """|R| with 4 significant digits, more where 4 would print a value above the tolerance as <= 1."""
    for digits in range(4, 17):
        text = f"{value:.{digits}g}"
        if (float(text) > 1 + STABILITY_TOLERANCE) == (value > 1 + STABILITY_TOLERANCE):
            return text
    return repr(value)


def complex_text(z: complex) -> str:
    """`-3.214+0.05i`: four significant digits per part."""
    return f"{z.real:.4g}{z.imag:+.4g}i"


# Distinct stability functions of at most 7 stages differ at one of these points at least.
_PROBES = (-0.5 + 0.3j, 0.7 - 1.1j, -2.1 + 1.7j, 1.3 + 0.4j, -3.0 + 2.5j, 0.25j, -1.2 - 0.6j, 0.9 + 2.2j)


def group_by_stability(tableaus: Sequence[ButcherTableau]) -> list[list[ButcherTableau]]:
    """Group methods that share one stability function R(z), hence one stability region (e.g. every
    2-stage method of order 2), keeping the order of first appearance."""
    probes = torch.tensor(_PROBES, dtype=torch.complex128)
    groups: list[tuple[torch.Tensor, list[ButcherTableau]]] = []
    for tableau in tableaus:
        values = tableau.stability(probes)
        for key, members in groups:
            if torch.allclose(values, key, rtol=1e-10, atol=1e-12):
                members.append(tableau)
                break
        else:
            groups.append((values, [tableau]))
    return [members for _, members in groups]
