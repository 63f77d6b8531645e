"""Random states saved in checkpoints, so that resuming continues the very same random sequence."""

from __future__ import annotations

import torch


def rng_state(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """The global, data-order and (on CUDA) device random states, for a checkpoint."""
    state = {"torch": torch.get_rng_state(), "loader": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator, device: torch.device) -> None:
    """Put back what `rng_state` took, so a resumed run draws the same numbers as an uninterrupted one."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loader"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
