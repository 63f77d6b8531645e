"""ImexBlock: dy/dt = -L(t) y + f(y, theta(t)) with L = K_L^T K_L learned, stepped by an IMEX pair.

The layer f (any rknet layer) is explicit; the block's own operator L (a control named `operator`: a C x C
matrix for vectors, a periodic 3 / 3x3 convolution for signals and images) is treated implicitly and its
stages are solved exactly (`rknet.operators`), as in IMEXnet (Haber, Lensink, Treister & Ruthotto, 2019).
L is positive semi-definite, so the implicit part only damps: large steps stay forward stable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rknet.blocks.base import SteppingBlock
from rknet.common.kernels import kernel_shape
from rknet.gradients.capabilities import STEPPING, Capabilities
from rknet.gradients.strategies import GradientStrategy
from rknet.layers import Layer
from rknet.layers.controls import ParameterSpec
from rknet.methods.imex_pairs import ImexPair, get_imex_pair
from rknet.solvers.grid import stage_interpolation
from rknet.solvers.imex import imex_step
from rknet.solvers.operators import SymmetricOperator
from rknet.solvers.runge_kutta import pair_terms

OPERATOR = "operator"
# The operator's kernel starts at a tenth of a layer kernel's scale (L = K^T K at a hundredth): at full scale
# its diffusion drove the states towards zero, where the TV norm is steepest, and trained IMEX networks lost
# their accuracy at 2x larger steps (docs/implicit.md, "Trained: IMEX against the explicit default").
OPERATOR_SCALE = 0.1


class ImexBlock(SteppingBlock):
    """Integrate `-L y + f(y, theta(t))` over `t_states` with an IMEX pair (imex_euler, ars222, ars443).

    `f` is the layer's, with its weights on `t_controls`; L's kernel is one more control, interpolated the
    same way. Batch norm is refused (use tv or none).
    """

    family = "imex"
    # Checkpointing would rerun the operator solves in the backward pass: not declared (not tested).
    capabilities = Capabilities(STEPPING, norms=("tv", "none"), rediscretize_into=("imex",))

    def __init__(self, layer: Layer, method: str | ImexPair = "ars222", t_states: Sequence[float] = (0, 1, 2, 3, 4),
                 t_controls: Sequence[float] | None = None, interpolation: str = "linear",
                 gradient: str | GradientStrategy | None = None) -> None:
        pair = get_imex_pair(method)
        self.accept_layer(layer, f"{pair.name} (an IMEX method)")
        states, controls = self.check_grids(t_states, t_controls, interpolation)
        operator = ParameterSpec(kernel_shape(layer.channels, layer.channels, layer.dims), scale=OPERATOR_SCALE)
        specs = {**layer.parameter_specs(), OPERATOR: operator}
        super().__init__([layer], states, controls, specs, gradient)
        self.layer, self.pair, self.interpolation = layer, pair, interpolation
        self.stage_interpolation = stage_interpolation(states, controls, pair.explicit, interpolation)
        self.terms = pair_terms(pair.explicit, pair.implicit)

    @property
    def method_name(self) -> str:
        return self.pair.name

    def step(self, y: torch.Tensor, k: int, cache: dict | None = None) -> torch.Tensor:
        """Step k; `cache` shares the interpolated controls between stages and steps."""
        cache = {} if cache is None else cache

        def operator(i: int) -> SymmetricOperator:
            return SymmetricOperator(self.stage_parameters(k, i, cache)[OPERATOR], self.layer.dims)

        return imex_step(lambda i, state: self.layer(self.stage_parameters(k, i, cache), state), operator, y,
                         self.step_sizes[k], self.terms)

    @property
    def evaluations_per_forward(self) -> int:
        """Evaluations of the layer f (the operator's solves come on top: FFTs and C x C Cholesky solves)."""
        return self.num_steps * sum(self.terms[0].needed)

    def with_grids(self, t_states: Sequence[float], t_controls: Sequence[float]) -> ImexBlock:
        return ImexBlock(self.layer, self.pair, t_states, t_controls, self.interpolation, self.gradient)

    def extra_repr(self) -> str:
        return (f"method={self.pair.name}, steps={self.num_steps}, controls={len(self.t_controls)}, "
                f"interpolation={self.interpolation}, layer={self.layer!r}")
