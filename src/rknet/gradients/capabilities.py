"""What a block type declares about itself, once, for everything above it to read.

A block type sets one class-level `capabilities = Capabilities(...)`. Gradient strategies (this package,
which sits below the blocks and imports no block type), the fused path, the network spec, re-discretisation,
adaptive evaluation, the analyses and the CLI ask these declarations instead of testing a family's name or a
block's class. The two protocols a block can speak are named here too: `STEPPING` (one state, stepped by
`step(y, k, cache)`) and `REVERSIBLE` (a pair of states, `initial` / `run` / `reverse` / `output`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rknet.layers.norms import NORMS

STEPPING = "stepping"
REVERSIBLE = "reversible"
PROTOCOLS: dict[str, str] = {
    STEPPING: "steps one state: step(y, k, cache)",
    REVERSIBLE: "a reversible scheme on a pair of states: initial, run, reverse, output",
}


@dataclass(frozen=True)
class Capabilities:
    """One block type's answers to the questions asked of every block type.

    `protocol`: STEPPING or REVERSIBLE. `gradient`: the default strategy (the others a block type accepts are
    derived from what each strategy needs: `rknet.gradients.strategies.supported_gradients`).
    `control_grid`: the controls live on their own grid `t_controls` (else one control per state step).
    `norms`: the layer norms it accepts; `norm_reason`: why it refuses the others.
    `vector_field`: it integrates a first-order ODE y' = f(t, y) by a tableau and answers `vector_field(t, y,
    evaluation)`, `nearest_evaluation(t)` and `tableau` (adaptive evaluation, Jacobian spectra, the adjoint).
    `explicit_tableau`: it steps by an explicit Runge-Kutta tableau whose sparse view (`tableau`, `terms`,
    `stage_interpolation`, `layer`) the fused path and the adjoint replay.
    `recomputable`: a step re-run in the backward pass gives what the forward step saved (checkpoint,
    selective; checked by tests/test_memory.py for the block types that declare it).
    `rediscretize_into`: the families a network of this block type can be re-discretised into.
    """

    protocol: str
    gradient: str = "backprop"
    control_grid: bool = True
    norms: tuple[str, ...] = NORMS
    norm_reason: str = ""
    vector_field: bool = False
    explicit_tableau: bool = False
    recomputable: bool = False
    rediscretize_into: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown block protocol {self.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        unknown = sorted(set(self.norms) - set(NORMS))
        if unknown:
            raise ValueError(f"unknown norm {unknown[0]!r} in a block's capabilities; valid: {', '.join(NORMS)}")


def capabilities_of(block_type: Any) -> Capabilities:
    """The declaration of a block type (or of a block's type)."""
    declared = getattr(block_type, "capabilities", None)
    if not isinstance(declared, Capabilities):
        raise TypeError(f"{getattr(block_type, '__name__', type(block_type).__name__)} declares no Capabilities "
                        "(set the class attribute `capabilities = Capabilities(...)`)")
    return declared


def check_norm_supported(subject: str, norm: str, accepted: tuple[str, ...], reason: str) -> None:
    """The one refusal of a layer norm, by a block type or a gradient strategy: ValueError naming `subject`,
    why, and the norms it accepts."""
    if norm not in accepted:
        why = f": {reason}" if reason else ""
        names = " or ".join(repr(name) for name in accepted)
        raise ValueError(f"{subject} does not support the norm {norm!r}{why}; use the norm {names}")
