"""The norms adaptive steps are measured in, as torchdiffeq builds them.

Forward: a tensor state's norm is the RMS (or `options["norm"]`); a tuple state's is the largest RMS of its
components (or the user's norm, which is given the tuple). Adjoint: the augmented state is seen as
(t, y, a, *param_grads); by default its norm is the largest of |t|, the state norm of y and of a, and the
RMS of each parameter gradient; `adjoint_options={"norm": "seminorm"}` leaves the parameter gradients out
(they do not feed back into the dynamics, so their error need not be controlled: fewer backward steps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from rknet.solvers.odeint.arguments import unflatten

Norm = Callable[[torch.Tensor], torch.Tensor]


def rms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.abs().pow(2).mean().sqrt()


def mixed(tensors: Sequence[torch.Tensor]) -> torch.Tensor | float:
    return max(rms(t) for t in tensors) if tensors else 0.0


def state_norm(norm: Callable | None, shapes: Sequence[torch.Size] | None) -> Norm:
    """The forward norm on the flat state."""
    if shapes is None:
        return norm or rms
    inner = norm or mixed
    return lambda y: inner(unflatten(y, (), shapes))


def adjoint_norm(given, forward: Norm, shapes: Sequence[torch.Size] | None) -> Callable:
    """The norm of the adjoint solve, on the tuple (t, y, a, *param_grads) with y and a flat."""
    if given is None or given == "seminorm":
        seminorm = given == "seminorm"

        def default(state: tuple) -> torch.Tensor:
            time, y, a, *params = state
            largest = max(time.abs(), forward(y), forward(a))
            return largest if seminorm else max(largest, mixed(params))

        return default
    if not callable(given):
        raise ValueError(f"adjoint_options['norm'] must be 'seminorm' or a callable, got {given!r}")
    if shapes is None:
        return given
    return lambda state: given((state[0], *unflatten(state[1], (), shapes), *unflatten(state[2], (), shapes),
                                *state[3:]))
