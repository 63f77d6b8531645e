"""How much memory a forward pass leaves allocated for the backward pass, on any device.

Counted by watching every tensor the forward pass creates (a `TorchDispatchMode`): the storages still
alive when it returns, other than the output's, are what autograd (and checkpointing's caches) hold until
backward. This sees through `torch.utils.checkpoint`, selective checkpointing and custom autograd
Functions alike, needs no GPU, and counts a storage once however many views of it are kept.
Not counted: the inputs and parameters (they exist anyway) and tensors created inside compiled code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class _Allocations(TorchDispatchMode):
    """Weak references to the storage of every tensor an operation returns, with its size in bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: list[tuple[StorageWeakRef, int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        inputs = {_pointer(leaf) for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)}
        for leaf in tree_leaves(output):
            pointer = _pointer(leaf) if isinstance(leaf, torch.Tensor) else None
            if pointer is not None and pointer not in inputs:  # views and in-place
                storage = leaf.untyped_storage()  # results share their input's storage: not new memory
                self.storages.append((StorageWeakRef(storage), storage.data_ptr(), storage.nbytes()))
        return output


def _pointer(tensor: torch.Tensor) -> int | None:
    """The address of the tensor's storage; None for one without a readable storage (some intermediates of
    forward-mode AD, as implicit blocks' Jacobian-vector products create)."""
    try:
        return tensor.untyped_storage().data_ptr()
    except RuntimeError:
        return None


def held_for_backward(forward: Callable[[], Any]) -> int:
    """Bytes that `forward()` leaves allocated, apart from its own output: the activations kept for the
    backward pass when `forward` runs with grad enabled."""
    allocations = _Allocations()
    with allocations:
        output = forward()
    returned = {_pointer(leaf) for leaf in tree_leaves(output) if isinstance(leaf, torch.Tensor)}
    alive = {ref.cdata: size for ref, pointer, size in allocations.storages
             if not ref.expired() and pointer not in returned}
    return sum(alive.values())
