"""The fused block pass (rknet.fused) against the generic path that autograd records op by op.

Tolerances come from the precision: the forward pass runs the same operations (an interpolation that mixes
two controls is a matrix product there), the backward pass sums in another order, so the two differ by
round-off accumulated over a few dozen evaluations: 64 eps of the largest value compared (fp32: 7.6e-6
relative; fp64: 1.4e-14).
"""

import pytest
import torch
import torch.nn.functional as F

import rknet
from rknet import fused


def close(actual: torch.Tensor, expected: torch.Tensor, scale: float | None = None) -> bool:
    """|actual - expected| <= 64 eps * scale, scale defaulting to the largest |expected|."""
    scale = float(expected.abs().max()) if scale is None else scale
    return float((actual - expected).abs().max()) <= 64 * torch.finfo(expected.dtype).eps * max(scale, 1e-30)


def run(model, x, labels, use_fused: bool):
    """(logits, grads of the parameters and the input) of one cross-entropy backward pass."""
    fused.set_enabled(use_fused)
    try:
        model.zero_grad()
        x = x.detach().requires_grad_()
        logits = model(x)
        F.cross_entropy(logits, labels).backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        grads["input"] = x.grad.clone()
        return logits.detach(), grads
    finally:
        fused.set_enabled(True)


def check_network(dtype: torch.dtype, **options) -> None:
    torch.manual_seed(0)
    dims = options.get("dims", 2)
    shape = ((2,), (1, 12), (1, 6, 6))[dims]
    model = rknet.ODENet(shape[0], 5, widths=(4, 6, 6), **options).to(dtype)
    x, labels = torch.randn(8, *shape, dtype=dtype), torch.randint(0, 5, (8,))
    logits, grads = run(model, x, labels, True)
    reference, expected = run(model, x, labels, False)
    assert close(logits, reference)
    scale = max(float(g.abs().max()) for g in expected.values())  # biases before batch norm have ~0 grads
    for name, grad in grads.items():
        assert close(grad, expected[name], scale), name


@pytest.mark.parametrize("dims", [0, 1, 2])
@pytest.mark.parametrize("norm", ["tv", "none"])
def test_default_layer_matches_generic_path_in_fp32(dims, norm):
    check_network(torch.float32, dims=dims, norm=norm)


@pytest.mark.parametrize("method, grids", [
    ("euler", {}), ("midpoint", {}), ("heun", {}), ("dopri5", {}),
    ("rk4", {"t_controls": (0.0, 4.0)}),
    ("rk4", {"interpolation": "constant", "t_controls": (0.0, 1.5, 4.0)}),
    ("rk38", {"t_states": (0.0, 0.5, 2.0, 2.25, 4.0)}),
])
@pytest.mark.parametrize("dims", [0, 1])
@pytest.mark.filterwarnings("ignore::rknet.grid.GridWarning")  # a knot inside a step, on purpose
def test_methods_and_grids_match_in_fp64(method, grids, dims):
    check_network(torch.float64, dims=dims, method=method, **grids)


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
            assert close(out, block(y))
    block.requires_grad_(False)  # only the input needs a grad
    x = y.clone().requires_grad_()
    (grad,) = torch.autograd.grad(block(x).square().sum(), x)
    with fused.disabled():
        (expected,) = torch.autograd.grad(block(x).square().sum(), x)
    assert close(grad, expected)
    block.requires_grad_(True)  # only the parameters need grads
    block(y).sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    out = block(y.clone().requires_grad_())
    (first,) = torch.autograd.grad(out.square().sum(), block.controls["K"], create_graph=True)
    with pytest.raises(RuntimeError):
        first.sum().backward()
