"""`options=` and the step callbacks on `func`, checked as torchdiffeq checks them.

An option torchdiffeq's solver of this kind does not take (e.g. `step_size` given to dopri5) is dropped with
torchdiffeq's warning, and the solve stays what the method is (adaptive stays adaptive); a name no torchdiffeq
solver takes is a ValueError (torchdiffeq only warns: a misspelt option is almost always a mistake). For a
decreasing `t`, the time-valued options are negated as the solve runs on -t.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import torch

from rknet.solvers.hooks import ADAPTIVE_CALLBACKS, FIXED_GRID_CALLBACKS, Callbacks, callbacks_of
from rknet.solvers.odeint.arguments import Problem, unflatten
from rknet.solvers.odeint.names import ADAPTIVE, ALL_OPTIONS, FIXED, SCIPY, Method


def _negated(value):
    if isinstance(value, torch.Tensor):
        return -value
    if isinstance(value, (list, tuple)):
        return type(value)(-v for v in value)
    return value


def check_options(options: Mapping | None, method: Method, sign: float) -> dict:
    """The options the solver of `method` takes, for a solve in the increasing time sign * t."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    options = dict(options)
    unknown = sorted(set(options) - ALL_OPTIONS)
    if unknown:
        raise ValueError(f"unknown odeint option {unknown[0]!r}; the options are {', '.join(sorted(ALL_OPTIONS))}")
    unused = {name: options.pop(name) for name in sorted(set(options) - method.options)}
    if unused:
        warnings.warn(f"{method.name}: Unexpected arguments {unused}", stacklevel=3)
    if method.kind == FIXED and options.get("step_size") is not None and options.get("grid_constructor") is not None:
        raise ValueError("step_size and grid_constructor are mutually exclusive arguments.")
    if sign < 0:
        for name in ("jump_t", "step_t"):
            if name in options:
                options[name] = _negated(options[name])
        if options.get("grid_constructor") is not None:
            constructor = options["grid_constructor"]
            options["grid_constructor"] = lambda func, y0, t: -constructor(func, y0, -t)
    return options


def step_callbacks(func: Callable, method: Method, problem: Problem, adjoint: bool = False) -> Callbacks:
    """func's step callbacks (with `adjoint` their `_adjoint` forms) for the stepping layer, which calls them
    as callback(s, y, h) in solver time on the flat state: each gets the caller's time and state as tensors
    (the adjoint forms get the flat augmented state)."""
    supported = {ADAPTIVE: ADAPTIVE_CALLBACKS, SCIPY: frozenset()}.get(method.kind, FIXED_GRID_CALLBACKS)

    def wrap(callback: Callable) -> Callable:
        def called(s: float, y: torch.Tensor, h: float):
            state = y if problem.shapes is None or adjoint else unflatten(y, (), problem.shapes)
            return callback(problem.user_time(s), state, torch.as_tensor(h, dtype=problem.time_dtype))

        return called

    return callbacks_of(func, supported, method.name, adjoint, wrap)
