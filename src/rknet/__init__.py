"""rknet: residual networks as discretized ODEs.

Swap forward Euler for any explicit Runge-Kutta tableau, put the weights on their own time grid, and
train, compare and analyse the result.
"""

from . import layers
from .block import DynamicBlock
from .grid import GridWarning, refine_times, uniform_grid
from .integrate import integrate
from .layers import LAYERS
from .network import ODENet
from .tableau import TABLEAUS, ButcherTableau, get_tableau

__version__ = "0.1.0"

__all__ = [
    "TABLEAUS", "LAYERS", "ButcherTableau", "DynamicBlock", "GridWarning", "ODENet", "get_tableau",
    "integrate", "layers", "refine_times", "uniform_grid", "__version__",
]
