"""The `rknet compare` subcommand: `add_compare_parser(subparsers)` registers it on the rknet parser."""

from __future__ import annotations

import argparse
import dataclasses

from ..options import add_config_options, comma_list, help_text, positive
from ..training.config import TrainConfig
from .compare import run_grid
from .grid import GRID_FIELDS, UNSUPPORTED_FIELDS, CompareSpec

EXIT_FAILED_RUNS = 1
DESCRIPTION = (
    "Train every combination of methods x layers x steps x control grids x widths, for several seeds, on one "
    "data set, and write OUT/results.csv, OUT/report.md and plots. Each run is a normal `rknet train` run "
    "in OUT/runs/NAME-seedK; rerunning the command skips complete runs and resumes interrupted ones. "
    "Exit code 1 when some run failed (the others are still reported).")


def _control(text: str) -> int | None:
    return None if text.lower() in ("state", "states", "none") else int(text)


def _widths_lists(text: str) -> list[list[int]]:
    parse = comma_list(int, "integers")
    lists = [parse(part) for part in text.split(";") if part.strip()]
    if not lists:
        raise argparse.ArgumentTypeError(f"expected widths such as 16,32,64,64, got {text!r}")
    return lists


def _seeds(text: str) -> int | list[int]:
    """A count N (seeds 0 .. N-1), or explicit seeds as a comma list ('3,7', or '5,' for seed 5 alone)."""
    if "," not in text:
        return positive(text)
    seeds = comma_list(int, "seeds")(text.removesuffix(","))
    if min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative seeds, got {text!r}")
    return seeds


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(TrainConfig) if f.name == name)


def base_option_fields() -> list[dataclasses.Field]:
    """The TrainConfig options that stay fixed across the grid (everything the grid does not vary)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.name not in GRID_FIELDS + UNSUPPORTED_FIELDS]


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Register `compare` on `subparsers` (from `parser.add_subparsers(...)`); its handler is
    `compare_command`, set with `set_defaults(handler=...)`."""
    parser = subparsers.add_parser("compare", help="train a grid of integrators x layers x ... and report",
                                   description=DESCRIPTION)
    parser.add_argument("--data", default="digits", help=help_text(_field("data")))
    parser.add_argument("--methods", type=comma_list(str, "names"), default=["rk4"],
                        help="integrators, comma-separated, e.g. euler,heun,rk4 or a tableau file (default rk4)")
    parser.add_argument("--layers", type=comma_list(str, "names"), default=["doublesym"],
                        help="layers, comma-separated, e.g. double,doublesym (default doublesym)")
    parser.add_argument("--steps", type=comma_list(int, "integers"), default=[4],
                        help="state steps per block, comma-separated (default 4)")
    parser.add_argument("--control-steps", type=comma_list(_control, "integers or 'state'"), default=[None],
                        help="equal control steps per block, comma-separated; 'state' puts the controls on the "
                             "state grid (default state)")
    parser.add_argument("--widths", type=_widths_lists, action="append", default=None,
                        help="block widths then the final width, comma-separated; repeat the option (or "
                             "separate lists with ';') to compare several (default 16,32,64,64)")
    parser.add_argument("--seeds", type=_seeds, default=2,
                        help="seeds per setting: N means 0 .. N-1, a comma list names them (default 2)")
    parser.add_argument("--workers", type=positive, default=1,
                        help="runs trained at a time, each in its own process (default 1)")
    parser.add_argument("--threads", type=positive, default=None,
                        help="torch threads per worker (default: OMP_NUM_THREADS if set, else cores/workers)")
    parser.add_argument("--out", required=True, help="output folder of the comparison (runs, results, report)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar over the grid (default: only on a terminal)")
    fixed = parser.add_argument_group("fixed training options", "the same for every run; as for rknet train")
    add_config_options(fixed, base_option_fields())
    parser.set_defaults(handler=compare_command)
    return parser


def spec_from_args(args: argparse.Namespace) -> CompareSpec:
    widths = [w for group in (args.widths or [[[16, 32, 64, 64]]]) for w in group]
    options = {f.name: getattr(args, f.name) for f in base_option_fields() if getattr(args, f.name) is not None}
    return CompareSpec(out=args.out, data=args.data, methods=args.methods, layers=args.layers, steps=args.steps,
                       control_steps=args.control_steps, widths=widths, seeds=args.seeds, options=options,
                       workers=args.workers, threads=args.threads)


def compare_command(args: argparse.Namespace) -> int:
    """Handler of `rknet compare`: 0 when every run completed, 1 when some failed."""
    results = run_grid(spec_from_args(args), show_progress=args.progress)
    return EXIT_FAILED_RUNS if results.failed else 0
