"""Gradient strategies: what a block's forward pass keeps for the backward pass, chosen independently of
the method.

`backprop` keeps every intermediate (plain autograd). `selective` keeps the outputs of convolutions and
matrix products and recomputes the cheap operations between them; `checkpoint` keeps each step's input
and recomputes the step in the backward pass (both for Runge-Kutta blocks). `reversible` keeps only the
final state and runs the scheme backwards to rebuild the others (for reversible blocks: O(1) activation
memory in depth). `adjoint` keeps the output and solves the continuous adjoint equation backward
(`rknet.adjoint`: optimise-then-discretise, memory independent of the steps). A strategy drives a block
through the block interface (`integrate`, `step`, `num_steps`; `initial`/`run`/`reverse`/`output` for
reversible schemes), so a new strategy is one new class here, never an edit of a block's forward.

Each strategy says what it needs from a block type (a protocol, capabilities, norms), read from the block
type's declaration (`rknet.gradients.capabilities`); a block type declares only its default strategy, and
`supported_gradients(block_type)` derives the rest. A new strategy is one class and one `register_gradient`.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from rknet.gradients.block_adjoint import ADJOINT_NORM_REASON, ADJOINT_NORMS, block_adjoint
from rknet.gradients.capabilities import REVERSIBLE, STEPPING, Capabilities, capabilities_of, check_norm_supported
from rknet.gradients.fused import fused_forward
from rknet.layers.norms import NORMS
from rknet.solvers.stepping import march

# The costly operations, whose outputs selective checkpointing keeps: convolutions and matrix products.
PRODUCTS = frozenset({torch.ops.aten.convolution.default, torch.ops.aten.mm.default,
                      torch.ops.aten.addmm.default, torch.ops.aten.bmm.default})


def keep_products(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """Selective checkpointing policy: save what convolutions and matrix products return, recompute the
    rest (norms, activations, stage combinations: cheap, and fused into the backward pass when compiled)."""
    return CheckpointPolicy.MUST_SAVE if op in PRODUCTS else CheckpointPolicy.PREFER_RECOMPUTE


class GradientStrategy(ABC):
    """How `block(y)` runs so that its backward pass gets what it needs.

    What it needs from a block type, declared here and read from the block type's `Capabilities`:
    `protocol` (STEPPING or REVERSIBLE; None: any block), `needs` (capability flags that must be true, e.g.
    "recomputable") and `norms` (the layer norms it can serve, with `norm_reason` for the others).
    """

    name = "strategy"
    summary = ""
    protocol: str | None = None
    needs: tuple[str, ...] = ()
    norms: tuple[str, ...] = NORMS
    norm_reason = ""

    @abstractmethod
    def forward(self, block: Any, y: torch.Tensor) -> torch.Tensor:
        """block(y), keeping for the backward pass what this strategy keeps."""

    def applies_to(self, capabilities: Capabilities) -> bool:
        """Whether blocks declaring `capabilities` can use this strategy (norms are checked per block)."""
        if self.protocol is not None and capabilities.protocol != self.protocol:
            return False
        return all(getattr(capabilities, need) for need in self.needs)

    def check(self, block: Any) -> None:
        """Raise ValueError, when the block is built, if this strategy cannot serve its layers' norms."""
        self.check_norms(block.layer_norms())

    def check_norms(self, norms: tuple[str, ...]) -> None:
        """Raise ValueError if this strategy cannot serve layers with one of `norms` (the spec asks early)."""
        for norm in norms:
            check_norm_supported(f"gradient {self.name!r}", norm, self.norms, self.norm_reason)

    def __repr__(self) -> str:
        return self.name


class Backprop(GradientStrategy):
    name = "backprop"
    summary = "keep every intermediate (plain autograd)"

    def forward(self, block, y):
        fused = fused_forward(block, y)  # one autograd node per block where it applies (rknet.fused)
        return block.integrate(y) if fused is None else fused


@contextlib.contextmanager
def _statistics_restored(block: Any, policy: contextlib.AbstractContextManager) -> Iterator[None]:
    """Around an eager recomputation of a step: its batch-norm updates run a second time, so the running
    statistics are put back afterwards (copies taken outside `policy`, whose op sequence must match the
    forward's)."""
    before = [(buffer, buffer.clone()) for buffer in block.buffers(recurse=False)]
    try:
        with policy:
            yield
    finally:
        with torch.no_grad():
            for buffer, value in before:
                buffer.copy_(value)


class Checkpoint(GradientStrategy):
    name = "checkpoint"
    summary = "keep each step's input, recompute the step in the backward pass"
    protocol = STEPPING
    needs = ("recomputable",)
    selective = False

    def _contexts(self, block: Any) -> tuple[contextlib.AbstractContextManager, ...]:
        if self.selective:
            forward, recompute = create_selective_checkpoint_contexts(keep_products)
        else:
            forward, recompute = contextlib.nullcontext(), contextlib.nullcontext()
        return forward, _statistics_restored(block, recompute)

    def _options(self, block: Any) -> dict[str, Any]:
        """Keyword arguments of `checkpoint`. Under torch.compile the partitioner recomputes only the
        functional part of a step, so batch-norm updates run once anyway; the selective policy is then
        passed as a plain function, as compile needs."""
        if not torch.compiler.is_compiling():
            return {"context_fn": functools.partial(self._contexts, block)}
        if self.selective:
            return {"context_fn": functools.partial(create_selective_checkpoint_contexts, keep_products)}
        return {}

    def forward(self, block, y):
        if not torch.is_grad_enabled():
            return block.integrate(y)
        options = self._options(block)
        # block.step without a shared cache: the recomputation must rebuild exactly what the step saved.
        return march(lambda state, k: checkpoint(block.step, state, k, use_reentrant=False, **options),
                     y, block.num_steps)


class Selective(Checkpoint):
    name = "selective"
    summary = "keep convolution outputs, recompute the rest in the backward pass"
    selective = True


class ReversibleFunction(torch.autograd.Function):
    """Runs `block.run` forward without a graph; backward rebuilds the states with `block.reverse`.

    Saves the final pair of states and the stacked controls (held by the model anyway), nothing per step.
    """

    @staticmethod
    def forward(ctx, block: Any, first: torch.Tensor, second: torch.Tensor, *stacked: torch.Tensor):
        final = block.run(dict(zip(block.controls, stacked)), (first, second))
        ctx.block = block
        ctx.save_for_backward(*final, *stacked)
        return final

    @staticmethod
    @once_differentiable
    def backward(ctx, *cotangents: torch.Tensor):
        first, second, *stacked = ctx.saved_tensors
        names = list(ctx.block.controls)
        _, initial_cotangents, grads = ctx.block.reverse(dict(zip(names, stacked)), (first, second), cotangents)
        return None, *initial_cotangents, *(grads[name] for name in names)


class Reversible(GradientStrategy):
    name = "reversible"
    summary = "keep the final state, rebuild the others backwards (O(1) memory in depth)"
    protocol = REVERSIBLE

    def forward(self, block, y):
        if not torch.is_grad_enabled():
            return block.integrate(y)
        return block.output(ReversibleFunction.apply(block, *block.initial(y), *block.controls.values()))


class Adjoint(GradientStrategy):
    name = "adjoint"
    summary = ("keep the output and the states at control times, solve the continuous adjoint backward "
               "(optimise-then-discretise)")
    protocol = STEPPING
    needs = ("vector_field", "explicit_tableau")
    norms, norm_reason = ADJOINT_NORMS, ADJOINT_NORM_REASON

    def forward(self, block, y):
        return block_adjoint(block, y)


GRADIENTS: dict[str, GradientStrategy] = {}
"""The gradient strategies by name (`--gradient`): what a block's forward pass keeps for backward."""


def register_gradient(strategy: GradientStrategy) -> GradientStrategy:
    """Make `strategy` available by its name (`gradient="name"`, `--gradient name`) to every block type it
    applies to; returns it."""
    if not isinstance(strategy, GradientStrategy):
        raise TypeError(f"a gradient strategy must be a GradientStrategy, got {type(strategy).__name__}")
    GRADIENTS[strategy.name] = strategy
    return strategy


for _strategy in (Backprop(), Selective(), Checkpoint(), Reversible(), Adjoint()):
    register_gradient(_strategy)


def supported_gradients(block_type: Any) -> tuple[str, ...]:
    """The strategies a block type (or a block) accepts: its declared default first, then every registered
    strategy that applies to its capabilities."""
    capabilities = capabilities_of(block_type)
    others = [name for name, strategy in GRADIENTS.items()
              if name != capabilities.gradient and strategy.applies_to(capabilities)]
    return (capabilities.gradient, *others)


def get_gradient(name: str | GradientStrategy, block_type: Any) -> GradientStrategy:
    """The strategy `name` (or a strategy object) if `block_type` accepts it; ValueError listing what it
    accepts."""
    if isinstance(name, GradientStrategy):
        strategy = name
    elif name in GRADIENTS:
        strategy = GRADIENTS[name]
    else:
        raise ValueError(f"unknown gradient strategy {name!r}; valid: {', '.join(GRADIENTS)}")
    if not strategy.applies_to(capabilities_of(block_type)):
        raise ValueError(f"gradient {strategy.name!r} does not apply to {block_type.__name__}; it accepts "
                         f"{', '.join(supported_gradients(block_type))}")
    return strategy
