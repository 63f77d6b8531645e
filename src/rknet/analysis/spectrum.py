"""Eigenvalues of a block's Jacobian df/dy along its trajectory, scaled by the step size.

A step of an explicit method is stable for the linearised dynamics when every h * lambda lies in the
method's stability region |R(h lambda)| <= 1; these spectra show how close a trained block runs to that
limit. Small states get the exact spectrum of the full Jacobian; large ones an Arnoldi estimate of the
largest-magnitude eigenvalues through Jacobian-vector products (`rknet.analysis.arnoldi`).

Batch norm: batch statistics mean nothing for one sample, so `RungeKuttaBlock.vector_field` is asked for the
running statistics of the forward evaluation (step, stage) whose stage time is nearest t, in eval mode:
the function the trained block applies at prediction time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rknet.analysis.arnoldi import arnoldi_eigenvalues
from rknet.analysis.stability import StabilityCount, count_unstable
from rknet.analysis.trajectories import feature_trajectories
from rknet.blocks.base import Block
from rknet.blocks.runge_kutta import RungeKuttaBlock
from rknet.common.checks import positive_int
from rknet.methods.tableau import ButcherTableau
from rknet.network.odenet import ODENet

EXACT_LIMIT = 2048
KRYLOV_DIM = 40
KRYLOV_TOP = 10
KRYLOV_SEED = 0


@dataclass(frozen=True)
class BlockSpectrum:
    """One block's scaled eigenvalues h_k * lambda at the start t_k of each step k, over a few samples.

    `eigenvalues[k]` holds the samples' spectra at `times[k]`, concatenated (complex). `exact` is False
    when the state was too large and only the largest-magnitude eigenvalues were estimated.
    """

    tableau: ButcherTableau
    times: tuple[float, ...]
    eigenvalues: tuple[torch.Tensor, ...]
    exact: bool

    def stability(self) -> StabilityCount:
        """Over all times: how many h * lambda lie outside the stability region, the largest |R|, the worst."""
        return count_unstable(self.tableau, torch.cat(self.eigenvalues))

    def stability_per_time(self) -> tuple[StabilityCount, ...]:
        """The same count at each time of `times`, to see where along the trajectory a block is unstable."""
        return tuple(count_unstable(self.tableau, values) for values in self.eigenvalues)

    def fraction_stable(self) -> float:
        """The fraction of all h * lambda inside the method's stability region."""
        return self.stability().fraction_inside

    def describe(self, name: str, symbol: str = "h*lambda") -> list[str]:
        """Report lines: `name` with the count over all times, then one indented line per time."""
        which = "all eigenvalues" if self.exact else "largest eigenvalues only, Arnoldi estimate"
        lines = [f"{name} ({self.tableau.name}, {which}): {self.stability().text(symbol)}"]
        lines += [f"  t={time:g}: {count.text(symbol)}"
                  for time, count in zip(self.times, self.stability_per_time(), strict=True)]
        return lines


def _runge_kutta(block: Block) -> RungeKuttaBlock:
    if not block.capabilities.vector_field:
        raise ValueError(f"Jacobian spectra apply to Runge-Kutta blocks, whose stability region they are read "
                         f"against, not to {block.method_name} blocks (the {block.family} family)")
    return block


def _one_sample(block: RungeKuttaBlock, y: torch.Tensor) -> torch.Tensor:
    """y as a batch of one, accepting a single sample with or without its batch dimension."""
    layer = block.layer
    shape = ("C", "C, L", "C, H, W")[layer.dims].replace("C", str(layer.channels))
    sample = y.unsqueeze(0) if y.dim() == layer.dims + 1 else y
    if sample.dim() != layer.dims + 2 or sample.shape[0] != 1 or sample.shape[1] != layer.channels:
        raise ValueError(f"jacobian_spectrum takes one sample of shape ({shape}) or (1, {shape}) for this "
                         f"block, got shape {tuple(y.shape)}")
    return sample.detach()


def _check_time(block: RungeKuttaBlock, t: float) -> float:
    t = float(t)
    first, last = block.t_states[0], block.t_states[-1]
    if not first <= t <= last:
        raise ValueError(f"t must lie in the block's time interval [{first:g}, {last:g}], got {t:g}")
    return t


def _flat_field(block: RungeKuttaBlock, shape: torch.Size, t: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """v -> f(t, v) on flattened single samples, with the controls at t and eval-mode batch norm."""
    evaluation = block.nearest_evaluation(t)
    return lambda flat: block.vector_field(t, flat.reshape(shape), evaluation).reshape(-1)


@torch.no_grad()  # no graph through the parameters; torch.func's transforms still differentiate in y
def jacobian_spectrum(block: RungeKuttaBlock, y: torch.Tensor, t: float, exact_limit: int = EXACT_LIMIT,
                      krylov_dim: int = KRYLOV_DIM, top: int = KRYLOV_TOP) -> torch.Tensor:
    """Eigenvalues of df/dy at (t, y) for ONE sample y, as a complex128 tensor.

    With at most `exact_limit` state entries: all eigenvalues of the full Jacobian (`torch.func.jacrev`,
    then `torch.linalg.eigvals`). Above it: the `top` largest-magnitude eigenvalues estimated by Arnoldi
    with `krylov_dim` Krylov vectors of Jacobian-vector products (`torch.func.jvp`), from a fixed random
    start so results are reproducible. See the module docstring for batch norm.
    """
    positive_int("exact_limit", exact_limit, 0)
    positive_int("krylov_dim", krylov_dim)
    positive_int("top", top)
    sample = _one_sample(_runge_kutta(block), y)
    field = _flat_field(block, sample.shape, _check_time(block, t))
    flat = sample.reshape(-1)
    if flat.numel() <= exact_limit:
        return torch.linalg.eigvals(torch.func.jacrev(field)(flat).double())

    def matvec(vector: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(field, (flat,), (vector.to(flat.dtype),))[1].double()

    generator = torch.Generator().manual_seed(KRYLOV_SEED)
    return arnoldi_eigenvalues(matvec, flat.numel(), krylov_dim, top, generator, device=flat.device)


def block_spectra(net: ODENet, x: torch.Tensor, samples: int = 4, exact_limit: int = EXACT_LIMIT,
                  krylov_dim: int = KRYLOV_DIM, top: int = KRYLOV_TOP) -> list[BlockSpectrum]:
    """For each block of `net`, h_k * lambda of its Jacobian at the start of every step, along the
    trajectories of the first `samples` inputs of x (the final state time starts no step, so it is left
    out). Options as in `jacobian_spectrum`."""
    positive_int("samples", samples)
    if x.shape[0] < 1:
        raise ValueError("x must hold at least one input sample, got an empty batch")
    for block in net.blocks:
        _runge_kutta(block)
    spectra = []
    for block, states in zip(net.blocks, feature_trajectories(net, x[:samples]), strict=True):
        times = block.t_states[:-1]
        eigenvalues = tuple(
            step * torch.cat([jacobian_spectrum(block, sample, time, exact_limit, krylov_dim, top)
                              for sample in states[k]])
            for k, (time, step) in enumerate(zip(times, block.step_sizes, strict=True)))
        exact = states[0, 0].numel() <= exact_limit
        spectra.append(BlockSpectrum(block.tableau, times, eigenvalues, exact))
    return spectra
