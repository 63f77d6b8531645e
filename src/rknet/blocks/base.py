"""The interface every block type implements: one ODE (or reversible scheme) between two changes of width.

Analysis, refinement, re-discretisation, evaluation and the trainer ask a block only these questions:
its grids (`t_states`, `t_controls`, `num_steps`, `step_sizes`), its cost (`evaluations_per_forward`),
its `method_name`, which parameters are decayed (`decay_parameter_names`), its states along the trajectory
(`trajectory`), theta at any times (`theta`), and it answers `adopt`, `refine` and `with_grids`. What a
block type can do is declared once, as its class attribute `capabilities` (`rknet.gradients.capabilities`).
A block speaks one of two protocols, each an abstract class here: `SteppingBlock` (`step(y, k, cache)`)
or `ReversibleScheme` (`initial`, `advance`, `reverse`, `output`; `run` drives them).
`forward` runs through the block's gradient strategy (`rknet.gradients.strategies`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import nn

from rknet.common.limits import BLOCK_STEPS
from rknet.gradients.capabilities import REVERSIBLE, STEPPING, Capabilities, capabilities_of, check_norm_supported
from rknet.gradients.strategies import GradientStrategy, get_gradient
from rknet.layers import Layer
from rknet.layers.controls import ParameterSpec, interpolate, stacked_controls
from rknet.solvers.grid import (
    as_times,
    check_interpolation,
    check_span,
    interpolation_weights,
    refine_times,
    step_sizes,
)
from rknet.solvers.stepping import march, march_states

Grids = tuple[tuple[float, ...], tuple[float, ...]]


def check_layer(layer: Layer) -> Layer:
    """`layer` if it is an rknet Layer (a right-hand side f(theta, y)), else a TypeError."""
    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be an rknet.layers.Layer (e.g. rknet.layers.DoubleSym(16)), "
                        f"got {type(layer).__name__}")
    return layer


class Block(nn.Module, ABC):
    """Common state and behaviour of every block: grids, stacked controls, gradient strategy.

    A block type sets `family` (blocks of one family integrate the same equation) and `capabilities`
    (what it can do: protocol, default gradient strategy, control grid, norms, re-discretisation), and
    implements `method_name`, `evaluations_per_forward`, `with_grids` and its protocol's methods (subclass
    `SteppingBlock` and implement `step`, or `ReversibleScheme` and implement its scheme).
    """

    family: ClassVar[str] = "block"
    capabilities: ClassVar[Capabilities]
    interpolation = "constant"

    def __init__(self, layers: Sequence[Layer], t_states: tuple[float, ...], t_controls: tuple[float, ...],
                 specs: Mapping[str, ParameterSpec], gradient: str | GradientStrategy | None) -> None:
        super().__init__()
        self.t_states, self.t_controls = t_states, t_controls
        self.specs = dict(specs)
        self._norms = tuple(dict.fromkeys(layer.norm for layer in layers))
        self.controls = stacked_controls(self.specs, len(t_controls))
        self.gradient = get_gradient(gradient or self.capabilities.gradient, type(self))
        self.gradient.check(self)

    @classmethod
    def accept_layer(cls, layer: Layer, subject: str | None = None) -> Layer:
        """`layer` if it is an rknet Layer whose norm this block type accepts (the one place a block type
        refuses a norm, from its declaration); `subject` names the block or method in the message."""
        declared = capabilities_of(cls)
        check_norm_supported(subject or cls.__name__, check_layer(layer).norm, declared.norms, declared.norm_reason)
        return layer

    @classmethod
    def check_grids(cls, t_states: Sequence[float], t_controls: Sequence[float] | None = None,
                    interpolation: str | None = None, subject: str | None = None) -> Grids:
        """The validated (state times, control times) of a block of this type: strictly increasing finite
        times, the controls spanning the states. `t_controls=None` puts the controls on the state times, or,
        for a block type without a control grid, one control at the start of each step."""
        states = as_times(t_states, "t_states", minimum=2)
        BLOCK_STEPS.check("t_states", len(states) - 1)
        if not capabilities_of(cls).control_grid:
            if t_controls is not None:
                raise ValueError(f"{subject or cls.__name__} blocks keep one control per state step; t_controls "
                                 "cannot be set")
            return states, states[:-1]
        controls = states if t_controls is None else as_times(t_controls, "t_controls", minimum=1)
        BLOCK_STEPS.check("t_controls", len(controls) - 1)
        if interpolation is not None:
            check_interpolation(interpolation)
        check_span(states, controls)
        return states, controls

    def layer_norms(self) -> tuple[str, ...]:
        """The norms of this block's layers (what a gradient strategy checks it can serve)."""
        return self._norms

    @property
    def num_steps(self) -> int:
        return len(self.t_states) - 1

    @property
    def step_sizes(self) -> tuple[float, ...]:
        return step_sizes(self.t_states)

    @property
    @abstractmethod
    def method_name(self) -> str:
        """The method's name (a tableau, an IMEX pair or a scheme)."""

    @property
    @abstractmethod
    def evaluations_per_forward(self) -> int:
        """How many times a layer is evaluated in one forward pass."""

    def decay_parameter_names(self) -> list[str]:
        """Names (relative to this block) of the kernel weights: decayed and time-regularised."""
        return [f"controls.{name}" for name, spec in self.specs.items() if spec.decay]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.gradient.forward(self, y)

    @abstractmethod
    def integrate(self, y: torch.Tensor) -> torch.Tensor:
        """The block's output through plain autograd (what every strategy must reproduce)."""

    @abstractmethod
    def trajectory(self, y: torch.Tensor) -> torch.Tensor:
        """The state at every state time: shape (num_steps + 1, *y.shape); the last one is `block(y)`."""

    def vector_field(self, t: float, y: torch.Tensor, evaluation: int | None = None) -> torch.Tensor:
        raise ValueError(f"a {self.family} block has no first-order vector field f(t, y); Jacobian spectra "
                         "and stability regions apply to Runge-Kutta blocks")

    @abstractmethod
    def with_grids(self, t_states: Sequence[float], t_controls: Sequence[float]) -> Block:
        """A new block like this one (layer, method, strategy) on other grids, freshly initialised."""

    def theta(self, times: Sequence[float]) -> dict[str, torch.Tensor]:
        """Every parameter at `times`, stacked: theta(t) as this block interpolates its controls."""
        at = [interpolate(self.controls, interpolation_weights(self.t_controls, t, self.interpolation))
              for t in times]
        return {name: torch.stack([values[name] for values in at]) for name in self.controls}

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


class SteppingBlock(Block):
    """The stepping protocol: a block that steps one state, `step(y, k, cache)` for k = 0 .. num_steps - 1.

    Checkpointing strategies call `step` one step at a time; `integrate` and `trajectory` march it. A block
    with a control grid sets `stage_interpolation[k][i]` (the (control index, weight) pairs of stage i of
    step k) and reads its stage parameters through `stage_parameters`.
    """

    capabilities = Capabilities(STEPPING)

    @abstractmethod
    def step(self, y: torch.Tensor, k: int, cache: dict | None = None) -> torch.Tensor:
        """Step k of the forward pass; `cache` shares interpolated controls between the steps of one pass."""

    def stage_parameters(self, k: int, i: int, cache: dict) -> dict[str, torch.Tensor]:
        """Every control at stage i of step k, interpolated once per pass: `cache` keeps each distinct
        interpolation (stages and steps at the same time share it)."""
        pairs = self.stage_interpolation[k][i]
        if pairs not in cache:
            cache[pairs] = interpolate(self.controls, pairs)
        return cache[pairs]

    def _cached_step(self):
        cache: dict = {}
        return lambda y, k: self.step(y, k, cache)

    def integrate(self, y: torch.Tensor) -> torch.Tensor:
        return march(self._cached_step(), y, self.num_steps)

    def trajectory(self, y: torch.Tensor) -> torch.Tensor:
        return march_states(self._cached_step(), y, self.num_steps)


Pair = tuple[torch.Tensor, torch.Tensor]
Controls = Mapping[str, torch.Tensor]
Reversed = tuple[Pair, Pair | None, dict[str, torch.Tensor] | None]


class ReversibleScheme(Block):
    """The reversible protocol: a scheme on a pair of states that can be run backwards exactly.

    A scheme implements `initial(y)` (the pair it starts from), `advance` (one step), `reverse` (the whole
    scheme backward, with vector-Jacobian products when given cotangents) and `output(pair)`; `run` marches
    `advance`, and the reversible strategy drives `run` forward and `reverse` backward.
    """

    capabilities = Capabilities(REVERSIBLE, gradient="reversible", control_grid=False)

    @abstractmethod
    def initial(self, y: torch.Tensor) -> Pair:
        """The pair of states the scheme starts from."""

    @abstractmethod
    def output(self, pair: Pair) -> torch.Tensor:
        """The block's output from the final pair."""

    @abstractmethod
    def advance(self, controls: Controls, pair: Pair, k: int) -> Pair:
        """Step k of the scheme, with the given stacked controls."""

    @abstractmethod
    def reverse(self, controls: Controls, pair: Pair, cotangents: Pair | None = None) -> Reversed:
        """The initial pair rebuilt from the final one; given the final pair's cotangents, also the
        initial pair's cotangents and the gradients of the stacked controls (else None for both)."""

    def run(self, controls: Controls, pair: Pair) -> Pair:
        """The scheme forward from `pair`, with the given stacked controls."""
        return march(lambda state, k: self.advance(controls, state, k), pair, self.num_steps)

    def integrate(self, y: torch.Tensor) -> torch.Tensor:
        return self.output(self.run(self.controls, self.initial(y)))

    def trajectory(self, y: torch.Tensor) -> torch.Tensor:
        return march_states(lambda state, k: self.advance(self.controls, state, k), self.initial(y),
                            self.num_steps, self.output)

    @torch.no_grad()
    def reconstruct(self, y: torch.Tensor) -> Pair:
        """Run the scheme forward from `y`, then backward: the initial pair as the backward pass rebuilds
        it (equal to `initial(y)` up to rounding; a check of reversibility)."""
        return self.reverse(self.controls, self.run(self.controls, self.initial(y)))[0]
