"""The stepping layer's options against torchdiffeq.odeint with the same options.

With torchdiffeq's step-size controller (`controller="integral"`) and dense output, rknet's embedded-pair
stepping takes the same steps as torchdiffeq: bs3 is torchdiffeq's bosh3 coefficient for coefficient;
torchdiffeq's dopri5 estimates its error with Shampine's weights, not the classical b_hat of rknet's preset,
so the comparison uses a dopri5 tableau carrying those weights (`DOPRI5_SHAMPINE`).
"""

import math
import warnings

import pytest
import torch

from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.adaptive import solve_adaptive
from rknet.solvers.adaptive_options import AdaptiveOptions
from rknet.solvers.dense_output import MIDPOINT_WEIGHTS, StepInterpolant
from rknet.solvers.fixed_grid import FixedGridOptions, solve_fixed_grid
from rknet.solvers.hooks import ADAPTIVE_CALLBACKS, FIXED_GRID_CALLBACKS, Callbacks, callbacks_of

torchdiffeq = pytest.importorskip("torchdiffeq")

DOPRI5 = get_tableau("dopri5")
DOPRI5_SHAMPINE = ButcherTableau(DOPRI5.a, DOPRI5.b, DOPRI5.c, name="dopri5_shampine",
                                 b_hat=["1951/21600", 0, "22642/50085", "451/720", "-12231/42400", "649/6300", "1/60"])
MATRIX = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
Y0 = torch.tensor([2.0, 0.0], dtype=torch.float64)


class Oscillator(torch.nn.Module):
    """A damped oscillator with a time-varying frequency; counts evaluations and logs step callbacks."""

    def __init__(self):
        super().__init__()
        self.nfe, self.log = 0, []

    def forward(self, t, y):
        self.nfe += 1
        return y @ MATRIX.T * (1 + 0.5 * torch.sin(t))

    def callback_step(self, t0, y0, dt):
        self.log.append(("step", float(t0), float(dt)))

    def callback_accept_step(self, t0, y0, dt):
        self.log.append(("accept", float(t0), float(dt)))

    def callback_reject_step(self, t0, y0, dt):
        self.log.append(("reject", float(t0), float(dt)))


def ours(func, y0, t, tableau, options, rtol=1e-7, atol=1e-9):
    """rknet's stepping on func(t: tensor, y), with func's callbacks; (states, evaluations)."""
    callbacks = callbacks_of(func, ADAPTIVE_CALLBACKS, "test")
    f = lambda s, y: func(torch.tensor(s, dtype=torch.float64), y)  # noqa: E731
    states, stats = solve_adaptive(f, y0, t.tolist(), tableau, rtol, atol, options=options, callbacks=callbacks)
    return states, stats.evaluations


def same_steps(theirs, mine):
    assert [entry[0] for entry in theirs] == [entry[0] for entry in mine]
    for (_, t0, dt), (_, s0, ds) in zip(theirs, mine):
        assert t0 == pytest.approx(s0, rel=1e-9, abs=1e-12) and dt == pytest.approx(ds, rel=1e-9)


@pytest.mark.parametrize("tableau, method, rtol", [(DOPRI5_SHAMPINE, "dopri5", 1e-7),
                                                   (get_tableau("bs3"), "bosh3", 1e-5)])
def test_dense_output_takes_torchdiffeqs_steps_and_gives_its_outputs(tableau, method, rtol):
    """(bs3 at rtol 1e-5: at 1e-7 its first steps are so short that the error estimate is mostly round-off,
    which the two libraries sum in different orders.)"""
    t = torch.linspace(0, 3, 201, dtype=torch.float64)
    theirs, mine = Oscillator(), Oscillator()
    expected = torchdiffeq.odeint(theirs, Y0, t, method=method, rtol=rtol, atol=rtol * 1e-2)
    options = AdaptiveOptions(interp="dense", controller="integral")
    states, evaluations = ours(mine, Y0, t, tableau, options, rtol, rtol * 1e-2)
    same_steps(theirs.log, mine.log)
    assert evaluations == theirs.nfe
    if method == "dopri5":
        assert torch.allclose(states, expected, rtol=1e-10, atol=1e-12)
    else:  # rknet interpolates bs3 by the Hermite cubic, torchdiffeq by a quartic through a 2nd-order midpoint
        reference = torchdiffeq.odeint(Oscillator(), Y0, t, rtol=1e-12, atol=1e-14)
        assert (states - reference).abs().max() < 0.25 * (expected - reference).abs().max()


def test_dense_output_needs_fewer_evaluations_than_stepping_onto_every_output():
    t = torch.linspace(0, 20, 201, dtype=torch.float64)
    exact = torch.stack([2 * torch.exp(-0.1 * t) * torch.cos(2 * t), -2 * torch.exp(-0.1 * t) * torch.sin(2 * t)], -1)
    f = lambda s, y: y @ MATRIX.T  # noqa: E731
    dense, dense_cost = solve_adaptive(f, Y0, t.tolist(), DOPRI5, 1e-7, 1e-9, options=AdaptiveOptions(interp="dense"))
    landed, landed_cost = solve_adaptive(f, Y0, t.tolist(), DOPRI5, 1e-7, 1e-9, options=AdaptiveOptions(interp="step"))
    assert dense_cost.evaluations < 0.9 * landed_cost.evaluations
    assert (dense - exact).abs().max() < 1e-6 and (landed - exact).abs().max() < 1e-6


def test_midpoint_weights_are_torchdiffeqs():
    from torchdiffeq._impl.dopri5 import DPS_C_MID
    from torchdiffeq._impl.dopri8 import _C_mid
    assert MIDPOINT_WEIGHTS["dopri5"] == pytest.approx(DPS_C_MID.tolist(), rel=1e-15)
    assert MIDPOINT_WEIGHTS["dopri8"] == pytest.approx(_C_mid.tolist(), rel=1e-15)


@pytest.mark.parametrize("mid", [None, MIDPOINT_WEIGHTS["dopri5"]])
def test_interpolant_of_one_step_is_accurate_inside_it(mid):
    """One dopri5 step of y' = y: the quartic (mid) is O(h^5) accurate inside, the Hermite cubic O(h^4)."""
    h, y0 = 0.1, torch.ones(1, dtype=torch.float64)
    slopes = []
    y = y0
    for row in DOPRI5.a:
        stage = y0 + h * sum((a * k for a, k in zip(row, slopes)), torch.zeros(1, dtype=torch.float64))
        slopes.append(stage.clone())
    y = y0 + h * sum(b * k for b, k in zip(DOPRI5.b, slopes))
    step = StepInterpolant(0.0, h, y0, y, slopes[0], slopes[-1], slopes, mid)
    errors = [abs(step(x * h).item() - math.exp(x * h)) for x in (0.25, 0.5, 0.8)]
    assert max(errors) < (1e-8 if mid else 1e-6)
    assert step(0.0) is y0 and step(h) is y


def test_jump_t_restarts_at_the_discontinuity_like_torchdiffeq():
    class Jump(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.nfe, self.times = 0, []

        def forward(self, t, x):
            self.nfe += 1
            self.times.append(float(t))
            return -0.5 * x if t < 0.5 else x ** 2

    x0, t = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    options = AdaptiveOptions(interp="dense", controller="integral", jump_t=(0.5,))
    plain, jumped, theirs = Jump(), Jump(), Jump()
    ours(plain, x0, t, DOPRI5_SHAMPINE, AdaptiveOptions(interp="dense", controller="integral"), 1e-6, 1e-6)
    states, evaluations = ours(jumped, x0, t, DOPRI5_SHAMPINE, options, 1e-6, 1e-6)
    expected = torchdiffeq.odeint(theirs, x0, t, method="dopri5", rtol=1e-6, atol=1e-6,
                                  options={"jump_t": torch.tensor([0.5])})
    assert evaluations < plain.nfe and evaluations == theirs.nfe
    assert torch.allclose(states, expected, rtol=1e-9)
    assert math.nextafter(0.5, 1) in jumped.times and math.nextafter(0.5, 0) in jumped.times
    exact_end = 1 / (1 / (x0 * math.exp(-0.25)) - 0.5)  # x' = x^2 from x(0.5) = x0 e^-0.25
    assert torch.allclose(states[-1], exact_end, rtol=1e-5)


def test_step_t_is_stepped_on_and_min_max_step_bound_the_steps():
    t = torch.tensor([0.0, 5.0], dtype=torch.float64)
    stepped = Oscillator()
    ours(stepped, Y0, t, DOPRI5, AdaptiveOptions(interp="dense", step_t=(1.2345, 3.3)))
    ends = {round(t0 + dt, 12) for kind, t0, dt in stepped.log if kind == "accept"}
    assert {1.2345, 3.3} <= ends
    bounded = Oscillator()
    ours(bounded, Y0, t, DOPRI5, AdaptiveOptions(interp="dense", max_step=0.05))
    assert max(dt for kind, _, dt in bounded.log if kind == "step") <= 0.05
    coarse = Oscillator()
    states, evaluations = ours(coarse, Y0, t, DOPRI5, AdaptiveOptions(interp="dense", min_step=2.0))
    assert evaluations < 50 and torch.isfinite(states).all()


def test_a_given_norm_and_first_step_are_used_as_torchdiffeq_uses_them():
    t = torch.linspace(0, 3, 11, dtype=torch.float64)
    options = {"norm": lambda x: x.abs().max(), "first_step": 0.01}
    theirs, mine = Oscillator(), Oscillator()
    expected = torchdiffeq.odeint(theirs, Y0, t, method="bosh3", rtol=1e-5, atol=1e-7, options=options)
    adaptive, unused = AdaptiveOptions.from_options({**options, "controller": "integral"})
    states, evaluations = ours(mine, Y0, t, get_tableau("bs3"), adaptive, 1e-5, 1e-7)
    assert unused == {} and mine.log[0] == ("step", 0.0, 0.01)
    same_steps(theirs.log, mine.log)
    reference = torchdiffeq.odeint(Oscillator(), Y0, t, rtol=1e-12, atol=1e-14)
    assert (states - reference).abs().max() < (expected - reference).abs().max()  # bs3's Hermite output


def test_float32_control_and_per_element_tolerances():
    t = torch.linspace(0, 2, 5)
    f = lambda s, y: y @ MATRIX.T.float()  # noqa: E731
    y0 = Y0.float()
    states, _ = solve_adaptive(f, y0, t.tolist(), DOPRI5, torch.tensor([1e-5, 1e-4]), 1e-6,
                               options=AdaptiveOptions(interp="dense", dtype=torch.float32))
    reference = torchdiffeq.odeint(lambda s, y: f(s, y), y0, t, rtol=1e-5, atol=1e-6)
    assert states.dtype == torch.float32 and torch.allclose(states, reference, atol=1e-4)


def test_options_from_an_odeint_dict():
    jumps = torch.tensor([0.7, 0.2], dtype=torch.float64)
    options, unused = AdaptiveOptions.from_options({"step_size": 0.1, "jump_t": jumps, "max_step": torch.tensor(0.5)})
    assert unused == {"step_size": 0.1} and options.jump_t == (0.2, 0.7) and options.max_step == 0.5
    assert options.interp == "dense" and AdaptiveOptions().interp == "step"
    for bad in ({"interp": "linear"}, {"min_step": 2, "max_step": 1}, {"step_t": [0.5], "jump_t": [0.5]},
                {"controller": "pid"}, {"safety": 2.0}, {"norm": 3}):
        with pytest.raises(ValueError):
            AdaptiveOptions.from_options(bad)
    with pytest.raises(ValueError, match="mutually exclusive"):
        FixedGridOptions.from_options({"step_size": 0.1, "grid_constructor": lambda f, y0, t: t})
    with pytest.raises(ValueError, match="interp"):
        FixedGridOptions.from_options({"interp": "dense"})
    assert FixedGridOptions.from_options({"rtol": 1, "step_size": torch.tensor(0.25)}) == (
        FixedGridOptions(step_size=0.25), {"rtol": 1})


@pytest.mark.parametrize("method, theirs", [("euler", "euler"), ("midpoint", "midpoint"), ("rk38", "rk4"),
                                            ("heun", "heun2")])
@pytest.mark.parametrize("options", [{"step_size": 0.07}, {"step_size": 0.07, "interp": "cubic"},
                                     {"step_size": 0.07, "perturb": True}, {},
                                     {"grid_constructor": lambda f, y0, t: torch.linspace(0, 3, 30, dtype=t.dtype)}])
def test_fixed_grid_outputs_equal_torchdiffeqs(method, theirs, options):
    t = torch.linspace(0, 3, 17, dtype=torch.float64)
    seen, seen_by_them = [], []

    def func(s, y, log):
        log.append(float(s))
        return y @ MATRIX.T * (1 + 0.5 * torch.sin(s))

    expected = torchdiffeq.odeint(lambda s, y: func(s, y, seen_by_them), Y0, t, method=theirs, options=options)
    states = solve_fixed_grid(lambda s, y: func(torch.tensor(s, dtype=torch.float64), y, seen), Y0, t.tolist(),
                              method, FixedGridOptions.from_options(options)[0])
    assert torch.allclose(states, expected, rtol=1e-12, atol=1e-14)
    assert sorted(seen) == pytest.approx(sorted(seen_by_them), abs=1e-15)


def test_fixed_grid_perturb_avoids_grid_times_and_step_interp_is_more_accurate():
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    seen = []

    def f(s, y):
        seen.append(s)
        return -y

    solve_fixed_grid(f, Y0, t.tolist(), "rk38", FixedGridOptions(step_size=0.5, perturb=True))
    assert 0.0 not in seen and 0.5 not in seen and 1.0 not in seen
    exact = Y0 * torch.exp(-t)[:, None]
    linear = solve_fixed_grid(f, Y0, t.tolist(), "rk38", FixedGridOptions(step_size=0.25))
    landed = solve_fixed_grid(f, Y0, t.tolist(), "rk38", FixedGridOptions(step_size=0.25, interp="step"))
    assert (landed - exact).abs().max() < 0.01 * (linear - exact).abs().max()


def test_callbacks_are_called_as_torchdiffeq_calls_them_and_unsupported_ones_warned():
    mine = Oscillator()
    steps = []
    states = solve_fixed_grid(lambda s, y: mine(torch.tensor(s), y), Y0, [0.0, 1.0], "euler",
                              FixedGridOptions(step_size=0.1), Callbacks(step=lambda t0, y0, dt: steps.append(dt)))
    assert len(steps) == 10 and states.shape == (2, 2)
    with pytest.warns(UserWarning, match="does not support callbacks"):
        callbacks_of(mine, FIXED_GRID_CALLBACKS, "euler")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = callbacks_of(mine, ADAPTIVE_CALLBACKS, "dopri5")
        assert callbacks_of(mine, FIXED_GRID_CALLBACKS, "euler", adjoint=True) == Callbacks()
    assert all(callback is not None for callback in found)
    ours(mine, Y0, torch.tensor([0.0, 10.0]), DOPRI5, AdaptiveOptions(interp="dense", controller="integral"))
    kinds = [entry[0] for entry in mine.log]
    assert kinds.count("step") == kinds.count("accept") + kinds.count("reject") and kinds.count("reject") > 0
