"""Experiments: `run_grid` trains a grid of settings (methods x layers x steps x control grids x widths x
seeds) and reports which did best, at what cost; `rknet compare` is its command line."""

from .cli import add_compare_parser, compare_command
from .compare import CompareResults, run_grid
from .plan import CompareSpec, Run, Setting, plan
from .results import COLUMNS, SettingResult

__all__ = ["COLUMNS", "CompareResults", "CompareSpec", "Run", "Setting", "SettingResult", "add_compare_parser",
           "compare_command", "plan", "run_grid"]
