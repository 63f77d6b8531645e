"""torchdiffeq's `scipy_solver`: SciPy's `solve_ivp` (LSODA by default; RK45, RK23, DOP853, Radau, BDF), on CPU
in float64, the result cast back to y0's dtype and device. No gradients flow through it (as in torchdiffeq):
f is called under `torch.no_grad()` and the result is a new tensor. SciPy is imported only when called.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

import torch

OPTIONS = ("solver", "min_step", "max_step")
IGNORED = ("norm", "grid_points", "eps")  # torchdiffeq drops these for scipy_solver without a word
Slope = Callable[[float, torch.Tensor], torch.Tensor]


def as_numpy_tolerance(value):
    """A tolerance as solve_ivp takes it: a float, or a flat float64 array for a per-component tensor."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.detach().cpu().double().reshape(-1).numpy()
    return value


def solve_scipy(f: Slope, y0: torch.Tensor, times: tuple[float, ...], rtol, atol,
                options: Mapping | None = None) -> torch.Tensor:
    """y at every time of the increasing `times` by `scipy.integrate.solve_ivp`: shape (len(times), *y0.shape).

    Options as torchdiffeq takes them: `solver` (a solve_ivp method name, default "LSODA"), `min_step` (used by
    LSODA), `max_step`. Unknown options warn, as in torchdiffeq. RuntimeError when SciPy reports a failure.
    """
    from scipy.integrate import solve_ivp

    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS) - set(IGNORED))
    if unknown:
        warnings.warn(f"scipy_solver: unexpected options {unknown}; it takes {', '.join(OPTIONS)}", stacklevel=2)
    if len(times) == 1:
        return y0.detach()[None].clone()
    shape, dtype, device = y0.shape, y0.dtype, y0.device

    def slope(t: float, y):
        with torch.no_grad():
            value = f(float(t), torch.as_tensor(y).to(device, dtype).reshape(shape))
        return value.detach().cpu().double().reshape(-1).numpy()

    extra = {"min_step": options["min_step"]} if "min_step" in options else {}
    solution = solve_ivp(slope, (times[0], times[-1]), y0.detach().cpu().double().reshape(-1).numpy(),
                         method=options.get("solver", "LSODA"), t_eval=list(times), rtol=as_numpy_tolerance(rtol),
                         atol=as_numpy_tolerance(atol), max_step=options.get("max_step", math.inf), **extra)
    if not solution.success:
        raise RuntimeError(f"scipy_solver ({options.get('solver', 'LSODA')}) failed: {solution.message}")
    return torch.as_tensor(solution.y.T).to(device, dtype).reshape(len(times), *shape)
