"""The one time loop: `march` over steps, `march_states` keeping every state."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

State = TypeVar("State")


def march(step: Callable[[State, int], State], state: State, num_steps: int) -> State:
    """The state after steps k = 0 .. num_steps - 1 of `step(state, k)`."""
    for k in range(num_steps):
        state = step(state, k)
    return state


def march_states(step: Callable[[State, int], State], state: State, num_steps: int,
                 observe: Callable[[State], torch.Tensor] = lambda state: state) -> torch.Tensor:
    """Like `march`, but `observe(state)` at every state time, stacked: shape (num_steps + 1, ...)."""
    seen = [observe(state)]
    for k in range(num_steps):
        state = step(state, k)
        seen.append(observe(state))
    return torch.stack(seen)
