"""ODENet: opening layer, dynamic blocks joined by connectors, global pooling, linear classifier."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .block import DynamicBlock, refine_network
from .distributed import BatchNorm
from .layers import ACTIVATIONS, Layer, check_activation, check_dims, make_layer
from .reversible import BLOCK_TYPES, HamiltonianBlock, LeapfrogBlock, ReversibleBlock
from .tableau import TABLEAUS, ButcherTableau


def _conv(in_channels: int, out_channels: int, kernel_size: int, dims: int) -> nn.Module:
    if dims == 0:
        return nn.Linear(in_channels, out_channels)
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    return conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


REVERSIBLE_METHODS: dict[str, type[ReversibleBlock]] = {"leapfrog": LeapfrogBlock, "hamiltonian": HamiltonianBlock}
METHODS: tuple[str, ...] = (*TABLEAUS, *REVERSIBLE_METHODS)


def make_block(layer: Layer, method: str | ButcherTableau, t_states: Sequence[float],
               t_controls: Sequence[float] | None, interpolation: str, memory: str) -> nn.Module:
    """A DynamicBlock for a Runge-Kutta method, or a reversible block for `leapfrog` / `hamiltonian`
    (one control per step, O(1) activation memory in depth)."""
    if isinstance(method, str) and method.lower() in REVERSIBLE_METHODS:
        if t_controls is not None:
            raise ValueError(f"{method} blocks keep one control per state step; t_controls cannot be set")
        if memory != "backprop":
            raise ValueError(f"memory={memory!r} applies to Runge-Kutta blocks; {method} blocks are reversible "
                             "already (O(1) memory), leave memory at backprop")
        return REVERSIBLE_METHODS[method.lower()](layer, t_states=t_states)
    return DynamicBlock(layer, method, t_states, t_controls, interpolation, memory)


class Connector(nn.Module):
    """Change of width between blocks: 1x1 convolution (dense map for vectors), batch norm, activation,
    then 2x average pooling when `pool` is set and the feature map is still large enough."""

    def __init__(self, in_channels: int, out_channels: int, dims: int, activation: str,
                 kernel_size: int = 1, pool: bool = False) -> None:
        super().__init__()
        self.conv = _conv(in_channels, out_channels, kernel_size, dims)
        self.norm = BatchNorm(out_channels)
        self.act = ACTIVATIONS[activation]
        self.dims = dims
        self.pool = pool and dims > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(self.conv(x)))
        if self.pool and min(x.shape[2:]) >= 2:
            x = F.avg_pool2d(x, 2) if self.dims == 2 else F.avg_pool1d(x, 2)
        return x


class ODENet(nn.Module):
    """A classifier made of dynamic blocks, one per width in `widths[:-1]`.

    Block i integrates at width `widths[i]`; its connector maps to `widths[i + 1]` and, except after the
    last block, halves the resolution. With the defaults (widths 16-32-64-64, DoubleSym, RK4 over 4 unit
    steps, TV norm, controls on the state times) this is the reference network of the original authors'
    code, 251,866 parameters for 3 input channels and 10 classes.
    """

    def __init__(self, in_channels: int, num_classes: int, widths: Sequence[int] = (16, 32, 64, 64),
                 layer: str = "doublesym", method: str | ButcherTableau = "rk4",
                 t_states: Sequence[float] = (0, 1, 2, 3, 4), t_controls: Sequence[float] | None = None,
                 norm: str | None = "tv", activation: str = "relu", dims: int = 2,
                 interpolation: str = "linear", memory: str = "backprop") -> None:
        super().__init__()
        for what, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{what} must be a positive integer, got {value!r}")
        widths = tuple(widths)
        if len(widths) < 2 or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f"widths must hold at least two positive integers (one per block, then the "
                             f"final width), got {widths!r}")
        self.dims = check_dims(dims)
        activation = check_activation(activation)
        self.in_channels = in_channels
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "widths": list(widths),
                       "layer": layer, "method": method if isinstance(method, str) else method.name,
                       "t_states": list(t_states), "t_controls": None if t_controls is None
                       else list(t_controls), "norm": norm, "activation": activation, "dims": dims,
                       "interpolation": interpolation, "memory": memory}
        self.opening = nn.Sequential(_conv(in_channels, widths[0], 3, dims), BatchNorm(widths[0]))
        self.opening_act = ACTIVATIONS[activation]
        blocks = len(widths) - 1
        self.blocks = nn.ModuleList(
            make_block(make_layer(layer, width, dims=dims, activation=activation, norm=norm), method,
                       t_states, t_controls, interpolation, memory) for width in widths[:-1])
        self.connectors = nn.ModuleList(
            Connector(widths[i], widths[i + 1], dims, activation, pool=i < blocks - 1) for i in range(blocks))
        self.classifier = nn.Linear(widths[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector before the classifier."""
        expected = self.dims + 2
        if x.dim() != expected or x.shape[1] != self.in_channels:
            shape = ("(N, C)", "(N, C, L)", "(N, C, H, W)")[self.dims]
            raise ValueError(f"ODENet expects input {shape} with C = {self.in_channels} "
                             f"(dims={self.dims}), got shape {tuple(x.shape)}")
        x = self.opening_act(self.opening(x))
        for block, connector in zip(self.blocks, self.connectors):
            x = connector(block(x))
        return self.pool(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The last state averaged over its spatial positions: the classifier's input."""
        return x.flatten(2).mean(dim=2) if self.dims > 0 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @property
    def evaluations_per_forward(self) -> int:
        """Layer evaluations inside dynamic blocks for one forward pass."""
        return sum(block.evaluations_per_forward for block in self.blocks)

    def refine(self, factor: int = 2, controls: bool = False) -> ODENet:
        """A copy whose blocks' state steps are each split into `factor` (see `DynamicBlock.refine`)."""
        return refine_network(self, factor, controls)


def decay_parameter_names(model: nn.Module) -> set[str]:
    """Parameters that take weight decay: kernels of blocks, and weights of ordinary conv/linear layers.

    Biases and norm parameters are exempt.
    """
    names = set()
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, BLOCK_TYPES):
            names.update(prefix + name for name in module.decay_parameter_names())
        elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            names.add(prefix + "weight")
    return names
