"""Memory modes: checkpointed dynamic blocks and reversible blocks give plain backprop's gradients."""

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import rknet
from rknet import DynamicBlock
from rknet.analysis.memory import held_for_backward
from rknet.blocks.reversible import HamiltonianBlock, LeapfrogBlock
from rknet.layers import make_layer


def perturbed(block):
    with torch.no_grad():
        for value in block.controls.values():
            value.add_(0.3 * torch.randn_like(value))
    return block


def gradients(block, y, weight):
    """Gradients of <block(y), weight> with respect to y and every parameter."""
    y = y.detach().requires_grad_()
    block.zero_grad()
    (block(y) * weight).sum().backward()
    return [y.grad] + [p.grad for p in block.parameters()]


def assert_same_gradients(block, other, y):
    weight = torch.randn_like(y)
    for ours, reference in zip(gradients(block, y, weight), gradients(other, y, weight), strict=True):
        assert ((ours - reference).norm() / reference.norm()).item() <= 1e-8


def saved_storages(block, y):
    """Storages the autograd graph of block(y) holds for backward, parameters excluded (bytes each)."""
    parameters = {p.untyped_storage().data_ptr() for p in block.parameters()}
    held = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            held[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        block(y.detach().requires_grad_())
    return list(held.values())


RECOMPUTING = ["checkpoint", "selective"]


def dynamic_pair(norm, dims=2, gradient="checkpoint", **kwargs):
    layer = make_layer("double" if norm == "batch" else "doublesym", 3, dims=dims, activation="tanh", norm=norm)
    plain = perturbed(DynamicBlock(layer, "rk4", [0, 0.5, 1, 1.5], **kwargs).double())
    checkpointed = DynamicBlock(layer, "rk4", [0, 0.5, 1, 1.5], gradient=gradient, **kwargs).double()
    checkpointed.load_state_dict(plain.state_dict())
    return plain, checkpointed


@pytest.mark.parametrize("memory", RECOMPUTING)
@pytest.mark.parametrize("norm", ["tv", "batch"])
def test_checkpoint_gives_backprop_gradients(norm, memory):
    plain, checkpointed = dynamic_pair(norm, gradient=memory, t_controls=[0, 1.5])
    assert_same_gradients(checkpointed, plain, torch.randn(4, 3, 5, 5, dtype=torch.float64))


@pytest.mark.parametrize("memory", RECOMPUTING)
def test_checkpoint_updates_batch_norm_statistics_once_per_training_step(memory):
    plain, checkpointed = dynamic_pair("batch", dims=1, gradient=memory)
    y = torch.randn(6, 3, 7, dtype=torch.float64)
    for block in (plain, checkpointed):
        optimizer = torch.optim.SGD(block.parameters(), lr=0.1)
        block(y).square().mean().backward()
        optimizer.step()
    for name, buffer in plain.named_buffers():
        assert torch.equal(checkpointed.get_buffer(name), buffer), name
    assert not torch.equal(plain.norm1_running_mean, torch.zeros_like(plain.norm1_running_mean))
    for name, parameter in plain.named_parameters():
        torch.testing.assert_close(checkpointed.get_parameter(name), parameter, rtol=1e-12, atol=1e-14)


def assert_same_output_without_grad(block, reference, y):
    """block(y) under no_grad has no graph and equals `reference`'s output computed with gradients on (the
    path the gradients belong to): under no_grad both blocks take another path, so comparing them there
    alone would compare that path with itself."""
    expected = reference(y.detach().requires_grad_()).detach()
    with torch.no_grad():
        out = block(y)
    assert out.grad_fn is None and not out.requires_grad
    assert torch.equal(out, expected)


@pytest.mark.parametrize("memory", RECOMPUTING)
def test_checkpoint_in_eval_mode_and_without_grad(memory):
    plain, checkpointed = dynamic_pair("batch", dims=0, gradient=memory)
    plain.eval(), checkpointed.eval()
    assert_same_gradients(checkpointed, plain, torch.randn(4, 3, dtype=torch.float64))
    before = {name: buffer.clone() for name, buffer in checkpointed.named_buffers()}
    y = torch.randn(2, 3, dtype=torch.float64)
    assert_same_output_without_grad(checkpointed, plain, y)
    assert_same_output_without_grad(checkpointed, checkpointed, y)
    for name, buffer in checkpointed.named_buffers():  # eval mode: the running statistics are only read
        assert torch.equal(buffer, before[name]), name


def test_checkpoint_holds_only_each_steps_input():
    plain, checkpointed = dynamic_pair("tv")
    y = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    assert saved_storages(checkpointed, y) == [y.numel() * y.element_size()] * 3
    assert len(saved_storages(plain, y)) > 3 * 4


def test_held_for_backward_counts_what_the_graph_keeps():
    x = torch.randn(100, requires_grad=True)
    assert held_for_backward(lambda: (x * 2).exp()) == 0  # exp saves its output, which is returned
    assert held_for_backward(lambda: (x * 2).sin()) == 400  # sin saves its input, x * 2
    assert held_for_backward(lambda: (x * 2).sin().detach()) == 0  # no graph, nothing held
    with torch.no_grad():
        assert held_for_backward(lambda: (x * 2).sin()) == 0


class ConvolutionCount(TorchDispatchMode):
    """Counts forward convolutions run while active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten.convolution.default
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("norm", ["tv", "batch"])
def test_memory_modes_hold_what_they_promise(norm):
    """In units of one state: checkpoint keeps the inputs of steps 2..N, selective those plus the output of
    every convolution (two per evaluation) and runs no convolution again; backprop keeps more."""
    y = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    state = y.numel() * y.element_size()
    plain, checkpointed = dynamic_pair(norm)
    selective = dynamic_pair(norm, gradient="selective")[1]
    evaluations, steps = plain.evaluations_per_forward, plain.num_steps
    held = {block.gradient.name: held_for_backward(lambda block=block: block(y)) / state
            for block in (plain, checkpointed, selective)}
    assert held["checkpoint"] == steps - 1
    assert held["selective"] == 2 * evaluations + steps - 1
    assert held["backprop"] > held["selective"] + evaluations
    recomputed = {}
    for block in (plain, checkpointed, selective):
        output = block(y)
        with ConvolutionCount() as counter:
            output.sum().backward()
        recomputed[block.gradient.name] = counter.count
    # checkpoint reruns the step up to its last saved tensor (all but the final convolution of a step)
    assert recomputed["backprop"] == recomputed["selective"] == 0
    assert 2 * evaluations - steps <= recomputed["checkpoint"] <= 2 * evaluations


@pytest.mark.slow  # torch.compile
@pytest.mark.parametrize("memory", RECOMPUTING)
def test_compiled_recomputing_modes_match_eager_backprop(memory):
    """Under torch.compile the partitioner does the recomputation: same outputs, gradients and batch-norm
    statistics as eager backprop."""
    layer = make_layer("double", 3, dims=0, activation="tanh", norm="batch")
    plain = perturbed(DynamicBlock(layer, "heun", [0, 0.5]).double())
    other = DynamicBlock(layer, "heun", [0, 0.5], gradient=memory).double()
    other.load_state_dict(plain.state_dict())
    compiled = torch.compile(other)
    y = torch.randn(6, 3, dtype=torch.float64)
    weight = torch.randn_like(y)
    for ours, reference in zip(gradients(compiled, y, weight), gradients(plain, y, weight), strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-12)
    for name, buffer in plain.named_buffers():
        torch.testing.assert_close(other.get_buffer(name), buffer, rtol=1e-12, atol=1e-14)


def test_unknown_or_inapplicable_gradient_strategy():
    with pytest.raises(ValueError, match="unknown gradient strategy 'recompute'; valid: backprop, selective, "
                                         "checkpoint, reversible"):
        DynamicBlock(make_layer("single", 2, dims=0), gradient="recompute")
    with pytest.raises(ValueError, match="gradient 'reversible' does not apply to DynamicBlock; it accepts backprop, "
                                         "selective, checkpoint"):
        DynamicBlock(make_layer("single", 2, dims=0), gradient="reversible")
    with pytest.raises(ValueError, match="it accepts reversible, backprop"):
        LeapfrogBlock(make_layer("single", 2, dims=0), gradient="checkpoint")


def reversible_blocks(steps, channels=3):
    grid = rknet.uniform_grid(steps, 2.0)
    layer = make_layer("doublesym", channels, dims=1, activation="tanh", norm="tv")
    other = make_layer("single", channels, dims=1, activation="tanh", norm=None)
    return [perturbed(LeapfrogBlock(layer, grid).double()),
            perturbed(HamiltonianBlock(layer, other, grid).double()),
            perturbed(HamiltonianBlock(layer, t_states=grid).double())]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["leapfrog", "hamiltonian", "hamiltonian-same-layer"])
def test_reversible_gives_backprop_gradients(index):
    block = reversible_blocks(6)[index]
    plain = copy.deepcopy(block)
    plain.gradient = rknet.GRADIENTS["backprop"]
    y = torch.randn(2, 3, 8, dtype=torch.float64)
    assert_same_gradients(block, plain, y)
    assert torch.equal(block(y.requires_grad_()), plain(y))  # the reversible pass gives backprop's output
    assert_same_output_without_grad(block, plain, y)


def test_reversible_parameters_get_gradients_when_the_input_needs_none():
    block = reversible_blocks(3)[1]
    block(torch.randn(2, 3, 4, dtype=torch.float64)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


@pytest.mark.parametrize("index", [0, 1])
def test_reversible_reconstruction_after_64_steps(index):
    block = reversible_blocks(64)[index]
    y = torch.randn(4, 3, 8, dtype=torch.float64)
    first, second = block.reconstruct(y)
    for rebuilt, initial in zip((first, second), block.initial(y), strict=True):
        assert (rebuilt - initial).abs().max().item() <= 1e-10


@pytest.mark.parametrize("index", [0, 1])
def test_reversible_memory_does_not_grow_with_steps(index):
    y = torch.randn(2, 3, 8, dtype=torch.float64)
    held = [sum(saved_storages(reversible_blocks(steps)[index], y)) for steps in (4, 32)]
    assert held[0] == held[1] == 2 * y.numel() * y.element_size()


def test_reversible_blocks_store_one_control_per_step():
    block = HamiltonianBlock(make_layer("doublesym", 4, dims=2), t_states=[0, 1, 2, 3])
    assert block.t_controls == (0, 1, 2) and block.h == 1.0
    assert block.controls["y_K"].shape == block.controls["z_K"].shape == (3, 4, 4, 3, 3)
    assert block.decay_parameter_names() == ["controls.y_K", "controls.z_K"]


def test_reversible_blocks_refuse_batch_norm_and_nonuniform_grids():
    with pytest.raises(ValueError, match="does not support the norm 'batch'"):
        LeapfrogBlock(make_layer("double", 2, dims=0, norm="batch"))
    with pytest.raises(ValueError, match="HamiltonianBlock does not support the norm 'batch'"):
        HamiltonianBlock(make_layer("single", 2, dims=0), make_layer("single", 2, dims=0, norm="batch"))
    with pytest.raises(ValueError, match="LeapfrogBlock needs a uniform grid"):
        LeapfrogBlock(make_layer("single", 2, dims=0), t_states=[0, 1, 3])
    with pytest.raises(ValueError, match="same channels"):
        HamiltonianBlock(make_layer("single", 2, dims=0), make_layer("single", 3, dims=0))
    with pytest.raises(TypeError, match="layer must be an rknet.layers.Layer"):
        LeapfrogBlock("doublesym")
