"""The `rknet` command: train | eval | compare | stability | spectrum | trajectories.

Errors become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .training import TrainConfig, TrainingDiverged, evaluate_run, format_table, read_config_file, train
from .training.evaluation import load_run

EXIT_USAGE = 2
EXIT_DIVERGED = 3

HELP = {
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
    "batch_size": "mini-batch size (default 64)",
    "seed": "random seed for initialisation, split and batches (default 0)",
    "device": "auto (default), cpu or cuda",
    "precision": "fp32 (default) or bf16 autocast",
    "compile": "torch.compile the network (drops the last partial batch)",
    "out": "output folder (default runs/DATA-METHOD-LAYER-TIME)",
    "memory": "backprop (default) or checkpoint (recompute each step in the backward pass)",
    "time_reg": "weight of the time regulariser sum_k |theta_k+1 - theta_k|^2 / dt_k on kernels (default 0)",
    "clip": "box constraint: clamp kernel weights to [-CLIP, CLIP] after each step",
    "multilevel": "cascadic training over refinement factors, e.g. 1,2,4 (epochs split over the levels)",
    "compile_mode": "torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune, ...",
    "channels_last": "channels_last memory format for images",
    "fast": "the fast path: --compile with CUDA graphs, bf16 autocast, channels_last",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line and exits with code 2."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _comma_list(convert: Callable) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [convert(item) for item in text.split(",") if item.strip()]
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from error
    return parse


def _option_type(field: dataclasses.Field) -> Callable[[str], object]:
    if field.name in ("widths", "multilevel"):
        return _comma_list(int)
    if field.name in ("t_states", "t_controls"):
        return _comma_list(float)
    default = field.default
    if field.name == "control_steps" or isinstance(default, int):
        return int
    if field.name == "clip" or isinstance(default, float):
        return float
    return str


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML or YAML file of options (command-line options win)")
    parser.add_argument("--resume", metavar="OUT", help="continue the run in folder OUT where it stopped")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: only on a terminal)")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=HELP[field.name])
        else:
            parser.add_argument(flag, type=_option_type(field), default=None, help=HELP[field.name])


def _train_command(args: argparse.Namespace) -> int:
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name) is not None}
    if args.resume:
        if given or args.config:
            raise ValueError("--resume continues a run with its saved configuration; give no other options")
        train(resume=args.resume, show_progress=args.progress)
        return 0
    options = read_config_file(args.config) if args.config else {}
    options.update(given)
    train(TrainConfig.from_dict(options), show_progress=args.progress)
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    rows = evaluate_run(args.run, methods=args.method, steps=args.steps, device=args.device)
    print(format_table(rows))
    return 0


def _stability_command(args: argparse.Namespace) -> int:
    from .analysis import plot_stability_regions

    print(f"wrote {plot_stability_regions(args.methods, args.out)}")
    return 0


def _spectrum_command(args: argparse.Namespace) -> int:
    from .analysis import block_spectra, plot_spectra

    run = load_run(args.run, args.device)
    x = run.data.x_test[: args.samples].to(run.device)
    spectra = block_spectra(run.model, x, samples=args.samples)
    for index, spectrum in enumerate(spectra):
        print(f"block {index} ({spectrum.tableau.name}): {100 * spectrum.fraction_stable():.1f}% of the scaled "
              "eigenvalues h*lambda lie inside the stability region")
    print(f"wrote {plot_spectra(spectra, args.out or Path(args.run) / 'spectra.png')}")
    return 0


def _trajectories_command(args: argparse.Namespace) -> int:
    from .analysis import plot_trajectories

    run = load_run(args.run, args.device)
    x, y = run.data.x_test[: args.points].to(run.device), run.data.y_test[: args.points]
    print(f"wrote {plot_trajectories(run.model, x, y, args.out or Path(args.run) / 'trajectories.png')}")
    return 0


def _add_analysis_parsers(commands) -> None:
    stability = commands.add_parser("stability", help="plot stability regions |R(z)| <= 1 of integrators")
    stability.add_argument("--methods", type=_comma_list(str), default=["euler", "heun", "rk3", "rk4"],
                           help="methods, comma-separated (default euler,heun,rk3,rk4)")
    stability.add_argument("--out", default="stability.png", help="PNG file (default stability.png)")
    stability.set_defaults(handler=_stability_command)
    spectrum = commands.add_parser(
        "spectrum", help="Jacobian spectra h*lambda of a trained run over its method's stability region")
    spectrum.add_argument("run", help="run folder")
    spectrum.add_argument("--samples", type=int, default=4, help="test samples to analyse (default 4)")
    spectrum.add_argument("--out", help="PNG file (default RUN/spectra.png)")
    spectrum.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    spectrum.set_defaults(handler=_spectrum_command)
    trajectories = commands.add_parser(
        "trajectories", help="feature trajectories of a 2-D toy run (dense network of width 2)")
    trajectories.add_argument("run", help="run folder")
    trajectories.add_argument("--points", type=int, default=300, help="test points to draw (default 300)")
    trajectories.add_argument("--out", help="PNG file (default RUN/trajectories.png)")
    trajectories.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    trajectories.set_defaults(handler=_trajectories_command)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rknet", description="Residual networks as discretized ODEs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    train_parser = commands.add_parser("train", help="train an ODE network",
                                       description="Train an ODENet; every option can also come from --config.")
    _add_train_options(train_parser)
    train_parser.set_defaults(handler=_train_command)
    eval_parser = commands.add_parser(
        "eval", help="test accuracy of a saved run, optionally re-discretised",
        description="Test accuracy of a run's model with other integrators or finer state grids "
                    "(same controls theta(t)).")
    eval_parser.add_argument("run", help="run folder (or its model.pt)")
    eval_parser.add_argument("--method", type=_comma_list(str), help="methods, comma-separated")
    eval_parser.add_argument("--steps", type=_comma_list(int), help="state step counts, comma-separated")
    eval_parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    eval_parser.set_defaults(handler=_eval_command)
    _add_analysis_parsers(commands)
    from .experiments import add_compare_parser  # imported here: it reuses this module's option help

    add_compare_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TrainingDiverged as error:
        print(f"rknet {args.command}: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ValueError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"rknet {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"rknet {args.command}: interrupted", file=sys.stderr)
        return 130
