"""An experiment for the GPU: the input gradient of rknet's 'same' convolutions as a forward convolution.

On an H200 the default network's training step is 81-84 % convolutions, two thirds of them backward passes
(BENCHMARKS.md, "Where the GPU time goes"). torch.compile's max-autotune mode times Triton convolution
templates against cuDNN and was several times faster for the forward convolutions of 16-32 channels, but the
GPU machine's torch 2.11 was seen timing templates for forward convolutions only (torch 2.13 has them for
`convolution_backward` too: there this experiment compares with those). The input gradient of a stride-1
'same' convolution with kernel K is the 'same' convolution of the output gradient with K's channels swapped
and its taps reversed, a forward convolution that the templates can take. `SameConvolution` computes it so
(the weight gradient stays cuDNN's), and `use_forward_input_gradients()` routes `rknet.common.kernels.apply_kernel`,
the layers' convolutions, through it for the rest of the process: `throughput.py --conv-backward forward`
(and `profile_step.py --conv-backward forward`).

`python conv_backward.py` checks the gradients against autograd's in float64 and a compiled bf16 training step
against the plain one, on whatever device is given (default cpu).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import rknet.layers


class SameConvolution(torch.autograd.Function):
    """conv2d(x, weight, bias, padding=1) with the input gradient computed as a forward convolution."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        out = F.conv2d(x, weight, bias, padding=1)  # under autocast: x and weight cast to out's dtype
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad
        weight, x = weight.to(grad.dtype), x.to(grad.dtype)  # backward runs outside autocast
        grad_x = F.conv2d(grad, weight.transpose(0, 1).flip((2, 3)), padding=1) if need_x else None
        grad_weight = (torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], [1, 1], [1, 1], False,
                                                           [0, 0], 1, [False, True, False])[1]
                       if need_weight else None)
        grad_bias = grad.sum((0, 2, 3)) if ctx.has_bias and need_bias else None
        return grad_x, grad_weight, grad_bias


def apply_kernel(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, dims: int) -> torch.Tensor:
    """`rknet.common.kernels.apply_kernel` with `SameConvolution` for images; other dimensions as before."""
    if dims != 2:
        return plain_apply_kernel(x, kernel, bias, dims)
    return SameConvolution.apply(x, kernel, bias)


plain_apply_kernel = rknet.common.kernels.apply_kernel


def use_forward_input_gradients() -> None:
    """From now on in this process, rknet's layers take their convolutions through `SameConvolution`."""
    rknet.common.kernels.apply_kernel = apply_kernel


def check(device: torch.device) -> None:
    """Print the gradient differences against autograd's (float64) and a compiled bf16 step's (same start)."""
    import copy

    from throughput import fast_training_step, parameter_update, synthetic_batches

    generator = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(shape, generator=generator, dtype=torch.float64).to(device).requires_grad_()
                       for shape in ((3, 5, 7, 6), (4, 5, 3, 3), (4,)))
    upstream = torch.randn(3, 4, 7, 6, generator=generator, dtype=torch.float64).to(device)
    expected = torch.autograd.grad(F.conv2d(x, weight, bias, padding=1), (x, weight, bias), upstream)
    got = torch.autograd.grad(SameConvolution.apply(x, weight, bias), (x, weight, bias), upstream)
    print("float64 gradients, max |SameConvolution - autograd| for input, weight, bias: "
          + ", ".join(f"{(a - b).abs().max().item():.1e}" for a, b in zip(got, expected)))

    torch.manual_seed(0)
    plain = rknet.ODENet(in_channels=3, num_classes=10).to(device)
    start = [p.detach().clone() for p in plain.parameters()]
    images, labels = synthetic_batches(1, 16, device, seed=1)[0]
    other = copy.deepcopy(plain)
    fast_training_step(plain, device, lr=0.01)(images, labels)
    use_forward_input_gradients()
    torch._dynamo.reset()
    fast_training_step(other, device, lr=0.01)(images, labels)
    update, changed = parameter_update(plain, start), parameter_update(other, start)
    print(f"one fast-path step on {device}: |update - plain update| / |update| = "
          f"{((changed - update).norm() / update.norm()).item():.2e}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    check(torch.device(parser.parse_args().device))
