"""Layers: the right-hand sides f(theta, y) of a block's ODE, their norms and the shapes of their parameters.

A layer holds no tensors; the block that integrates it owns the stacked controls (see `rknet.layers.layer`).
"""

from rknet.layers.layer import (
    ACTIVATIONS,
    DIMS,
    LAYERS,
    Antisymmetric,
    Double,
    DoubleSym,
    Layer,
    PreactDouble,
    Single,
    check_activation,
    check_dims,
    layer_name,
    make_layer,
)

__all__ = ["ACTIVATIONS", "DIMS", "LAYERS", "Antisymmetric", "Double", "DoubleSym", "Layer", "PreactDouble", "Single",
           "check_activation", "check_dims", "layer_name", "make_layer"]
