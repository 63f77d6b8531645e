"""The adjoint gradient (optimise-then-discretise) against backprop (discretise-then-optimise) and against
the continuous problem, its memory, and its refusals."""

import functools

import numpy as np
import pytest
import torch
from torch import nn

import rknet
from rknet import DynamicBlock
from rknet.analysis.memory import held_for_backward
from rknet.layers import make_layer

STEPS = (8, 16, 32, 64)
T_CONTROLS = (0.0, 0.5, 1.0)


def block(method, steps, gradient, interpolation="linear", norm="tv"):
    """A dense DoubleSym block in float64 with controls that vary in time (the same theta(t) for all steps)."""
    torch.manual_seed(0)
    layer = make_layer("doublesym", 4, dims=0, activation="tanh", norm=norm)
    result = DynamicBlock(layer, method, rknet.uniform_grid(steps), T_CONTROLS, interpolation, gradient).double()
    with torch.no_grad():
        for value in result.controls.values():
            value.add_(0.5 * torch.randn_like(value))
    return result


def inputs():
    generator = torch.Generator().manual_seed(1)
    y = torch.randn(3, 4, dtype=torch.float64, generator=generator)
    return y, torch.randn(3, 4, dtype=torch.float64, generator=generator)


def gradient(method, steps, strategy, interpolation="linear"):
    """d<block(y), w>/d(y, theta) as one vector."""
    model = block(method, steps, strategy, interpolation)
    y, weight = inputs()
    y.requires_grad_()
    (model(y) * weight).sum().backward()
    return torch.cat([y.grad.flatten()] + [p.grad.flatten() for p in model.parameters()])


def slope(errors, steps=STEPS):
    return np.polyfit(np.log([1 / n for n in steps]), np.log(errors), 1)[0]


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("method,interpolation", [("euler", "linear"), ("rk4", "linear"),
                                                  ("euler", "constant"), ("rk4", "constant")])
def test_adjoint_gradient_meets_backprop_at_the_method_order(method, interpolation):
    differences = [relative(gradient(method, n, "adjoint", interpolation), gradient(method, n, "backprop",
                                                                                    interpolation))
                   for n in STEPS]
    assert abs(slope(differences) - rknet.get_tableau(method).order) < 0.3, differences


def test_heun_both_gradients_converge_at_order_two_and_agree_to_order_three():
    """Heun's discrete adjoint and its backward solve share their leading error term: both gradients
    are second-order accurate, and their difference shrinks one order faster (measured ~2.9)."""
    reference = gradient("rk4", 256, "backprop")
    for strategy in ("adjoint", "backprop"):
        errors = [relative(gradient("heun", n, strategy), reference) for n in STEPS]
        assert abs(slope(errors) - 2) < 0.3, (strategy, errors)
    differences = [relative(gradient("heun", n, "adjoint"), gradient("heun", n, "backprop")) for n in STEPS]
    assert slope(differences) > 2 - 0.3, differences


def continuous_loss(model, y, weight):
    """<y(T), w> from the block's vector field at a grid fine enough to be the continuous solution (RK4,
    512 steps: error ~1e-12), independent of the block's own grid."""
    return (rknet.integrate(model.vector_field, y, rknet.uniform_grid(512)) * weight).sum()


def test_adjoint_gradient_matches_finite_differences_of_the_continuous_solution():
    model = block("rk4", 64, "adjoint")
    y, weight = inputs()
    y.requires_grad_()
    (model(y) * weight).sum().backward()
    generator = torch.Generator().manual_seed(3)
    for tensor, grad in [(y, y.grad)] + [(p, p.grad) for p in model.parameters()]:
        direction = torch.randn(tensor.shape, dtype=torch.float64, generator=generator)
        eps = 1e-5
        with torch.no_grad():
            tensor.add_(eps * direction)
            plus = continuous_loss(model, y, weight)
            tensor.sub_(2 * eps * direction)
            minus = continuous_loss(model, y, weight)
            tensor.add_(eps * direction)
        numeric = (plus - minus) / (2 * eps)
        assert (grad * direction).sum().item() == pytest.approx(numeric.item(), rel=1e-6, abs=1e-9)


@pytest.mark.slow  # ~4 s
def test_gradcheck_of_the_adjoint_strategy_at_a_fine_grid():
    """torch.autograd.gradcheck: the adjoint gradient against finite differences of the block's own output,
    which at 32 RK4 steps is the continuous solution to ~1e-7."""
    model = block("rk4", 32, "adjoint")
    y, _ = inputs()
    names = list(model.controls)

    def run(y, *stacked):
        return rknet.gradients.block_adjoint.BlockAdjoint.apply(model, (16,), y, *stacked)  # restart at t = 0.5

    assert names and torch.autograd.gradcheck(run, (y.requires_grad_(), *model.controls.values()),
                                              eps=1e-6, atol=1e-5, rtol=1e-4)


def test_forward_is_backprop_forward_and_no_grad_runs_plainly():
    y, _ = inputs()
    adjoint, plain = block("rk4", 4, "adjoint"), block("rk4", 4, "backprop")
    assert torch.equal(adjoint(y), plain(y))
    with torch.no_grad():
        assert torch.equal(adjoint(y), plain(y))


def test_activation_memory_does_not_grow_with_steps():
    layer = make_layer("doublesym", 4, dims=2, norm="tv")
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    controls = rknet.uniform_grid(4, 4.0)  # the adjoint keeps one state per control time, not per step
    blocks = {mode: [DynamicBlock(layer, "rk4", rknet.uniform_grid(n, 4.0), controls, gradient=mode)
                     for n in (4, 16)] for mode in ("adjoint", "backprop")}
    held = {mode: [held_for_backward(functools.partial(model, x)) for model in models]
            for mode, models in blocks.items()}
    assert held["adjoint"][1] <= held["adjoint"][0] + 1024
    assert held["adjoint"][0] <= 3 * x.numel() * x.element_size() + 1024  # the states at t = 1, 2, 3
    assert held["backprop"][1] > 3 * held["backprop"][0] > 0  # the count sees what backprop keeps


def test_batch_norm_is_refused_in_one_line():
    with pytest.raises(ValueError, match="does not support the norm 'batch'") as error:
        rknet.ODENet(3, 10, widths=(4, 4), norm="batch", gradient="adjoint")
    assert "\n" not in str(error.value)


@pytest.mark.slow  # torch.compile
def test_compiled_block_gives_the_eager_gradients():
    """Under torch.compile the adjoint block runs eagerly (a graph break), with the same gradients."""
    model, y = block("rk4", 4, "adjoint"), inputs()[0]
    eager = gradient("rk4", 4, "adjoint")
    compiled = torch.compile(model)
    y.requires_grad_()
    (compiled(y) * inputs()[1]).sum().backward()
    assert torch.equal(torch.cat([y.grad.flatten()] + [p.grad.flatten() for p in model.parameters()]), eager)


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([[-0.5, 1.0], [-1.0, -0.2]], dtype=torch.float64))

    def forward(self, t, y):
        return torch.cos(torch.as_tensor(t)) * y @ self.a.T


@pytest.mark.parametrize("trajectory", [False, True])
def test_integrate_adjoint_for_a_module_converges_to_backprop(trajectory):
    f = Linear()
    y0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    differences = []
    for n in STEPS:
        grads = []
        for adjoint in (True, False):
            f.zero_grad()
            y0.grad = None
            states = rknet.integrate(f, y0, rknet.uniform_grid(n, 2.0), "rk4", trajectory, adjoint=adjoint)
            (states[::n // 4] if trajectory else states).pow(2).sum().backward()  # a loss at 5 state times
            grads.append(torch.cat([y0.grad.flatten(), f.a.grad.flatten()]))
        differences.append(relative(*grads))
    assert abs(slope(differences) - 4) < 0.3, differences


def test_integrate_adjoint_needs_the_parameters_of_a_plain_function():
    a = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="adjoint_params"):
        rknet.integrate(lambda t, y: a * y, torch.ones(2), [0, 1], adjoint=True)
    y = rknet.integrate(lambda t, y: a * y, torch.ones(2), [0, 0.5, 1], adjoint=True, adjoint_params=[a])
    y.sum().backward()
    assert a.grad is not None and torch.allclose(a.grad, torch.full((2,), torch.e), rtol=1e-2)


def test_cli_trains_with_gradient_adjoint(tmp_path, cli):
    code, _, err = cli("train", "--data", "circles", "--widths", "2,2", "--steps", "2", "--epochs", "1",
                       "--batch-size", "256", "--device", "cpu", "--gradient", "adjoint", "--out", tmp_path / "run")
    assert code == 0, err
    assert rknet.load(tmp_path / "run").blocks[0].gradient.name == "adjoint"
    code, out, err = cli("gradients", tmp_path / "run", "--method", "rk4", "--steps", "1,4,16", "--samples", "32",
                         "--device", "cpu")
    assert code == 0, err
    totals = [float(line.split("|")[-2]) for line in out.splitlines()[2:5]]
    assert len(totals) == 3 and all(0 <= total < 0.5 for total in totals), out
    assert (tmp_path / "run" / "gradients.png").stat().st_size > 0
