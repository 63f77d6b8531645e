"""Which epoch's model a run keeps (`--select best|last`).

`best` keeps the model of highest validation accuracy; ties (frequent: 144 validation images move in steps
of 0.69 points) go to the lower validation loss, then to the later epoch, so that an early epoch that first
reached an accuracy does not shadow a later, better-fitted one. `last` keeps the last epoch's model. Without
a validation split both keep the last epoch's model. Early stopping (`--patience`) watches the `best` rule
either way.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rknet.common.checks import choice

SELECTIONS = ("best", "last")
SELECTION_WORDS = {"best": "best validation", "last": "last epoch"}


def no_best() -> dict[str, Any]:
    """The kept-model record before any epoch."""
    return {"val_acc": None, "val_loss": None, "epoch": 0, "state": None}


def improves(record: dict[str, Any], best: dict[str, Any]) -> bool:
    """Whether epoch `record` replaces the kept model `best` under the `best` rule: higher validation
    accuracy, or the same with a validation loss no higher (a full tie goes to the later epoch)."""
    if record["val_acc"] is None or best["state"] is None:
        return True
    if record["val_acc"] != best["val_acc"]:
        return record["val_acc"] > best["val_acc"]
    kept_loss = best.get("val_loss")  # absent in checkpoints written before the loss broke ties
    return record["val_loss"] <= (math.inf if kept_loss is None else kept_loss)


def kept(record: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """The kept-model record of epoch `record` with a copy of `model`'s weights and statistics."""
    return {"val_acc": record["val_acc"], "val_loss": record["val_loss"], "epoch": record["epoch"],
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def check_select(select: str) -> str:
    """`select` if it is a known rule; ValueError naming the rules otherwise."""
    return choice("select", select, SELECTIONS)
