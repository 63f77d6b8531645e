"""Training configuration: defaults, TOML/YAML files, validation with clear messages."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ..block import MEMORY_MODES
from ..grid import as_times, uniform_grid
from ..layers import ACTIVATIONS, LAYERS
from ..network import METHODS, REVERSIBLE_METHODS
from ..norms import check_norm

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "constant")
LEVEL_SCHEDULES = ("continue", "restart")
PRECISIONS = ("fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved with the run as config.json."""

    data: str = "digits"
    val_fraction: float = 0.1
    # network
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    layer: str = "doublesym"
    method: str = "rk4"
    steps: int = 4
    final_time: float = 4.0
    t_states: list[float] | None = None
    t_controls: list[float] | None = None
    control_steps: int | None = None
    interpolation: str = "linear"
    norm: str = "tv"
    activation: str = "relu"
    memory: str = "backprop"
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    step_epochs: int = 10
    step_gamma: float = 0.1
    epochs: int = 20
    patience: int | None = None
    batch_size: int = 64
    time_reg: float = 0.0
    clip: float | None = None
    multilevel: list[int] | None = None
    level_schedule: str = "continue"
    # run
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    compile_mode: str = "default"
    channels_last: bool = False
    fast: bool = False
    out: str | None = None

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

    def network_options(self) -> dict[str, Any]:
        """Keyword arguments for ODENet, apart from the data-dependent ones."""
        return {"widths": list(self.widths), "layer": self.layer, "method": self.method,
                "t_states": list(self.state_times()), "t_controls": self.control_times(),
                "norm": self.norm, "activation": self.activation, "interpolation": self.interpolation,
                "memory": self.memory}

    def levels(self) -> list[int]:
        """Refinement factors of the multilevel schedule, relative to the configured grid ([1] if none)."""
        return list(self.multilevel) if self.multilevel else [1]

    def level_epochs(self) -> list[int]:
        """Epochs per level: an equal share each, the remainder to the finest level."""
        levels = len(self.levels())
        share = [self.epochs // levels] * levels
        share[-1] += self.epochs - sum(share)
        return share

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the first bad option and what it accepts."""
        _positive_int("epochs", self.epochs)
        if self.patience is not None:
            _positive_int("patience", self.patience)
            if self.multilevel:
                raise ValueError("patience cannot be combined with multilevel, whose levels each train a fixed "
                                 "share of the epochs; drop one of them")
        _positive_int("batch_size", self.batch_size)
        _positive_int("steps", self.steps)
        if self.control_steps is not None:
            _positive_int("control_steps", self.control_steps)
        _positive_int("step_epochs", self.step_epochs)
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for name in ("lr", "final_time"):
            if not _number(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)!r}")
        for name in ("momentum", "weight_decay", "warmup_epochs", "step_gamma"):
            if not _number(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a number >= 0, got {getattr(self, name)!r}")
        if not _number(self.val_fraction) or not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not isinstance(self.widths, (list, tuple)) or len(self.widths) < 2 or not all(
                isinstance(w, int) and w > 0 for w in self.widths):
            raise ValueError(f"widths must be at least two positive integers, got {self.widths!r}")
        _choice("method", self.method, METHODS)
        _choice("layer", self.layer, tuple(LAYERS))
        check_norm(self.norm)
        _choice("activation", self.activation, tuple(ACTIVATIONS))
        _choice("interpolation", self.interpolation, ("linear", "constant"))
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("level_schedule", self.level_schedule, LEVEL_SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("device", self.device, DEVICES)
        _choice("memory", self.memory, MEMORY_MODES)
        _choice("compile_mode", self.compile_mode, COMPILE_MODES)
        if not _number(self.time_reg) or self.time_reg < 0:
            raise ValueError(f"time_reg must be a number >= 0, got {self.time_reg!r}")
        if self.clip is not None and (not _number(self.clip) or not 0 < self.clip < float("inf")):
            raise ValueError(f"clip must be a positive number (the bound on kernel weights), got {self.clip!r}")
        self._validate_multilevel()
        if self.method in REVERSIBLE_METHODS and self.memory != "backprop":
            raise ValueError(f"--memory applies to Runge-Kutta blocks; {self.method} blocks are reversible "
                             "already (O(1) memory), leave --memory at backprop")
        self.state_times()
        self.control_times()
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"data must be a data set name, got {self.data!r}")
        return self

    def _validate_multilevel(self) -> None:
        if self.multilevel is None:
            return
        levels = self.multilevel
        if (not isinstance(levels, (list, tuple)) or not levels
                or not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in levels)):
            raise ValueError(f"multilevel must be refinement factors such as 1,2,4, got {levels!r}")
        for coarse, fine in zip(levels, levels[1:]):
            if fine <= coarse or fine % coarse:
                raise ValueError(f"multilevel factors must increase, each a multiple of the one before "
                                 f"(e.g. 1,2,4), got {list(levels)}")
        if self.epochs < len(levels):
            raise ValueError(f"multilevel with {len(levels)} levels needs at least {len(levels)} epochs, "
                             f"got {self.epochs}")
        if self.method in REVERSIBLE_METHODS:
            raise ValueError(f"multilevel refinement applies to Runge-Kutta blocks, not {self.method}")

    def resolved(self) -> TrainConfig:
        """`fast` switched on spells out as compile (CUDA graphs), bf16 autocast and channels_last."""
        if not self.fast:
            return self
        mode = "reduce-overhead" if self.compile_mode == "default" else self.compile_mode
        return dataclasses.replace(self, fast=False, compile=True, compile_mode=mode, precision="bf16",
                                   channels_last=True)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; keys may use '-' or '_'; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        options = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ValueError(f"unknown option {key!r}; valid options: {', '.join(sorted(known))}")
            options[name] = value
        return cls(**options)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a TOML (.toml) or YAML (.yaml/.yml) file, or a JSON file such as a run's config."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            raise ValueError(f"config file {path} must end in .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"config file {path} is not valid: {error}") from error
    except Exception as error:
        if type(error).__module__.startswith("yaml"):
            raise ValueError(f"config file {path} is not valid YAML: {error}".replace("\n", " ")) from error
        raise
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a table of options")
    return values
