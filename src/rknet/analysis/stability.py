"""Stability regions of Runge-Kutta methods: |R(z)| on a grid of the complex plane, and a membership test."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..tableau import ButcherTableau, get_tableau

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
