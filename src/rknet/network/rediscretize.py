"""Re-discretise a trained network: another integrator or state grid, the same controls theta(t).

If the network learned an ODE, its accuracy survives a finer grid or a different method; if it only
learned a fixed-depth map, it does not.
"""

from __future__ import annotations

import warnings

from rknet.blocks.registry import check_rediscretization
from rknet.common.checks import positive_int
from rknet.common.limits import BLOCK_STEPS
from rknet.methods.registry import resolve_method, uses_solver
from rknet.network.odenet import ODENet
from rknet.solvers.grid import GridWarning, uniform_grid


def rediscretize(model: ODENet, method=None, steps: int | None = None) -> ODENet:
    """A copy of `model` integrated with `method` over `steps` equal steps of the same time interval.

    The controls keep their times (the original state grid when they had none of their own), so the
    weights theta(t) are the same function of time; only the discretisation changes. `method` is any
    method of the same family (a Runge-Kutta network takes any tableau; leapfrog and hamiltonian networks
    only a new grid). Batch-norm statistics: each evaluation takes those of the same stage of the trained
    step containing it, or with other stage times those of the trained evaluation nearest in time.
    """
    spec = model.spec
    changes = {}
    if steps is not None:
        BLOCK_STEPS.check("steps", positive_int("steps", steps))
        changes["t_states"] = uniform_grid(steps, spec.t_states[-1], spec.t_states[0])
    if method is not None:
        changes["method"] = resolve_method(method)
        check_rediscretization(spec.method, changes["method"])
        if not uses_solver(changes["method"]):
            changes["solver"] = {}
    if spec.capabilities.control_grid:  # otherwise one control per step
        changes["t_controls"] = spec.control_times
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridWarning)
        target = spec.replace(**changes)
        return model.resampled(target)
