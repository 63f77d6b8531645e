"""IMEX pairs and blocks: pair orders, the exact FFT/Cholesky solves, gradients, stability at large steps."""

import numpy as np
import pytest
import torch

import rknet
from rknet.blocks.imex import OPERATOR_SCALE, ImexBlock
from rknet.layers import DoubleSym
from rknet.methods.imex_pairs import IMEX_PAIRS
from rknet.solvers.imex import integrate_imex
from rknet.solvers.operators import SymmetricOperator

STEPS = (16, 32, 64, 128, 256)


def split_problem():
    generator = torch.Generator().manual_seed(3)
    kernel = 0.5 * torch.randn(4, 4, generator=generator, dtype=torch.float64)
    a = 0.5 * torch.randn(4, 4, generator=generator, dtype=torch.float64)
    y0 = torch.randn(2, 4, generator=generator, dtype=torch.float64)
    return kernel, a, y0


@pytest.mark.parametrize("name", IMEX_PAIRS)
def test_pair_order_on_a_split_linear_problem(name):
    """y' = -K^T K y + A y (A not commuting with K^T K): y(1) = exp(A - K^T K) y0."""
    kernel, a, y0 = split_problem()
    exact = y0 @ torch.linalg.matrix_exp(a - kernel.T @ kernel).T
    errors = [(integrate_imex(lambda t, y: y @ a.T, kernel, y0, rknet.uniform_grid(n), name) - exact).norm().item()
              for n in STEPS]
    slope = np.polyfit(np.log([1 / n for n in STEPS]), np.log(errors), 1)[0]
    assert abs(slope - IMEX_PAIRS[name].order) < 0.15, errors


@pytest.mark.parametrize("dims, shape", [(0, (5, 4)), (1, (5, 4, 11)), (2, (3, 4, 7, 6)), (1, (5, 4, 2)),
                                         (1, (5, 4, 1)), (2, (3, 4, 2, 2)), (2, (3, 4, 1, 2)), (2, (3, 4, 1, 1))])
def test_exact_solve_residual(dims, shape):
    """||(I + gamma L) y - r|| < 1e-10 in float64, L applied by periodic convolutions (not by the FFT); also on
    axes of 1 and 2 points (an image pooled to 2x2), where the kernel's taps wrap onto the same point."""
    kernel = torch.randn(4, 4, *(3,) * dims, dtype=torch.float64)
    operator = SymmetricOperator(kernel, dims)
    rhs = torch.randn(*shape, dtype=torch.float64)
    for gamma in (0.1, 3.0, 100.0):
        solution = operator.solve(gamma, rhs)
        assert (solution + gamma * operator.apply(solution) - rhs).norm().item() < 1e-10
    u, v = torch.randn(*shape, dtype=torch.float64), torch.randn(*shape, dtype=torch.float64)
    assert abs((operator.apply(u) * v).sum() - (u * operator.apply(v)).sum()) < 1e-10  # symmetric
    assert (operator.apply(u) * u).sum() >= 0  # positive semi-definite


@pytest.mark.parametrize("dims, shape", [(0, (2, 3)), (1, (2, 3, 5))])
def test_gradcheck_of_an_imex_block(dims, shape):
    block = ImexBlock(DoubleSym(3, dims=dims, activation="tanh", norm=None), "ars222", (0, 0.5, 1.0)).double()
    names = [f"controls.{name}" for name in block.controls]
    controls = [value.detach().clone().requires_grad_() for value in block.controls.values()]
    y = torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    def run(y, *controls):
        return torch.func.functional_call(block, dict(zip(names, controls)), (y,))

    assert torch.autograd.gradcheck(run, (y, *controls))


def test_large_steps_rk4_diverges_imex_stays_bounded():
    """A stiff diffusion L (eigenvalues up to ~70) over [0, 4] in 4 steps: RK4 blows up, ARS(2,2,2) does not."""
    torch.manual_seed(0)
    layer = DoubleSym(4, dims=1, activation="tanh", norm=None)
    imex = ImexBlock(layer, "ars222", (0, 1, 2, 3, 4))
    with torch.no_grad():
        imex.controls["operator"].mul_(6.0 / OPERATOR_SCALE)  # the same operator as at the full initial scale
    kernel = imex.controls["operator"][0]
    explicit = rknet.integrate(lambda t, y: -SymmetricOperator(kernel, 1).apply(y), torch.ones(2, 4, 16),
                               (0, 1, 2, 3, 4), "rk4")
    y = torch.randn(2, 4, 16)
    with torch.no_grad():
        assert not explicit.abs().max() < 1e6
        assert imex(y).abs().max() < 10 * y.abs().max()


def test_spec_network_and_errors():
    spec = rknet.NetworkSpec(in_channels=1, widths=(4, 4), method="ars443", t_states=(0, 1, 2), t_controls=(0, 2))
    net = rknet.ODENet.from_spec(spec)
    assert isinstance(net.blocks[0], ImexBlock) and spec.family == "imex"
    assert rknet.NetworkSpec.from_dict(spec.to_dict()) == spec
    logits = net(torch.randn(2, 1, 6, 6))
    logits.sum().backward()
    assert net.blocks[0].controls["operator"].grad.abs().sum() > 0
    assert net.resampled(spec.replace(method="imex_euler")).blocks[0].method_name == "imex_euler"
    with pytest.raises(ValueError, match="cannot be re-discretised"):
        net.resampled(spec.replace(method="rk4"))
    with pytest.raises(ValueError, match="does not support the norm 'batch'"):
        ImexBlock(DoubleSym(3, dims=0, norm="batch"), "ars222", (0, 1))
    with pytest.raises(ValueError, match="unknown IMEX pair"):
        integrate_imex(lambda t, y: y, torch.eye(2), torch.ones(1, 2), (0, 1), "ars999")


def test_imex_network_on_images_pooled_to_2x2_and_1x1():
    """The default digits network pools 8x8 images to 2x2; IMEX blocks there (and at 1x1) solve and train."""
    torch.manual_seed(0)
    net = rknet.ODENet(in_channels=1, num_classes=3, widths=(4, 4, 4, 4), method="ars222", t_states=(0, 1, 2))
    logits = net(torch.randn(2, 1, 4, 4))
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(torch.isfinite(block.controls["operator"].grad).all() for block in net.blocks)


def test_rediscretised_and_refined_imex_networks_keep_their_control_grid():
    """Coarser steps must not resample theta(t) onto the coarser grid (that changed the function of time)."""
    torch.manual_seed(0)
    net = rknet.ODENet(in_channels=1, num_classes=3, widths=(4, 4), method="ars222", t_states=(0, 1, 2, 3, 4))
    for variant in (rknet.rediscretize(net, steps=2), rknet.rediscretize(net, "imex_euler", 1), net.refine(2)):
        assert variant.spec.control_times == (0, 1, 2, 3, 4) == variant.blocks[0].t_controls
        for name, value in net.blocks[0].controls.items():
            assert torch.equal(variant.blocks[0].controls[name], value)


def test_a_failed_exact_solve_during_training_is_a_divergence(tmp_path, cli, monkeypatch):
    """Weights blown up to ~1e6 made I + gamma K^T K indefinite in float32: exit 3 and one line, no traceback."""
    def indefinite(self, gamma, rhs):
        raise torch.linalg.LinAlgError("linalg.cholesky: The factorization could not be completed")

    monkeypatch.setattr(SymmetricOperator, "solve", indefinite)
    out = tmp_path / "run"
    code, _, err = cli("train", "--data", "circles", "--method", "ars222", "--widths", "4,4", "--epochs", "1",
                       "--threads", "1", "--out", out)
    assert code == 3 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("rknet train: training diverged in epoch 1: a linear solve failed (linalg.cholesky:")
    assert not out.exists()


def test_the_operator_starts_at_a_tenth_of_a_layer_kernels_scale():
    """L = K^T K starts small, so the block starts close to its explicit layer (docs/implicit.md: at full
    scale the trained IMEX networks lost their accuracy at 2x larger steps)."""
    torch.manual_seed(0)
    block = ImexBlock(DoubleSym(32, dims=1), "ars222", (0, 1, 2))
    ratio = (block.controls["operator"].std() / block.controls["K"].std()).item()
    assert ratio == pytest.approx(OPERATOR_SCALE, rel=0.1)
