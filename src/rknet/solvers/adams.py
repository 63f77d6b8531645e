"""Adams multistep solvers on a fixed grid: torchdiffeq's `explicit_adams` and `implicit_adams` (`fixed_adams`).

The slopes f(t_k, y_k) of past steps are kept (newest first, at most `max_order - 1`); once three are known,
each step takes the Adams-Bashforth formula of that many steps, so the order grows from 3 to
`max_order - 1` (default 12 - 1) as the history fills. The first two steps take the 3/8 rule (rknet's
`rk38`, torchdiffeq's `rk4`). `implicit=True` corrects each prediction with the Adams-Moulton formula one
order higher, iterated as a fixed point up to `max_iters` times until two successive increments agree within
`atol + rtol * |increment|` (max norm); a step whose iteration does not converge warns and forgets its oldest
slope, as torchdiffeq does. The steps are the intervals of `times`, or of a grid of `step_size` from times[0]
(the last step cut at times[-1]); the outputs between grid times are interpolated linearly, as torchdiffeq's
fixed-grid solvers do by default.

The Adams weights are computed exactly (fractions) from their definition: the integral over one step of the
Lagrange polynomials through the slopes' times.
"""

from __future__ import annotations

import collections
import functools
import math
import warnings
from collections.abc import Callable, Mapping
from fractions import Fraction

import torch

from rknet.solvers.hooks import NO_CALLBACKS, Callbacks

MIN_ORDER, MAX_ORDER, MAX_ITERS = 4, 12, 4
OPTIONS = ("step_size", "max_iters", "max_order")
Slope = Callable[[float, torch.Tensor], torch.Tensor]


@functools.cache
def adams_weights(nodes: tuple[int, ...]) -> tuple[float, ...]:
    """int_0^1 l_j(u) du for the Lagrange basis l_j of `nodes` (times in units of the step, the new one at 1)."""
    weights = []
    for j, node in enumerate(nodes):
        poly = [Fraction(1)]  # coefficients of increasing powers of u
        for other in nodes[:j] + nodes[j + 1:]:
            scale = Fraction(1, node - other)
            poly = [((poly[k - 1] if k else 0) - other * (poly[k] if k < len(poly) else 0)) * scale
                    for k in range(len(poly) + 1)]
        weights.append(float(sum(c / (k + 1) for k, c in enumerate(poly))))
    return tuple(weights)


def bashforth(steps: int) -> tuple[float, ...]:
    """Adams-Bashforth weights of the slopes at t_n, t_{n-1}, ..., t_{n-steps+1}."""
    return adams_weights(tuple(-j for j in range(steps)))


def moulton(steps: int) -> tuple[float, ...]:
    """Adams-Moulton weights of the slopes at t_{n+1}, t_n, ..., t_{n-steps+2}."""
    return adams_weights((1, *(-j for j in range(steps - 1))))


def step_grid(times: tuple[float, ...], step_size: float) -> tuple[float, ...]:
    """torchdiffeq's grid for `step_size`: t0 + k h for k < ceil((t_end - t0) / h + 1), the last set to t_end."""
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not step_size > 0:
        raise ValueError(f"options['step_size'] must be a positive number, got {step_size!r}")
    count = math.ceil((times[-1] - times[0]) / step_size + 1)
    return (*(times[0] + k * step_size for k in range(count - 1)), times[-1])


def rk38_increment(f: Slope, t0: float, dt: float, y: torch.Tensor, k1: torch.Tensor) -> torch.Tensor:
    """h sum b_i k_i of one 3/8-rule step from (t0, y) whose first slope k1 is known."""
    k2 = f(t0 + dt / 3, y + dt * k1 / 3)
    k3 = f(t0 + dt * 2 / 3, y + dt * (k2 - k1 / 3))
    k4 = f(t0 + dt, y + dt * (k1 - k2 + k3))
    return (k1 + 3 * (k2 + k3) + k4) * dt * 0.125


def checked_options(options: Mapping | None) -> tuple[float | None, int, int]:
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown Adams option {unknown[0]!r}; the Adams solvers take {', '.join(OPTIONS)}")
    max_iters, max_order = options.get("max_iters", MAX_ITERS), options.get("max_order", MAX_ORDER)
    for name, value, top in (("max_iters", max_iters, math.inf), ("max_order", max_order, MAX_ORDER)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ValueError(f"options[{name!r}] must be an integer from 1" + (f" to {top}" if top < math.inf else "")
                             + f", got {value!r}")
    if max_order < MIN_ORDER:
        warnings.warn(f"max_order is below {MIN_ORDER}, so the Adams solver reduces to the 3/8 rule (rk38)",
                      stacklevel=3)
    return options.get("step_size"), max_iters, max_order


def solve_adams(f: Slope, y0: torch.Tensor, times: tuple[float, ...], rtol: float, atol: float,
                options: Mapping | None, implicit: bool, callbacks: Callbacks = NO_CALLBACKS) -> torch.Tensor:
    """y at every time of the increasing `times` by Adams-Bashforth (`implicit=False`) or Adams-Bashforth-Moulton:
    shape (len(times), *y0.shape). Options: `step_size`, `max_iters` (corrector iterations), `max_order`.
    `callbacks.step(t0, y0, dt)` runs before every step (torchdiffeq's `callback_step`)."""
    step_size, max_iters, max_order = checked_options(options)
    grid = times if step_size is None else step_grid(times, step_size)
    history: collections.deque[torch.Tensor] = collections.deque(maxlen=max_order - 1)
    outputs, j, y = [y0], 1, y0
    for t0, t1 in zip(grid, grid[1:]):
        dt = t1 - t0
        if callbacks.step is not None:
            callbacks.step(t0, y, dt)
        f0 = f(t0, y)
        history.appendleft(f0)
        order = min(len(history), max_order - 1)
        if order < MIN_ORDER - 1:
            dy = rk38_increment(f, t0, dt, y, f0)
        else:
            dy = sum((dt * c) * slope for c, slope in zip(bashforth(order), history))
            if implicit:
                dy = corrected(f, t1, y, dy, dt, history, order, (rtol, atol), max_iters)
        y1 = y + dy
        while j < len(times) and t1 >= times[j]:
            outputs.append(y1 if times[j] == t1 else y + (times[j] - t0) / dt * (y1 - y))
            j += 1
        y = y1
    return torch.stack(outputs)


def corrected(f: Slope, t1: float, y: torch.Tensor, dy: torch.Tensor, dt: float, history: collections.deque,
              order: int, tolerances: tuple[float, float], max_iters: int) -> torch.Tensor:
    """The Adams-Moulton increment from the prediction `dy`, by fixed-point iteration; on no convergence, a
    warning and the oldest slope dropped from `history`."""
    weights = moulton(order + 1)
    known = dt * sum(c * slope for c, slope in zip(weights[1:], history))
    rtol, atol = tolerances
    for _ in range(max_iters):
        previous, dy = dy, dt * weights[0] * f(t1, y + dy) + known
        if ((dy - previous).abs() / (atol + rtol * torch.max(previous.abs(), dy.abs()))).max() < 1:
            return dy
    warnings.warn("Adams-Moulton fixed-point iteration did not converge; the solution may be inaccurate", stacklevel=3)
    history.pop()
    return dy
