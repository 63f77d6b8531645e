"""NetworkSpec: the one description of a network, frozen and JSON-able, and the single home of its
defaults. `ODENet`, `TrainConfig`, the CLI's options and `model.pt` all take their network from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rknet.blocks.base import Block
from rknet.blocks.registry import block_type, build_block
from rknet.common.checks import choice, int_list, positive_int
from rknet.common.limits import BLOCKS, WIDTH
from rknet.gradients.capabilities import Capabilities
from rknet.gradients.strategies import GRADIENTS, supported_gradients
from rknet.layers import ACTIVATIONS, DIMS, Layer, layer_name, make_layer
from rknet.layers.norms import check_norm
from rknet.methods.registry import Method, family, method_name, resolve_method, uses_solver
from rknet.methods.tableau import IMPLICIT_TABLEAUS, ButcherTableau, preset_name
from rknet.solvers.grid import INTERPOLATIONS
from rknet.solvers.newton_krylov import NewtonKrylov


@dataclass(frozen=True)
class NetworkSpec:
    """What an ODENet is: its sizes, layer, method, grids and gradient strategy.

    `method` is a preset name, a reversible scheme, a ButcherTableau (kept by value, so a user's own
    tableau survives save and load) or a tableau file's path. `t_controls=None` puts the controls on the
    state times. `gradient=None` takes the method's default (backprop for Runge-Kutta blocks, reversible
    for leapfrog and hamiltonian). `layer_options` are the layer's own keyword arguments (e.g. gamma).
    `solver` holds the implicit stage solver's options (`rknet.NewtonKrylov`: tol, max_newton, max_krylov,
    forcing) for implicit tableaus only.
    Validated on construction; `to_dict`/`from_dict` round-trip exactly.
    """

    in_channels: int = 3
    num_classes: int = 10
    widths: tuple[int, ...] = (16, 32, 64, 64)
    layer: str = "doublesym"
    layer_options: Mapping[str, Any] = field(default_factory=dict)
    method: Method = "rk4"
    t_states: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0)
    t_controls: tuple[float, ...] | None = None
    interpolation: str = "linear"
    norm: str = "tv"
    activation: str = "relu"
    dims: int = 2
    gradient: str | None = None
    solver: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen)
        positive_int("in_channels", self.in_channels)
        positive_int("num_classes", self.num_classes)
        set_("widths", int_list("widths", self.widths, minimum_length=2))
        BLOCKS.check("widths", len(self.widths) - 1)
        WIDTH.check("widths", max(self.widths))
        set_("layer", layer_name(self.layer))
        set_("method", resolve_method(self.method))
        set_("norm", check_norm(self.norm))
        set_("activation", choice("activation", self.activation.lower() if isinstance(self.activation, str)
                                  else self.activation, tuple(ACTIVATIONS)))
        if self.dims not in DIMS or isinstance(self.dims, bool):
            raise ValueError(f"dims must be 0 (vectors), 1 (signals) or 2 (images), got {self.dims!r}")
        choice("interpolation", self.interpolation, INTERPOLATIONS)
        if not isinstance(self.layer_options, Mapping):
            raise ValueError(f"layer_options must be a table of the layer's options, got {self.layer_options!r}")
        set_("layer_options", dict(self.layer_options))
        blocks = block_type(self.method)
        blocks.accept_layer(self.make_layer(self.widths[0]), self.method_name)  # also validates its options
        self._check_grids(blocks)
        self._check_solver()
        accepted = supported_gradients(blocks)
        if self.gradient is not None and self.gradient not in accepted:
            raise ValueError(f"gradient {self.gradient!r} does not apply to {self.method_name} blocks; "
                             f"they accept {', '.join(accepted)}")
        GRADIENTS[self.gradient or accepted[0]].check_norms((self.norm,))

    def _check_solver(self) -> None:
        if not isinstance(self.solver, Mapping):
            raise ValueError(f"solver must be a table of the implicit solver's options, got {self.solver!r}")
        object.__setattr__(self, "solver", dict(self.solver))
        if not self.solver:
            return
        if not uses_solver(self.method):
            raise ValueError(f"solver options apply to implicit tableaus ({', '.join(IMPLICIT_TABLEAUS)} or "
                             f"your own), not to {method_name(self.method)}")
        NewtonKrylov.from_options(self.solver)

    def _check_grids(self, blocks: type[Block]) -> None:
        states, controls = blocks.check_grids(self.t_states, self.t_controls, subject=self.method_name)
        object.__setattr__(self, "t_states", states)
        if self.t_controls is not None:
            object.__setattr__(self, "t_controls", None if controls == states else controls)

    @classmethod
    def of(cls, **options: Any) -> NetworkSpec:
        """A spec from keyword options, where `layer` may also be a Layer object: a template whose type,
        options, norm, activation and dims every block takes, each at its own width."""
        template = options.get("layer")
        if isinstance(template, Layer):
            options.update(layer=template.name, layer_options=template.options(), norm=template.norm,
                           activation=template.activation, dims=template.dims)
        return cls(**options)

    @property
    def family(self) -> str:
        return family(self.method)

    @property
    def capabilities(self) -> Capabilities:
        """What this network's block type declares (`rknet.gradients.capabilities`)."""
        return block_type(self.method).capabilities

    @property
    def method_name(self) -> str:
        return method_name(self.method)

    @property
    def tableau(self) -> ButcherTableau | None:
        return None if isinstance(self.method, str) else self.method

    @property
    def num_steps(self) -> int:
        return len(self.t_states) - 1

    @property
    def control_times(self) -> tuple[float, ...]:
        """Where the controls live: `t_controls`, or the state times."""
        return self.t_states if self.t_controls is None else self.t_controls

    def replace(self, **changes: Any) -> NetworkSpec:
        """A validated copy with `changes`."""
        return dataclasses.replace(self, **changes)

    def make_layer(self, width: int) -> Layer:
        return make_layer(self.layer, width, dims=self.dims, activation=self.activation, norm=self.norm,
                          **self.layer_options)

    def make_block(self, width: int) -> Block:
        """The block of one width."""
        return build_block(self.method, self.make_layer(width), self.t_states, self.t_controls,
                           self.interpolation, self.gradient, self.solver)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: a preset method by name, any other tableau by value (name, a, b, c)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["widths"] = list(self.widths)
        values["t_states"] = list(self.t_states)
        values["t_controls"] = None if self.t_controls is None else list(self.t_controls)
        values["layer_options"] = dict(self.layer_options)
        values["solver"] = dict(self.solver)
        if isinstance(self.method, ButcherTableau):
            values["method"] = preset_name(self.method) or self.method.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NetworkSpec:
        """A spec from `to_dict`'s output (or any mapping of its fields); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown network option {unknown[0]!r}; valid: {', '.join(sorted(known))}")
        return cls(**values)


DEFAULTS = NetworkSpec()
"""The reference network's description: every default of every command comes from here."""
