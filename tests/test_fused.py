"""The fused block pass (rknet.gradients.fused) against the generic path that autograd records op by op.

The tolerance comes from the precision: both paths run in fp32 and are compared with the generic path run
in fp64 (the truth, to fp32's eyes). The fused path's error must stay within 4x the generic path's own
fp32 error plus 4 eps of the largest value compared: the forward pass runs the same operations (signals as one-row
images; an interpolation that mixes two controls is a matrix product), the backward pass sums in another
order, and TV norm's backward amplifies round-off alike on both paths where |K y| is small. Measured: at
most 2.2x over 24 methods, grids and dims x 3 seeds.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import rknet
from rknet.gradients import fused

EPS = torch.finfo(torch.float32).eps


def as_accurate(fast: list[torch.Tensor], eager: list[torch.Tensor], truth: list[torch.Tensor]) -> bool:
    """Each fp32 result of the fused path is as close to the fp64 truth as the generic path's, within 4x
    (plus 4 eps of the largest value of all: the grads of biases ahead of batch norm are round-off alone)."""
    floor = EPS * max(float(c.abs().max()) for c in truth)
    for a, b, c in zip(fast, eager, truth, strict=True):
        if float((a.double() - c).abs().max()) > 4 * (float((b.double() - c).abs().max()) + floor):
            return False
    return True


def fused_nodes(out: torch.Tensor) -> int:
    """How many nodes of `out`'s autograd graph are fused block passes (one per block that took the fused path)."""
    seen, stack, count = set(), [out.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        count += type(node).__name__ == "FusedBlockBackward"
        stack.extend(next_node for next_node, _ in node.next_functions)
    return count


def network_pass(model, x, labels, use_fused: bool) -> list[torch.Tensor]:
    """[logits, grads of the input and of every parameter] of one cross-entropy backward pass; every block
    took the fused path if `use_fused`, none did otherwise."""
    fused.set_enabled(use_fused)
    try:
        model.zero_grad()
        x = x.detach().requires_grad_()
        logits = model(x)
        assert fused_nodes(logits) == (len(model.blocks) if use_fused else 0)
        F.cross_entropy(logits, labels).backward()
        return [logits.detach(), x.grad.clone(), *(p.grad.clone() for p in model.parameters())]
    finally:
        fused.set_enabled(True)


def block_pass(block, y, weights, use_fused: bool) -> list[torch.Tensor]:
    """[output, grads of the input and the controls] of sum(block(y) * weights), through the fused path if
    `use_fused` (checked), else through the generic one."""
    fused.set_enabled(use_fused)
    try:
        y = y.detach().requires_grad_()
        out = block(y)
        assert fused_nodes(out) == int(use_fused)
        return [out.detach(), *torch.autograd.grad((out * weights).sum(), [y, *block.controls.values()])]
    finally:
        fused.set_enabled(True)


@pytest.mark.parametrize("dims", [0, 1, 2])
@pytest.mark.parametrize("norm", ["tv", "none"])
def test_default_network_as_accurate_as_the_generic_path(dims, norm):
    torch.manual_seed(0)
    shape = ((2,), (1, 12), (1, 6, 6))[dims]
    model = rknet.ODENet(shape[0], 5, widths=(4, 6, 6), dims=dims, norm=norm)
    x, labels = torch.randn(8, *shape), torch.randint(0, 5, (8,))
    truth = network_pass(copy.deepcopy(model).double(), x.double(), labels, False)
    assert as_accurate(network_pass(model, x, labels, True), network_pass(model, x, labels, False), truth)


@pytest.mark.parametrize("dims", [1, 2])
def test_non_contiguous_inputs(dims):
    torch.manual_seed(0)
    model = rknet.ODENet(3, 5, widths=(4, 6, 6), dims=dims)
    x = torch.randn(8, 3, *(6,) * dims)
    x = x.contiguous(memory_format=torch.channels_last) if dims == 2 else x.transpose(1, 2).contiguous().transpose(1, 2)
    labels = torch.randint(0, 5, (8,))
    truth = network_pass(copy.deepcopy(model).double(), x.double(), labels, False)
    assert as_accurate(network_pass(model, x, labels, True), network_pass(model, x, labels, False), truth)


@pytest.mark.parametrize("method, grids", [
    ("euler", {}), ("midpoint", {}), ("heun", {}), ("dopri5", {}),
    ("rk4", {"t_controls": (0.0, 4.0)}),
    ("rk4", {"interpolation": "constant", "t_controls": (0.0, 1.5, 4.0)}),
    ("rk38", {"t_states": (0.0, 0.5, 2.0, 2.25, 4.0)}),
])
@pytest.mark.parametrize("dims", [0, 1])
@pytest.mark.filterwarnings("ignore::rknet.solvers.grid.GridWarning")  # a knot inside a step, on purpose
def test_methods_and_grids_as_accurate_block_by_block(method, grids, dims):
    torch.manual_seed(0)
    grids = dict(grids)
    layer = rknet.layers.DoubleSym(4, dims=dims, norm="tv")
    block = rknet.DynamicBlock(layer, method, grids.pop("t_states", (0, 1, 2, 3, 4)), **grids)
    with torch.no_grad():
        for value in block.controls.values():
            value.add_(0.1 * torch.randn_like(value))
    y = torch.randn(6, 4, *(9,) * dims)
    weights = torch.randn_like(y)
    truth = block_pass(copy.deepcopy(block).double(), y.double(), weights.double(), False)
    assert as_accurate(block_pass(block, y, weights, True), block_pass(block, y, weights, False), truth)


@pytest.mark.parametrize("dims", [0, 1])
def test_fused_gradients_pass_gradcheck(dims):
    torch.manual_seed(2)
    block = rknet.DynamicBlock(rknet.layers.DoubleSym(2, dims=dims, norm="tv"), "rk4", t_states=[0, 0.5, 1],
                               t_controls=[0, 1]).double()
    y = torch.randn(3, 2, *(4,) * dims, dtype=torch.float64, requires_grad=True)
    names = list(block.controls)
    params = [block.controls[n].detach().clone().requires_grad_() for n in names]

    def run(y, *params):
        out = torch.func.functional_call(block, {f"controls.{n}": p for n, p in zip(names, params)}, (y,))
        assert type(out.grad_fn).__name__ == "FusedBlockBackward"
        return out

    assert torch.autograd.gradcheck(run, (y, *params))


def test_the_fused_path_serves_the_default_network_and_only_it():
    y = torch.randn(4, 8, requires_grad=True)
    block = rknet.ODENet(2, 5, dims=0).blocks[0]
    assert type(block(torch.randn(4, 16, requires_grad=True)).grad_fn).__name__ == "FusedBlockBackward"
    with fused.disabled():
        assert type(block(torch.randn(4, 16, requires_grad=True)).grad_fn).__name__ != "FusedBlockBackward"
    for layer in (rknet.layers.DoubleSym(8, dims=0, norm="batch"), rknet.layers.DoubleSym(8, dims=0, activation="tanh"),
                  rknet.layers.Double(8, dims=0)):
        generic = rknet.DynamicBlock(layer, "rk4")
        assert type(generic(y).grad_fn).__name__ != "FusedBlockBackward"
    checkpointed = rknet.DynamicBlock(rknet.layers.DoubleSym(8, dims=0, norm="tv"), "rk4", gradient="checkpoint")
    assert type(checkpointed(y).grad_fn).__name__ != "FusedBlockBackward"


def test_eval_mode_partial_grads_and_no_double_backward():
    torch.manual_seed(1)
    block = rknet.DynamicBlock(rknet.layers.DoubleSym(3, dims=1, norm="tv"), "rk4")
    y = torch.randn(5, 3, 7)
    with torch.no_grad():
        out = block(y)
        with fused.disabled():
            assert torch.allclose(out, block(y), rtol=0, atol=64 * EPS * float(out.abs().max()))
    block.requires_grad_(False)  # only the input needs a grad
    x = y.clone().requires_grad_()
    (grad,) = torch.autograd.grad(block(x).square().sum(), x)
    with fused.disabled():
        (expected,) = torch.autograd.grad(block(x).square().sum(), x)
    assert torch.allclose(grad, expected, rtol=0, atol=64 * EPS * float(expected.abs().max()))
    block.requires_grad_(True)  # only the parameters need grads
    block(y).sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    out = block(y.clone().requires_grad_())
    (first,) = torch.autograd.grad(out.square().sum(), block.controls["K"], create_graph=True)
    with pytest.raises(RuntimeError):
        first.sum().backward()
