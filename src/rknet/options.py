"""Command-line types for TrainConfig options, shared by `rknet train` and `rknet compare`."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping

OPTION_HELP = {
    "data": "digits (default), peaks, swissroll, circles, npz:PATH, cifar10:DIR, cifar100:DIR, stl10:DIR",
    "val_fraction": "share of the training set held out for validation (default 0.1)",
    "widths": "block widths then the final width, comma-separated (default 16,32,64,64)",
    "layer": "single, double, preactdouble, doublesym (default), antisymmetric",
    "method": "euler, midpoint, heun, ralston, rk3, ssprk3, rk4 (default), rk38; reversible: leapfrog, hamiltonian",
    "steps": "number of equal state steps per block (default 4)",
    "final_time": "final time T of each block's ODE (default 4)",
    "t_states": "explicit state times, comma-separated (overrides --steps/--final-time)",
    "t_controls": "explicit control times, comma-separated (default: the state times)",
    "control_steps": "equal control steps over [0, T] (alternative to --t-controls)",
    "interpolation": "linear (default) or constant weights between control times",
    "norm": "tv (default), batch or none",
    "activation": "relu (default), tanh, identity, sigmoid, leaky_relu, gelu, silu, softplus",
    "optimizer": "sgd (default), adam, adamw",
    "lr": "base learning rate (default 0.1)",
    "momentum": "SGD momentum (default 0.9)",
    "nesterov": "Nesterov momentum for SGD",
    "weight_decay": "weight decay on kernels; biases and norm parameters exempt (default 5e-4)",
    "schedule": "cosine (default), step, constant",
    "warmup_epochs": "linear learning-rate warm-up, in epochs (default 0)",
    "step_epochs": "step schedule: epochs between drops (default 10)",
    "step_gamma": "step schedule: factor per drop (default 0.1)",
    "epochs": "training epochs (default 20)",
    "patience": "stop early once validation accuracy has not improved for this many epochs; the best model "
                "is kept (default: never stop early)",
    "batch_size": "mini-batch size (default 64)",
    "seed": "random seed for initialisation, split and batches (default 0)",
    "device": "auto (default), cpu or cuda",
    "precision": "fp32 (default) or bf16 autocast",
    "compile": "torch.compile the network (drops the last partial batch)",
    "out": "output folder (default runs/DATA-METHOD-LAYER-TIME)",
    "memory": "backprop (default), selective (keep convolution outputs, recompute the rest) or checkpoint "
              "(keep each step's input, recompute the step in the backward pass)",
    "time_reg": "weight of the time regulariser sum_k |theta_k+1 - theta_k|^2 / dt_k on kernels (default 0)",
    "clip": "box constraint: clamp kernel weights to [-CLIP, CLIP] after each step",
    "multilevel": "cascadic training over refinement factors, e.g. 1,2,4 (epochs split over the levels)",
    "level_schedule": "multilevel: continue (default) one learning-rate schedule over the whole run, or "
                      "restart it at each level",
    "compile_mode": "torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune, ...",
    "channels_last": "channels_last memory format for images",
    "fast": "the fast path: --compile with CUDA graphs, bf16 autocast, channels_last",
}


def comma_list(convert: Callable[[str], object], what: str = "values") -> Callable[[str], list]:
    """An argparse type for 'a,b,c': a non-empty list of `convert`ed items."""
    def parse(text: str) -> list:
        try:
            values = [convert(item.strip()) for item in text.split(",") if item.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from error
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        return values
    return parse


def option_type(field: dataclasses.Field) -> Callable[[str], object]:
    """The argument type of a TrainConfig option, read from its annotation (e.g. `list[int] | None`)."""
    annotation = str(field.type)
    if "list[int]" in annotation:
        return comma_list(int, "integers")
    if "list[float]" in annotation:
        return comma_list(float, "numbers")
    if "float" in annotation:
        return float
    if "int" in annotation:
        return int
    return str


def add_config_options(parser, fields: Iterable[dataclasses.Field], help_texts: Mapping[str, str]) -> None:
    """One `--name` per field (default None = not given); booleans get `--name/--no-name`."""
    for field in fields:
        flag = "--" + field.name.replace("_", "-")
        if str(field.type) == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=help_texts.get(field.name))
        else:
            parser.add_argument(flag, type=option_type(field), default=None, help=help_texts.get(field.name))
