"""rknet: residual networks as discretized ODEs.

Swap forward Euler for any explicit Runge-Kutta tableau, put the weights on their own time grid, and
train, compare and analyse the result.
"""

from . import analysis, layers
from .block import Block
from .compat import odeint, odeint_adjoint
from .convert import from_dynamicblocks
from .dynamic_block import DynamicBlock
from .export import export_onnx, export_program
from .grid import GridWarning, refine_times, uniform_grid
from .imex import IMEX_PAIRS, ImexPair, integrate_imex
from .imex_block import ImexBlock
from .implicit import ImplicitSolveError, NewtonKrylov, SolveReport
from .implicit_block import ImplicitBlock
from .layers import LAYERS
from .network import ODENet
from .ode import integrate
from .operators import SymmetricOperator
from .pretrained import from_pretrained, save_pretrained
from .rediscretize import rediscretize
from .regularization import clip_weights_, time_regularization
from .reversible import HamiltonianBlock, LeapfrogBlock, ReversibleBlock
from .schemes import METHODS
from .spec import DEFAULTS, NetworkSpec
from .strategies import GRADIENTS, GradientStrategy
from .tableau import IMPLICIT_TABLEAUS, TABLEAUS, ButcherTableau, get_tableau
from .training import TrainConfig, evaluate_run, load, train

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS", "GRADIENTS", "IMEX_PAIRS", "IMPLICIT_TABLEAUS", "LAYERS", "METHODS", "TABLEAUS", "Block",
    "ButcherTableau", "DynamicBlock", "GradientStrategy", "GridWarning", "HamiltonianBlock", "ImexBlock", "ImexPair",
    "ImplicitBlock", "ImplicitSolveError", "LeapfrogBlock", "NetworkSpec", "NewtonKrylov", "ODENet",
    "ReversibleBlock", "SolveReport", "SymmetricOperator", "TrainConfig", "__version__", "analysis", "clip_weights_",
    "evaluate_run", "export_onnx", "export_program", "from_dynamicblocks", "from_pretrained", "get_tableau",
    "integrate", "integrate_imex", "layers", "load", "odeint", "odeint_adjoint", "rediscretize", "refine_times",
    "save_pretrained", "time_regularization", "train", "uniform_grid",
]
