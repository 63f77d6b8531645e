"""What a saved model holds, checked against what its spec builds before and after anything is allocated.

The seal (`content_digest`) only says a file is unchanged since someone wrote it; these checks say what is in
it can be a model at all: the tensors the spec's network has, with its shapes (compared on the `meta` device,
so a forged spec of 30,000-wide layers allocates nothing), float where the network has floats, and finite
numbers with non-negative batch-norm variances."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch

from rknet.common.limits import shown
from rknet.network.odenet import ODENet
from rknet.network.spec import NetworkSpec
from rknet.solvers.grid import GridWarning


def expected_tensors(spec: NetworkSpec) -> dict[str, torch.Tensor]:
    """The state_dict of `spec`'s network on the meta device: names, shapes and dtypes, no storage."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore", GridWarning)  # warned about when the network was first built
        return ODENet.from_spec(spec).state_dict()


def check_layout(spec: NetworkSpec, found: Mapping[str, tuple[torch.dtype, list[int] | torch.Size]],
                 source: str) -> None:
    """ValueError naming the first tensor that `found` (name -> dtype, shape) lacks, adds, or holds with
    another shape or a dtype of another kind than `spec`'s network."""
    expected = expected_tensors(spec)
    missing = [name for name in expected if name not in found]
    if missing:
        raise ValueError(f"{source} lacks tensor {missing[0]!r}{f' and {len(missing) - 1} more' if missing[1:] else ''}"
                         " that its network has (saved by another version, or edited)")
    extra = [name for name in found if name not in expected]
    if extra:
        raise ValueError(f"{source} holds tensor {shown(extra[0])}, which its network does not have")
    for name, tensor in expected.items():
        dtype, shape = found[name]
        if tuple(shape) != tuple(tensor.shape):
            raise ValueError(f"{source}: tensor {name!r} has shape {shown(list(shape))}; its network's is "
                             f"{list(tensor.shape)}")
        if dtype.is_floating_point != tensor.dtype.is_floating_point or dtype == torch.bool:
            raise ValueError(f"{source}: tensor {name!r} is stored as {dtype}; its network holds {tensor.dtype} "
                             "(refused rather than cast)")


def check_values(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """ValueError naming the first tensor with NaN or infinite values, or a negative batch-norm running_var."""
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{source}: entry {shown(name)} is a {type(tensor).__name__}, not a tensor")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{source}: tensor {name!r} holds NaN or infinite values")
        if name.endswith("running_var") and (tensor < 0).any():
            raise ValueError(f"{source}: tensor {name!r} holds negative variances")


def layout_of(tensors: Mapping[str, object]) -> dict[str, tuple[torch.dtype, torch.Size]]:
    """name -> (dtype, shape) of a loaded state_dict; TypeError-free for entries that are not tensors."""
    layout = {}
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"entry {shown(name)} is a {type(tensor).__name__}, not a tensor")
        layout[name] = (tensor.dtype, tensor.shape)
    return layout
