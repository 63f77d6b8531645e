"""What a solver calls besides f: step callbacks, perturbed evaluation times, the default error norm.

* `Callbacks`: `step(t0, y0, dt)` before every step attempt, `accept(t0, y0, dt)` / `reject(t0, y0, dt)`
  after an adaptive step is judged (torchdiffeq's `callback_step`, `callback_accept_step`,
  `callback_reject_step`, looked up as attributes of the user's `func` by `callbacks_of`; with
  `adjoint=True` the `..._adjoint` forms, called by the backward pass). Times are the solver's own floats.
* `nudge(t, side, dtype)`: t moved one unit in the last place of `dtype` (the dtype `f` sees t in) towards
  +inf (`side=1`, torchdiffeq's `Perturb.NEXT`) or -inf (`side=-1`, `Perturb.PREV`), so an f with a jump at t
  is evaluated on the side the step lies on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch

StepCallback = Callable[[float, torch.Tensor, float], object]
CALLBACK_NAMES = ("callback_step", "callback_accept_step", "callback_reject_step")
ADAPTIVE_CALLBACKS = frozenset(CALLBACK_NAMES)
FIXED_GRID_CALLBACKS = frozenset({"callback_step"})


class Callbacks(NamedTuple):
    """The step callbacks a solve calls (None: not given)."""

    step: StepCallback | None = None
    accept: StepCallback | None = None
    reject: StepCallback | None = None


NO_CALLBACKS = Callbacks()


def callbacks_of(func: object, supported: frozenset[str], method: str = "", adjoint: bool = False,
                 wrap: Callable[[Callable], StepCallback] = lambda callback: callback) -> Callbacks:
    """The callbacks `func` defines as attributes (`callback_step`, ... or with `adjoint` their `_adjoint`
    forms), each passed through `wrap` (the front's conversion of floats to tensors, flat state to tuple).

    Warns, as torchdiffeq does, when `func` defines a forward callback the solver never calls (`supported`:
    `ADAPTIVE_CALLBACKS` for embedded pairs, `FIXED_GRID_CALLBACKS` for fixed grids, empty for SciPy).
    """
    suffix = "_adjoint" if adjoint else ""
    found = {name: getattr(func, name + suffix, None) for name in CALLBACK_NAMES}
    found = {name: callback for name, callback in found.items() if callable(callback)}
    unsupported = set(found) - supported
    if unsupported and not adjoint:
        warnings.warn(f"Solver '{method}' does not support callbacks {unsupported}", stacklevel=3)
    chosen = [wrap(found[name]) if name in found and name in supported else None for name in CALLBACK_NAMES]
    return Callbacks(*chosen)


def nudge(t: float, side: int, dtype: torch.dtype = torch.float64) -> float:
    """t moved to the next representable value of `dtype` towards +inf (side 1) or -inf (side -1)."""
    if side == 0:
        return t
    if dtype == torch.float64:
        return math.nextafter(t, side * math.inf)
    value = torch.tensor(t, dtype=dtype)
    return torch.nextafter(value, torch.tensor(side * math.inf, dtype=dtype)).item()


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    """Root mean square of |x| (torchdiffeq's default error norm), as a 0-d tensor."""
    return x.abs().pow(2).mean().sqrt() if x.numel() else x.new_zeros(()).abs()


def norm_value(norm: Callable[[torch.Tensor], object] | None, x: torch.Tensor) -> float:
    """norm(x) as a Python float (one host sync); the RMS norm when `norm` is None."""
    if norm is None:
        return rms_norm(x).item()
    value = norm(x)
    return float(value.abs().item() if isinstance(value, torch.Tensor) else abs(value))
