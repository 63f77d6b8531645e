"""Every preset tableau checked against nodepy, an independent peer (Ketcheson et al.'s package for the
analysis of numerical ODE solvers): its order, its embedded order and its stability function R(z) must be
what nodepy computes from the same coefficients, not only what rknet's own order-condition count says."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rknet.methods.presets import IMPLICIT_PRESETS, PRESETS
from rknet.methods.tableau import get_tableau

runge_kutta = pytest.importorskip("nodepy.runge_kutta_method")

SAMPLE_Z = (-1 + 0.5j, -3.0, 0.5j, -0.2 - 2j, 0.3 + 0.1j)
SLOW = {"dopri8"}  # nodepy takes 10-25 s on the 13-stage eighth-order pair (its order and its R(z))


def peer(tableau, weights):
    """nodepy's method for (A, weights): the explicit class for explicit tableaus (faster order checks)."""
    kind = runge_kutta.ExplicitRungeKuttaMethod if tableau.explicit else runge_kutta.RungeKuttaMethod
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kind(np.array(tableau.a, dtype=float), np.array(weights, dtype=float))


def names():
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
            for name in sorted(PRESETS) + sorted(IMPLICIT_PRESETS)]


@pytest.mark.parametrize("name", names())
def test_order_and_embedded_order_agree_with_nodepy(name):
    tableau = get_tableau(name)
    assert tableau.order == peer(tableau, tableau.b).order(tol=1e-12)
    if tableau.b_hat is not None:
        assert tableau.embedded_order == peer(tableau, tableau.b_hat).order(tol=1e-12)


@pytest.mark.parametrize("name", names())
def test_stability_function_agrees_with_nodepy(name):
    tableau = get_tableau(name)
    numerator, denominator = peer(tableau, tableau.b).stability_function()
    for z in SAMPLE_Z:
        expected = complex(numerator(z)) / complex(denominator(z))
        assert tableau.stability(z) == pytest.approx(expected, rel=1e-12, abs=1e-12), z
