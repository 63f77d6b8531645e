"""Runge-Kutta blocks: one ODE dy/dt = f(y, theta(t)) stepped by a Butcher tableau. `RungeKuttaBlock` holds
what explicit (`DynamicBlock`) and diagonally implicit (`rknet.blocks.implicit.ImplicitBlock`) blocks share."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch

from rknet.blocks.base import SteppingBlock
from rknet.gradients.capabilities import STEPPING, Capabilities
from rknet.gradients.strategies import GradientStrategy
from rknet.layers import Layer
from rknet.layers.controls import interpolate
from rknet.layers.norms import BatchStats
from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.grid import interpolation_weights, stage_interpolation, stage_times, warn_knots_inside_steps
from rknet.solvers.runge_kutta import Slope, rk_step, stage_terms


class RungeKuttaBlock(SteppingBlock):
    """Integrate a layer's ODE over `t_states` by a tableau, with weights living on `t_controls`.

    Each layer parameter is stored once, stacked over control times: shape `(n_controls, *shape)`.
    The controls' interpolation weights of every stage time (`stage_interpolation`) are computed at
    construction, so `forward` is a fixed sequence of tensor operations. Batch norm keeps running statistics
    per evaluation (step x stage), as buffers of shape `(num_steps * stages, channels)`. Subclasses set
    `implicit_stages` (whether `terms` leaves the diagonal to a stage solve) and implement `step`.
    """

    family = "runge-kutta"
    implicit_stages = False

    def __init__(self, layer: Layer, tableau: ButcherTableau, t_states: Sequence[float],
                 t_controls: Sequence[float] | None, interpolation: str, gradient: str | GradientStrategy | None,
                 subject: str) -> None:
        self.accept_layer(layer, subject)
        terms = stage_terms(tableau, implicit=self.implicit_stages)
        states, controls = self.check_grids(t_states, t_controls, interpolation)
        warn_knots_inside_steps(states, controls, tableau, interpolation)
        super().__init__([layer], states, controls, layer.parameter_specs(), gradient)
        self.layer, self.tableau, self.terms, self.interpolation = layer, tableau, terms, interpolation
        self.stage_interpolation = stage_interpolation(states, controls, tableau, interpolation)
        evaluations = self.num_steps * tableau.stages
        for site in layer.batch_norm_sites():
            self.register_buffer(f"{site}_running_mean", torch.zeros(evaluations, layer.channels))
            self.register_buffer(f"{site}_running_var", torch.ones(evaluations, layer.channels))

    @property
    def method_name(self) -> str:
        return self.tableau.name

    @property
    def evaluations_per_forward(self) -> int:
        """Layer evaluations in one forward pass (steps x stages that contribute)."""
        return self.num_steps * sum(self.terms.needed)

    def evaluation_times(self) -> list[float]:
        """The time of every layer evaluation, in the order of the batch-norm statistics rows."""
        return [time for times in stage_times(self.t_states, self.tableau.c) for time in times]

    def _stats(self, evaluation: int) -> dict[str, BatchStats]:
        """This evaluation's running statistics, updated in place by batch norm while training."""
        return {site: BatchStats(getattr(self, f"{site}_running_mean")[evaluation],
                                 getattr(self, f"{site}_running_var")[evaluation])
                for site in self.layer.batch_norm_sites()}

    def slope(self, k: int, cache: dict) -> Slope:
        """slope(i, state): the layer at stage i of step k, with that evaluation's statistics."""
        stages = self.tableau.stages

        def slope(i: int, state: torch.Tensor) -> torch.Tensor:
            params = self.stage_parameters(k, i, cache)
            return self.layer(params, state, self._stats(k * stages + i), self.training)

        return slope

    def vector_field(self, t: float, y: torch.Tensor, evaluation: int | None = None) -> torch.Tensor:
        """f(t, y) with the controls interpolated at any time t. Batch norm uses the batch's statistics,
        or with `evaluation` (a forward evaluation k * stages + i) that evaluation's running statistics.

        For analysis and for other solvers; the block's own forward uses the precomputed `stage_interpolation`.
        """
        params = interpolate(self.controls, interpolation_weights(self.t_controls, float(t), self.interpolation))
        if evaluation is None:
            stats = {site: BatchStats(None, None) for site in self.layer.batch_norm_sites()}
            return self.layer(params, y, stats, training=True)
        return self.layer(params, y, self._stats(evaluation), training=False)

    def nearest_evaluation(self, t: float) -> int:
        """The forward evaluation (k * stages + i) nearest t among the stages forward actually evaluates."""
        k = min(bisect.bisect_right(self.t_states, t) - 1, self.num_steps - 1)
        fraction = (t - self.t_states[k]) / self.step_sizes[k]
        used = [i for i, needed in enumerate(self.terms.needed) if needed]
        return k * self.tableau.stages + min(used, key=lambda i: abs(self.tableau.c[i] - fraction))

    @torch.no_grad()
    def adopt(self, source: RungeKuttaBlock) -> RungeKuttaBlock:
        """Take `source`'s theta(t), and give each evaluation the batch-norm statistics of the same stage of
        the source step containing it (same nodes c), or else of the source evaluation nearest in time."""
        super().adopt(source)
        rows = self._statistics_rows(source)
        for name, buffer in source.named_buffers(recurse=False):
            setattr(self, name, buffer[torch.tensor(rows, device=buffer.device)].clone())
        return self

    def _statistics_rows(self, source: RungeKuttaBlock) -> list[int]:
        if source.tableau.c == self.tableau.c:
            stages = self.tableau.stages
            steps = [min(bisect.bisect_right(source.t_states, start) - 1, source.num_steps - 1)
                     for start in self.t_states[:-1]]
            return [k * stages + i for k in steps for i in range(stages)]
        old = source.evaluation_times()
        return [min(range(len(old)), key=lambda j: abs(old[j] - t)) for t in self.evaluation_times()]

    def extra_repr(self) -> str:
        grid = lambda times: "[" + ", ".join(f"{t:g}" for t in times) + "]"  # noqa: E731
        return (f"method={self.tableau.name}, t_states={grid(self.t_states)}, "
                f"t_controls={grid(self.t_controls)}, interpolation={self.interpolation}, "
                f"gradient={self.gradient.name}, layer={self.layer!r}")


class DynamicBlock(RungeKuttaBlock):
    """An explicit Runge-Kutta block (the original authors' name): `gradient` picks what the forward pass
    keeps for the backward pass: backprop (default), selective, checkpoint or adjoint (`rknet.gradients`)."""

    capabilities = Capabilities(STEPPING, vector_field=True, explicit_tableau=True, recomputable=True,
                                rediscretize_into=("runge-kutta",))

    def __init__(self, layer: Layer, method: str | ButcherTableau = "rk4",
                 t_states: Sequence[float] = (0, 1, 2, 3, 4), t_controls: Sequence[float] | None = None,
                 interpolation: str = "linear", gradient: str | GradientStrategy | None = None) -> None:
        tableau = get_tableau(method)
        super().__init__(layer, tableau, t_states, t_controls, interpolation, gradient, tableau.name)

    def step(self, y: torch.Tensor, k: int, cache: dict | None = None) -> torch.Tensor:
        """Step k of the forward pass; `cache` shares interpolated controls between steps."""
        return rk_step(self.slope(k, {} if cache is None else cache), y, self.step_sizes[k], self.terms)

    def with_grids(self, t_states: Sequence[float], t_controls: Sequence[float]) -> DynamicBlock:
        return DynamicBlock(self.layer, self.tableau, t_states, t_controls, self.interpolation, self.gradient)
