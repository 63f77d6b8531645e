"""Training configuration: the network options (defaults from `rknet.network.spec.DEFAULTS`), the training
options, files, and validation with clear messages."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from rknet.common.checks import boolean, choice, finite_number, float_list, int_list, positive_int, sensible
from rknet.common.cpu import has_bf16_units
from rknet.common.limits import BLOCK_STEPS, EPOCHS, THREADS
from rknet.common.tablefiles import read_table
from rknet.data import DATASETS
from rknet.gradients.strategies import GRADIENTS
from rknet.layers import ACTIVATIONS, LAYERS
from rknet.layers.norms import NORMS
from rknet.methods.registry import METHODS, is_tableau_file, resolve_method
from rknet.methods.tableau import preset_name
from rknet.network.spec import DEFAULTS, NetworkSpec
from rknet.solvers.grid import INTERPOLATIONS, as_times, uniform_grid
from rknet.training.selection import SELECTIONS
from rknet.training.trackers import TRACKERS

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "multistep", "constant")
LEVEL_SCHEDULES = ("continue", "restart")
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
MAX_SEED = 2**63 - 1
DEFAULT_MOMENTUM = 0.9
MIN_LR = 1e-10
"""The smallest learning rate: float32 weights of size ~0.1 round away updates below ~1e-8."""

# The valid values of each named option, read from the registries (the CLI's help shows them).
CHOICES: dict[str, tuple[str, ...]] = {
    "data": DATASETS, "layer": tuple(LAYERS), "method": (*METHODS, "FILE.toml"), "norm": NORMS,
    "activation": tuple(ACTIVATIONS), "interpolation": INTERPOLATIONS, "gradient": tuple(GRADIENTS),
    "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "level_schedule": LEVEL_SCHEDULES, "precision": PRECISIONS,
    "device": DEVICES, "compile_mode": COMPILE_MODES, "logger": TRACKERS, "select": SELECTIONS,
}
BOOLEANS = ("nesterov", "compile", "channels_last", "fast")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved with the run as config.json.

    The network options default to `NetworkSpec`'s defaults (the reference network); `steps` and
    `final_time` give a uniform state grid unless `t_states` is set.
    """

    data: str = "digits"
    val_fraction: float = 0.1
    # network
    widths: list[int] = field(default_factory=lambda: list(DEFAULTS.widths))
    layer: str = DEFAULTS.layer
    layer_options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS.layer_options))
    method: str | dict = DEFAULTS.method_name
    steps: int = DEFAULTS.num_steps
    final_time: float = DEFAULTS.t_states[-1]
    t_states: list[float] | None = None
    t_controls: list[float] | None = None
    control_steps: int | None = None
    interpolation: str = DEFAULTS.interpolation
    norm: str = DEFAULTS.norm
    activation: str = DEFAULTS.activation
    gradient: str | None = DEFAULTS.gradient
    solver: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS.solver))
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.2
    momentum: float = DEFAULT_MOMENTUM
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    step_epochs: int = 10
    step_gamma: float = 0.1
    milestones: list[int] | None = None
    epochs: int = 12
    patience: int | None = None
    select: str = "best"
    bn_recompute: int = 4096
    batch_size: int = 128
    time_reg: float = 0.0
    clip: float | None = None
    multilevel: list[int] | None = None
    level_schedule: str = "continue"
    # run
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    precision: str = "fp32"
    compile: bool = False
    compile_mode: str = "default"
    channels_last: bool = False
    fast: bool = False
    out: str | None = None
    logger: str | None = None
    logger_group: str | None = None

    def state_times(self) -> tuple[float, ...]:
        """The state grid: explicit `t_states`, else `steps` equal steps over [0, final_time]."""
        if self.t_states is not None:
            return as_times(self.t_states, "t_states")
        return uniform_grid(self.steps, self.final_time)

    def control_times(self) -> tuple[float, ...] | None:
        """The control grid: explicit, `control_steps` equal steps, or None (the state times)."""
        if self.t_controls is not None:
            return as_times(self.t_controls, "t_controls", minimum=1)
        if self.control_steps is not None:
            states = self.state_times()
            return uniform_grid(self.control_steps, states[-1], states[0])
        return None

    def network_spec(self, in_channels: int = DEFAULTS.in_channels, num_classes: int = DEFAULTS.num_classes,
                     dims: int = DEFAULTS.dims) -> NetworkSpec:
        """The network these options describe, for data of `in_channels`, `num_classes` and `dims`."""
        return NetworkSpec(in_channels=in_channels, num_classes=num_classes, dims=dims, widths=self.widths,
                           layer=self.layer, layer_options=self.layer_options, method=self.method,
                           t_states=self.state_times(), t_controls=self.control_times(),
                           interpolation=self.interpolation, norm=self.norm, activation=self.activation,
                           gradient=self.gradient, solver=self.solver)

    def levels(self) -> list[int]:
        """Refinement factors of the multilevel schedule, relative to the configured grid ([1] if none)."""
        return list(self.multilevel) if self.multilevel else [1]

    def level_epochs(self) -> list[int]:
        """Epochs per level: an equal share each, the remainder to the finest level."""
        levels = len(self.levels())
        share = [self.epochs // levels] * levels
        share[-1] += self.epochs - sum(share)
        return share

    def refines_controls(self) -> bool:
        """Multilevel refinement: controls on the state grid are refined with it; an explicit control
        grid is kept."""
        return self.t_controls is None and self.control_steps is None

    def validate(self) -> TrainConfig:
        """A normalised copy (lists from "a,b" text, a tableau file read by value); ValueError naming the
        first bad option and what it accepts. The network options are checked by `NetworkSpec`."""
        config = dataclasses.replace(
            self, widths=list(int_list("widths", self.widths, minimum_length=2)),
            t_states=None if self.t_states is None else float_list("t_states", self.t_states),
            t_controls=None if self.t_controls is None else float_list("t_controls", self.t_controls),
            multilevel=None if self.multilevel is None else list(int_list("multilevel", self.multilevel)),
            milestones=None if self.milestones is None else list(int_list("milestones", self.milestones)),
            method=_method_by_value(self.method))
        config._check_options()
        config.network_spec()
        return config

    def _check_options(self) -> None:
        if not isinstance(self.data, str) or not self.data.strip():
            raise ValueError(f"data must be a data set name such as digits or npz:PATH, got {self.data!r}")
        for name in ("epochs", "batch_size", "steps", "step_epochs"):
            positive_int(name, getattr(self, name))
        EPOCHS.check("epochs", self.epochs)
        BLOCK_STEPS.check("steps", self.steps)
        if self.control_steps is not None:
            BLOCK_STEPS.check("control_steps", positive_int("control_steps", self.control_steps))
        if self.threads is not None:
            THREADS.check("threads", positive_int("threads", self.threads))
        if self.patience is not None:
            positive_int("patience", self.patience)
            if self.multilevel:
                raise ValueError("patience cannot be combined with multilevel, whose levels each train a fixed "
                                 "share of the epochs; drop one of them")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to 2**63 - 1, got {self.seed!r}")
        for name in ("lr", "final_time"):
            finite_number(name, getattr(self, name), 0, strict=True)
        for name in ("momentum", "weight_decay", "warmup_epochs", "step_gamma", "time_reg"):
            finite_number(name, getattr(self, name), 0)
        if not 0 <= finite_number("val_fraction", self.val_fraction) < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.clip is not None:
            finite_number("clip", self.clip, 0, strict=True)
        for name in BOOLEANS:
            boolean(name, getattr(self, name))
        if not isinstance(self.bn_recompute, int) or isinstance(self.bn_recompute, bool) or self.bn_recompute < 0:
            raise ValueError(f"bn_recompute must be a number of training rows >= 0 (0: off), got {self.bn_recompute!r}")
        for name in ("optimizer", "schedule", "level_schedule", "precision", "device", "compile_mode", "select"):
            choice(name, getattr(self, name), CHOICES[name])
        self._check_meaning()
        if self.out is not None and (not isinstance(self.out, str) or not self.out.strip()):
            raise ValueError(f"out must be a folder name, got {self.out!r}")
        self._check_multilevel()
        self._check_ecosystem()

    def _check_meaning(self) -> None:
        """Optimiser and schedule settings that are well-formed but cannot mean anything (docs/training.md)."""
        sensible("lr", self.lr, self.lr >= MIN_LR, f"at least {MIN_LR:g}",
                 "a smaller update is lost in the float32 rounding of the weights, so nothing would train")
        sgd = self.optimizer == "sgd"
        sensible("momentum", self.momentum, not sgd or self.momentum < 1, "below 1 with sgd",
                 "the velocity would never decay, and the steps grow without bound")
        sensible("momentum", self.momentum, sgd or self.momentum == DEFAULT_MOMENTUM, f"left at its default with "
                 f"{self.optimizer}", f"it is SGD's; {self.optimizer} keeps its own moment estimates")
        sensible("nesterov", self.nesterov, sgd or not self.nesterov, f"false with {self.optimizer}",
                 "Nesterov momentum is SGD's")
        sensible("step_gamma", self.step_gamma, 0 < self.step_gamma <= 1, "in (0, 1]",
                 "it multiplies the learning rate at each drop: 0 stops training, above 1 makes it grow")
        sensible("warmup_epochs", self.warmup_epochs, self.warmup_epochs <= self.epochs,
                 f"at most the {self.epochs} epochs", "the learning rate would never reach lr")
        sensible("compile_mode", self.compile_mode, self.compile or self.fast or self.compile_mode == "default",
                 "'default' unless compile or fast is on", "it is torch.compile's mode: add compile")

    def _check_ecosystem(self) -> None:
        """The multistep schedule's milestones and the experiment tracker."""
        if (self.schedule == "multistep") != (self.milestones is not None):
            raise ValueError("schedule multistep needs milestones (epochs at which the learning rate is multiplied "
                             "by step_gamma, e.g. 60,80,100), and milestones apply to it alone")
        if self.milestones is not None and any(later <= earlier for earlier, later in zip(self.milestones,
                                                                                      self.milestones[1:])):
            raise ValueError(f"milestones must be increasing epochs, got {self.milestones}")
        if self.logger is not None:
            choice("logger", self.logger, TRACKERS)
        if self.logger_group is not None and (not isinstance(self.logger_group, str) or not self.logger_group.strip()):
            raise ValueError(f"logger_group must be a name, got {self.logger_group!r}")

    def _check_multilevel(self) -> None:
        if self.multilevel is None:
            return
        levels = self.multilevel
        for coarse, fine in zip(levels, levels[1:]):
            if fine <= coarse or fine % coarse:
                raise ValueError(f"multilevel factors must increase, each a multiple of the one before "
                                 f"(e.g. 1,2,4), got {list(levels)}")
        BLOCK_STEPS.check("multilevel", levels[-1] * (len(self.t_states) - 1 if self.t_states else self.steps))
        if self.epochs < len(levels):
            raise ValueError(f"multilevel with {len(levels)} levels needs at least {len(levels)} epochs, "
                             f"got {self.epochs}")

    def extended(self, epochs: int, trained: int) -> TrainConfig:
        """This configuration with `epochs` in all, for a run that has trained `trained` epochs."""
        EPOCHS.check("epochs", positive_int("epochs", epochs))
        if epochs <= trained:
            raise ValueError(f"the run has trained {trained} epochs; to extend it give --epochs above {trained}, "
                             f"got {epochs}")
        if self.multilevel:
            raise ValueError("a multilevel run cannot be extended: its levels split the configured epochs")
        return dataclasses.replace(self, epochs=epochs)

    def resolved(self) -> TrainConfig:
        """`fast` switched on spells out as compile (CUDA graphs), channels_last and bf16 autocast, the last
        on GPUs and on CPUs with bf16 units only (elsewhere a CPU emulates bf16, slower than fp32)."""
        if not self.fast:
            return self
        mode = "reduce-overhead" if self.compile_mode == "default" else self.compile_mode
        on_cpu = self.device == "cpu" or (self.device == "auto" and not torch.cuda.is_available())
        precision = "bf16" if not on_cpu or has_bf16_units() else "fp32"
        return dataclasses.replace(self, fast=False, compile=True, compile_mode=mode, precision=precision,
                                   channels_last=True)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; keys may use '-' or '_'; unknown keys are an error."""
        return cls(**option_table(values, {f.name for f in dataclasses.fields(cls)}))


def option_table(values: Any, valid: set[str]) -> dict[str, Any]:
    """`values` with '-' in keys read as '_'; ValueError for a non-table or a key outside `valid`."""
    if not isinstance(values, dict):
        raise ValueError(f"options must be a table of options, got {type(values).__name__}")
    options = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in valid:
            raise ValueError(f"unknown option {key!r}; valid options: {', '.join(sorted(valid))}")
        options[name] = value
    return options


def _method_by_value(method: Any) -> str | dict:
    """A preset or scheme by name; a tableau file or any other tableau by value (so the run keeps it)."""
    resolved = resolve_method(method)
    if isinstance(resolved, str):
        return resolved
    if not is_tableau_file(method) and preset_name(resolved):
        return resolved.name
    return resolved.to_dict()


def read_config_file(path) -> dict[str, Any]:
    """Options from a TOML (.toml) or YAML (.yaml/.yml) file, or a JSON file such as a run's config."""
    return read_table(path, "config file")
