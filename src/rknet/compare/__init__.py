"""Comparisons: `run_grid` trains a grid of settings (methods x layers x steps x control grids x widths x
seeds) and reports which did best, at what cost, and with a baseline method, whether each other method
differs from it beyond seed noise (paired differences with a confidence interval); `rknet compare` is its
command line."""

from rknet.compare.grid import CompareResults, run_grid
from rknet.compare.paired import Interval, PairedDifference, paired_differences, t_interval
from rknet.compare.plan import CompareSpec, Run, Setting, plan
from rknet.compare.results import COLUMNS, SettingResult

__all__ = ["COLUMNS", "CompareResults", "CompareSpec", "Interval", "PairedDifference", "Run", "Setting",
           "SettingResult", "paired_differences", "plan", "run_grid", "t_interval"]
