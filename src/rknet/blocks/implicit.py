"""ImplicitBlock: a Runge-Kutta block stepped by an implicit Runge-Kutta method (backward Euler, implicit
midpoint, trapezoid, SDIRK2, SDIRK3, 2-stage Gauss-Legendre or a user's implicit tableau).

Each implicit stage (all stages together for a fully implicit tableau) is solved by Newton-Krylov to a
tolerance, each image of a batch as its own system, and differentiated by the implicit function theorem
(`rknet.implicit`), so training memory is one layer evaluation per stage, as for an explicit method,
however many iterations the solves take.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rknet.blocks.runge_kutta import RungeKuttaBlock
from rknet.gradients.capabilities import STEPPING, Capabilities
from rknet.gradients.strategies import GradientStrategy
from rknet.layers import Layer
from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.implicit_stages import ImplicitStages
from rknet.solvers.newton_krylov import NewtonKrylov, SolveReport
from rknet.solvers.runge_kutta import implicit_step


class ImplicitBlock(RungeKuttaBlock):
    """Integrate a layer's ODE with an implicit tableau; `solver` sets the stage solves'
    tolerance and iteration limits, and its `report` counts their iterations.

    Batch norm is refused: the solver evaluates the layer a data-dependent number of times, so per-evaluation
    running statistics would not be defined. `evaluations_per_forward` counts one evaluation per stage (the
    nominal cost; `solver.report` has the true iteration counts).
    """

    # Checkpointing would rerun the Newton-Krylov solves in the backward pass: not declared (not tested).
    capabilities = Capabilities(STEPPING, norms=("tv", "none"), vector_field=True, rediscretize_into=("runge-kutta",),
                                norm_reason="the stage solves evaluate the layer a varying number of times")
    implicit_stages = True

    def __init__(self, layer: Layer, method: str | ButcherTableau = "sdirk2",
                 t_states: Sequence[float] = (0, 1, 2, 3, 4), t_controls: Sequence[float] | None = None,
                 interpolation: str = "linear", gradient: str | GradientStrategy | None = None,
                 solver: NewtonKrylov | None = None) -> None:
        tableau = get_tableau(method)
        stages = ImplicitStages(tableau, solver, per_sample=True)
        super().__init__(layer, tableau, t_states, t_controls, interpolation, gradient,
                         f"{tableau.name} (an implicit method)")
        self.stages = stages

    @property
    def solver(self) -> NewtonKrylov:
        return self.stages.solver

    @property
    def report(self) -> SolveReport:
        """Iteration counts of the stage solves since the solver's last `reset`."""
        return self.solver.report

    def step(self, y: torch.Tensor, k: int, cache: dict | None = None) -> torch.Tensor:
        cache = {} if cache is None else cache
        for i in range(self.tableau.stages):  # interpolate now, with a graph: the solves run without one
            self.stage_parameters(k, i, cache)
        return implicit_step(self.stages, self.slope(k, cache), y, self.step_sizes[k], self.terms, k)

    def with_grids(self, t_states: Sequence[float], t_controls: Sequence[float]) -> ImplicitBlock:
        return ImplicitBlock(self.layer, self.tableau, t_states, t_controls, self.interpolation, self.gradient,
                             self.solver)
