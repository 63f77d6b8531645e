"""Reversible blocks: schemes whose states can be recomputed backwards, so training memory does not
grow with depth.

Both blocks step a pair of states with one control per step (at the step's start time, uniform grid).
With the `reversible` gradient strategy (default) the forward pass keeps only the final pair and the
backward pass runs the scheme backwards (`reverse`) to rebuild each step's input, recomputing that step's
layer evaluations for their vector-Jacobian products; `backprop` runs the same scheme through plain
autograd (the reference the reversible gradients are tested against).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch

from rknet.blocks.base import Controls, Grids, Pair, Reversed, ReversibleScheme
from rknet.gradients.strategies import GradientStrategy
from rknet.layers import Layer

_UNIFORM_TOLERANCE = 1e-9


def uniform_step(t_states: Sequence[float], scheme: str) -> float:
    steps = [end - start for start, end in zip(t_states, t_states[1:])]
    if max(steps) - min(steps) > _UNIFORM_TOLERANCE * max(steps):
        raise ValueError(f"{scheme} needs a uniform grid (equal steps, e.g. rknet.uniform_grid(n, T)), got "
                         f"steps from {min(steps):g} to {max(steps):g} in t_states={list(t_states)}")
    return (t_states[-1] - t_states[0]) / len(steps)


def _evaluate(layer: Layer, params: Controls, state: torch.Tensor, cotangent: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor] | None]:
    """layer(params, state) and, given a cotangent, its vector-Jacobian products for state and params."""
    if cotangent is None:
        with torch.no_grad():
            return layer(params, state), None, None
    with torch.enable_grad():
        state = state.detach().requires_grad_()
        params = {name: value.detach().requires_grad_() for name, value in params.items()}
        value = layer(params, state)
        grads = torch.autograd.grad(value, (state, *params.values()), cotangent, allow_unused=True)
    param_grads = {name: torch.zeros_like(params[name]) if grad is None else grad
                   for name, grad in zip(params, grads[1:])}
    return value.detach(), grads[0], param_grads


class ReversibleBlock(ReversibleScheme):
    """Common part of the reversible blocks: uniform grid, one control per step (held constant over it).

    Subclasses define the scheme (`initial`, `advance`, `reverse`, `output`) and `with_grids`.
    """

    scheme = "reversible block"
    capabilities = dataclasses.replace(ReversibleScheme.capabilities, norms=("tv", "none"),
                                       norm_reason="running statistics cannot be run backwards")
    evaluations_per_step = 1

    def __init__(self, layers: Mapping[str, Layer], t_states: Sequence[float],
                 gradient: str | GradientStrategy | None) -> None:
        states, controls = self.check_grids(t_states, subject=self.scheme)
        checked = {prefix: self.accept_layer(layer, self.scheme) for prefix, layer in layers.items()}
        specs = {prefix + name: spec for prefix, layer in checked.items()
                 for name, spec in layer.parameter_specs().items()}
        super().__init__(list(checked.values()), states, controls, specs, gradient)
        self.h, self.layers = (states[-1] - states[0]) / self.num_steps, checked

    @classmethod
    def check_grids(cls, t_states: Sequence[float], t_controls: Sequence[float] | None = None,
                    interpolation: str | None = None, subject: str | None = None) -> Grids:
        """As for every block, and the state grid must be uniform (the scheme's step h is one number)."""
        states, controls = super().check_grids(t_states, t_controls, interpolation, subject)
        uniform_step(states, subject or cls.__name__)
        return states, controls

    @property
    def method_name(self) -> str:
        return self.family

    @property
    def evaluations_per_forward(self) -> int:
        """Layer evaluations in one forward pass."""
        return self.num_steps * self.evaluations_per_step

    def _params(self, controls: Controls, prefix: str, k: int) -> dict[str, torch.Tensor]:
        return {name[len(prefix):]: value[k] for name, value in controls.items() if name.startswith(prefix)}

    def _zero_grads(self, controls: Controls, cotangents: Pair | None) -> dict[str, torch.Tensor] | None:
        if cotangents is None:
            return None
        return {name: torch.zeros_like(value) for name, value in controls.items()}

    def _evaluate(self, controls: Controls, prefix: str, k: int, state: torch.Tensor,
                  cotangent: torch.Tensor | None, grads: dict[str, torch.Tensor] | None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Layer `prefix` at step k; given a cotangent, writes its parameter gradients into row k of
        `grads` and returns the state's vector-Jacobian product with the value."""
        value, g_state, g_params = _evaluate(self.layers[prefix], self._params(controls, prefix, k), state,
                                             cotangent)
        if cotangent is not None:
            for name, grad in g_params.items():
                grads[prefix + name][k] = grad
        return value, g_state

    def extra_repr(self) -> str:
        layers = ", ".join(f"{prefix or 'layer'}={layer!r}" for prefix, layer in self.layers.items())
        return (f"steps={self.num_steps}, h={self.h:g}, t=[{self.t_states[0]:g}, {self.t_states[-1]:g}], "
                f"gradient={self.gradient.name}, {layers}")


class LeapfrogBlock(ReversibleBlock):
    """Second-order (hyperbolic) block: y_{k+1} = 2 y_k - y_{k-1} + h^2 f(y_k, theta_k).

    Starts at rest, y_{-1} = y_0 (so y_1 = y_0 + h^2 f(y_0)). The pair of states is (y_{k-1}, y_k); the
    scheme is its own inverse with the roles swapped, y_{k-1} = 2 y_k - y_{k+1} + h^2 f(y_k, theta_k).
    With f = DoubleSym (-K^T act(K y + b1) + b2) this is Haber & Ruthotto's hyperbolic network.
    """

    scheme = "LeapfrogBlock"
    family = "leapfrog"
    capabilities = dataclasses.replace(ReversibleBlock.capabilities, rediscretize_into=("leapfrog",))

    def __init__(self, layer: Layer, t_states: Sequence[float] = (0, 1, 2, 3, 4),
                 gradient: str | GradientStrategy | None = None) -> None:
        super().__init__({"": layer}, t_states, gradient)
        self.layer = layer

    def with_grids(self, t_states: Sequence[float], t_controls: Sequence[float]) -> LeapfrogBlock:
        return LeapfrogBlock(self.layer, t_states, self.gradient)

    def initial(self, y: torch.Tensor) -> Pair:
        return y, y

    def output(self, pair: Pair) -> torch.Tensor:
        return pair[1]

    def _leap(self, y: torch.Tensor, other: torch.Tensor, force: torch.Tensor) -> torch.Tensor:
        return (2 * y - other).add(force, alpha=self.h ** 2)

    def advance(self, controls: Controls, pair: Pair, k: int) -> Pair:
        previous, y = pair
        return y, self._leap(y, previous, self.layer(self._params(controls, "", k), y))

    def reverse(self, controls: Controls, pair: Pair, cotangents: Pair | None = None) -> Reversed:
        previous, y = pair  # (y_k, y_{k+1}), k = N - 1 first
        g_previous, g = (None, None) if cotangents is None else cotangents
        grads = self._zero_grads(controls, cotangents)
        tracked = cotangents is not None
        for k in reversed(range(self.num_steps)):
            cotangent = g * self.h ** 2 if tracked else None
            force, g_force = self._evaluate(controls, "", k, previous, cotangent, grads)
            previous, y = self._leap(previous, y, force), previous
            if tracked:
                g_previous, g = -g, g_previous + 2 * g + g_force
        return (previous, y), (g_previous, g) if tracked else None, grads


class HamiltonianBlock(ReversibleBlock):
    """Two coupled states (symplectic Euler / Verlet, Haber & Ruthotto's Hamiltonian network):

        z_{k+1} = z_k - h f_z(y_k, theta^z_k),    y_{k+1} = y_k + h f_y(z_{k+1}, theta^y_k),

    from y_0 = the input and z_0 = 0; the output is y_N (same shape as the input). With DoubleSym layers
    (f = -K^T act(K . + b1) + b2) this reads z' = K_z^T act(K_z y), y' = -K_y^T act(K_y z): a stable,
    energy-conserving pair. `layer_z` defaults to `layer` (same type, separate weights). Controls are
    named `y_<name>` and `z_<name>`.
    """

    evaluations_per_step = 2
    scheme = "HamiltonianBlock"
    family = "hamiltonian"
    capabilities = dataclasses.replace(ReversibleBlock.capabilities, rediscretize_into=("hamiltonian",))

    def __init__(self, layer: Layer, layer_z: Layer | None = None,
                 t_states: Sequence[float] = (0, 1, 2, 3, 4), gradient: str | GradientStrategy | None = None
                 ) -> None:
        layer_z = layer if layer_z is None else self.accept_layer(layer_z, self.scheme)
        if self.accept_layer(layer, self.scheme).channels != layer_z.channels:
            raise ValueError(f"HamiltonianBlock layers must have the same channels, got {layer.channels} "
                             f"(y) and {layer_z.channels} (z)")
        super().__init__({"y_": layer, "z_": layer_z}, t_states, gradient)
        self.layer = layer

    def with_grids(self, t_states: Sequence[float], t_controls: Sequence[float]) -> HamiltonianBlock:
        return HamiltonianBlock(self.layers["y_"], self.layers["z_"], t_states, self.gradient)

    def initial(self, y: torch.Tensor) -> Pair:
        return y, torch.zeros_like(y)

    def output(self, pair: Pair) -> torch.Tensor:
        return pair[0]

    def advance(self, controls: Controls, pair: Pair, k: int) -> Pair:
        y, z = pair
        z = z.add(self.layers["z_"](self._params(controls, "z_", k), y), alpha=-self.h)
        return y.add(self.layers["y_"](self._params(controls, "y_", k), z), alpha=self.h), z

    def reverse(self, controls: Controls, pair: Pair, cotangents: Pair | None = None) -> Reversed:
        y, z = pair  # (y_{k+1}, z_{k+1}), k = N - 1 first
        g_y, g_z = (None, None) if cotangents is None else cotangents
        grads = self._zero_grads(controls, cotangents)
        tracked = cotangents is not None
        for k in reversed(range(self.num_steps)):
            force, g_force = self._evaluate(controls, "y_", k, z, g_y * self.h if tracked else None, grads)
            y = y.add(force, alpha=-self.h)
            if tracked:
                g_z = g_z + g_force
            force, g_force = self._evaluate(controls, "z_", k, y, g_z * -self.h if tracked else None, grads)
            z = z.add(force, alpha=self.h)
            if tracked:
                g_y = g_y + g_force
        return (y, z), (g_y, g_z) if tracked else None, grads

