"""Command-line options generated from TrainConfig: types from the annotations, defaults from the
dataclass (itself reading `NetworkSpec`'s), valid values from the registries. Shared by `rknet train`
and `rknet compare`."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from rknet.blocks.registry import BLOCK_TYPES
from rknet.common.checks import comma_items
from rknet.gradients.strategies import supported_gradients
from rknet.training.config import CHOICES, TrainConfig

# What each option means; defaults and valid values are appended from the code, never retyped here.
OPTION_HELP = {
    "data": "data set",
    "val_fraction": "share of the training set held out for validation",
    "widths": "block widths then the final width, comma-separated",
    "layer": "the layer f inside each block",
    "layer_options": "the layer's own options as NAME=VALUE pairs, comma-separated (e.g. gamma=0.05)",
    "method": "integrator: a preset tableau, a reversible scheme, or a tableau file (a, b, c, name)",
    "steps": "number of equal state steps per block",
    "final_time": "final time T of each block's ODE",
    "t_states": "explicit state times, comma-separated (overrides --steps/--final-time)",
    "t_controls": "explicit control times, comma-separated (default: the state times)",
    "control_steps": "equal control steps over [0, T] (alternative to --t-controls)",
    "interpolation": "weights between control times",
    "norm": "normalisation inside the layer",
    "activation": "activation function",
    "gradient": "what the forward pass keeps for the backward pass",
    "solver": "implicit methods' stage solver as NAME=VALUE pairs: tol, max_newton, max_krylov, forcing "
              "(e.g. tol=1e-4,max_newton=40; default tol 1e-5 in fp32, 25 Newton and 40 GMRES iterations)",
    "optimizer": "optimiser",
    "lr": "base learning rate",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum for SGD",
    "weight_decay": "weight decay on kernels; biases and norm parameters exempt",
    "schedule": "learning-rate schedule",
    "warmup_epochs": "linear learning-rate warm-up, in epochs",
    "step_epochs": "step schedule: epochs between drops",
    "step_gamma": "step and multistep schedules: factor per drop",
    "milestones": "multistep schedule: epochs after which the learning rate drops by step_gamma, e.g. 60,80,100",
    "epochs": "training epochs",
    "batch_size": "mini-batch size",
    "seed": "random seed for initialisation, split and batches",
    "device": "device",
    "threads": "torch threads on the CPU (default: OMP_NUM_THREADS if set, else the cores not busy with other work)",
    "precision": "fp32, or bf16 autocast",
    "patience": "stop early once validation accuracy has not improved for this many epochs; the best model "
                "is kept (default: never stop early)",
    "select": "the model kept, tested and saved: best (highest validation accuracy; ties to the lower validation "
              "loss, then the later epoch) or last (the last epoch's)",
    "bn_recompute": "recompute batch-norm statistics over the first ROWS training rows before each validation "
                    "(0: keep the running statistics; costs nothing without batch norm)",
    "compile": "torch.compile the network (drops the last partial batch)",
    "out": "output folder (default runs/DATA-METHOD-LAYER-TIME)",
    "time_reg": "weight of the time regulariser sum_k |theta_k+1 - theta_k|^2 / dt_k on kernels",
    "clip": "box constraint: clamp kernel weights to [-CLIP, CLIP] after each step",
    "multilevel": "cascadic training over refinement factors, e.g. 1,2,4 (epochs split over the levels)",
    "level_schedule": "multilevel: continue one learning-rate schedule over the run, or restart it per level",
    "compile_mode": "torch.compile mode (reduce-overhead: CUDA graphs)",
    "channels_last": "channels_last memory format for images",
    "fast": "the fast path: --compile with CUDA graphs, channels_last, bf16 autocast (on GPUs, and on CPUs with "
            "bf16 units: AVX512-BF16 or AMX)",
    "logger": "also log to an experiment tracker (needs the extra rknet[wandb] or rknet[mlflow]; default: none)",
    "logger_group": "the tracker's group of runs: W&B group, MLflow experiment (rknet compare: the comparison)",
}


def comma_list(convert: Callable[[str], object], what: str = "values") -> Callable[[str], list]:
    """An argparse type for 'a,b,c': a non-empty list of `convert`ed items, none of them empty."""
    def parse(text: str) -> list:
        try:
            return [convert(item) for item in comma_items("the list", text, what)]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from error
    return parse


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _scalar(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def name_values(text: str) -> dict[str, Any]:
    """An argparse type for 'name=value,name=value' (numbers read as numbers)."""
    pairs = comma_list(str, "NAME=VALUE pairs")(text)
    if not all("=" in pair and pair.split("=", 1)[0].strip() for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected comma-separated NAME=VALUE pairs, got {text!r}")
    return {name.strip(): _scalar(value.strip()) for name, value in (pair.split("=", 1) for pair in pairs)}


def option_type(field: dataclasses.Field) -> Callable[[str], object]:
    """The argument type of a TrainConfig option, read from its annotation (e.g. `list[int] | None`)."""
    annotation = str(field.type)
    if "dict" in annotation and field.name != "method":
        return name_values
    if "list[int]" in annotation:
        return comma_list(int, "integers")
    if "list[float]" in annotation:
        return comma_list(float, "numbers")
    if annotation.startswith("float"):
        return float
    if annotation.startswith("int"):
        return int
    return str


def _default(field: dataclasses.Field) -> Any:
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def accepted_gradients() -> str:
    """The strategies each registered block type accepts, its default first (from the declarations)."""
    return "; ".join(f"{name}: {', '.join(supported_gradients(kind))}" for name, kind in BLOCK_TYPES.items())


def help_text(field: dataclasses.Field) -> str:
    """The option's meaning, its valid values (from the registries) and its default (from TrainConfig)."""
    text = OPTION_HELP.get(field.name, field.name.replace("_", " "))
    if field.name == "gradient":
        text += f" ({accepted_gradients()})"
    if field.name in CHOICES:
        text += f"; one of {', '.join(CHOICES[field.name])}"
    default = _default(field)
    if default not in (None, False, {}) and "default" not in text:
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        text += f" (default {shown})"
    return text.replace("%", "%%")


def add_config_options(parser, fields: Iterable[dataclasses.Field]) -> None:
    """One `--name` per field (default None = not given); booleans get `--name/--no-name`."""
    for field in fields:
        flag = "--" + field.name.replace("_", "-")
        if str(field.type) == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text(field))
        else:
            parser.add_argument(flag, type=option_type(field), default=None, help=help_text(field))


def train_option_fields() -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(TrainConfig)
