"""The `rknet` command: train | eval | compare | stability | spectrum | trajectories | gradients.

Errors become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rknet import __version__
from rknet.cli.compare import add_compare_parser
from rknet.cli.options import add_config_options, comma_list, positive, train_option_fields
from rknet.common.figures import PlotsUnavailable, require_matplotlib
from rknet.io.layout import EVALUATION
from rknet.network.spec import DEFAULTS
from rknet.training import TrainConfig, TrainingDiverged, evaluate_run, format_table, read_config_file, train
from rknet.training.evaluation import ADAPTIVE_ATOL, check_rows_file, load_run, write_rows

EXIT_USAGE = 2
EXIT_DIVERGED = 3


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line, exits with code 2, and takes no abbreviations (a
    mistyped `--epoch 2` is an error, not `--epochs`)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML or YAML file of options (command-line options win)")
    parser.add_argument("--resume", metavar="OUT", help="continue the run in folder OUT where it stopped")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: only on a terminal)")
    add_config_options(parser, train_option_fields())


def _train_command(args: argparse.Namespace) -> int:
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name) is not None}
    if args.resume:
        epochs = given.pop("epochs", None)
        if given or args.config:
            raise ValueError("--resume continues a run with its saved configuration; give no other option than "
                             "--epochs (to extend it)")
        train(resume=args.resume, epochs=epochs, show_progress=args.progress)
        return 0
    options = read_config_file(args.config) if args.config else {}
    options.update(given)
    train(TrainConfig.from_dict(options), show_progress=args.progress, verbose=True)
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    if args.plot:
        require_matplotlib()
    for path in args.out or []:
        check_rows_file(path)
    if args.rtol and args.steps:
        raise ValueError("give --steps (fixed grids) or --rtol (adaptive steps), not both")
    if args.atol is not None and not args.rtol:
        raise ValueError("--atol is the absolute tolerance of the adaptive solves --rtol asks for; give --rtol too")
    rows = evaluate_run(args.run, methods=args.method, steps=args.steps, device=args.device, rtols=args.rtol,
                        atol=ADAPTIVE_ATOL if args.atol is None else args.atol)
    print(format_table(rows))
    folder = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    table = evaluation_file(folder)
    written = [write_rows(rows, table)] + [write_rows(rows, path) for path in args.out or []]
    if args.plot:
        from rknet.analysis import plot_evaluation

        written.append(plot_evaluation(rows, table.with_suffix(".png") if args.plot is True else args.plot))
    print("wrote " + ", ".join(map(str, written)))
    return 0


def evaluation_file(folder: Path) -> Path:
    """A new file for one `rknet eval` table in `folder`: RUN/eval-YYYYMMDD-HHMMSS.json (-2, -3, ... when
    several evaluations finish within one second), so that earlier evaluations are kept."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path, count = folder / EVALUATION.format(stamp=stamp), 1
    while path.exists():
        count += 1
        path = folder / EVALUATION.format(stamp=f"{stamp}-{count}")
    return path


def _stability_command(args: argparse.Namespace) -> int:
    require_matplotlib()
    from rknet.analysis import plot_stability_regions

    print(f"wrote {plot_stability_regions(args.methods, args.out)}")
    return 0


def _spectrum_command(args: argparse.Namespace) -> int:
    require_matplotlib()
    from rknet.analysis import block_spectra, plot_spectra

    run = load_run(args.run, args.device)
    x = run.data.x_test[: args.samples].to(run.device)
    spectra = block_spectra(run.model, x, samples=args.samples)
    print("scaled eigenvalues h*lambda (step x eigenvalue of df/dy) against the stability region "
          "|R(h*lambda)| <= 1, per block and per state time t:")
    for index, spectrum in enumerate(spectra):
        print("\n".join(spectrum.describe(f"block {index}")))
    print(f"wrote {plot_spectra(spectra, args.out or Path(args.run) / 'spectra.png')}")
    return 0


def _trajectories_command(args: argparse.Namespace) -> int:
    require_matplotlib()
    from rknet.analysis import plot_trajectories

    run = load_run(args.run, args.device)
    x, y = run.data.x_test[: args.points].to(run.device), run.data.y_test[: args.points]
    print(f"wrote {plot_trajectories(run.model, x, y, args.out or Path(args.run) / 'trajectories.png')}")
    return 0


def _gradients_command(args: argparse.Namespace) -> int:
    require_matplotlib()  # before the gradients, which take a while
    from rknet.analysis import format_agreement, gradient_agreement, plot_agreement

    run = load_run(args.run, args.device)
    x, y = run.data.x_test[: args.samples].to(run.device), run.data.y_test[: args.samples].to(run.device)
    rows = gradient_agreement(run.model, x, y, args.steps, args.method)
    print(format_agreement(rows))
    print(f"wrote {plot_agreement(rows, args.out or Path(args.run) / 'gradients.png')}")
    return 0


def _run_parser(commands, name: str, help_text: str, out_default: str, description: str):
    """A subcommand that reads a run folder and writes a figure (RUN, --out, --device)."""
    parser = commands.add_parser(name, help=help_text, description=description)
    parser.add_argument("run", help="run folder")
    parser.add_argument("--out", help=f"PNG file (default RUN/{out_default})")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    return parser


def _add_analysis_parsers(commands) -> None:
    stability = commands.add_parser(
        "stability", help="plot stability regions |R(z)| <= 1 of integrators",
        description="Plot the stability region {z : |R(z)| <= 1} of each method (R: its stability function) in "
                    "the complex plane: a block's step is stable where h*lambda lies inside. Needs matplotlib.")
    stability.add_argument("--methods", type=comma_list(str, "names"), default=["euler", "heun", "rk3", "rk4"],
                           help="methods, comma-separated (default euler,heun,rk3,rk4)")
    stability.add_argument("--out", default="stability.png", help="PNG file (default stability.png)")
    stability.set_defaults(handler=_stability_command)
    spectrum = _run_parser(commands, "spectrum", "Jacobian spectra h*lambda of a trained run over its method's "
                           "stability region", "spectra.png",
                           "Eigenvalues of each block's Jacobian df/dy, times the step h, at every state time for a "
                           "few test images, printed as counts outside the stability region and plotted over it. "
                           "Needs matplotlib.")
    spectrum.add_argument("--samples", type=positive, default=4, help="test samples to analyse (default 4)")
    spectrum.set_defaults(handler=_spectrum_command)
    trajectories = _run_parser(commands, "trajectories", "feature trajectories of a 2-D toy run (dense network "
                               "of width 2)", "trajectories.png",
                               "Draw how test points move through the blocks of a run trained on 2-feature data "
                               "with width-2 dense blocks (e.g. --data peaks --widths 2,2,2). Needs matplotlib.")
    trajectories.add_argument("--points", type=positive, default=300, help="test points to draw (default 300)")
    trajectories.set_defaults(handler=_trajectories_command)
    gradients = _run_parser(commands, "gradients", "adjoint (optimise-then-discretise) against backprop gradients "
                            "per block, over step counts and methods", "gradients.png",
                            "Re-discretise a trained run with each --method and --steps (steps per unit time; the "
                            "table also gives the steps per block) and print the relative difference between the "
                            "adjoint (optimise-then-discretise) and backprop (discretise-then-optimise) gradients "
                            "of the loss, per block and in all; plot it against the step size. Needs matplotlib.")
    gradients.add_argument("--method", type=comma_list(str, "names"), default=["euler", "rk4"],
                           help="methods, comma-separated (default euler,rk4)")
    gradients.add_argument("--steps", type=comma_list(positive, "positive integers"), default=[1, 2, 4, 8, 16],
                           help="state steps per unit time, comma-separated (default 1,2,4,8,16)")
    gradients.add_argument("--samples", type=positive, default=64, help="test samples in the batch (default 64)")
    gradients.set_defaults(handler=_gradients_command)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rknet", description="Residual networks as discretized ODEs.")
    parser.add_argument("--version", action="version", version=f"rknet {__version__}")
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
    eval_parser.add_argument("--method", type=comma_list(str, "names"),
                             help="methods of the run's family, comma-separated (names or tableau files; default: "
                                  "the run's own method)")
    eval_parser.add_argument("--steps", type=comma_list(positive, "positive integers"),
                             help="state steps per block, comma-separated (default: the run's own, "
                                  f"{DEFAULTS.num_steps} for the default network)")
    eval_parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    eval_parser.add_argument("--rtol", type=comma_list(float, "numbers"),
                             help="relative tolerances, comma-separated: each block solved adaptively per image by "
                                  "the --method embedded pairs (e.g. dopri5); reports layer evaluations per image")
    eval_parser.add_argument("--atol", type=float,
                             help=f"absolute tolerance, with --rtol only (default {ADAPTIVE_ATOL:g}: states hold "
                                  "exact zeros, where a purely relative test is undefined)")
    eval_parser.add_argument("--out", action="append", metavar="FILE",
                             help="also write the table to FILE.json or FILE.csv (repeatable); each evaluation "
                                  "is always kept in its own RUN/eval-YYYYMMDD-HHMMSS.json")
    eval_parser.add_argument("--plot", nargs="?", const=True, metavar="PNG",
                             help="draw accuracy and loss against steps per method (default file: the table's, "
                                  "RUN/eval-YYYYMMDD-HHMMSS.png)")
    eval_parser.set_defaults(handler=_eval_command)
    _add_analysis_parsers(commands)
    add_compare_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TrainingDiverged as error:
        print(f"rknet {args.command}: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ValueError, TypeError, OSError, PlotsUnavailable) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"rknet {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"rknet {args.command}: interrupted", file=sys.stderr)
        return 130
