"""rknet: residual networks as discretized ODEs.

Swap forward Euler for any explicit Runge-Kutta tableau, put the weights on their own time grid, and
train, compare and analyse the result.
"""

from . import analysis, layers
from .block import MEMORY_MODES, DynamicBlock, refine_network
from .grid import GridWarning, refine_times, uniform_grid
from .integrate import integrate
from .layers import LAYERS
from .network import ODENet
from .rediscretize import rediscretize
from .regularization import clip_weights_, time_regularization
from .reversible import HamiltonianBlock, LeapfrogBlock, ReversibleBlock
from .tableau import TABLEAUS, ButcherTableau, get_tableau
from .training import TrainConfig, evaluate_run, load, train

__version__ = "0.1.0"

__all__ = [
    "LAYERS", "MEMORY_MODES", "TABLEAUS", "ButcherTableau", "DynamicBlock", "GridWarning", "HamiltonianBlock",
    "LeapfrogBlock", "ODENet", "ReversibleBlock", "TrainConfig", "__version__", "analysis", "clip_weights_",
    "evaluate_run", "get_tableau", "integrate", "layers", "load", "rediscretize", "refine_network",
    "refine_times", "time_regularization", "train", "uniform_grid",
]
