"""rknet.odeint against torchdiffeq.odeint on torchdiffeq's own test problems (written anew here)."""

import math

import pytest
import torch
from torch import nn

import rknet

torchdiffeq = pytest.importorskip("torchdiffeq")


class Constant(nn.Module):
    """y' = a + (y - (a t + b))^5, y(t) = a t + b."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.2, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(3.0, dtype=torch.float64))

    def forward(self, t, y):
        return self.a + (y - (self.a * t + self.b)) ** 5

    def exact(self, t):
        return (self.a * t + self.b).detach()[:, None]


class Sine(nn.Module):
    """y' = 2y/t + t^4 sin 2t - t^2 + 4t^3, with a closed-form solution."""

    def forward(self, t, y):
        return 2 * y / t + t ** 4 * torch.sin(2 * t) - t ** 2 + 4 * t ** 3

    def exact(self, t):
        return (-0.5 * t ** 4 * torch.cos(2 * t) + 0.5 * t ** 3 * torch.sin(2 * t) + 0.25 * t ** 2 * torch.cos(2 * t)
                - t ** 3 + 2 * t ** 4 + (math.pi - 0.25) * t ** 2)[:, None]


class Linear(nn.Module):
    """y' = A y with A = U - U^T (rotations), y(t) = exp(A t) y0."""

    def __init__(self, dim=10):
        super().__init__()
        u = 0.1 * torch.randn(dim, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        self.A = nn.Parameter(u - u.T)

    def forward(self, t, y):
        return self.A @ y

    def exact(self, t):
        y0 = torch.ones(self.A.shape[0], dtype=torch.float64)
        return torch.stack([torch.linalg.matrix_exp(self.A.detach() * s) @ y0 for s in t])


PROBLEMS = {"constant": Constant, "sine": Sine, "linear": Linear}


def problem(name, reverse=False):
    f = PROBLEMS[name]()
    t = torch.linspace(1, 8, 10, dtype=torch.float64)
    t = t.flip(0) if reverse else t
    solution = f.exact(t)
    return f, solution[0].clone(), t, solution


def relative_error(true, estimate):
    return ((true - estimate) / true).abs().max().item()


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("method", ["dopri5", "bosh3"])
@pytest.mark.parametrize("reverse", [False, True])
def test_adaptive_methods_match_torchdiffeq(name, method, reverse):
    f, y0, t, solution = problem(name, reverse)
    with torch.no_grad():
        ours = rknet.odeint(f, y0, t, method=method)
        stepped = rknet.odeint(f, y0, t, method=method, options={"interp": "step"})
        theirs = torchdiffeq.odeint(f, y0, t, method=method)
    assert ours.shape == stepped.shape == theirs.shape == solution.shape
    # both interpolate at the times of t by default (bosh3: 1e-4 error); interp="step" steps onto them instead
    assert relative_error(solution, ours) < 3e-4 and relative_error(solution, theirs) < 3e-4
    assert relative_error(solution, stepped) < 1e-5


@pytest.mark.parametrize("ours,theirs", [("euler", "euler"), ("midpoint", "midpoint"), ("rk4", "rk4"),
                                         ("rk38", "rk4")])
@pytest.mark.parametrize("options", [None, {"step_size": 7 / 90}])
def test_fixed_grid_methods_equal_torchdiffeq(ours, theirs, options):
    """Same method, same steps: the same numbers. Inside odeint, rk4 is torchdiffeq's 3/8 rule (rknet's rk38)."""
    f, y0, t, _ = problem("constant")
    with torch.no_grad():
        mine = rknet.odeint(f, y0, t, method=ours, options=options)
        reference = torchdiffeq.odeint(f, y0, t, method=theirs, options=options)
    torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-12)


def test_classic_rk4_as_a_tableau_differs_from_torchdiffeqs_rk4_by_the_discretisation_only():
    f, y0, t, solution = problem("linear")
    with torch.no_grad():
        classic = rknet.odeint(f, y0, t, method=rknet.get_tableau("rk4"), options={"step_size": 7 / 90})
        three_eighths = torchdiffeq.odeint(f, y0, t, method="rk4", options={"step_size": 7 / 90})
    assert 0 < relative_error(three_eighths, classic) < 1e-4
    assert relative_error(solution, classic) < 1e-4 and relative_error(solution, three_eighths) < 1e-4


@pytest.mark.parametrize("method,options", [("dopri5", None), ("rk4", {"step_size": 0.05})])
def test_adjoint_gradients_match_torchdiffeq_adjoint(method, options):
    f, y0, t, _ = problem("constant")
    grads = []
    for solve in (rknet.odeint_adjoint, torchdiffeq.odeint_adjoint):
        f.zero_grad()
        y = y0.clone().requires_grad_()
        solve(f, y, t, method=method, rtol=1e-9, atol=1e-9, options=options).pow(2).sum().backward()
        grads.append(torch.stack([y.grad.sum(), f.a.grad, f.b.grad]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-8)


def test_float32_and_tensor_time():
    f = Sine()
    t = torch.linspace(1, 2, 3)
    seen = []
    y = rknet.odeint(lambda s, y: seen.append(s) or f(s, y), f.exact(t[:1].double())[0].float(), t)
    assert y.dtype == torch.float32 and isinstance(seen[0], torch.Tensor) and seen[0].dtype == torch.float32
    assert relative_error(f.exact(t.double()).float(), y) < 1e-5


def test_bad_options_are_refused():
    f, y0, t, _ = problem("constant")
    with pytest.raises(ValueError, match="unknown odeint option 'grid_pionts'"):
        rknet.odeint(f, y0, t, method="euler", options={"grid_pionts": t})
    with pytest.raises(ValueError, match="step_size"):
        rknet.odeint(f, y0, t, method="euler", options={"step_size": -1})
