"""The `rknet compare` subcommand: `add_compare_parser(subparsers)` registers it on the rknet parser."""

from __future__ import annotations

import argparse
import dataclasses

from ..configfiles import read_table
from ..options import add_config_options, comma_list, positive
from ..training.config import TrainConfig
from .axes import GRID_FIELDS, UNSUPPORTED_FIELDS
from .compare import run_grid
from .plan import CompareSpec

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


def base_option_fields() -> list[dataclasses.Field]:
    """The TrainConfig options that stay fixed across the grid (everything the grid does not vary)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.name not in GRID_FIELDS + UNSUPPORTED_FIELDS]


def _default(name: str) -> str:
    """CompareSpec's default for an axis, as the command line writes it."""
    value = next(f for f in dataclasses.fields(CompareSpec) if f.name == name).default
    text = lambda v: "state" if v is None else ",".join(map(str, v)) if isinstance(v, tuple) else str(v)  # noqa: E731
    return ";".join(map(text, value)) if isinstance(value, tuple) else text(value)


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Register `compare` on `subparsers` (from `parser.add_subparsers(...)`); its handler is
    `compare_command`, set with `set_defaults(handler=...)`. Every option defaults to None here, so that
    options given on the command line can win over a --config file; CompareSpec holds the defaults."""
    parser = subparsers.add_parser("compare", help="train a grid of integrators x layers x ... and report",
                                   description=DESCRIPTION)
    parser.add_argument("--config", metavar="FILE", help="TOML, YAML or JSON file of compare options (methods, "
                        "layers, ..., out) and fixed training options; the command line wins")
    parser.add_argument("--data", help=f"data set (default {_default('data')})")
    parser.add_argument("--methods", type=comma_list(str, "names"),
                        help=f"integrators, comma-separated: names or tableau files (default {_default('methods')})")
    parser.add_argument("--layers", type=comma_list(str, "names"),
                        help=f"layers, comma-separated (default {_default('layers')})")
    parser.add_argument("--steps", type=comma_list(positive, "positive integers"),
                        help=f"state steps per block, comma-separated (default {_default('steps')})")
    parser.add_argument("--control-steps", type=comma_list(_control, "integers or 'state'"),
                        help="equal control steps per block, comma-separated; 'state' puts the controls on the "
                             f"state grid (default {_default('control_steps')})")
    parser.add_argument("--widths", type=_widths_lists, action="append",
                        help="block widths then the final width, comma-separated; repeat the option (or "
                             f"separate lists with ';') to compare several (default {_default('widths')})")
    parser.add_argument("--seeds", type=_seeds,
                        help="seeds per setting: N means 0 .. N-1, a comma list names them "
                             f"(default {_default('seeds')})")
    parser.add_argument("--workers", type=positive, help=f"runs trained at a time, each in its own process "
                        f"(default {_default('workers')})")
    parser.add_argument("--threads", type=positive,
                        help="torch threads per worker (default: OMP_NUM_THREADS if set, else cores/workers)")
    parser.add_argument("--out", help="output folder of the comparison (runs, results, report); required here or "
                                      "in the config file")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar over the grid (default: only on a terminal)")
    fixed = parser.add_argument_group("fixed training options", "the same for every run; as for rknet train")
    add_config_options(fixed, base_option_fields())
    parser.set_defaults(handler=compare_command)
    return parser


AXES = ("data", "methods", "layers", "steps", "control_steps", "widths", "seeds", "workers", "threads", "out")


def spec_from_args(args: argparse.Namespace) -> CompareSpec:
    """The comparison the options describe: a --config file's values, then the command line's over them."""
    values = read_table(args.config, "compare config file") if args.config else {}
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    spec = {key: values.pop(key) for key in AXES if key in values}
    options = dict(values.pop("options", {}), **values)
    given = {key: getattr(args, key) for key in AXES if getattr(args, key) is not None}
    if "widths" in given:
        given["widths"] = [w for group in given["widths"] for w in group]
    spec.update(given)
    options.update({f.name: getattr(args, f.name) for f in base_option_fields() if getattr(args, f.name) is not None})
    if spec.get("out") is None:
        raise ValueError("give the output folder: --out OUT (or out in the config file)")
    return CompareSpec.coerce(dict(spec, options=options))


def compare_command(args: argparse.Namespace) -> int:
    """Handler of `rknet compare`: 0 when every run completed, 1 when some failed."""
    results = run_grid(spec_from_args(args), show_progress=args.progress)
    return EXIT_FAILED_RUNS if results.failed else 0
