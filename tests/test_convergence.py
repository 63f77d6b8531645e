"""Convergence order of every preset: the slope of log(error) against log(h)."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import rknet
from rknet.layers import Single

STEPS = (8, 16, 32, 64, 128)
TOLERANCE = 0.15
# Fifth-order methods reach round-off (~1e-15) at 128 steps on the nonlinear and block problems, and tsit5
# is pre-asymptotic at 8: their fixed-grid order is measured on the linear problem only.
UP_TO_FOURTH = tuple(m for m in rknet.TABLEAUS if rknet.get_tableau(m).order <= 4)


def observed_order(errors, steps=STEPS):
    h = [1.0 / n for n in steps]
    slope, _ = np.polyfit(np.log(h), np.log(errors), 1)
    return slope


def random_matrix(n=4, scale=1.0, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, n, generator=generator, dtype=torch.float64) / math.sqrt(n)


@pytest.mark.parametrize("method", rknet.TABLEAUS)
def test_linear_ode_against_matrix_exponential(method):
    order = rknet.get_tableau(method).order
    a = random_matrix(scale=1.0 if order <= 5 else 12.0)  # dopri8 would reach round-off within STEPS at 1
    y0 = torch.randn(4, dtype=torch.float64)
    exact = torch.linalg.matrix_exp(a) @ y0
    errors = []
    for n in STEPS:
        y = rknet.integrate(lambda t, y: a @ y, y0, rknet.uniform_grid(n), method=method)
        errors.append((y - exact).norm().item())
    assert abs(observed_order(errors) - order) < TOLERANCE, errors


@pytest.mark.parametrize("method", UP_TO_FOURTH)
def test_nonlinear_nonautonomous_ode_with_known_solution(method):
    # y' = y (1 - y) cos(t): y(t) = 1 / (1 + (1/y0 - 1) exp(-sin t))
    y0 = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    final = 2.0
    exact = 1 / (1 + (1 / y0 - 1) * math.exp(-math.sin(final)))
    errors = []
    for n in STEPS:
        y = rknet.integrate(lambda t, y: y * (1 - y) * math.cos(t), y0, rknet.uniform_grid(n, final),
                            method=method)
        errors.append((y - exact).abs().max().item())
    steps = [final / n for n in STEPS]
    slope, _ = np.polyfit(np.log(steps), np.log(errors), 1)
    assert abs(slope - rknet.get_tableau(method).order) < TOLERANCE, errors


def test_nonuniform_grid_converges_at_full_order():
    a = random_matrix()
    y0 = torch.randn(4, dtype=torch.float64)
    exact = torch.linalg.matrix_exp(a) @ y0
    errors = []
    for n in STEPS:
        uniform = torch.linspace(0, 1, n + 1, dtype=torch.float64)
        grid = uniform + 0.3 * torch.sin(math.pi * uniform) / n  # smoothly varying step sizes
        y = rknet.integrate(lambda t, y: a @ y, y0, grid, method="rk4")
        errors.append((y - exact).norm().item())
    assert abs(observed_order(errors) - 4) < TOLERANCE


def dense_block(method, n, t_controls=None):
    layer = Single(4, dims=0, activation="identity", norm=None)
    return rknet.DynamicBlock(layer, method, rknet.uniform_grid(n), t_controls).double()


@pytest.mark.parametrize("method", UP_TO_FOURTH)
def test_block_with_constant_weights(method):
    # f(y) = K y + b with the same K at every control time: y(1) = e^K y0 + (e^K - I) K^-1 b.
    kernel, bias = random_matrix(), torch.randn(4, dtype=torch.float64)
    y0 = torch.randn(3, 4, dtype=torch.float64)
    expm = torch.linalg.matrix_exp(kernel)
    exact = y0 @ expm.T + torch.linalg.solve(kernel, (expm - torch.eye(4, dtype=torch.float64)) @ bias)
    errors = []
    for n in STEPS:
        block = dense_block(method, n)
        with torch.no_grad():
            block.controls["K"].copy_(kernel.expand_as(block.controls["K"]))
            block.controls["b"].copy_(bias.expand_as(block.controls["b"]))
            errors.append((block(y0) - exact).norm().item())
    assert abs(observed_order(errors) - rknet.get_tableau(method).order) < TOLERANCE, errors


def piecewise_linear_reference(kernels, t_controls, y0):
    """y' = K(t) y with K piecewise linear, solved piece by piece by scipy's DOP853 at tight tolerance."""
    y = y0.numpy()
    for k in range(len(t_controls) - 1):
        left, right = t_controls[k], t_controls[k + 1]
        k0, k1 = kernels[k].numpy(), kernels[k + 1].numpy()

        def rhs(t, y, left=left, right=right, k0=k0, k1=k1):
            w = (t - left) / (right - left)
            return ((1 - w) * k0 + w * k1) @ y

        y = solve_ivp(rhs, (left, right), y, method="DOP853", rtol=1e-13, atol=1e-14).y[:, -1]
    return torch.from_numpy(y)


@pytest.mark.parametrize("method", UP_TO_FOURTH)
def test_block_with_linearly_interpolated_weights_on_state_times(method):
    t_controls = (0.0, 0.25, 0.5, 1.0)
    kernels = [random_matrix(seed=k) for k in range(4)]
    y0 = torch.randn(4, dtype=torch.float64)
    exact = piecewise_linear_reference(kernels, t_controls, y0)
    errors = []
    for n in STEPS:
        block = dense_block(method, n, t_controls)
        with torch.no_grad():
            block.controls["K"].copy_(torch.stack(kernels))
            block.controls["b"].zero_()
            errors.append((block(y0[None])[0] - exact).norm().item())
    assert abs(observed_order(errors) - rknet.get_tableau(method).order) < TOLERANCE, errors


def test_knot_inside_a_step_warns_and_rk4_drops_to_second_order():
    with pytest.warns(rknet.GridWarning, match="down to order 2"):
        dense_block("rk4", 2, (0.0, 0.3, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dense_block("heun", 2, (0.0, 0.3, 1.0))  # order 2 loses nothing: no warning
        dense_block("rk4", 4, (0.0, 0.5, 1.0))  # knot on a state time: no warning


def test_knots_inside_every_step_make_rk4_second_order():
    """Controls at step midpoints (a kink inside every step): local error O(h^3), global O(h^2)."""
    base, wave = random_matrix(seed=1), random_matrix(seed=2)
    y0 = torch.randn(4, dtype=torch.float64)
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rknet.GridWarning)
        for n in STEPS:
            t_controls = (0.0, *((k + 0.5) / n for k in range(n)), 1.0)
            kernels = [base + math.sin(2 * math.pi * t) * wave for t in t_controls]
            exact = piecewise_linear_reference(kernels, t_controls, y0)
            block = dense_block("rk4", n, t_controls)
            with torch.no_grad():
                block.controls["K"].copy_(torch.stack(kernels))
                block.controls["b"].zero_()
                errors.append((block(y0[None])[0] - exact).norm().item())
    assert abs(observed_order(errors) - 2) < TOLERANCE, errors
