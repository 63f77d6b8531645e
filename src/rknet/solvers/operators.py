"""Learned symmetric positive semi-definite operators L = K^T K, applied and solved exactly.

The implicit half of an IMEX block: stages solve `(I + gamma L) y = r`. For signals and images K is a
3 (or 3x3) convolution with periodic boundaries, so L is diagonalised by the FFT: per frequency a C x C
Hermitian positive definite system `I + gamma K^(w)^H K^(w)`, solved by Cholesky. For vectors K is a dense
C x C matrix and the system is solved by Cholesky directly. Gradients flow through the FFTs and the
Cholesky factors by ordinary autograd: the solve is exact, there are no iterations to unroll.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rknet.common.kernels import apply_kernel, apply_kernel_transpose


def _periodic(x: torch.Tensor, dims: int) -> torch.Tensor:
    return F.pad(x, (1, 1) * dims, mode="circular")


class SymmetricOperator:
    """L = K^T K for one kernel: `apply(y)` gives L y, `solve(gamma, r)` gives (I + gamma L)^{-1} r.

    `kernel` has shape (C, C) for vectors (dims=0), (C, C, 3) for signals, (C, C, 3, 3) for images; the
    convolutions wrap around (periodic boundaries), which is what makes the FFT solve exact.
    """

    def __init__(self, kernel: torch.Tensor, dims: int) -> None:
        if kernel.dim() != dims + 2 or kernel.shape[0] != kernel.shape[1] or any(n != 3 for n in kernel.shape[2:]):
            raise ValueError(f"an operator kernel for dims={dims} must have shape (C, C{', 3' * dims}), got "
                             f"{tuple(kernel.shape)}")
        self.kernel, self.dims = kernel, dims

    def apply(self, y: torch.Tensor) -> torch.Tensor:
        """L y = K^T (K y), with periodic convolutions for signals and images."""
        if self.dims == 0:
            return apply_kernel_transpose(apply_kernel(y, self.kernel, None, 0), self.kernel, None, 0)
        shift = lambda x: _periodic(x, self.dims)  # noqa: E731
        forward = _valid(shift(y), self.kernel, self.dims)
        return _valid(shift(forward), self.kernel.transpose(0, 1).flip(tuple(range(2, 2 + self.dims))), self.dims)

    def solve(self, gamma: float, rhs: torch.Tensor) -> torch.Tensor:
        """(I + gamma L)^{-1} rhs, exactly (Cholesky; per frequency for convolutions)."""
        channels = self.kernel.shape[0]
        eye = torch.eye(channels, dtype=self.kernel.dtype, device=self.kernel.device)
        if self.dims == 0:
            factor = torch.linalg.cholesky(eye + gamma * self.kernel.T @ self.kernel)
            return torch.cholesky_solve(rhs.T, factor).T
        spatial = tuple(rhs.shape[2:])
        axes = tuple(range(2, 2 + self.dims))
        symbol = torch.fft.rfftn(self._embedded(spatial), dim=axes)  # (C_out, C_in, *frequencies)
        symbol = symbol.movedim(0, -1).movedim(0, -1)  # (*frequencies, C_out, C_in)
        system = eye + gamma * symbol.mH @ symbol
        factor = torch.linalg.cholesky(system)
        transformed = torch.fft.rfftn(rhs, dim=axes).movedim(0, -1).movedim(0, -2)  # (*frequencies, C, N)
        solution = torch.cholesky_solve(transformed, factor)
        return torch.fft.irfftn(solution.movedim(-1, 0).movedim(-1, 1), s=spatial, dim=axes)

    def _embedded(self, spatial: tuple[int, ...]) -> torch.Tensor:
        """The kernel as a periodic array of the data's size whose DFT is K's symbol: tap s (offset -1, 0, 1)
        at index -s mod n, so that (K y)^(w) = K^(w) y^(w) for cross-correlation. On an axis of fewer than 3
        points (a 2x2 or 1x1 image after pooling) taps that wrap onto the same point add up, as they do in
        the periodic convolution."""
        embedded = self.kernel
        for axis, n in enumerate(spatial, start=2):
            fold = self.kernel.new_zeros(n, 3)
            for tap in range(3):
                fold[(1 - tap) % n, tap] += 1.0
            embedded = (embedded.movedim(axis, -1) @ fold.T).movedim(-1, axis)
        return embedded


def _valid(x: torch.Tensor, kernel: torch.Tensor, dims: int) -> torch.Tensor:
    return F.conv1d(x, kernel) if dims == 1 else F.conv2d(x, kernel)
