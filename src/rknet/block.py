"""DynamicBlock: one ODE dy/dt = f(y, theta(t)) integrated by an explicit Runge-Kutta method."""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from .grid import (
    Weights,
    as_times,
    check_interpolation,
    check_span,
    interpolation_weights,
    refine_times,
    stage_weights,
    warn_knots_inside_steps,
)
from .integrate import rk_step, stage_terms
from .layers import Layer
from .norms import BatchStats
from .specs import ParameterSpec
from .tableau import ButcherTableau, get_tableau

MEMORY_MODES: tuple[str, ...] = ("backprop", "selective", "checkpoint")

# The costly operations, whose outputs selective checkpointing keeps: convolutions and matrix products.
PRODUCTS = frozenset({torch.ops.aten.convolution.default, torch.ops.aten.mm.default,
                      torch.ops.aten.addmm.default, torch.ops.aten.bmm.default})


def keep_products(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """Selective checkpointing policy: save what convolutions and matrix products return, recompute the
    rest (norms, activations, stage combinations: cheap, and fused into the backward pass when compiled)."""
    return CheckpointPolicy.MUST_SAVE if op in PRODUCTS else CheckpointPolicy.PREFER_RECOMPUTE


def check_memory(memory: str, modes: tuple[str, ...] = MEMORY_MODES) -> str:
    """`memory` if it names one of `modes`, else a ValueError listing them."""
    if memory not in modes:
        raise ValueError(f"unknown memory mode {memory!r}; valid: {', '.join(modes)}")
    return memory


def check_layer(layer: Layer) -> Layer:
    """`layer` if it is an rknet Layer (a right-hand side f(theta, y)), else a TypeError."""
    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be an rknet.layers.Layer (e.g. rknet.layers.DoubleSym(16)), "
                        f"got {type(layer).__name__}")
    return layer


def stacked_controls(specs: Mapping[str, ParameterSpec], count: int) -> nn.ParameterDict:
    """One parameter per spec, its initial value repeated over `count` control times."""
    return nn.ParameterDict({
        name: nn.Parameter(spec.initial_value().expand(count, *spec.shape).clone())
        for name, spec in specs.items()})


class DynamicBlock(nn.Module):
    """Integrate a layer's ODE over `t_states` with weights living on `t_controls`.

    Each layer parameter is stored once, stacked over control times: shape `(n_controls, *shape)`.
    The control weights of every stage time are computed at construction, so `forward` is a fixed
    sequence of tensor operations. Batch norm keeps running statistics per evaluation (step x stage),
    as buffers of shape `(steps * stages, channels)`.

    `memory="checkpoint"` keeps only each step's input for the backward pass and recomputes the step's
    stages there (when grad is enabled): activation memory grows with the steps, not with steps x stages.
    `memory="selective"` keeps the outputs of the convolutions (matrix products) and recomputes only the
    cheap operations between them: about a third less memory than backprop, no convolution run twice.
    """

    def __init__(self, layer: Layer, method: str | ButcherTableau = "rk4",
                 t_states: Sequence[float] = (0, 1, 2, 3, 4), t_controls: Sequence[float] | None = None,
                 interpolation: str = "linear", memory: str = "backprop") -> None:
        super().__init__()
        self.layer = check_layer(layer)
        self.tableau = get_tableau(method)
        self.terms = stage_terms(self.tableau)
        self.t_states = as_times(t_states, "t_states", minimum=2)
        self.t_controls = self.t_states if t_controls is None else as_times(t_controls, "t_controls",
                                                                            minimum=1)
        self.interpolation = check_interpolation(interpolation)
        self.memory = check_memory(memory)
        check_span(self.t_states, self.t_controls)
        warn_knots_inside_steps(self.t_states, self.t_controls, self.tableau, self.interpolation)
        self.steps = tuple(end - start for start, end in zip(self.t_states, self.t_states[1:]))
        self.weights = stage_weights(self.t_states, self.t_controls, self.tableau, self.interpolation)
        self.specs = layer.parameter_specs()
        self.controls = stacked_controls(self.specs, len(self.t_controls))
        evaluations = len(self.steps) * self.tableau.stages
        for site in layer.batch_norm_sites():
            self.register_buffer(f"{site}_running_mean", torch.zeros(evaluations, layer.channels))
            self.register_buffer(f"{site}_running_var", torch.ones(evaluations, layer.channels))

    @property
    def evaluations_per_forward(self) -> int:
        """How many times the layer is evaluated in one forward pass (steps x used stages)."""
        return len(self.steps) * sum(self.terms.needed)

    def decay_parameter_names(self) -> list[str]:
        """Names (relative to this block) of the kernel weights: decayed and time-regularised."""
        return [f"controls.{name}" for name, spec in self.specs.items() if spec.decay]

    def _interpolate(self, weights: Weights, cache: dict) -> dict[str, torch.Tensor]:
        if weights not in cache:
            params = {}
            for name, stacked in self.controls.items():
                (first, w0), *rest = weights
                value = stacked[first] if w0 == 1.0 else stacked[first] * w0
                for index, weight in rest:
                    value = value.add(stacked[index], alpha=weight)
                params[name] = value
            cache[weights] = params
        return cache[weights]

    def _stats(self, evaluation: int) -> dict[str, BatchStats]:
        """This evaluation's running statistics, updated in place by batch norm while training."""
        return {site: BatchStats(getattr(self, f"{site}_running_mean")[evaluation],
                                 getattr(self, f"{site}_running_var")[evaluation])
                for site in self.layer.batch_norm_sites()}

    @contextlib.contextmanager
    def _recomputation(self, policy: contextlib.AbstractContextManager) -> Iterator[None]:
        """Around an eager recomputation of a step: its batch-norm updates run a second time, so the
        running statistics are put back afterwards (copies taken outside `policy`, whose op sequence must
        match the forward's)."""
        before = [(buffer, buffer.clone()) for buffer in self.buffers(recurse=False)]
        try:
            with policy:
                yield
        finally:
            with torch.no_grad():
                for buffer, value in before:
                    buffer.copy_(value)

    def _checkpoint_contexts(self) -> tuple[contextlib.AbstractContextManager, ...]:
        """For `checkpoint(context_fn=...)` in eager mode: the selective policy where chosen, and the
        running statistics restored after the recomputation."""
        if self.memory == "selective":
            forward, recompute = create_selective_checkpoint_contexts(keep_products)
        else:
            forward, recompute = contextlib.nullcontext(), contextlib.nullcontext()
        return forward, self._recomputation(recompute)

    def _checkpoint_options(self) -> dict[str, Any]:
        """Keyword arguments of `checkpoint` for this memory mode. Under torch.compile the partitioner
        recomputes only the functional part of a step, so the batch-norm updates run once anyway; the
        selective policy is then passed as a plain function, as compile needs."""
        if not torch.compiler.is_compiling():
            return {"context_fn": self._checkpoint_contexts}
        if self.memory == "selective":
            return {"context_fn": functools.partial(create_selective_checkpoint_contexts, keep_products)}
        return {}

    def _step(self, y: torch.Tensor, k: int, cache: dict | None = None) -> torch.Tensor:
        """Step k of the forward pass; `cache` shares interpolated controls between steps."""
        cache = {} if cache is None else cache
        stages = self.tableau.stages

        def slope(i: int, state: torch.Tensor) -> torch.Tensor:
            params = self._interpolate(self.weights[k][i], cache)
            return self.layer(params, state, self._stats(k * stages + i), self.training)

        return rk_step(slope, y, self.steps[k], self.terms)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.memory != "backprop" and torch.is_grad_enabled():
            options = self._checkpoint_options()
            # A fresh cache per step: the recomputation must rebuild exactly what the step saved.
            for k in range(len(self.steps)):
                y = checkpoint(self._step, y, k, use_reentrant=False, **options)
            return y
        cache: dict = {}
        for k in range(len(self.steps)):
            y = self._step(y, k, cache)
        return y

    def vector_field(self, t: float, y: torch.Tensor, evaluation: int | None = None) -> torch.Tensor:
        """f(t, y) with the controls interpolated at any time t. Batch norm uses the batch's statistics,
        or with `evaluation` (a forward evaluation k * stages + i) that evaluation's running statistics.

        For analysis and for other solvers; the block's own forward uses precomputed stage weights.
        """
        params = self._interpolate(interpolation_weights(self.t_controls, float(t), self.interpolation), {})
        if evaluation is None:
            stats = {site: BatchStats(None, None) for site in self.layer.batch_norm_sites()}
            return self.layer(params, y, stats, training=True)
        return self.layer(params, y, self._stats(evaluation), training=False)

    def refine(self, factor: int = 2, controls: bool = False) -> DynamicBlock:
        """A new block whose state steps are each split into `factor` equal steps (multilevel training).

        Same layer, method, interpolation and memory mode. With `controls=False` the control grid and
        values are copied unchanged; with `controls=True` every control interval is split too and the new
        controls take the old theta(t) at their times, so theta(t) is the same function either way and
        the network changes only by the discretisation error. Batch-norm running statistics: each new
        evaluation (step, stage) takes those of the same stage of the old step that contains it.
        """
        if not isinstance(controls, bool):
            raise TypeError(f"controls must be a bool (refine the control grid too?), got {controls!r}")
        t_states = refine_times(self.t_states, factor)
        t_controls = refine_times(self.t_controls, factor) if controls else self.t_controls
        refined = DynamicBlock(self.layer, self.tableau, t_states, t_controls, self.interpolation,
                               self.memory)
        rows = [interpolation_weights(self.t_controls, t, self.interpolation) for t in t_controls]
        with torch.no_grad():
            for name, old in self.controls.items():
                value = torch.stack([sum(old[i] * w for i, w in row) for row in rows])
                refined.controls[name] = nn.Parameter(value, requires_grad=old.requires_grad)
            stages = self.tableau.stages
            source = [(k // factor) * stages + i for k in range(len(refined.steps)) for i in range(stages)]
            for name, buffer in self.named_buffers(recurse=False):
                setattr(refined, name, buffer[source].clone())
        return refined.train(self.training)

    def extra_repr(self) -> str:
        grid = lambda times: "[" + ", ".join(f"{t:g}" for t in times) + "]"  # noqa: E731
        return (f"method={self.tableau.name}, t_states={grid(self.t_states)}, "
                f"t_controls={grid(self.t_controls)}, interpolation={self.interpolation}, "
                f"memory={self.memory}, layer={self.layer!r}")


def refine_network(net: nn.Module, factor: int = 2, controls: bool = False) -> nn.Module:
    """A deep copy of `net` with every DynamicBlock replaced by `block.refine(factor, controls)`.

    The original is left untouched. A `config` dict (as on ODENet) gets the refined `t_states` and
    `t_controls`, so the copy can be rebuilt from its config. Meant to back `ODENet.refine`.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    if isinstance(net, DynamicBlock):
        return net.refine(factor, controls)
    from .reversible import ReversibleBlock  # imports this module

    reversible = [type(module).__name__ for module in net.modules() if isinstance(module, ReversibleBlock)]
    if reversible:
        raise TypeError(f"refinement applies to Runge-Kutta blocks (DynamicBlock); a {reversible[0]} cannot be "
                        "refined")
    refined = copy.deepcopy(net)
    for name, module in list(refined.named_modules()):
        if isinstance(module, DynamicBlock):
            parent, _, child = name.rpartition(".")
            setattr(refined.get_submodule(parent), child, module.refine(factor, controls))
    config = getattr(refined, "config", None)
    if isinstance(config, dict) and "t_states" in config:
        old_states = config["t_states"]
        old_controls = old_states if config.get("t_controls") is None else config["t_controls"]
        config["t_states"] = list(refine_times(old_states, factor))
        config["t_controls"] = list(refine_times(old_controls, factor) if controls else old_controls)
        if config["t_controls"] == config["t_states"]:
            config["t_controls"] = None
    return refined
