"""Normalising `odeint`'s arguments to one flat problem, as torchdiffeq does before it picks a solver.

A tuple state is flattened into one vector (its `func` sees the tuple, returns a tuple, and the slope is
concatenated back); tolerances become numbers or per-element tensors of the flat state; a decreasing `t`
is integrated as the increasing `-t` with `f` negated; `func` gets `t` as a 0-d tensor of y0's real dtype,
and its value is broadcast to y's shape and cast to y's dtype (torchdiffeq's arithmetic does both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rknet.common.checks import slope_matches
from rknet.common.checks import tolerance as checked_tolerance

State = torch.Tensor | tuple[torch.Tensor, ...]


def flatten_state(y0) -> tuple[torch.Tensor, tuple[torch.Size, ...] | None]:
    """(y0 as one tensor, the component shapes when y0 is a tuple, else None)."""
    if isinstance(y0, torch.Tensor):
        return y0, None
    if not isinstance(y0, tuple) or not y0 or not all(isinstance(y, torch.Tensor) for y in y0):
        raise TypeError(f"y0 must be a torch.Tensor or a non-empty tuple of tensors, got {type(y0).__name__}")
    return torch.cat([y.reshape(-1) for y in y0]), tuple(y.shape for y in y0)


def unflatten(tensor: torch.Tensor, length: tuple[int, ...], shapes: Sequence[torch.Size]) -> tuple[torch.Tensor, ...]:
    """The tuple whose flattening is the last dimension of `tensor` (leading dimensions `length`)."""
    parts, start = [], 0
    for shape in shapes:
        end = start + shape.numel()
        parts.append(tensor[..., start:end].view((*length, *shape)))
        start = end
    return tuple(parts)


def as_slope(value, y: torch.Tensor) -> torch.Tensor:
    """func's value broadcast to y's shape, in y's dtype."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"func(t, y) must return a tensor, got {type(value).__name__}")
    if value.shape != y.shape:
        try:
            value = value.broadcast_to(y.shape)
        except RuntimeError as error:
            raise ValueError(f"func(t, y) must return a tensor broadcastable to y's shape {tuple(y.shape)}, "
                             f"got {tuple(value.shape)}") from error
    return value if value.dtype == y.dtype else slope_matches("func(t, y)", value, y).to(y.dtype)


def flat_func(func: Callable, shapes: Sequence[torch.Size] | None) -> Callable:
    """func on the flat state: unflattens y for a tuple state and concatenates the tuple it returns."""
    if not callable(func):
        raise TypeError(f"func must be callable as func(t, y), got {type(func).__name__}")
    if shapes is None:
        return lambda t, y: as_slope(func(t, y), y)

    def tupled(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = func(t, unflatten(y, (), shapes))
        if not isinstance(value, (tuple, list)) or len(value) != len(shapes):
            raise ValueError(f"func(t, y) must return a tuple of {len(shapes)} tensors for a tuple state, got "
                             f"{type(value).__name__}{'' if not isinstance(value, (tuple, list)) else len(value)}")
        parts = [as_slope(v, part) for v, part in zip(value, unflatten(y, (), shapes))]
        return torch.cat([part.reshape(-1) for part in parts])

    return tupled


def tolerance(name: str, value, y0: torch.Tensor, shapes: Sequence[torch.Size] | None) -> float | torch.Tensor:
    """A tolerance as a number, or a tensor of the flat state's shape (per component for a tuple state)."""
    real = y0.abs().dtype if y0.is_complex() else y0.dtype
    if shapes is not None and isinstance(value, (tuple, list)):
        if len(value) != len(shapes):
            raise ValueError(f"a tuple {name} must have one entry per component of the tuple y0 ({len(shapes)}), "
                             f"got {len(value)}")
        value = torch.cat([torch.as_tensor(v, dtype=real).expand(s.numel()) for v, s in zip(value, shapes)])
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise ValueError(f"{name} cannot require gradient")
        if value.numel() == 1:
            value = value.item()
        else:
            try:
                value = value.to(device=y0.device, dtype=real).broadcast_to(y0.shape)
            except RuntimeError as error:
                raise ValueError(f"{name} must broadcast to y0's shape {tuple(y0.shape)}, got "
                                 f"{tuple(value.shape)}") from error
    return checked_tolerance(name, value, below=1 if name.endswith("rtol") else math.inf)


def time_tensor(t) -> torch.Tensor:
    """`t` as a 1-D floating tensor, strictly increasing or decreasing (a list of numbers is accepted)."""
    if not isinstance(t, torch.Tensor):
        try:
            t = torch.as_tensor(t, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"t must be a 1-D tensor of times, got {type(t).__name__}") from error
    if not t.is_floating_point():
        raise TypeError(f"`t` must be a floating point Tensor but is a {t.type()}")
    if t.dim() != 1 or len(t) == 0:
        raise ValueError(f"t must be a non-empty 1-D tensor of times, got shape {tuple(t.shape)}")
    steps = t.detach()[1:] - t.detach()[:-1]
    if not (bool((steps > 0).all()) or bool((steps < 0).all())):
        raise ValueError("t must be strictly increasing or decreasing")
    return t


@dataclass
class Problem:
    """dy/dt = func(t, y) on the flat state, integrated over `times` = sign * t (increasing)."""

    func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    y0: torch.Tensor
    shapes: tuple[torch.Size, ...] | None
    t: torch.Tensor
    sign: float
    rtol: float | torch.Tensor
    atol: float | torch.Tensor

    @property
    def times(self) -> tuple[float, ...]:
        return tuple(self.sign * s for s in self.t.detach().cpu().tolist())

    @property
    def time_dtype(self) -> torch.dtype:
        return self.y0.abs().dtype if self.y0.is_complex() else self.y0.dtype

    def user_time(self, s: float) -> torch.Tensor:
        """Solver time s as the tensor func gets: sign * s, in y0's real dtype."""
        return torch.tensor(self.sign * s, dtype=self.time_dtype, device=self.y0.device)

    def slope(self, s: float, y: torch.Tensor) -> torch.Tensor:
        """The flat problem in solver time: d y / d s = sign * func(sign * s, y)."""
        value = self.func(self.user_time(s), y)
        return value if self.sign > 0 else -value

    def output(self, solution: torch.Tensor) -> State:
        """The flat solution in the caller's structure."""
        return solution if self.shapes is None else unflatten(solution, (solution.shape[0],), self.shapes)


def problem(func: Callable, y0, t, rtol, atol) -> Problem:
    flat, shapes = flatten_state(y0)
    if not (flat.is_floating_point() or flat.is_complex()):
        raise TypeError(f"y0 must be a floating-point tensor, got dtype {flat.dtype} (use y0.float())")
    t = time_tensor(t)
    sign = -1.0 if len(t) > 1 and bool(t[1] < t[0]) else 1.0
    return Problem(flat_func(func, shapes), flat, shapes, t, sign, tolerance("rtol", rtol, flat, shapes),
                   tolerance("atol", atol, flat, shapes))
