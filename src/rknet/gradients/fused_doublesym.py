"""The DoubleSym layer's forward pass and its hand-written backward pass, for the fused block (`rknet.fused`).

f(y) = -K^T relu(N(K y + b1)) + b2 with N the TV norm (`z * rsqrt(sum_c z^2 + eps) + bias`) or none, on
vectors (K a matrix), signals and images (K a 'same' convolution, K^T its adjoint). `forward` computes
what `rknet.layers.DoubleSym` computes, with the same operations in the same order, and returns what the
backward pass needs; `backward` is the chain rule written out: a dozen tensor operations per evaluation
where autograd records twice as many nodes, each with its own overhead (which dominates at small sizes).
"""

from __future__ import annotations

from typing import Any

import torch

from rknet.common.kernels import apply_kernel
from rknet.layers import DoubleSym
from rknet.layers.norms import TV_EPS

Saved = tuple[torch.Tensor, ...]


def _last(dims: int) -> tuple[int, ...]:
    return tuple(range(-dims, 0))


def _channels_last(stacked: torch.Tensor) -> torch.Tensor:
    """Kernels stacked over evaluations, (n, O, I, H, W), each in channels_last layout."""
    return stacked.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


class DoubleSymMath:
    """Forward and backward of DoubleSym with relu and TV norm (or none) for one `dims`.

    `prepare` adds, for all evaluations at once, the second kernel W (-K for vectors, -flip(K^T) for
    convolutions; `apply_kernel_transpose` builds the same per call). For vectors the backward pass leaves
    the biases' grads per sample and the kernel's grads as their factors; `collect` reduces them for all
    evaluations at once (a batched matrix product instead of two products per evaluation).
    """

    def __init__(self, dims: int, norm: str, signals_as_rows: bool = True) -> None:
        self.dims, self.tv = dims, norm == "tv"
        # Signals (N, C, L) run as one-row images (N, C, 1, L) in channels_last layout: oneDNN's 2-D
        # convolutions on that layout are faster than its 1-D ones at these sizes.
        self.rows = dims == 1 and signals_as_rows
        self.conv_dims = 2 if self.rows else dims
        self.padding = [0, 1] if self.rows else [1] * dims
        self.spatial = tuple(range(2, 2 + self.conv_dims))

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        """A state or grad in the layout the fused pass works in."""
        return x.unsqueeze(2).contiguous(memory_format=torch.channels_last) if self.rows else x

    def leave(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """A state or grad back in the caller's shape."""
        return x.squeeze(2) if self.rows and x is not None else x

    def prepare(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Derived weights of every evaluation from the interpolated controls (leading dimension)."""
        kernels = values["K"]
        if self.dims == 0:
            second = kernels.neg()
            return {**values, "W": second, "Wt": second.transpose(1, 2)}
        second = kernels.neg().transpose(1, 2).flip(_last(self.dims))
        if self.rows:
            return {**values, "K": _channels_last(kernels.unsqueeze(3)), "W": _channels_last(second.unsqueeze(3))}
        return {**values, "W": second}

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if self.conv_dims == 2:
            return torch.nn.functional.conv2d(x, weight, bias, padding=self.padding)
        return apply_kernel(x, weight, bias, self.dims)

    def _conv_backward(self, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                       need_input: bool) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(grad of x, grad of weight, grad of bias) of a stride-1 'same' convolution, in one call."""
        ones = [1] * self.conv_dims
        return torch.ops.aten.convolution_backward(grad, x, weight, [weight.shape[0]], ones, self.padding, ones,
                                                   False, [0] * self.conv_dims, 1, [need_input, True, True])

    def forward(self, params: dict[str, torch.Tensor], y: torch.Tensor, keep: bool) -> tuple[torch.Tensor, Saved]:
        """(f(y), what backward needs; empty unless `keep`)."""
        z = self._conv(y, params["K"], params["b1"]) if self.dims else apply_kernel(y, params["K"], params["b1"], 0)
        scale = None
        if self.tv:
            scale = torch.rsqrt(z.square().sum(dim=1, keepdim=True) + TV_EPS)
            bias = params["norm_bias"].view(1, -1, *([1] * self.conv_dims))
            a = torch.relu(torch.addcmul(bias, z, scale))
        else:
            a = torch.relu(z)
        if self.dims == 0:
            out = torch.addmm(params["b2"], a, params["W"])
        else:
            out = self._conv(a, params["W"], params["b2"])
        return out, ((y, z, scale, a) if keep else ())

    def backward(self, params: dict[str, torch.Tensor], saved: Saved, grad: torch.Tensor,
                 need_input: bool) -> tuple[torch.Tensor | None, dict[str, Any]]:
        """(grad of y, grads of the parameters at this evaluation, as `collect` takes them) given the grad
        of f(y)."""
        y, z, scale, a = saved
        dims = self.dims
        grads: dict[str, Any] = {}
        if dims == 0:  # out = b2 + a W
            grads["b2"] = grad
            grad_a = torch.mm(grad, params["Wt"])
        else:  # out = conv(a, W) + b2
            grad_a, grad_weight, grads["b2"] = self._conv_backward(grad, a, params["W"], True)
        grad_n = torch.ops.aten.threshold_backward(grad_a, a, 0)
        if self.tv:
            grads["norm_bias"] = grad_n if dims == 0 else grad_n.sum([0, *self.spatial])
            inner = (grad_n * z).sum(dim=1, keepdim=True)  # d/dz of z * (|z|^2 + eps)^(-1/2)
            grad_z = torch.addcmul(grad_n * scale, z, inner * scale.pow(3), value=-1)
        else:
            grad_z = grad_n
        if dims == 0:  # z = y K^T + b1
            grads["b1"], grads["K"] = grad_z, (grad_z, y, a, grad)
            grad_y = torch.mm(grad_z, params["K"]) if need_input else None
        else:
            grad_y, first, grads["b1"] = self._conv_backward(grad_z, y, params["K"], need_input)
            grads["K"] = first - grad_weight.flip(_last(dims)).transpose(0, 1)
        return grad_y, grads

    def collect(self, name: str, grads: list[Any]) -> torch.Tensor:
        """The grads of one parameter at every evaluation, stacked: shape (evaluations, *shape)."""
        if name == "K" and self.dims == 0:  # K's grad is grad_z^T y - a^T grad, for all evaluations at once
            grad_z, y, a, grad = (torch.stack(parts) for parts in zip(*grads))
            return torch.baddbmm(torch.bmm(grad_z.transpose(1, 2), y), a.transpose(1, 2), grad, alpha=-1)
        stacked = torch.stack(grads)
        return stacked.sum(1) if self.dims == 0 and name != "K" else stacked


def fusable_layer(layer) -> DoubleSymMath | None:
    """The fused math for `layer`, or None where the generic path must run (another layer type,
    activation or norm: batch norm's running statistics stay with the generic path)."""
    if type(layer) is not DoubleSym or layer.activation != "relu" or layer.norm not in ("tv", "none"):
        return None
    return DoubleSymMath(layer.dims, layer.norm)
