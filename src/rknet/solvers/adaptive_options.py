"""`AdaptiveOptions`: how an embedded-pair solve controls its steps and produces its outputs.

Every field has torchdiffeq's meaning (its `options=` of the adaptive Runge-Kutta solvers):

* `norm(x) -> number`: the error norm of the scaled error estimate x = error / (atol + rtol max(|y0|, |y1|))
  (default: root mean square). A step is accepted when it is at most 1.
* `first_step`: the first step size (default: Hairer's estimate from f0 and one Euler step).
* `max_num_steps`: most step attempts between two output times (ValueError past it).
* `min_step`, `max_step`: every step is clamped to [min_step, max_step]; a step at min_step is accepted
  whatever its error.
* `safety`, `ifactor`, `dfactor`: the step-size factor is `safety * err^(-1/k)` (k the controller's order),
  at most `ifactor` and at least `dfactor` (1 after an accepted step: an accepted step never shrinks the next).
* `step_t`: times a step must end on. `jump_t`: times where f is discontinuous: a step ends exactly there
  and the next starts from f evaluated just after it (no FSAL reuse across the jump).
* `dtype`: the dtype of the time variable and step control (torchdiffeq's default float64; promoted with
  the state's real dtype). rknet holds times as Python floats; float32 rounds each new time to float32.
* `interp`: "dense" (default of `odeint`): step freely and interpolate at output times (`dense_output`);
  "step": shorten steps to land on every output time, so outputs are solutions, not interpolants.
* `controller`: "pi" (rknet's default: Hairer's PI controller, beta = 0.04 for order 5, fewer rejections)
  or "integral" (torchdiffeq's controller, for step sequences identical to torchdiffeq's).

`from_options(mapping)` builds one from an `odeint` options dict (tensors accepted where torchdiffeq takes
them) and returns the keys it does not use, which the front reports as torchdiffeq does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import torch

SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0
MAX_STEPS = 100_000
INTERPS = ("dense", "step")
CONTROLLERS = ("pi", "integral")


def as_float(value, name: str) -> float:
    """A Python float from a number or a one-element tensor; ValueError otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"options[{name!r}] must be a number, got {value!r}")
    return float(value)


def as_times_option(value, name: str) -> tuple[float, ...]:
    """A sorted tuple of floats from a 1-D tensor or a sequence of numbers (step_t, jump_t)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().reshape(-1).tolist()
    try:
        values = tuple(sorted(as_float(v, name) for v in value))
    except TypeError:
        raise ValueError(f"options[{name!r}] must be a 1-D tensor or sequence of times, got {value!r}") from None
    return values


@dataclass(frozen=True)
class AdaptiveOptions:
    """Step control and output options of an embedded-pair solve (see the module docstring)."""

    norm: Callable[[torch.Tensor], object] | None = None
    first_step: float | None = None
    max_num_steps: int = MAX_STEPS
    min_step: float = 0.0
    max_step: float = math.inf
    safety: float = SAFETY
    ifactor: float = MAX_FACTOR
    dfactor: float = MIN_FACTOR
    step_t: tuple[float, ...] = ()
    jump_t: tuple[float, ...] = ()
    dtype: torch.dtype = torch.float64
    interp: str = "step"
    controller: str = "pi"

    def __post_init__(self) -> None:
        if self.norm is not None and not callable(self.norm):
            raise ValueError(f"options['norm'] must be callable as norm(tensor), got {type(self.norm).__name__}")
        if self.first_step is not None and not self.first_step > 0:
            raise ValueError(f"options['first_step'] must be positive, got {self.first_step!r}")
        if isinstance(self.max_num_steps, bool) or not isinstance(self.max_num_steps, int) or self.max_num_steps < 1:
            raise ValueError(f"options['max_num_steps'] must be a positive integer, got {self.max_num_steps!r}")
        if not 0 <= self.min_step <= self.max_step or not self.max_step > 0:
            raise ValueError(f"options need 0 <= min_step <= max_step and max_step > 0, got min_step="
                             f"{self.min_step!r}, max_step={self.max_step!r}")
        if not (0 < self.safety <= 1 and self.ifactor >= 1 and 0 < self.dfactor <= 1):
            raise ValueError(f"options need 0 < safety <= 1, ifactor >= 1, 0 < dfactor <= 1; got safety="
                             f"{self.safety!r}, ifactor={self.ifactor!r}, dfactor={self.dfactor!r}")
        if set(self.step_t) & set(self.jump_t):
            raise ValueError("`step_t` and `jump_t` must not have any repeated elements between them.")
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise ValueError(f"options['dtype'] must be a floating-point torch.dtype, got {self.dtype!r}")
        if self.interp not in INTERPS:
            raise ValueError(f"options['interp'] must be one of {', '.join(INTERPS)} for an adaptive method, "
                             f"got {self.interp!r}")
        if self.controller not in CONTROLLERS:
            raise ValueError(f"options['controller'] must be one of {', '.join(CONTROLLERS)}, got "
                             f"{self.controller!r}")

    @classmethod
    def from_options(cls, options: Mapping | None, interp: str = "dense") -> tuple[AdaptiveOptions, dict]:
        """(AdaptiveOptions from an odeint `options` dict, the entries it does not use); `interp` is the
        default output mode when the dict names none."""
        given, unused, known = dict(options or {}), {}, {f.name for f in fields(cls)}
        for key in list(given):
            if key not in known:
                unused[key] = given.pop(key)
        for key in ("first_step", "min_step", "max_step", "safety", "ifactor", "dfactor"):
            if given.get(key) is not None:
                given[key] = as_float(given[key], key)
        for key in ("step_t", "jump_t"):
            if given.get(key) is not None:
                given[key] = as_times_option(given[key], key)
            else:
                given.pop(key, None)
        if isinstance(given.get("max_num_steps"), torch.Tensor):
            given["max_num_steps"] = int(given["max_num_steps"].item())
        given.setdefault("interp", interp)
        return cls(**given), unused

    def time_rounding(self, state_dtype: torch.dtype) -> Callable[[float], float]:
        """How a new time is rounded: not at all for float64 control, else to the control dtype."""
        dtype = torch.promote_types(self.dtype, state_dtype)
        if dtype == torch.float64:
            return float
        return lambda t: torch.tensor(t, dtype=dtype).item()
