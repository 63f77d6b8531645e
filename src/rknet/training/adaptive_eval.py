"""Test accuracy with error control: each image's trip through each block integrated by an embedded pair
(dopri5, tsit5, ...) to a tolerance, and the layer evaluations that cost.

The sharpest form of "did the network learn an ODE?": a network that learned a flow keeps its accuracy when
an adaptive solver picks the steps, and the evaluations it needs say how stiff that flow is. The controls
theta(t) are interpolated at whatever times the solver asks for (`RungeKuttaBlock.vector_field`); batch norm
inside a block uses the running statistics of the trained evaluation nearest in time, in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rknet.blocks.runge_kutta import RungeKuttaBlock
from rknet.methods.registry import resolve_method
from rknet.methods.tableau import ButcherTableau
from rknet.network.odenet import ODENet
from rknet.solvers.adaptive import require_pair
from rknet.solvers.integrate import integrate


def embedded_pair(method) -> ButcherTableau:
    """The embedded pair `method` names (a preset such as dopri5, or a tableau file with b_hat)."""
    resolved = resolve_method(method)
    if isinstance(resolved, str):
        raise ValueError(f"adaptive evaluation needs an embedded pair (bs3, fehlberg45, dopri5, tsit5 or a tableau "
                         f"with b_hat), not the {resolved} scheme")
    return require_pair(resolved)


def _field(block: RungeKuttaBlock):
    return lambda t, y: block.vector_field(t, y, block.nearest_evaluation(t))


@torch.no_grad()
def adaptive_logits(net: ODENet, x: torch.Tensor, method, rtol: float, atol: float) -> tuple[torch.Tensor, float]:
    """Logits of `net` (eval mode) on x with every block solved adaptively per image, and the mean number
    of layer evaluations per image (summed over the blocks)."""
    if not net.spec.capabilities.vector_field:
        raise ValueError(f"adaptive evaluation applies to Runge-Kutta networks; a {net.spec.method_name} network "
                         "integrates another equation (give it --steps instead)")
    tableau = embedded_pair(method)
    net.eval()
    y = net.opening_act(net.opening(x))
    evaluations = 0
    for block, connector in zip(net.blocks, net.connectors, strict=True):
        span = [block.t_states[0], block.t_states[-1]]
        finals = []
        for sample in y.split(1):
            stats: dict[str, int] = {}
            finals.append(integrate(_field(block), sample, span, tableau, rtol=rtol, atol=atol, stats=stats))
            evaluations += stats["evaluations"]
        y = connector(torch.cat(finals))
    return net.classifier(net.pool(y)), evaluations / len(x)


def evaluate_adaptive(net: ODENet, x: torch.Tensor, y: torch.Tensor, method, rtol: float, atol: float
                      ) -> tuple[float, float, float]:
    """(mean cross-entropy, accuracy, mean layer evaluations per image) on (x, y) with error control."""
    logits, evaluations = adaptive_logits(net, x, method, rtol, atol)
    loss = F.cross_entropy(logits.float(), y).item()
    return loss, (logits.argmax(1) == y).double().mean().item(), evaluations
