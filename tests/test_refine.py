"""Block.refine and ODENet.refine: the same ODE on a finer grid."""

import math

import pytest
import torch

import rknet
from rknet import DynamicBlock
from rknet.layers import make_layer
from rknet.layers.controls import interpolate
from rknet.solvers.grid import interpolation_weights


def smooth_block(t_controls=None, steps=8):
    """A dense tanh block in float64: smooth in y, and in t between control knots."""
    layer = make_layer("single", 4, dims=0, activation="tanh")
    block = DynamicBlock(layer, "rk4", rknet.uniform_grid(steps, 2.0), t_controls).double()
    with torch.no_grad():
        for value in block.controls.values():
            value.copy_(0.7 * torch.randn_like(value[:1]) + 0.2 * torch.randn_like(value))
    return block


def per_control(block):
    return sum(math.prod(spec.shape) for spec in block.specs.values())


def refinement_errors(block, y, factors=(1, 2, 4)):
    """Distance of block.refine(f)(y) from a 32 times finer reference, for each factor f."""
    with torch.no_grad():
        reference = block.refine(32)(y)
        return [(block.refine(f)(y) - reference).norm().item() for f in factors]


@pytest.mark.parametrize("controls", [False, True])
def test_constant_controls_refine_at_the_order_of_rk4(controls):
    block = smooth_block(t_controls=[0.0])
    y = torch.randn(6, 4, dtype=torch.float64)
    errors = refinement_errors(block, y)
    orders = [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:])]
    assert all(abs(order - 4) < 0.3 for order in orders), (errors, orders)
    with torch.no_grad():  # the network changes only by the discretisation error
        change = (block(y) - block.refine(2, controls=controls)(y)).norm().item()
    assert change <= errors[0] + errors[1]


def test_time_dependent_controls_keep_a_high_order_when_knots_stay_on_state_times():
    # theta(t) piecewise linear with a knot at every state time: every refined step sees a smooth theta.
    block = smooth_block(t_controls=None)
    errors = refinement_errors(block, torch.randn(6, 4, dtype=torch.float64))
    assert all(coarse >= 8 * fine for coarse, fine in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("interpolation", ["linear", "constant"])
def test_refined_controls_keep_theta_as_a_function_of_time(interpolation):
    block = DynamicBlock(make_layer("single", 3, dims=0), "rk4", [0, 1, 2, 3], [0, 1, 3], interpolation)
    refined = block.refine(3, controls=True)
    assert refined.t_controls == rknet.refine_times((0, 1, 3), 3)
    assert refined.t_states == rknet.refine_times((0, 1, 2, 3), 3)
    for t in torch.linspace(0, 3, 41).tolist():
        old = interpolate(block.controls, interpolation_weights(block.t_controls, t, interpolation))
        new = interpolate(refined.controls, interpolation_weights(refined.t_controls, t, interpolation))
        for name in old:
            torch.testing.assert_close(new[name], old[name], rtol=1e-6, atol=1e-7)


def test_parameter_counts_and_copies():
    block = DynamicBlock(make_layer("doublesym", 2, dims=1, norm="tv"), "heun", [0, 1, 2], [0, 2])
    kept = block.refine(2)
    assert kept.t_controls == block.t_controls and kept.num_steps == 4
    assert sum(p.numel() for p in kept.parameters()) == 2 * per_control(block)
    assert all(torch.equal(kept.controls[n], block.controls[n]) for n in block.controls)
    finer = block.refine(2, controls=True)
    assert sum(p.numel() for p in finer.parameters()) == 3 * per_control(block)
    with torch.no_grad():  # a new block: the original's parameters are not shared
        kept.controls["K"].add_(1.0)
    assert not torch.equal(kept.controls["K"], block.controls["K"])


def test_batch_norm_statistics_follow_the_old_step_and_stage():
    block = DynamicBlock(make_layer("double", 2, dims=0, norm="batch"), "rk4", [0, 1, 2])
    stages = 4
    with torch.no_grad():
        block.norm1_running_mean.copy_(torch.arange(2 * stages * 2.0).reshape(-1, 2))
        block.norm2_running_var.uniform_(1, 2)
    refined = block.refine(3)
    assert refined.norm1_running_mean.shape == (6 * stages, 2)
    for k in range(6):
        for i in range(stages):
            old, new = (k // 3) * stages + i, k * stages + i
            assert torch.equal(refined.norm1_running_mean[new], block.norm1_running_mean[old])
            assert torch.equal(refined.norm2_running_var[new], block.norm2_running_var[old])


def test_refine_keeps_settings_and_mode():
    block = DynamicBlock(make_layer("single", 2, dims=0), "midpoint", [0, 1], interpolation="constant",
                         gradient="checkpoint").eval()
    block.controls["K"].requires_grad_(False)
    refined = block.refine(2)
    assert (refined.tableau, refined.interpolation, refined.gradient.name) == (block.tableau, "constant", "checkpoint")
    assert not refined.training and not refined.controls["K"].requires_grad
    assert refined.layer is block.layer


@pytest.mark.parametrize("factor", [0, -1, 1.5, "2"])
def test_bad_factor_is_a_value_error(factor):
    block = DynamicBlock(make_layer("single", 2, dims=0), "euler", [0, 1])
    with pytest.raises(ValueError, match="refinement factor must be a positive integer"):
        block.refine(factor)


def test_controls_flag_must_be_a_bool():
    block = DynamicBlock(make_layer("single", 2, dims=0), "euler", [0, 1])
    with pytest.raises(TypeError, match="controls must be a bool"):
        block.refine(2, controls="yes")


@pytest.mark.parametrize("controls", [False, True])
def test_refine_network_replaces_every_block_and_its_config(controls):
    net = rknet.ODENet(3, 2, widths=(4, 4, 4), dims=0, t_states=[0, 1, 2], norm=None,
                       activation="tanh").double().eval()
    refined = net.refine(2, controls=controls)
    assert [b.num_steps for b in refined.blocks] == [4, 4]
    assert [b.num_steps for b in net.blocks] == [2, 2]  # the original is untouched
    assert refined.spec.t_states == (0, 0.5, 1, 1.5, 2)
    assert refined.spec.t_controls == (None if controls else (0, 1, 2))
    rebuilt = rknet.ODENet.from_spec(refined.spec).double()
    rebuilt.load_state_dict(refined.state_dict())  # the config describes the refined model exactly
    x = torch.randn(5, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), refined(x))
        # Closer to the fine-grid network than the original was, by at least the RK4 factor 2^4 / 2.
        fine = net.refine(16)(x)
        assert (refined(x) - fine).norm() <= (net(x) - fine).norm() / 8


@pytest.mark.parametrize("method", ["leapfrog", "hamiltonian"])
def test_reversible_networks_refine_with_theta_kept_and_refuse_recomputing_strategies(method):
    net = rknet.ODENet(2, 3, widths=(3, 3), dims=0, method=method, t_states=(0, 1, 2), activation="tanh",
                       norm=None).double()  # smooth, so that refinements converge at the schemes' order
    refined = net.refine(2)
    assert refined.spec.t_states == (0, 0.5, 1, 1.5, 2) and refined.blocks[0].t_controls == (0, 0.5, 1, 1.5)
    for name, stacked in net.blocks[0].controls.items():  # piecewise-constant theta: each control taken twice
        assert torch.equal(refined.blocks[0].controls[name], stacked.repeat_interleave(2, dim=0))
    x = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():  # another discretisation of the same ODE: finer ones converge to one output
        fine = net.refine(64)(x)
        errors = [(net.refine(factor)(x) - fine).norm().item() for factor in (1, 2, 4, 8)]
        assert torch.equal(refined(x), net.refine(2)(x))
    assert errors[0] > errors[1] > errors[2] > errors[3] > 0
    assert errors[2] / errors[3] >= 1.8  # first order once resolved (measured 2.0-3.6 over 4 seeds)
    with pytest.raises(ValueError, match=f"gradient 'selective' does not apply to {method} blocks; they accept "
                                         "reversible, backprop"):
        rknet.ODENet(3, 10, method=method, gradient="selective")
