"""ODENet: opening layer, dynamic blocks joined by connectors, global pooling, linear classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rknet.blocks.base import Block
from rknet.blocks.registry import check_rediscretization
from rknet.layers import ACTIVATIONS
from rknet.layers.norms import REFERENCE_BATCH_EPS, BatchNorm
from rknet.network.spec import NetworkSpec
from rknet.solvers.grid import refine_times


def _conv(in_channels: int, out_channels: int, kernel_size: int, dims: int) -> nn.Module:
    if dims == 0:
        return nn.Linear(in_channels, out_channels)
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    return conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class Connector(nn.Module):
    """Change of width between blocks: 1x1 convolution (dense map for vectors), batch norm, activation,
    then 2x average pooling when `pool` is set and the feature map is still large enough."""

    def __init__(self, in_channels: int, out_channels: int, dims: int, activation: str,
                 kernel_size: int = 1, pool: bool = False) -> None:
        super().__init__()
        self.conv = _conv(in_channels, out_channels, kernel_size, dims)
        self.norm = BatchNorm(out_channels, eps=REFERENCE_BATCH_EPS)
        self.act = ACTIVATIONS[activation]
        self.dims = dims
        self.pool = pool and dims > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(self.conv(x)))
        if self.pool and min(x.shape[2:]) >= 2:
            x = F.avg_pool2d(x, 2) if self.dims == 2 else F.avg_pool1d(x, 2)
        return x


class ODENet(nn.Module):
    """A classifier made of dynamic blocks, one per width in `widths[:-1]`, described by a `NetworkSpec`.

    `ODENet(in_channels, num_classes, **options)` takes the spec's fields as options (`layer` may also be
    a Layer object, a template for every block); `ODENet.from_spec(spec)` takes a spec. Block i integrates
    at width `widths[i]`; its connector maps to `widths[i + 1]` and, except after the last block, halves
    the resolution. `ODENet()` is the reference network of the original authors' code (DynamicBlocks):
    3 input channels, 10 classes, widths 16-32-64-64, DoubleSym with TV norm, RK4 over 4 unit steps,
    controls on the state times, batch-norm eps 1e-4 in the opening and connectors; 251,866 parameters.
    """

    def __init__(self, in_channels: int | None = None, num_classes: int | None = None, *,
                 spec: NetworkSpec | None = None, **options) -> None:
        super().__init__()
        if spec is None:
            sizes = {"in_channels": in_channels, "num_classes": num_classes}
            spec = NetworkSpec.of(**{k: v for k, v in sizes.items() if v is not None}, **options)
        elif in_channels is not None or num_classes is not None or options:
            raise TypeError("give either spec= or the network's options, not both")
        self.spec = spec
        widths, dims = spec.widths, spec.dims
        self.opening = nn.Sequential(_conv(spec.in_channels, widths[0], 3, dims),
                                     BatchNorm(widths[0], eps=REFERENCE_BATCH_EPS))
        self.opening_act = ACTIVATIONS[spec.activation]
        count = len(widths) - 1
        self.blocks = nn.ModuleList(spec.make_block(width) for width in widths[:-1])
        self.connectors = nn.ModuleList(
            Connector(widths[i], widths[i + 1], dims, spec.activation, pool=i < count - 1) for i in range(count))
        self.classifier = nn.Linear(widths[-1], spec.num_classes)

    @classmethod
    def from_spec(cls, spec: NetworkSpec) -> ODENet:
        return cls(spec=spec)

    def _check_input(self, x: torch.Tensor) -> None:
        spec = self.spec
        if not isinstance(x, torch.Tensor) or x.dim() != spec.dims + 2 or x.shape[1] != spec.in_channels:
            shape = ("(N, C)", "(N, C, L)", "(N, C, H, W)")[spec.dims]
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"ODENet expects input {shape} with C = {spec.in_channels} (dims={spec.dims}), "
                             f"got {got}")
        if not x.is_floating_point():
            raise ValueError(f"ODENet expects floating-point input, got dtype {x.dtype} (use x.float())")
        weights = self.classifier.weight.dtype
        if x.dtype != weights and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(f"ODENet holds {weights} weights but got {x.dtype} input; convert one of them "
                             f"(x.to({weights}) or net.to({x.dtype}))")

    def features(self, x: torch.Tensor, states: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The pooled feature vector before the classifier; given a list `states`, each block's states at
        its state times are appended to it (as `Block.trajectory` gives them)."""
        self._check_input(x)
        x = self.opening_act(self.opening(x))
        for block, connector in zip(self.blocks, self.connectors):
            if states is None:
                x = connector(block(x))
            else:
                states.append(block.trajectory(x))
                x = connector(states[-1][-1])
        return self.pool(x)

    def forward(self, x: torch.Tensor, return_states: bool = False):
        """Logits; with `return_states=True`, the pair (logits, states): each block's states at its state
        times, a list of tensors of shape (num_steps + 1, N, width, ...)."""
        states: list[torch.Tensor] | None = [] if return_states else None
        logits = self.classifier(self.features(x, states))
        return (logits, states) if return_states else logits

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The last state averaged over its spatial positions: the classifier's input."""
        return x.flatten(2).mean(dim=2) if self.spec.dims > 0 else x

    @property
    def evaluations_per_forward(self) -> int:
        """Layer evaluations inside dynamic blocks for one forward pass."""
        return sum(block.evaluations_per_forward for block in self.blocks)

    def resampled(self, spec: NetworkSpec) -> ODENet:
        """A copy built from `spec` (another grid or method of the same family) that keeps this network's
        theta(t), its other weights and its statistics; the original is left untouched."""
        check_rediscretization(self.spec.method, spec.method)
        copy = ODENet.from_spec(spec)
        reference = next(self.parameters())
        copy.to(device=reference.device, dtype=reference.dtype)
        outside = {k: v for k, v in self.state_dict().items() if not k.startswith("blocks.")}
        copy.load_state_dict(outside, strict=False)
        for source, target in zip(self.blocks, copy.blocks, strict=True):
            target.adopt(source)
        return copy.train(self.training)

    def refine(self, factor: int = 2, controls: bool = False) -> ODENet:
        """A copy whose blocks' state steps are each split into `factor` (see `Block.refine`); its spec
        holds the refined grids, so it can be rebuilt from `spec`."""
        if not isinstance(controls, bool):
            raise TypeError(f"controls must be a bool (refine the control grid too?), got {controls!r}")
        spec = self.spec
        t_controls = None  # blocks without a control grid: one control per (refined) step
        if spec.capabilities.control_grid:
            t_controls = refine_times(spec.control_times, factor) if controls else spec.control_times
        return self.resampled(spec.replace(t_states=refine_times(spec.t_states, factor), t_controls=t_controls))


def decay_parameter_names(model: nn.Module) -> set[str]:
    """Parameters that take weight decay: kernels of blocks, and weights of ordinary conv/linear layers.

    Biases and norm parameters are exempt.
    """
    names = set()
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, Block):
            names.update(prefix + name for name in module.decay_parameter_names())
        elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            names.add(prefix + "weight")
    return names
