"""`rknet.odeint`: torchdiffeq's `odeint`, `odeint_adjoint` and `odeint_event`, on rknet's solvers.

Same call shape and meaning as torchdiffeq (tuple states, decreasing `t`, one-element `t`, every method
name, `options=`, callbacks, events, gradients with respect to `t`); the differences are in docs/odeint.md.
`names` maps method names to solvers, `arguments` and `options` normalise a call, `solve` runs one solve,
`gradients` adds time gradients and the adjoint, `events` the event API.
"""

from rknet.solvers.odeint.api import odeint, odeint_adjoint, odeint_event

__all__ = ["odeint", "odeint_adjoint", "odeint_event"]
