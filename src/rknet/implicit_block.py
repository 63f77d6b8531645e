"""ImplicitBlock: a DynamicBlock stepped by a diagonally implicit Runge-Kutta method (backward Euler,
implicit midpoint, trapezoid, SDIRK2, SDIRK3 or a user's DIRK tableau).

Each implicit stage is solved by Newton-Krylov to a tolerance and differentiated by the implicit function
theorem (`rknet.implicit`), so training memory is one layer evaluation per stage, as for an explicit
method, however many iterations the solves take.
"""

from __future__ import annotations

from collections.abc import Sequence

from .dynamic_block import DynamicBlock
from .implicit import ImplicitStages, NewtonKrylov, SolveReport
from .integrate import Slope
from .layers import Layer
from .strategies import GradientStrategy
from .tableau import ButcherTableau, get_tableau


class ImplicitBlock(DynamicBlock):
    """Integrate a layer's ODE with a diagonally implicit tableau; `solver` sets the stage solves'
    tolerance and iteration limits, and its `report` counts their iterations.

    Batch norm is refused: the solver evaluates the layer a data-dependent number of times, so per-evaluation
    running statistics would not be defined. `evaluations_per_forward` counts one evaluation per stage (the
    nominal cost; `solver.report` has the true iteration counts).
    """

    gradients = ("backprop",)
    implicit_stages = True

    def __init__(self, layer: Layer, method: str | ButcherTableau = "sdirk2",
                 t_states: Sequence[float] = (0, 1, 2, 3, 4), t_controls: Sequence[float] | None = None,
                 interpolation: str = "linear", gradient: str | GradientStrategy | None = None,
                 solver: NewtonKrylov | None = None) -> None:
        tableau = get_tableau(method)
        stages = ImplicitStages(tableau, solver)
        if getattr(layer, "norm", None) == "batch":
            raise ValueError(f"{tableau.name} (an implicit method) does not support the norm 'batch': the stage "
                             "solves evaluate the layer a varying number of times; use the norm 'tv' or 'none'")
        super().__init__(layer, tableau, t_states, t_controls, interpolation, gradient)
        self.stages = stages

    @property
    def solver(self) -> NewtonKrylov:
        return self.stages.solver

    @property
    def report(self) -> SolveReport:
        """Iteration counts of the stage solves since the solver's last `reset`."""
        return self.solver.report

    def slope(self, k: int, cache: dict) -> Slope:
        for weights in self.weights[k]:  # interpolate now, with a graph: the solves run without one
            self._interpolate(weights, cache)
        return self.stages.slope(super().slope(k, cache), self.step_sizes[k], k)

    def with_grids(self, t_states: Sequence[float], t_controls: Sequence[float]) -> ImplicitBlock:
        return ImplicitBlock(self.layer, self.tableau, t_states, t_controls, self.interpolation, self.gradient,
                             self.solver)

    def with_method(self, method: str | ButcherTableau, t_states: Sequence[float]) -> DynamicBlock:
        tableau = get_tableau(method)
        if tableau.explicit:
            return DynamicBlock(self.layer, tableau, t_states, self.t_controls, self.interpolation)
        return ImplicitBlock(self.layer, tableau, t_states, self.t_controls, self.interpolation, self.gradient,
                             self.solver)
