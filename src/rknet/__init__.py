"""rknet: residual networks as discretized ODEs.

Swap forward Euler for any explicit Runge-Kutta tableau, put the weights on their own time grid, and
train, compare and analyse the result.
"""

from . import analysis, layers
from .block import DynamicBlock
from .grid import GridWarning, refine_times, uniform_grid
from .integrate import integrate
from .layers import LAYERS
from .network import ODENet
from .rediscretize import rediscretize
from .tableau import TABLEAUS, ButcherTableau, get_tableau
from .training import TrainConfig, evaluate_run, load, train

__version__ = "0.1.0"

__all__ = [
    "LAYERS", "TABLEAUS", "ButcherTableau", "DynamicBlock", "GridWarning", "ODENet", "TrainConfig",
    "__version__", "analysis", "evaluate_run", "get_tableau", "integrate", "layers", "load", "rediscretize",
    "refine_times", "train", "uniform_grid",
]
