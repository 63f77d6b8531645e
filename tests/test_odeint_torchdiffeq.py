"""rknet.odeint against torchdiffeq.odeint on the same calls: the API surface (structures, times, dtypes,
names, tolerances, gradients with respect to t, bad calls), each checked against what torchdiffeq does.

Only the method names the installed torchdiffeq has are compared (0.2.5 has no tsit5 and no implicit methods;
torchdiffeq's own test suite run against rknet covers those, see docs/odeint.md)."""

import importlib
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import rknet

torchdiffeq = pytest.importorskip("torchdiffeq")
THEIRS = set(importlib.import_module("torchdiffeq._impl.odeint").SOLVERS)

ALL_NAMES = ("dopri8", "dopri5", "tsit5", "bosh3", "fehlberg2", "adaptive_heun", "euler", "midpoint", "heun2",
             "heun3", "rk4", "explicit_adams", "implicit_adams", "fixed_adams", "implicit_euler", "implicit_midpoint",
             "trapezoid", "radauIIA3", "gl4", "radauIIA5", "gl6", "sdirk2", "trbdf2", "scipy_solver")
FIXED_RK = ("euler", "midpoint", "heun2", "heun3", "rk4", "implicit_euler", "implicit_midpoint", "trapezoid",
            "radauIIA3", "gl4", "radauIIA5", "gl6", "sdirk2", "trbdf2")
PAIRS = tuple(name for name in ("dopri5", "bosh3", "tsit5") if name in THEIRS)
# Comparison tolerance of two adaptive solutions at rtol = 1e-8: the interpolants' error is the method's.
AGREEMENT = {"dopri5": 1e-7, "tsit5": 1e-7, "bosh3": 2e-5}


class Decay(nn.Module):
    """y' = -k y + sin(t): non-autonomous, with a parameter."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(0.7, dtype=dtype))

    def forward(self, t, y):
        return -self.k * y + torch.sin(t)


def both(call):
    """call(library) for rknet and torchdiffeq."""
    return call(rknet), call(torchdiffeq)


@pytest.mark.parametrize("name", [name for name in ALL_NAMES if name in THEIRS])
def test_one_element_t_returns_y0_for_every_name(name):
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    t = torch.tensor([0.5], dtype=torch.float64)
    ours, theirs = both(lambda lib: lib.odeint(Decay(), y0, t, method=name))
    assert ours.shape == theirs.shape == (1, 2)
    assert torch.equal(ours, theirs)
    pair = (y0, y0[:1] * 3)
    ours, theirs = both(lambda lib: lib.odeint(lambda t, y: (-y[0], -y[1]), pair, t, method=name))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("name", [name for name in FIXED_RK if name in THEIRS])
def test_fixed_grid_names_mean_torchdiffeqs_coefficients(name):
    """Same name, same grid: the same numbers (rk4 is the 3/8 rule, heun3 Heun's third-order method, ...)."""
    y0 = torch.tensor([1.0, -0.5], dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 6, dtype=torch.float64)
    with torch.no_grad():
        ours, theirs = both(lambda lib: lib.odeint(Decay(), y0, t, method=name, options={"step_size": 0.1}))
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


def test_rk4_is_not_the_classic_method():
    y0 = torch.tensor([1.0], dtype=torch.float64)
    t = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    with torch.no_grad():
        three_eighths = rknet.odeint(Decay(), y0, t, method="rk4")
        classic = rknet.odeint(Decay(), y0, t, method=rknet.get_tableau("rk4"))
    assert 0 < (three_eighths - classic).abs().max() < 1e-3


@pytest.mark.parametrize("method", PAIRS)
@pytest.mark.parametrize("reverse", [False, True])
def test_tuple_state_with_per_component_tolerances(method, reverse):
    t = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    t = t.flip(0) if reverse else t
    y0 = (torch.tensor(1.0, dtype=torch.float64), torch.tensor([[0.5, -0.5], [0.1, 2.0]], dtype=torch.float64))

    def f(t, y):
        return -y[0] + torch.cos(t), -0.3 * y[1] + y[0]

    ours, theirs = both(lambda lib: lib.odeint(f, y0, t, method=method, rtol=(1e-8, 1e-9), atol=(1e-10, 1e-9)))
    assert isinstance(ours, tuple) and len(ours) == 2
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=AGREEMENT[method], atol=AGREEMENT[method])


def test_tolerances_as_tensors():
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 3, dtype=torch.float64)
    rtol, atol = torch.tensor([1e-8, 1e-6], dtype=torch.float64), torch.tensor(1e-9, dtype=torch.float64)
    with torch.no_grad():
        ours, theirs = both(lambda lib: lib.odeint(Decay(), y0, t, rtol=rtol, atol=atol))
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_func_gets_t_in_y0s_dtype_and_outputs_are_in_y0s_dtype():
    y0 = torch.tensor([1.0], dtype=torch.float32)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    for lib in (rknet, torchdiffeq):
        seen = []
        out = lib.odeint(lambda t, y, seen=seen: seen.append(t.dtype) or -y, y0, t)
        assert out.dtype == torch.float32 and set(seen) == {torch.float32}


def test_func_returning_a_broadcastable_value():
    """torchdiffeq's fixed-grid methods broadcast func's value to y's shape (its dopri5 fails); rknet always does."""
    y0 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ours, theirs = both(lambda lib: lib.odeint(lambda t, y: torch.cos(t), y0, t, method="rk4"))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    adaptive = rknet.odeint(lambda t, y: torch.cos(t), y0, t)
    torch.testing.assert_close(adaptive[1], y0 + torch.sin(torch.tensor(1.0, dtype=torch.float64)))


def test_step_size_given_to_an_adaptive_method_warns_and_stays_adaptive():
    y0 = torch.tensor([1.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    for lib in (rknet, torchdiffeq):
        with pytest.warns(UserWarning, match="step_size"):
            out = lib.odeint(Decay(), y0, t, method="dopri5", options={"step_size": 0.5})
        exact = lib.odeint(Decay(), y0, t, method="dopri5", rtol=1e-10, atol=1e-12)
        assert (out - exact).abs().max() < 1e-6


@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_with_respect_to_t(adjoint, reverse):
    grads = []
    for lib in (rknet, torchdiffeq):
        t = torch.tensor([0.0, 0.4, 1.0, 1.5], dtype=torch.float64)
        t = (t.flip(0) if reverse else t).requires_grad_()
        y0 = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        solve = lib.odeint_adjoint if adjoint else lib.odeint
        out = solve(Decay(), y0, t, rtol=1e-10, atol=1e-12)
        (out * torch.arange(1.0, 9.0, dtype=torch.float64).view(4, 2)).sum().backward()
        grads.append(torch.cat([t.grad, y0.grad]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-8)


def _kind(call):
    try:
        call()
    except (AssertionError, ValueError):  # torchdiffeq asserts where rknet raises ValueError
        return "value"
    except TypeError:
        return "type"
    except NotImplementedError:
        return "missing"
    return None


BAD_CALLS = {
    "t not monotone": lambda lib: lib.odeint(Decay(), torch.ones(1, dtype=torch.float64),
                                             torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)),
    "t of integers": lambda lib: lib.odeint(Decay(), torch.ones(1, dtype=torch.float64), torch.tensor([0, 1])),
    "unknown method": lambda lib: lib.odeint(Decay(), torch.ones(1, dtype=torch.float64),
                                             torch.tensor([0.0, 1.0], dtype=torch.float64), method="rk5"),
    "tuple tolerance of the wrong length": lambda lib: lib.odeint(
        lambda t, y: (-y[0], -y[1]), (torch.ones(1), torch.ones(2)), torch.tensor([0.0, 1.0]), rtol=(1e-6,) * 3),
    "step_size and grid_constructor": lambda lib: lib.odeint(
        Decay(), torch.ones(1, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64), method="euler",
        options={"step_size": 0.1, "grid_constructor": lambda f, y0, t: t}),
    "adjoint of a function without adjoint_params": lambda lib: lib.odeint_adjoint(
        lambda t, y: -y, torch.ones(1, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)),
    "event_fn with three times": lambda lib: lib.odeint(
        Decay(), torch.ones(1, dtype=torch.float64), torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64),
        event_fn=lambda t, y: y.sum() - 0.5),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_calls_raise_the_same_kind_of_error(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = both(lambda lib: _kind(lambda: BAD_CALLS[case](lib)))
    assert theirs is not None and ours == theirs


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(method=st.sampled_from(PAIRS), reverse=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]), tupled=st.booleans(),
       points=st.integers(min_value=1, max_value=5), k=st.floats(min_value=-1.0, max_value=1.0))
def test_generated_calls_agree(method, reverse, dtype, tupled, points, k):
    """Generated calls across methods, directions, dtypes, structures and numbers of outputs."""
    t = torch.linspace(0.0, 1.5, points, dtype=torch.float64)
    t = t.flip(0) if reverse else t
    y0 = torch.tensor([1.0, -0.5], dtype=dtype)
    def f(t, y):
        return -k * y + torch.sin(t)

    state, func = ((y0[:1], y0[1:]), lambda t, y: tuple(f(t, part) for part in y)) if tupled else (y0, f)
    # two solutions within rtol = atol = 1e-8 of the truth, by different controllers: 1e-6 apart at most (float64)
    tol = 1e-4 if dtype == torch.float32 else max(AGREEMENT[method], 1e-6)
    ours, theirs = both(lambda lib: lib.odeint(func, state, t, method=method, rtol=1e-8, atol=1e-8))
    ours, theirs = (torch.cat(ours, dim=-1), torch.cat(theirs, dim=-1)) if tupled else (ours, theirs)
    assert ours.dtype == theirs.dtype == dtype and ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("adjoint_kwargs", [{}, {"adjoint_options": {"norm": "seminorm"}},
                                            {"adjoint_method": "bosh3", "adjoint_rtol": 1e-9, "adjoint_atol": 1e-11}])
def test_adjoint_keywords_give_torchdiffeqs_gradients(adjoint_kwargs):
    grads = []
    for lib in (rknet, torchdiffeq):
        f = Decay()
        y0 = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        t = torch.linspace(0.0, 2.0, 4, dtype=torch.float64)
        out = lib.odeint_adjoint(f, y0, t, rtol=1e-10, atol=1e-12, **adjoint_kwargs)
        (out ** 2).sum().backward()
        grads.append(torch.cat([y0.grad, f.k.grad.reshape(1)]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-8)


def test_adjoint_of_a_function_of_t_only_with_no_parameters():
    """f uses neither y nor a parameter: dL/dy0 is still defined (the identity through the flow)."""
    grads = []
    for lib in (rknet, torchdiffeq):
        y0 = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        t = torch.linspace(0.0, 1.0, 3, dtype=torch.float64)
        lib.odeint_adjoint(lambda t, y: torch.cos(t) * torch.ones_like(y), y0, t, adjoint_params=()).sum().backward()
        grads.append(y0.grad)
    torch.testing.assert_close(grads[0], grads[1])
    torch.testing.assert_close(grads[0], torch.full((2,), 3.0, dtype=torch.float64))


@pytest.mark.parametrize("reverse_time", [False, True])
def test_event_time_and_its_gradient(reverse_time):
    """odeint_event: the time y(t) = 0.5 is reached, and d(event time)/d(y0, k) by the implicit function theorem."""
    results = []
    for lib in (rknet, torchdiffeq):
        f = Decay()
        y0 = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        event_t, ys = lib.odeint_event(f, y0, torch.tensor(0.0, dtype=torch.float64), reverse_time=reverse_time,
                                       event_fn=lambda t, y: y.sum() - (0.5 if not reverse_time else 2.0),
                                       rtol=1e-10, atol=1e-12)
        (event_t + ys[-1].sum()).backward()
        results.append(torch.cat([event_t.detach().reshape(1), ys[-1].detach(), y0.grad, f.k.grad.reshape(1)]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-6, atol=1e-8)
