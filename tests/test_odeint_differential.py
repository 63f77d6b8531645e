"""Differential tests: `rknet.odeint` and `torchdiffeq.odeint` called on the same Hypothesis-generated problems
(method, tolerances, dtype, direction, state shape, adjoint on or off) give the same results within the
methods' tolerances and the same gradients.

`METHODS` maps torchdiffeq's name to the name rknet.odeint takes today and whether the method is adaptive; a
name rknet.odeint learns later goes in as a new row (or its rknet name becomes torchdiffeq's)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import rknet

torchdiffeq = __import__("pytest").importorskip("torchdiffeq")
from torchdiffeq._impl.odeint import SOLVERS  # noqa: E402  the installed torchdiffeq's methods

# torchdiffeq name -> (rknet.odeint name, adaptive), for the methods the installed torchdiffeq has (0.2.5: no tsit5)
METHODS = {"dopri5": ("dopri5", True), "tsit5": ("tsit5", True), "bosh3": ("bosh3", True),
           "dopri8": ("dopri8", True), "fehlberg2": ("fehlberg2", True), "adaptive_heun": ("heun_euler", True),
           "euler": ("euler", False), "midpoint": ("midpoint", False), "rk4": ("rk38", False),
           "heun3": ("heun3", False), "heun2": ("heun", False)}
METHODS = {name: row for name, row in METHODS.items() if name in SOLVERS}
ADAPTIVE = sorted(name for name, (_, adaptive) in METHODS.items() if adaptive)
FIXED = sorted(name for name, (_, adaptive) in METHODS.items() if not adaptive)
SHAPES = st.sampled_from([(2,), (3, 2), (2, 1, 3)])
DTYPES = st.sampled_from([torch.float32, torch.float64])
EXAMPLES = {"fixed": 30, "adaptive": 20, "fixed_gradients": 15, "adaptive_gradients": 10}


class Field(nn.Module):
    """dy/dt = -a y + b sin(roll(y)) + 0.3 cos(t): nonlinear, non-autonomous, coupling the last dimension."""

    def __init__(self, dtype):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.5, 0.8], dtype=dtype))

    def forward(self, t, y):
        return -self.theta[0] * y + self.theta[1] * torch.sin(y.roll(1, -1)) + 0.3 * torch.cos(t)


def problem(shape, dtype, reverse, seed, points=6):
    y0 = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    t = torch.linspace(0.0, 2.0, points, dtype=dtype)
    return Field(dtype), y0, (t.flip(0) if reverse else t)


def both(name, f, y0, t, adjoint=False, **kwargs):
    ours_name = METHODS[name][0]
    ours = (rknet.odeint_adjoint if adjoint else rknet.odeint)(f, y0, t, method=ours_name, **kwargs)
    theirs = (torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint)(f, y0, t, method=name, **kwargs)
    return ours, theirs


def gradients(name, f, y0, t, adjoint, **kwargs):
    """d<y(t), w>/d(y0, theta) through each library."""
    results = []
    for solution in both(name, f, y0.requires_grad_(), t, adjoint, **kwargs):
        weight = torch.cos(torch.arange(solution.numel(), dtype=solution.dtype)).view_as(solution)
        results.append(torch.cat([g.flatten() for g in torch.autograd.grad((solution * weight).sum(),
                                                                         (y0, f.theta))]))
    return results


def agree(ours, theirs, scale):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= scale, ((ours - theirs).abs().max().item(), scale)


def round_off(dtype):
    return 200 * torch.finfo(dtype).eps


@settings(max_examples=EXAMPLES["fixed"], deadline=None)
@given(st.sampled_from(FIXED), SHAPES, DTYPES, st.booleans(), st.integers(0, 999))
def test_fixed_grid_methods_give_torchdiffeqs_numbers(name, shape, dtype, reverse, seed):
    f, y0, t = problem(shape, dtype, reverse, seed, points=11)
    with torch.no_grad():
        ours, theirs = both(name, f, y0, t)
    agree(ours, theirs, round_off(dtype) * (1 + theirs.abs().max().item()))


@settings(max_examples=EXAMPLES["adaptive"], deadline=None)
@given(st.sampled_from(ADAPTIVE), SHAPES, DTYPES, st.booleans(), st.sampled_from([1e-3, 1e-5, 1e-7]),
       st.integers(0, 999))
def test_adaptive_methods_agree_with_torchdiffeq_within_tolerance(name, shape, dtype, reverse, rtol, seed):
    f, y0, t = problem(shape, dtype, reverse, seed)
    atol = rtol / 10
    with torch.no_grad():
        ours, theirs = both(name, f, y0, t, rtol=rtol, atol=atol)
        exact = rknet.odeint(f.double(), y0.double(), t.double(), method="dopri8", rtol=1e-12, atol=1e-12)
    agree(ours, theirs, float("inf"))
    ours_error, theirs_error = ((x.double() - exact).abs().max().item() for x in (ours, theirs))
    # Each library's global error over [0, 2] may reach a few tens of its tolerances; torchdiffeq's is larger
    # where it interpolates between steps (bosh3: up to ~100 rtol), rknet steps onto the times of t.
    assert ours_error <= 3 * theirs_error + 50 * (atol + rtol * exact.abs().max().item()) + round_off(dtype), (
        ours_error, theirs_error)


@settings(max_examples=EXAMPLES["fixed_gradients"], deadline=None)
@given(st.sampled_from(FIXED), SHAPES, st.booleans(), st.booleans(), st.integers(0, 999))
def test_fixed_grid_gradients_equal_torchdiffeqs(name, shape, reverse, adjoint, seed):
    f, y0, t = problem(shape, torch.float64, reverse, seed, points=11)
    # With step_size, rknet.odeint_adjoint restarts y at every step (it keeps every grid state) where
    # torchdiffeq restarts at the times of t only: gradients then differ by the backward reconstruction's error.
    ours, theirs = gradients(name, f, y0, t, adjoint, options=None if adjoint else {"step_size": 0.05})
    agree(ours, theirs, 1e-10 * (1 + theirs.abs().max().item()))


@settings(max_examples=EXAMPLES["adaptive_gradients"], deadline=None)
@given(st.sampled_from(["dopri5", "bosh3"]), SHAPES, st.booleans(), st.booleans(), st.integers(0, 999))
def test_adaptive_gradients_agree_with_torchdiffeq_within_tolerance(name, shape, reverse, adjoint, seed):
    f, y0, t = problem(shape, torch.float64, reverse, seed)
    ours, theirs = gradients(name, f, y0, t, adjoint, rtol=1e-8, atol=1e-9)
    agree(ours, theirs, 1e-5 * (1 + theirs.abs().max().item()))
