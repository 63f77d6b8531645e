"""`scipy_solver` (rknet.solvers.scipy_solver): SciPy's solve_ivp's numbers, torchdiffeq's, no gradients."""

import numpy as np
import pytest
import torch
import torchdiffeq
from scipy.integrate import solve_ivp

from rknet.solvers.scipy_solver import solve_scipy

Y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
TIMES = tuple(np.linspace(0, 5, 11).tolist())


def field(t, y):
    return torch.stack((y[1], -torch.sin(y[0]) - 0.1 * y[1] + 0.3 * torch.cos(t)))


def ours(s, y):
    return field(torch.tensor(s, dtype=y.dtype), y)


@pytest.mark.parametrize("options", [{}, {"solver": "RK45"}, {"solver": "RK23"}, {"solver": "DOP853", "max_step": 0.1},
                                     {"solver": "Radau"}, {"solver": "BDF"}, {"solver": "LSODA", "min_step": 1e-9}])
def test_same_numbers_as_solve_ivp_and_torchdiffeq(options):
    result = solve_scipy(ours, Y0, TIMES, 1e-6, 1e-8, options)
    extra = {k: v for k, v in (("max_step", options.get("max_step")), ("min_step", options.get("min_step"))) if v}
    direct = solve_ivp(lambda t, y: ours(t, torch.tensor(y)).numpy(), (0.0, 5.0), Y0.numpy(), t_eval=TIMES,
                       method=options.get("solver", "LSODA"), rtol=1e-6, atol=1e-8, **extra)
    torch.testing.assert_close(result, torch.tensor(direct.y.T), rtol=0, atol=0)
    theirs = torchdiffeq.odeint(field, Y0, torch.tensor(TIMES, dtype=torch.float64), method="scipy_solver",
                                options=options, rtol=1e-6, atol=1e-8)
    # LSODA through torchdiffeq takes other steps than solve_ivp called directly (4e-6 apart here, at rtol 1e-6);
    # every other method gives torchdiffeq's numbers exactly.
    lsoda = options.get("solver", "LSODA") == "LSODA"
    torch.testing.assert_close(result, theirs, rtol=0, atol=1e-5 if lsoda else 0)


def test_no_gradient_and_y0s_dtype():
    y0 = Y0.float().requires_grad_()
    result = solve_scipy(ours, y0, TIMES, 1e-6, 1e-8, {"solver": "RK45"})
    assert result.dtype == torch.float32 and not result.requires_grad and result.shape == (11, 2)
    theirs = torchdiffeq.odeint(field, y0, torch.tensor(TIMES), method="scipy_solver", options={"solver": "RK45"})
    assert not theirs.requires_grad


def test_per_component_tolerances_and_state_shape():
    y0 = torch.ones(2, 3, dtype=torch.float64)
    atol = torch.full((2, 3), 1e-9, dtype=torch.float64)
    result = solve_scipy(lambda s, y: -y, y0, (0.0, 1.0), 1e-10, atol, {"solver": "DOP853"})
    torch.testing.assert_close(result[-1], torch.full((2, 3), np.exp(-1.0), dtype=torch.float64), rtol=1e-8, atol=0)


def test_one_time_returns_y0_and_failures_and_odd_options_are_reported():
    torch.testing.assert_close(solve_scipy(ours, Y0, (0.0,), 1e-6, 1e-8), Y0[None])
    with pytest.raises(RuntimeError, match="scipy_solver .BDF. failed"):
        solve_scipy(lambda s, y: y ** 2, torch.ones(1, dtype=torch.float64), (0.0, 2.0), 1e-6, 1e-8, {"solver": "BDF"})
    with pytest.warns(UserWarning, match="unexpected options"):
        solve_scipy(ours, Y0, TIMES, 1e-6, 1e-8, {"solver": "RK45", "step_size": 0.1})
