"""Comparisons: `run_grid` trains a grid of settings (methods x layers x steps x control grids x widths x
seeds) and reports which did best, at what cost; `rknet compare` is its command line."""

from rknet.compare.grid import CompareResults, run_grid
from rknet.compare.plan import CompareSpec, Run, Setting, plan
from rknet.compare.results import COLUMNS, SettingResult

__all__ = ["COLUMNS", "CompareResults", "CompareSpec", "Run", "Setting", "SettingResult",
           "plan", "run_grid"]
