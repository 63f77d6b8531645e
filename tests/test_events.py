"""solve_until_event against torchdiffeq's event handling and against event times known in closed form."""

import math

import pytest
import torch

from rknet.solvers.adaptive_options import AdaptiveOptions
from rknet.solvers.events import combined_event, solve_until_event
from rknet.solvers.fixed_grid import FixedGridOptions

torchdiffeq = pytest.importorskip("torchdiffeq")

Y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)


def rotation(t, y):
    """y = (cos t, -sin t): y[0] first crosses 0 at t = pi/2."""
    return torch.stack([y[1], -y[0]])


def floats(func):
    return lambda s, y: func(torch.tensor(s, dtype=torch.float64), y)


@pytest.mark.parametrize("method", ["dopri5", "bs3"])
def test_adaptive_event_time_is_located_to_atol(method):
    event_t, state = solve_until_event(rotation, Y0, 0.0, lambda t, y: y[0], method, 1e-9, 1e-10,
                                       AdaptiveOptions(interp="dense"))
    assert event_t == pytest.approx(math.pi / 2, abs=1e-6)  # bs3's global error at rtol 1e-9 is ~3e-7
    assert state[0].abs() < 1e-9 and state[1] == pytest.approx(-1.0, abs=1e-6)


def test_adaptive_event_agrees_with_torchdiffeq():
    """Same event to within the tolerances (the steps agree to round-off, not bit for bit)."""
    def falling(t, y):
        return torch.stack([y[1], -9.81 - 0.1 * y[1]])

    start = torch.tensor([10.0, 3.0], dtype=torch.float64)
    expected_t, expected = torchdiffeq.odeint(falling, start, torch.tensor([0.0, 1.0], dtype=torch.float64),
                                              event_fn=lambda t, y: y[0], method="dopri5", rtol=1e-8, atol=1e-9)
    event_t, state = solve_until_event(floats(falling), start, 0.0, lambda t, y: y[0], "dopri5", 1e-8, 1e-9,
                                       AdaptiveOptions(interp="dense", controller="integral"))
    assert event_t == pytest.approx(expected_t.item(), abs=1e-8)
    assert torch.allclose(state, expected[-1], atol=1e-7)


@pytest.mark.parametrize("interp", ["linear", "cubic"])
def test_fixed_grid_event_equals_torchdiffeqs(interp):
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    expected_t, expected = torchdiffeq.odeint(rotation, Y0, t, event_fn=lambda t, y: y[0], method="rk4", atol=1e-9,
                                              options={"step_size": 0.01, "interp": interp})
    event_t, state = solve_until_event(rotation, Y0, 0.0, lambda t, y: y[0], "rk38", 1e-7, 1e-9,
                                       FixedGridOptions(step_size=0.01, interp=interp))
    assert event_t == pytest.approx(expected_t.item(), rel=1e-12)
    assert torch.allclose(state, expected[-1], rtol=1e-12, atol=1e-14)


def test_a_vector_event_stops_at_the_first_component_to_change_sign():
    """y[0] - 0.5 (positive at t = 0) falls through 0 at t = pi/3, y[1] + 0.9 at t = asin(0.9), later."""
    events = lambda t, y: torch.stack([y[0] - 0.5, y[1] + 0.9])  # noqa: E731
    event_t, _ = solve_until_event(rotation, Y0, 0.0, events, "dopri5", 1e-9, 1e-10, AdaptiveOptions(interp="dense"))
    assert event_t == pytest.approx(math.pi / 3, abs=1e-7)
    combined = combined_event(events, 0.0, Y0)
    assert combined(0.0, Y0).item() == pytest.approx(0.5)


def test_an_event_at_the_start_returns_the_start_and_a_fixed_grid_needs_a_step_size():
    event_t, state = solve_until_event(rotation, Y0, 0.0, lambda t, y: y[1], "dopri5", 1e-7, 1e-9,
                                       AdaptiveOptions(interp="dense"))
    assert event_t == 0.0 and state is Y0
    with pytest.raises(ValueError, match="step_size"):
        solve_until_event(rotation, Y0, 0.0, lambda t, y: y[0], "rk4", 1e-7, 1e-9, FixedGridOptions())


def test_the_state_at_the_event_is_differentiable():
    y0 = Y0.clone().requires_grad_()
    _, state = solve_until_event(rotation, y0, 0.0, lambda t, y: y[0] - 0.5, "dopri5", 1e-9, 1e-10,
                                 AdaptiveOptions(interp="dense"))
    state[1].backward()
    # y1(t) = -y0[0] sin t + y0[1] cos t at the (fixed) event time t = pi/3
    assert y0.grad.tolist() == pytest.approx([-math.sin(math.pi / 3), math.cos(math.pi / 3)], abs=1e-6)
