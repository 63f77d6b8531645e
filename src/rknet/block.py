"""DynamicBlock: one ODE dy/dt = f(y, theta(t)) integrated by an explicit Runge-Kutta method."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .grid import (
    Weights,
    as_times,
    check_interpolation,
    check_span,
    interpolation_weights,
    stage_weights,
    warn_knots_inside_steps,
)
from .integrate import rk_step, stage_terms
from .layers import Layer
from .norms import BatchStats
from .tableau import ButcherTableau, get_tableau


class DynamicBlock(nn.Module):
    """Integrate a layer's ODE over `t_states` with weights living on `t_controls`.

    Each layer parameter is stored once, stacked over control times: shape `(n_controls, *shape)`.
    The control weights of every stage time are computed at construction, so `forward` is a fixed
    sequence of tensor operations. Batch norm keeps running statistics per evaluation (step x stage),
    as buffers of shape `(steps * stages, channels)`.
    """

    def __init__(self, layer: Layer, method: str | ButcherTableau = "rk4",
                 t_states: Sequence[float] = (0, 1, 2, 3, 4), t_controls: Sequence[float] | None = None,
                 interpolation: str = "linear") -> None:
        super().__init__()
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be an rknet.layers.Layer (e.g. rknet.layers.DoubleSym(16)), "
                            f"got {type(layer).__name__}")
        self.layer = layer
        self.tableau = get_tableau(method).require_explicit()
        self.t_states = as_times(t_states, "t_states", minimum=2)
        self.t_controls = self.t_states if t_controls is None else as_times(t_controls, "t_controls",
                                                                            minimum=1)
        self.interpolation = check_interpolation(interpolation)
        check_span(self.t_states, self.t_controls)
        warn_knots_inside_steps(self.t_states, self.t_controls, self.tableau, self.interpolation)
        self.terms = stage_terms(self.tableau)
        self.steps = tuple(end - start for start, end in zip(self.t_states, self.t_states[1:]))
        self.weights = stage_weights(self.t_states, self.t_controls, self.tableau, self.interpolation)
        self.specs = layer.parameter_specs()
        self.controls = nn.ParameterDict({
            name: nn.Parameter(spec.initial_value().expand(len(self.t_controls), *spec.shape).clone())
            for name, spec in self.specs.items()})
        evaluations = len(self.steps) * self.tableau.stages
        for site in layer.batch_norm_sites():
            self.register_buffer(f"{site}_running_mean", torch.zeros(evaluations, layer.channels))
            self.register_buffer(f"{site}_running_var", torch.ones(evaluations, layer.channels))

    @property
    def evaluations_per_forward(self) -> int:
        """How many times the layer is evaluated in one forward pass (steps x used stages)."""
        return len(self.steps) * sum(self.terms.needed)

    def decay_parameter_names(self) -> list[str]:
        """Names (relative to this block) of the kernel weights: decayed and time-regularised."""
        return [f"controls.{name}" for name, spec in self.specs.items() if spec.decay]

    def _interpolate(self, weights: Weights, cache: dict) -> dict[str, torch.Tensor]:
        if weights not in cache:
            params = {}
            for name, stacked in self.controls.items():
                (first, w0), *rest = weights
                value = stacked[first] if w0 == 1.0 else stacked[first] * w0
                for index, weight in rest:
                    value = value.add(stacked[index], alpha=weight)
                params[name] = value
            cache[weights] = params
        return cache[weights]

    def _stats(self, evaluation: int) -> dict[str, BatchStats]:
        return {site: BatchStats(getattr(self, f"{site}_running_mean")[evaluation],
                                 getattr(self, f"{site}_running_var")[evaluation])
                for site in self.layer.batch_norm_sites()}

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        cache: dict = {}
        stages = self.tableau.stages
        for k, step in enumerate(self.steps):
            def slope(i: int, state: torch.Tensor, k: int = k) -> torch.Tensor:
                params = self._interpolate(self.weights[k][i], cache)
                return self.layer(params, state, self._stats(k * stages + i), self.training)
            y = rk_step(slope, y, step, self.terms)
        return y

    def vector_field(self, t: float, y: torch.Tensor) -> torch.Tensor:
        """f(t, y) with the controls interpolated at any time t (batch norm then uses batch statistics).

        For analysis and for other solvers; the block's own forward uses precomputed stage weights.
        """
        params = self._interpolate(interpolation_weights(self.t_controls, float(t), self.interpolation), {})
        stats = {site: BatchStats(None, None) for site in self.layer.batch_norm_sites()}
        return self.layer(params, y, stats, training=True)

    def extra_repr(self) -> str:
        grid = lambda times: "[" + ", ".join(f"{t:g}" for t in times) + "]"  # noqa: E731
        return (f"method={self.tableau.name}, t_states={grid(self.t_states)}, "
                f"t_controls={grid(self.t_controls)}, interpolation={self.interpolation}, "
                f"layer={self.layer!r}")
