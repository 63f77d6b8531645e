"""The time regulariser and the box constraint on kernel weights."""

import pytest
import torch
from torch import nn

from rknet import DynamicBlock
from rknet.blocks.reversible import HamiltonianBlock, LeapfrogBlock
from rknet.layers import make_layer
from rknet.network.regularization import clip_weights_, time_regularization


def hand_built_block():
    """Kernels 0, 1, 3 (every entry) at the non-uniform control times 0, 0.5, 3; random biases."""
    block = DynamicBlock(make_layer("single", 2, dims=0), "rk4", [0, 0.5, 1, 3], [0, 0.5, 3]).double()
    with torch.no_grad():
        block.controls["K"].copy_(torch.tensor([0.0, 1.0, 3.0]).reshape(3, 1, 1).expand(3, 2, 2))
        block.controls["b"].normal_()
    return block


def test_equals_the_formula_on_hand_built_weights():
    # (4 entries * 1^2) / 0.5 + (4 entries * 2^2) / 2.5; biases do not count
    expected = 4 / 0.5 + 16 / 2.5
    torch.testing.assert_close(time_regularization(hand_built_block()),
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-14, atol=0)


def test_sums_over_every_block_and_kernel_of_a_model():
    dense = DynamicBlock(make_layer("double", 3, dims=0), "heun", [0, 1, 2, 4]).double()
    leapfrog = LeapfrogBlock(make_layer("doublesym", 3, dims=0), [0, 1, 2, 3]).double()
    model = nn.Sequential(hand_built_block(), nn.Linear(2, 3).double(), dense, leapfrog)
    for block in (dense, leapfrog):
        with torch.no_grad():
            for value in block.controls.values():
                value.normal_()
    expected = 4 / 0.5 + 16 / 2.5
    for block in (dense, leapfrog):
        times = block.t_controls
        for name in ("K1", "K2") if block is dense else ("K",):
            stacked = block.controls[name]
            expected += sum((stacked[k + 1] - stacked[k]).square().sum() / (times[k + 1] - times[k])
                            for k in range(len(times) - 1))
    torch.testing.assert_close(time_regularization(model), expected, rtol=1e-12, atol=0)


def test_is_differentiable():
    block = hand_built_block()
    time_regularization(block).backward()
    # d/dK_1 of (K1 - K0)^2 / 0.5 + (K2 - K1)^2 / 2.5 = 2 (1 - 0) / 0.5 - 2 (3 - 1) / 2.5 per entry
    torch.testing.assert_close(block.controls["K"].grad[1], torch.full((2, 2), 4 - 1.6, dtype=torch.float64))
    assert block.controls["b"].grad is None


def test_zero_tensor_for_a_single_control_time_and_for_no_blocks():
    block = DynamicBlock(make_layer("single", 2, dims=0), "rk4", [0, 1, 2], t_controls=[0.0])
    with torch.no_grad():
        block.controls["K"].normal_()
    for model in (block, nn.Linear(2, 2)):
        value = time_regularization(model)
        assert isinstance(value, torch.Tensor) and value.item() == 0.0


def test_hamiltonian_block_counts_both_halves():
    block = HamiltonianBlock(make_layer("doublesym", 2, dims=0), t_states=[0, 1, 2]).double()
    with torch.no_grad():
        block.controls["y_K"][1].add_(1.0)
        block.controls["z_K"][1].add_(2.0)
    torch.testing.assert_close(time_regularization(block).item(), 4 * 1.0 + 4 * 4.0)


def test_clip_bounds_kernels_only():
    block = hand_built_block()
    bias = block.controls["b"].detach().clone()
    clip_weights_(nn.Sequential(block), 0.5)
    assert block.controls["K"].abs().max().item() == 0.5
    assert torch.equal(block.controls["K"][0], torch.zeros(2, 2, dtype=torch.float64))
    assert torch.equal(block.controls["b"], bias)


@pytest.mark.parametrize("bound", [0, -1.0, float("inf"), float("nan"), "1", True])
def test_clip_rejects_bad_bounds(bound):
    with pytest.raises(ValueError, match="bound must be a finite number > 0"):
        clip_weights_(hand_built_block(), bound)


def test_not_a_module_is_a_type_error():
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        time_regularization([hand_built_block()])
