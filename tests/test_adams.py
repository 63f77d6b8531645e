"""The Adams solvers: torchdiffeq's explicit_adams / implicit_adams numbers, their orders, their options."""

import contextlib
import math
import warnings

import numpy as np
import pytest
import torch
import torchdiffeq
from torchdiffeq._impl.fixed_adams import _BASHFORTH_DIVISOR, _MOULTON_DIVISOR

import rknet
from rknet.solvers.adams import bashforth, moulton, solve_adams


@contextlib.contextmanager
def _nothing():
    """Warnings silenced (torchdiffeq's, and ours where the test does not expect one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


Y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)


def field(t, y):
    return torch.stack((y[1], -torch.sin(y[0]) - 0.1 * y[1] + 0.3 * torch.cos(t)))


def ours(s, y):
    return field(torch.tensor(s, dtype=torch.float64), y)


def test_weights_from_the_definition_equal_torchdiffeqs_table():
    for steps in range(1, 13):
        assert list(bashforth(steps)) == _BASHFORTH_DIVISOR[steps].tolist()
    for steps in range(2, 13):  # torchdiffeq's one-step Moulton entry (1/11) is never used
        assert list(moulton(steps)) == _MOULTON_DIVISOR[steps].tolist()


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("options", [{}, {"step_size": 0.05}, {"step_size": 0.07, "max_order": 6},
                                     {"step_size": 0.1, "max_iters": 1}])
def test_same_numbers_as_torchdiffeq(implicit, options):
    t = torch.linspace(0, 5, 11, dtype=torch.float64)
    with pytest.warns() if implicit and options.get("max_iters") == 1 else _nothing():
        result = solve_adams(ours, Y0, tuple(t.tolist()), 1e-7, 1e-9, options, implicit)
    with _nothing():
        theirs = torchdiffeq.odeint(field, Y0, t, method="implicit_adams" if implicit else "explicit_adams",
                                    options=options, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(result, theirs, rtol=0, atol=1e-14)


@pytest.mark.parametrize("implicit,max_order,order", [(False, 4, 3), (False, 5, 4), (True, 4, 4), (True, 5, 5)])
def test_convergence_order(implicit, max_order, order):
    # y' = y (1 - y) cos(t): y(t) = 1 / (1 + (1/y0 - 1) exp(-sin t)), to t = 5
    y0 = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    exact = 1 / (1 + (1 / y0 - 1) * math.exp(-math.sin(5.0)))
    steps = (50, 100, 200, 400)
    errors = [(solve_adams(lambda s, y: y * (1 - y) * math.cos(s), y0, (0.0, 5.0), 1e-13, 1e-13,
                           {"step_size": 5 / n, "max_order": max_order, "max_iters": 20}, implicit)[-1] - exact)
              .abs().max().item() for n in steps]
    assert abs(-np.polyfit(np.log(steps), np.log(errors), 1)[0] - order) < 0.2, errors


@pytest.mark.parametrize("options,match", [({"max_order": 13}, "max_order"), ({"max_iters": 0}, "max_iters"),
                                           ({"step_size": -1.0}, "step_size"), ({"order": 3}, "unknown")])
def test_bad_options_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        solve_adams(ours, Y0, (0.0, 1.0), 1e-7, 1e-9, options, True)


def test_a_max_order_below_four_warns_and_steps_the_three_eighths_rule():
    with pytest.warns(UserWarning, match="3/8 rule"):
        result = solve_adams(ours, Y0, (0.0, 0.5, 1.0), 1e-7, 1e-9, {"max_order": 3}, False)
    torch.testing.assert_close(result, rknet.integrate(ours, Y0, (0.0, 0.5, 1.0), "rk38", trajectory=True))
