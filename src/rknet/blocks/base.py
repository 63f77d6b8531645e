"""The interface every block type implements: one ODE (or reversible scheme) between two changes of width.

Analysis, refinement, re-discretisation, evaluation and the trainer ask a block only these questions:
its grids (`t_states`, `t_controls`, `num_steps`, `step_sizes`), its cost (`evaluations_per_forward`),
which weights are decayed (`decay_parameter_names`), its states along the trajectory (`trajectory`),
theta at any times (`theta`), and, where the block integrates a first-order ODE, `vector_field`.
`forward` runs through the block's gradient strategy (`rknet.strategies`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from rknet.gradients.strategies import GradientStrategy, get_gradient
from rknet.layers import Layer
from rknet.layers.controls import ParameterSpec, stacked_controls
from rknet.solvers.grid import interpolation_weights, refine_times, step_sizes
from rknet.solvers.stepping import march, march_states


def check_layer(layer: Layer) -> Layer:
    """`layer` if it is an rknet Layer (a right-hand side f(theta, y)), else a TypeError."""
    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be an rknet.layers.Layer (e.g. rknet.layers.DoubleSym(16)), "
                        f"got {type(layer).__name__}")
    return layer


class Block(nn.Module):
    """Common state and behaviour of every block: grids, stacked controls, gradient strategy.

    Subclasses set `family` (blocks of one family can be re-discretised into each other), `gradients`
    (the strategies they accept, the first being the default) and `interpolation`, and implement
    `integrate`, `trajectory`, `evaluations_per_forward`, `method_name` and `with_grids`.
    """

    family = "block"
    gradients: tuple[str, ...] = ("backprop",)
    interpolation = "constant"

    def __init__(self, t_states: tuple[float, ...], t_controls: tuple[float, ...],
                 specs: Mapping[str, ParameterSpec], gradient: str | GradientStrategy | None) -> None:
        super().__init__()
        self.t_states, self.t_controls = t_states, t_controls
        self.specs = dict(specs)
        self.controls = stacked_controls(self.specs, len(t_controls))
        self.gradient = get_gradient(gradient or self.gradients[0], self.gradients, type(self).__name__)

    @property
    def num_steps(self) -> int:
        return len(self.t_states) - 1

    @property
    def step_sizes(self) -> tuple[float, ...]:
        return step_sizes(self.t_states)

    @property
    def method_name(self) -> str:
        raise NotImplementedError

    @property
    def evaluations_per_forward(self) -> int:
        """How many times a layer is evaluated in one forward pass."""
        raise NotImplementedError

    def decay_parameter_names(self) -> list[str]:
        """Names (relative to this block) of the kernel weights: decayed and time-regularised."""
        return [f"controls.{name}" for name, spec in self.specs.items() if spec.decay]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.gradient.forward(self, y)

    def step(self, y: torch.Tensor, k: int, cache: dict | None = None) -> torch.Tensor:
        """Step k of the forward pass (for blocks that step one state); `cache` shares interpolated controls
        between the steps of one pass."""
        raise NotImplementedError

    def _cached_step(self):
        cache: dict = {}
        return lambda y, k: self.step(y, k, cache)

    def integrate(self, y: torch.Tensor) -> torch.Tensor:
        """The block's output through plain autograd (what every strategy must reproduce)."""
        return march(self._cached_step(), y, self.num_steps)

    def trajectory(self, y: torch.Tensor) -> torch.Tensor:
        """The state at every state time: shape (num_steps + 1, *y.shape); the last one is `block(y)`."""
        return march_states(self._cached_step(), y, self.num_steps)

    def vector_field(self, t: float, y: torch.Tensor, evaluation: int | None = None) -> torch.Tensor:
        raise ValueError(f"a {self.family} block has no first-order vector field f(t, y); Jacobian spectra "
                         "and stability regions apply to Runge-Kutta blocks")

    def with_grids(self, t_states: Sequence[float], t_controls: Sequence[float]) -> Block:
        """A new block like this one (layer, method, strategy) on other grids, freshly initialised."""
        raise NotImplementedError

    def theta(self, times: Sequence[float]) -> dict[str, torch.Tensor]:
        """Every parameter at `times`, stacked: theta(t) as this block interpolates its controls."""
        rows = [interpolation_weights(self.t_controls, t, self.interpolation) for t in times]
        return {name: torch.stack([sum(stacked[i] * w for i, w in row) for row in rows])
                for name, stacked in self.controls.items()}

    @torch.no_grad()
    def adopt(self, source: Block) -> Block:
        """Take `source`'s theta(t) at this block's control times (same function of time, other grid)."""
        if source.family != self.family or set(source.controls) != set(self.controls):
            raise ValueError(f"cannot carry the weights of a {source.family} block ({source.method_name}) into a "
                             f"{self.family} block ({self.method_name})")
        for name, value in source.theta(self.t_controls).items():
            self.controls[name] = nn.Parameter(value.clone(), requires_grad=source.controls[name].requires_grad)
        return self.to(next(source.parameters()).device).train(source.training)

    def refine(self, factor: int = 2, controls: bool = False) -> Block:
        """A new block whose state steps are each split into `factor` equal steps (multilevel training).

        With `controls=False` the control grid is kept; with `controls=True` every control interval is
        split too. Either way the new controls take the old theta(t) at their times, so the network
        changes only by the discretisation error.
        """
        if not isinstance(controls, bool):
            raise TypeError(f"controls must be a bool (refine the control grid too?), got {controls!r}")
        t_states = refine_times(self.t_states, factor)
        t_controls = refine_times(self.t_controls, factor) if controls else self.t_controls
        return self.with_grids(t_states, t_controls).adopt(self)
