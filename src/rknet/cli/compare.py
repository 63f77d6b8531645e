"""The `rknet compare` subcommand: `add_compare_parser(subparsers)` registers it on the rknet parser."""

from __future__ import annotations

import argparse
import dataclasses

from rknet.cli.options import add_config_options, comma_list, positive
from rknet.common.tablefiles import read_table
from rknet.compare.axes import GRID_FIELDS, UNSUPPORTED_FIELDS
from rknet.compare.grid import run_grid
from rknet.compare.plan import CompareSpec
from rknet.compare.resources import APPLIES, LAUNCHERS, SUBMITIT_CLUSTERS, Resources
from rknet.compare.status import status_lines
from rknet.training.config import TrainConfig

EXIT_FAILED_RUNS = 1
DESCRIPTION = (
    "Train every combination of methods x layers x steps x control grids x widths, for several seeds, on one "
    "data set, and write OUT/results.csv, OUT/report.md and plots. Each run is a normal `rknet train` run "
    "in OUT/runs/NAME-seedK; rerunning the command skips complete runs and resumes interrupted ones. "
    "--launcher slurm or ray trains the runs on a cluster; --status OUT shows each run's state. "
    "Exit code 1 when some run failed (the others are still reported).")
RESOURCE_HELP = {
    "partition": "SLURM partition of the jobs",
    "gpus_per_run": "GPUs per run (default: none on SLURM; on Ray one when the cluster has GPUs)",
    "cpus_per_run": "CPUs per run, also its torch threads unless --threads or OMP_NUM_THREADS say otherwise",
    "mem_gb": "memory per run, in GB",
    "time_limit": "SLURM time limit per job, in minutes; a job that reaches it is requeued and resumes",
    "max_parallel": "runs at a time (SLURM array parallelism; Ray tasks in flight; default no limit)",
    "retries": "restarts of a run whose job, worker or node was lost (SLURM requeues after the time limit; Ray "
               "task retries); each resumes from the run's last checkpoint",
    "ray_address": "the Ray cluster, as ray.init(address=...) takes it: auto, HOST:PORT, ray://HOST:10001 "
                   "(default: RAY_ADDRESS, else a new local instance)",
    "slurm_options": "a further sbatch option as NAME=VALUE, e.g. account=abc (repeatable)",
    "submitit_cluster": "where submitit sends the jobs: slurm, or local to try the grid on this machine",
}


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
    parser.add_argument("--baseline", metavar="METHOD",
                        help="compare every other method with this one seed by seed: paired differences in test "
                             "accuracy with a 95 %% confidence interval over seeds (needs --seeds >= 2)")
    parser.add_argument("--workers", type=positive, help=f"runs trained at a time, each in its own process "
                        f"(default {_default('workers')})")
    parser.add_argument("--threads", type=positive,
                        help="torch threads per worker (default: OMP_NUM_THREADS if set, else cores/workers)")
    parser.add_argument("--out", help="output folder of the comparison (runs, results, report); required here or "
                                      "in the config file")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar over the grid (default: only on a terminal)")
    parser.add_argument("--status", metavar="OUT", help="print the state of every run of the comparison in OUT, "
                        "read from its folders, and exit (nothing is trained)")
    _add_launcher_options(parser)
    fixed = parser.add_argument_group("fixed training options", "the same for every run; as for rknet train")
    add_config_options(fixed, base_option_fields())
    parser.set_defaults(handler=compare_command)
    return parser


def _add_launcher_options(parser: argparse.ArgumentParser) -> None:
    """--launcher and the resources of a cluster grid (CompareSpec and Resources hold the defaults)."""
    group = parser.add_argument_group("where the runs train", "--launcher local (default) trains here; slurm and "
                                      "ray need their extra: pip install 'rknet[slurm]' or 'rknet[ray]'")
    group.add_argument("--launcher", type=str.lower, choices=LAUNCHERS,
                       help="local worker processes, SLURM jobs (submitit) or Ray tasks "
                            f"(default {_default('launcher')})")
    types = {"gpus_per_run": int, "cpus_per_run": positive, "mem_gb": float, "time_limit": positive,
             "max_parallel": positive, "retries": int}
    defaults = Resources()
    for name in APPLIES:
        flag = "--slurm-option" if name == "slurm_options" else "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        shown = "" if default in (None, {}) or name == "gpus_per_run" else f" (default {default})"
        extra = {"action": "append", "dest": name} if name == "slurm_options" else {"type": types.get(name, str)}
        if name == "submitit_cluster":
            extra["choices"] = SUBMITIT_CLUSTERS
        group.add_argument(flag, help=f"{' and '.join(APPLIES[name])}: {RESOURCE_HELP[name]}{shown}", **extra)


AXES = ("data", "methods", "layers", "steps", "control_steps", "widths", "seeds", "workers", "threads", "launcher",
        "out", "baseline")


def spec_from_args(args: argparse.Namespace) -> CompareSpec:
    """The comparison the options describe: a --config file's values, then the command line's over them."""
    values = read_table(args.config, "compare config file") if args.config else {}
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    spec = {key: values.pop(key) for key in AXES if key in values}
    resources = dict(values.pop("resources", None) or {})  # a [resources] table, or the same keys at the top
    resources.update({key: values.pop(key) for key in APPLIES if key in values})
    resources.update({key: getattr(args, key) for key in APPLIES if getattr(args, key) is not None})
    options = dict(values.pop("options", {}), **values)
    given = {key: getattr(args, key) for key in AXES if getattr(args, key) is not None}
    if "widths" in given:
        given["widths"] = [w for group in given["widths"] for w in group]
    spec.update(given)
    options.update({f.name: getattr(args, f.name) for f in base_option_fields() if getattr(args, f.name) is not None})
    if spec.get("out") is None:
        raise ValueError("give the output folder: --out OUT (or out in the config file)")
    return CompareSpec.coerce(dict(spec, options=options, resources=resources))


def compare_command(args: argparse.Namespace) -> int:
    """Handler of `rknet compare`: 0 when every run completed, 1 when some failed; with --status, 0 after
    printing the state of every run."""
    if args.status is not None:
        print("\n".join(status_lines(args.status)))
        return 0
    results = run_grid(spec_from_args(args), show_progress=args.progress)
    return EXIT_FAILED_RUNS if results.failed else 0
