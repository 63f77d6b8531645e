"""Layer functions f(theta, y): the right-hand sides that dynamic blocks integrate.

A layer holds no tensors. It declares the shapes of its parameters (`parameter_specs`) and its batch-norm
sites (`batch_norm_sites`); the block stacks the parameters over control times and calls the layer with
the interpolated values: `layer(params, y, stats, training)`. The same layer works on dense vectors
(dims=0, K a matrix), 1-D signals (dims=1, width-3 convolution) and 2-D images (dims=2, 3x3 convolution).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from rknet.common.checks import finite_number, positive_int
from rknet.common.kernels import apply_kernel, apply_kernel_transpose, kernel_shape
from rknet.layers.controls import ParameterSpec
from rknet.layers.norms import BatchStats, apply_norm, check_norm, norm_parameter_specs

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "identity": lambda x: x,
    "sigmoid": torch.sigmoid,
    "leaky_relu": F.leaky_relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "softplus": F.softplus,
}


DIMS = (0, 1, 2)


def check_activation(name: str) -> str:
    key = name.lower() if isinstance(name, str) else name
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid activations: {', '.join(ACTIVATIONS)}")
    return key


def check_dims(dims: int) -> int:
    if dims not in DIMS:
        raise ValueError(f"dims must be 0 (vectors), 1 (signals) or 2 (images), got {dims!r}")
    return dims


class Layer:
    """Base class: channel count, dimensionality, activation and norm shared by every layer type."""

    name = "layer"
    norm_sites: tuple[str, ...] = ()
    option_names: tuple[str, ...] = ()  # keyword arguments beyond channels, dims, activation and norm

    def __init__(self, channels: int, *, dims: int = 2, activation: str = "relu",
                 norm: str | None = None) -> None:
        self.channels = positive_int("channels", channels)
        self.dims = check_dims(dims)
        self.activation = check_activation(activation)
        self.norm = check_norm(norm)
        self.act = ACTIVATIONS[self.activation]

    def options(self) -> dict[str, Any]:
        """This layer's own keyword arguments (e.g. Antisymmetric's gamma), as a network spec stores them."""
        return {name: getattr(self, name) for name in self.option_names}

    def parameter_specs(self) -> dict[str, ParameterSpec]:
        specs = self.kernel_specs()
        for site in self.norm_sites:
            specs.update(norm_parameter_specs(self.norm, self.channels, site))
        return specs

    def kernel_specs(self) -> dict[str, ParameterSpec]:
        raise NotImplementedError

    def batch_norm_sites(self) -> tuple[str, ...]:
        """The norm sites that need running statistics (only when the norm is batch norm)."""
        return self.norm_sites if self.norm == "batch" else ()

    def _kernel(self) -> ParameterSpec:
        return ParameterSpec(kernel_shape(self.channels, self.channels, self.dims))

    def _bias(self) -> ParameterSpec:
        return ParameterSpec((self.channels,), "zeros", decay=False)

    def _normalise(self, site: str, x: torch.Tensor, params: Mapping[str, torch.Tensor],
                   stats: Mapping[str, BatchStats], training: bool) -> torch.Tensor:
        return apply_norm(self.norm, x, params, site, stats.get(site), training)

    def __call__(self, params: Mapping[str, torch.Tensor], y: torch.Tensor,
                 stats: Mapping[str, BatchStats] | None = None, training: bool = False) -> torch.Tensor:
        expected = self.channels
        if y.dim() != self.dims + 2 or y.shape[1] != expected:
            raise ValueError(f"{self.name} layer expects input of shape (N, {expected}"
                             f"{', L' if self.dims == 1 else ', H, W' if self.dims == 2 else ''}), "
                             f"got {tuple(y.shape)}")
        return self.forward(params, y, stats or {}, training)

    def forward(self, params, y, stats, training) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        options = "".join(f", {name}={value!r}" for name, value in self.options().items())
        return (f"{type(self).__name__}({self.channels}, dims={self.dims}, activation={self.activation!r}, "
                f"norm={self.norm!r}{options})")


class Single(Layer):
    """f(y) = act(N(K y + b))."""

    name = "single"
    norm_sites = ("norm",)

    def kernel_specs(self):
        return {"K": self._kernel(), "b": self._bias()}

    def forward(self, params, y, stats, training):
        z = apply_kernel(y, params["K"], params["b"], self.dims)
        return self.act(self._normalise("norm", z, params, stats, training))


class Double(Layer):
    """The ResNet basic block: f(y) = act(N2(K2 act(N1(K1 y + b1)) + b2))."""

    name = "double"
    norm_sites = ("norm1", "norm2")

    def kernel_specs(self):
        return {"K1": self._kernel(), "b1": self._bias(), "K2": self._kernel(), "b2": self._bias()}

    def forward(self, params, y, stats, training):
        z = apply_kernel(y, params["K1"], params["b1"], self.dims)
        z = self.act(self._normalise("norm1", z, params, stats, training))
        z = apply_kernel(z, params["K2"], params["b2"], self.dims)
        return self.act(self._normalise("norm2", z, params, stats, training))


class PreactDouble(Double):
    """Pre-activated double layer: f(y) = N2(K2 act(N1(K1 act(y) + b1)) + b2) (Double's parameters)."""

    name = "preactdouble"

    def forward(self, params, y, stats, training):
        z = apply_kernel(self.act(y), params["K1"], params["b1"], self.dims)
        z = self.act(self._normalise("norm1", z, params, stats, training))
        z = apply_kernel(z, params["K2"], params["b2"], self.dims)
        return self._normalise("norm2", z, params, stats, training)


class DoubleSym(Layer):
    """Parabolic layer: f(y) = -K^T act(N(K y + b1)) + b2, one kernel used twice.

    Without a norm and with a monotone activation its Jacobian -K^T D K is negative semi-definite, so the
    forward dynamics are stable (Ruthotto & Haber).
    """

    name = "doublesym"
    norm_sites = ("norm",)

    def kernel_specs(self):
        return {"K": self._kernel(), "b1": self._bias(), "b2": self._bias()}

    def forward(self, params, y, stats, training):
        kernel = params["K"]
        z = apply_kernel(y, kernel, params["b1"], self.dims)
        z = self.act(self._normalise("norm", z, params, stats, training))
        return apply_kernel_transpose(z, -kernel, params["b2"], self.dims)


class Antisymmetric(Layer):
    """f(y) = act(N((K - K^T - gamma I) y + b)): a Jacobian with eigenvalues near the imaginary axis.

    For dense layers K - K^T is the antisymmetric part of a matrix; for convolutions it is the
    convolution minus its adjoint. `gamma` >= 0 adds a little damping (Haber & Ruthotto).
    """

    name = "antisymmetric"
    norm_sites = ("norm",)
    option_names = ("gamma",)

    def __init__(self, channels: int, *, dims: int = 2, activation: str = "relu",
                 norm: str | None = None, gamma: float = 0.01) -> None:
        super().__init__(channels, dims=dims, activation=activation, norm=norm)
        self.gamma = finite_number("gamma", gamma, 0)

    def kernel_specs(self):
        return {"K": self._kernel(), "b": self._bias()}

    def forward(self, params, y, stats, training):
        kernel = params["K"]
        z = apply_kernel(y, kernel, params["b"], self.dims)
        z = z - apply_kernel_transpose(y, kernel, None, self.dims) - self.gamma * y
        return self.act(self._normalise("norm", z, params, stats, training))


LAYERS: dict[str, type[Layer]] = {cls.name: cls for cls in (Single, Double, PreactDouble, DoubleSym,
                                                              Antisymmetric)}
"""The layer classes by name (`--layer`): the right-hand side f inside each dynamic block."""


def layer_name(name: str) -> str:
    """The registered name of a layer (case and underscores ignored); ValueError listing the valid ones."""
    key = name.lower().replace("_", "") if isinstance(name, str) else name
    if key not in LAYERS:
        raise ValueError(f"unknown layer {name!r}; valid layers: {', '.join(LAYERS)}")
    return key


def make_layer(name: str, channels: int, *, dims: int = 2, activation: str = "relu", norm: str | None = None,
               **options: Any) -> Layer:
    """A layer by name (see `LAYERS`) with its own options, e.g. `make_layer("antisymmetric", 8, gamma=0.1)`."""
    cls = LAYERS[layer_name(name)]
    unknown = sorted(set(options) - set(cls.option_names))
    if unknown:
        valid = ", ".join(cls.option_names) or "none"
        raise ValueError(f"unknown option {unknown[0]!r} for layer {cls.name}; its options: {valid}")
    return cls(channels, dims=dims, activation=activation, norm=norm, **options)
