"""rknet: residual networks as discretized ODEs.

Swap forward Euler for any explicit Runge-Kutta tableau, put the weights on their own time grid, and
train, compare and analyse the result.
"""

from rknet import analysis, layers
from rknet.blocks.base import Block, ReversibleScheme, SteppingBlock
from rknet.blocks.imex import ImexBlock
from rknet.blocks.implicit import ImplicitBlock
from rknet.blocks.reversible import HamiltonianBlock, LeapfrogBlock, ReversibleBlock
from rknet.blocks.runge_kutta import DynamicBlock, RungeKuttaBlock
from rknet.gradients.capabilities import Capabilities
from rknet.gradients.strategies import GRADIENTS, GradientStrategy, register_gradient, supported_gradients
from rknet.io.export import export_onnx, export_program
from rknet.io.pretrained import from_pretrained, save_pretrained
from rknet.layers import LAYERS
from rknet.methods.imex_pairs import IMEX_PAIRS, ImexPair
from rknet.methods.registry import METHODS
from rknet.methods.tableau import IMPLICIT_TABLEAUS, TABLEAUS, ButcherTableau, get_tableau
from rknet.network.convert import from_dynamicblocks
from rknet.network.odenet import ODENet
from rknet.network.rediscretize import rediscretize
from rknet.network.regularization import clip_weights_, time_regularization
from rknet.network.spec import DEFAULTS, NetworkSpec
from rknet.solvers.grid import GridWarning, refine_times, uniform_grid
from rknet.solvers.imex import integrate_imex
from rknet.solvers.integrate import integrate
from rknet.solvers.newton_krylov import ImplicitSolveError, NewtonKrylov, SolveReport
from rknet.solvers.odeint import odeint, odeint_adjoint, odeint_event
from rknet.solvers.operators import SymmetricOperator
from rknet.training import TrainConfig, evaluate_run, load, train

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS", "GRADIENTS", "IMEX_PAIRS", "IMPLICIT_TABLEAUS", "LAYERS", "METHODS", "TABLEAUS", "Block",
    "ButcherTableau", "Capabilities", "DynamicBlock", "GradientStrategy", "GridWarning", "HamiltonianBlock",
    "ImexBlock", "ImexPair",
    "ImplicitBlock", "ImplicitSolveError", "LeapfrogBlock", "NetworkSpec", "NewtonKrylov", "ODENet",
    "ReversibleBlock", "ReversibleScheme", "RungeKuttaBlock", "SolveReport", "SteppingBlock", "SymmetricOperator",
    "TrainConfig", "__version__", "analysis", "clip_weights_",
    "evaluate_run", "export_onnx", "export_program", "from_dynamicblocks", "from_pretrained", "get_tableau",
    "integrate", "integrate_imex", "layers", "load", "odeint", "odeint_adjoint", "odeint_event", "rediscretize",
    "refine_times", "register_gradient", "save_pretrained", "supported_gradients", "time_regularization", "train",
    "uniform_grid",
]
