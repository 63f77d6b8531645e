"""One kernel applied to vectors, signals or images: a matrix, a width-3 or a 3x3 convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kernel_shape(channels_out: int, channels_in: int, dims: int) -> tuple[int, ...]:
    """A dense matrix for vectors, a width-3 kernel for signals, a 3x3 kernel for images."""
    return (channels_out, channels_in) + (3,) * dims


def apply_kernel(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, dims: int) -> torch.Tensor:
    """K x + b: a matrix product or a 'same' convolution."""
    if dims == 0:
        return F.linear(x, kernel, bias)
    if dims == 1:
        return F.conv1d(x, kernel, bias, padding=1)
    return F.conv2d(x, kernel, bias, padding=1)


def apply_kernel_transpose(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None,
                           dims: int) -> torch.Tensor:
    """K^T x + b, the adjoint of `apply_kernel`.

    The adjoint of a stride-1 'same' convolution is the convolution with the kernel's channels swapped
    and its taps reversed; written as a plain convolution it takes the fast (oneDNN/cuDNN) path that
    `conv_transpose` often misses on the CPU.
    """
    if dims == 0:
        return F.linear(x, kernel.t(), bias)
    return apply_kernel(x, kernel.transpose(0, 1).flip(tuple(range(2, 2 + dims))), bias, dims)
