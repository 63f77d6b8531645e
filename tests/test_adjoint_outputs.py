"""The fixed-step adjoint of `rknet.odeint_adjoint` / `rknet.integrate(adjoint=True)` with many outputs: it
restarts y from the state stored at every output time, so its gradient meets backprop's on problems whose
backward reconstruction of y drifts (nonlinear, damped, expanding), and torchdiffeq's adjoint to round-off."""

import pytest
import torch
import torchdiffeq

import rknet

T = torch.linspace(0, 6, 101, dtype=torch.float64)


class Field(torch.nn.Module):
    """dy/dt = g(y; theta) for three problems whose state reconstructed backward drifts from the forward one."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.theta = torch.nn.Parameter(torch.tensor([2.0, 1.0], dtype=torch.float64))

    def forward(self, t, y):
        k, c = self.theta
        if self.kind == "damped_pendulum":
            return torch.stack((y[1], -k * torch.sin(y[0]) - c * y[1]))
        if self.kind == "van_der_pol":
            return torch.stack((y[1], c * (1 - y[0] ** 2) * y[1] - y[0]))
        return torch.stack((0.3 * k * y[0] + torch.sin(y[1]), c * 0.2 * y[1] - 0.1 * y[0]))  # expanding


def gradient(solve, kind):
    field, y0 = Field(kind), torch.tensor([2.0, 0.5], dtype=torch.float64, requires_grad=True)
    weight = torch.cos(torch.arange(2 * len(T), dtype=torch.float64)).view(len(T), 2)
    (solve(field, y0) * weight).sum().backward()
    return torch.cat((y0.grad, field.theta.grad))


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("kind", ["damped_pendulum", "van_der_pol", "expanding"])
def test_fixed_step_adjoint_meets_backprop_and_torchdiffeq_with_101_outputs(kind):
    backprop = gradient(lambda f, y0: rknet.odeint(f, y0, T, method="rk38"), kind)
    ours = gradient(lambda f, y0: rknet.odeint_adjoint(f, y0, T, method="rk38"), kind)
    theirs = gradient(lambda f, y0: torchdiffeq.odeint_adjoint(f, y0, T, method="rk4"), kind)
    # Without restarts at the outputs (commit 4347d83) these failed: 4e-4 from backprop on Van der Pol, and 2e-7
    # (pendulum) and 1e-9 (expanding) from torchdiffeq, whose adjoint restarts there.
    assert relative(ours, backprop) < 2e-4
    assert relative(ours, theirs) < 1e-10


def test_integrate_adjoint_trajectory_restarts_at_every_time():
    backprop = gradient(lambda f, y0: rknet.integrate(lambda s, y: f(s, y), y0, T, "rk4", trajectory=True),
                        "van_der_pol")
    ours = gradient(lambda f, y0: rknet.integrate(lambda s, y: f(s, y), y0, T, "rk4", trajectory=True,
                                                  adjoint=True, adjoint_params=[f.theta]), "van_der_pol")
    assert relative(ours, backprop) < 2e-4


def test_adjoint_of_a_field_that_depends_on_neither_y_nor_parameters_is_the_identity():
    y0 = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    out = rknet.odeint_adjoint(lambda t, y: torch.cos(t) * torch.ones_like(y), y0, t, method="rk4",
                               adjoint_params=())
    out.sum().backward()
    assert torch.allclose(y0.grad, torch.full_like(y0, len(t)))
    exact = y0.detach() + torch.sin(torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(out[-1], exact, atol=1e-5, rtol=0)  # rk4's error in steps of 1/4


def test_outputs_must_be_increasing_indices_ending_at_the_last():
    from rknet.methods.tableau import get_tableau
    from rknet.solvers.adjoint import callable_adjoint
    from rknet.solvers.runge_kutta import stage_terms

    tableau = get_tableau("rk4")
    with pytest.raises(ValueError, match="outputs must be increasing"):
        callable_adjoint(lambda s, y: -y, torch.ones(2), (0.0, 0.5, 1.0), stage_terms(tableau), tableau.c, True,
                         [], outputs=(0, 1))
