"""Diagonally implicit methods: orders, the stiff problem, gradients by the implicit function theorem, memory."""

import math

import numpy as np
import pytest
import torch

import rknet
from rknet.analysis.memory import held_for_backward
from rknet.blocks.implicit import ImplicitBlock
from rknet.layers import DoubleSym, Single
from rknet.methods.tableau import IMPLICIT_TABLEAUS
from rknet.solvers.newton_krylov import ImplicitSolveError, NewtonKrylov

STEPS = (8, 16, 32, 64, 128)
TOLERANCE = 0.15
LAMBDA = 1000.0


def slope(steps, errors):
    """The fitted order, over the errors above round-off (gauss3, order 6, reaches it within STEPS)."""
    steps, errors = zip(*[(h, e) for h, e in zip(steps, errors) if e > 1e-13])
    return np.polyfit(np.log(steps), np.log(errors), 1)[0]


def tight():
    return NewtonKrylov(tol=1e-13, forcing=1e-6)


def slow_for(methods, *slow):
    """The methods as parameters, those in `slow` marked slow (their stage solves take 3-7 s here)."""
    return [pytest.param(method, marks=pytest.mark.slow) if method in slow else method for method in methods]


@pytest.mark.parametrize("method", slow_for(IMPLICIT_TABLEAUS, "sdirk3"))
def test_order_on_a_linear_problem(method):
    a = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) / 2
    y0 = torch.randn(4, dtype=torch.float64)
    exact = torch.linalg.matrix_exp(a) @ y0
    errors = [(rknet.integrate(lambda t, y: a @ y, y0, rknet.uniform_grid(n), method, solver=tight()) - exact)
              .norm().item() for n in STEPS]
    assert abs(slope([1 / n for n in STEPS], errors) - rknet.get_tableau(method).order) < TOLERANCE, errors


@pytest.mark.parametrize("method", slow_for(IMPLICIT_TABLEAUS, "sdirk2", "sdirk3"))
def test_order_on_a_nonlinear_nonautonomous_problem(method):
    # y' = y (1 - y) cos(t): y(t) = 1 / (1 + (1/y0 - 1) exp(-sin t))
    y0 = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    exact = 1 / (1 + (1 / y0 - 1) * math.exp(-math.sin(2.0)))
    errors = [(rknet.integrate(lambda t, y: y * (1 - y) * math.cos(t), y0, rknet.uniform_grid(n, 2.0), method,
                               solver=tight()) - exact).abs().max().item() for n in STEPS]
    assert abs(slope([2 / n for n in STEPS], errors) - rknet.get_tableau(method).order) < TOLERANCE, errors


def stiff(y0, steps, method, final=1.0, trajectory=False):
    """y' = -1000 (y - cos t) from y(0) = y0; and its exact value at `final`."""
    ys = rknet.integrate(lambda t, y: -LAMBDA * (y - math.cos(t)), torch.tensor([y0], dtype=torch.float64),
                         rknet.uniform_grid(steps, final), method, trajectory=trajectory, solver=tight())
    smooth = (LAMBDA**2 * math.cos(final) + LAMBDA * math.sin(final)) / (LAMBDA**2 + 1)
    return ys, smooth + (y0 - LAMBDA**2 / (LAMBDA**2 + 1)) * math.exp(-LAMBDA * final)


def test_stiff_problem_at_h_005_rk4_blows_up_implicit_methods_stay_bounded():
    explicit, _ = stiff(0.0, 20, "rk4")
    assert not explicit.abs().item() < 1e50
    for method in ("backward_euler", "trapezoid", "sdirk2", "sdirk3"):
        states, exact = stiff(0.0, 20, method, trajectory=True)
        if method != "trapezoid":  # L-stable: the initial layer is damped at once
            assert states.abs().max().item() <= 1.1, method  # SDIRK2 overshoots to 1.08 at t = h
            assert abs(states[-1].item() - exact) < 2e-5, method
    # trapezoid is A- but not L-stable: R(-50) = -24/26, so the start's jump of 1 oscillates about the
    # solution and decays only slowly: bounded by 2, still 0.2 off at t = 1
    states, exact = stiff(0.0, 20, "trapezoid", trajectory=True)
    assert states.abs().max().item() <= 2.0
    assert 0.1 < abs(states[-1].item() - exact) < 0.5


@pytest.mark.parametrize("method, low, high", [("backward_euler", 0.85, 1.15), ("trapezoid", 1.85, 2.15),
                                               pytest.param("sdirk2", 1.35, 2.15, marks=pytest.mark.slow),
                                               pytest.param("sdirk3", 1.35, 3.15, marks=pytest.mark.slow)])
def test_stiff_problem_converges_as_h_shrinks(method, low, high):
    """h = 1/40 .. 1/320 (h lambda = 25 .. 3): backward Euler and trapezoid at their orders; SDIRK2/3 at a
    reduced order (about 1.5, stage order 1: the Prothero-Robinson order reduction), measured."""
    steps = (40, 80, 160, 320)
    errors = [abs(value.item() - exact) for value, exact in (stiff(1.0, n, method) for n in steps)]
    assert low < slope([1 / n for n in steps], errors) < high, errors


@pytest.mark.slow  # 4-5 s each
@pytest.mark.parametrize("method", ["sdirk2", "sdirk3"])
def test_stiff_problem_full_order_once_steps_resolve_the_time_scale(method):
    """h lambda = 0.5 .. 0.0625 on [0, 0.025]: the full order comes back."""
    steps = (50, 100, 200, 400)
    errors = [abs(value.item() - exact) for value, exact in (stiff(1.0, n, method, final=0.025) for n in steps)]
    assert abs(slope([1 / n for n in steps], errors) - rknet.get_tableau(method).order) < TOLERANCE, errors


def dense_block(method="sdirk2", tol=1e-13, steps=(0, 0.5, 1.0), norm=None, **solver):
    layer = DoubleSym(3, dims=0, activation="tanh", norm=norm)
    block = ImplicitBlock(layer, method, steps, solver=NewtonKrylov(tol=tol, **solver)).double()
    with torch.no_grad():
        for value in block.controls.values():
            value.add_(0.5 * torch.randn_like(value))
    return block


@pytest.mark.slow  # 5-7 s each; test_gradient_needs_no_unrolling_and_matches_the_unrolled_one stays fast
@pytest.mark.parametrize("method", ["sdirk2", "trapezoid"])
def test_gradcheck_of_a_dirk_block(method):
    block = dense_block(method, forcing=1e-8)
    y = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    names = [f"controls.{name}" for name in block.controls]
    controls = [value.detach().clone().requires_grad_() for value in block.controls.values()]

    def run(y, *controls):
        return torch.func.functional_call(block, dict(zip(names, controls)), (y,))

    assert len(controls[0]) == 3  # every control time reaches the output, through implicit stages too
    # repeated backward passes differ by round-off (~1e-16), hence nondet_tol
    assert torch.autograd.gradcheck(run, (y, *controls), atol=1e-7, nondet_tol=1e-12)
    assert block.report.adjoint_stages > 0


def test_gradient_needs_no_unrolling_and_matches_the_unrolled_one():
    """The implicit function theorem's gradient equals that of backward Euler solved in closed form."""
    a = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    y0 = torch.randn(3, dtype=torch.float64, requires_grad=True)
    solved = rknet.integrate(lambda t, y: a @ y, y0, [0, 0.3, 0.6], "backward_euler", solver=tight())
    grads = torch.autograd.grad(solved.square().sum(), (a, y0))
    step = torch.linalg.inv(torch.eye(3, dtype=torch.float64) - 0.3 * a)
    closed = step @ (step @ y0)
    expected = torch.autograd.grad(closed.square().sum(), (a, y0))
    for ours, reference in zip(grads, expected):
        assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-11)


def test_memory_held_for_backward_does_not_grow_with_iterations():
    layer = DoubleSym(4, dims=2, activation="tanh", norm="tv")
    x = torch.randn(2, 4, 8, 8)
    held, iterations = [], []
    for tol, forcing in ((1e-2, 0.5), (1e-6, 1e-4)):
        torch.manual_seed(0)
        block = ImplicitBlock(layer, "sdirk2", (0, 0.5, 1.0), solver=NewtonKrylov(tol=tol, forcing=forcing))
        held.append(held_for_backward(lambda block=block: block(x)))
        iterations.append(block.report.newton + block.report.krylov)
    assert iterations[1] >= 2 * iterations[0] > 0
    assert held[0] == held[1]
    torch.manual_seed(0)
    explicit = rknet.DynamicBlock(layer, "rk4", (0, 0.5, 1.0))
    assert held[0] <= 1.5 * held_for_backward(lambda: explicit(x))  # 2 stages + states vs rk4's 4 stages


def test_a_solve_that_does_not_converge_raises():
    layer = DoubleSym(4, dims=2, activation="tanh", norm="tv")
    block = ImplicitBlock(layer, "sdirk2", (0, 2.0, 4.0), solver=NewtonKrylov(max_newton=2))
    with pytest.raises(ImplicitSolveError, match="did not converge in 2 iterations"):
        block(torch.randn(2, 4, 8, 8))


def test_network_spec_cli_and_errors(tmp_path):
    spec = rknet.NetworkSpec(in_channels=1, widths=(4, 4), method="sdirk3", t_states=(0, 1, 2))
    net = rknet.ODENet.from_spec(spec)
    assert isinstance(net.blocks[0], ImplicitBlock)
    assert spec.to_dict()["method"] == "sdirk3"
    assert rknet.NetworkSpec.from_dict(spec.to_dict()) == spec
    assert net(torch.randn(2, 1, 6, 6)).shape == (2, 10)
    lobatto = {"name": "lobatto3a", "a": [[0, 0, 0], ["5/24", "1/3", "-1/24"], ["1/6", "2/3", "1/6"]],
               "b": ["1/6", "2/3", "1/6"], "c": [0, "1/2", 1]}
    with pytest.raises(ValueError, match="fully implicit with a singular A"):
        rknet.NetworkSpec(method=lobatto)
    with pytest.raises(ValueError, match="does not support the norm 'batch'"):
        ImplicitBlock(Single(3, dims=0, norm="batch"), "sdirk2", (0, 1))
    with pytest.raises(ValueError, match="they accept backprop"):
        rknet.NetworkSpec(method="backward_euler", gradient="checkpoint")
    assert "sdirk2" in rknet.METHODS
