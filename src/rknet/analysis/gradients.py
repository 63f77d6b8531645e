"""Optimise-then-discretise against discretise-then-optimise: how far the adjoint gradient is from
backprop's on one network and batch, per block and in total, over step counts and methods.

Each (method, steps) variant is the network re-discretised (`rknet.rediscretize`: same theta(t)), run in
float64 and eval mode (so batch norm outside the blocks uses its running statistics and both passes see
the same function); the relative difference is |g_adjoint - g_backprop| / |g_backprop| over the block's
parameters, and over every parameter and the input for the total. It shrinks like h^p as the steps halve
when the adjoint solve converges (see docs/gradients.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rknet.blocks.registry import check_rediscretization
from rknet.common.figures import agg_figure, save_figure
from rknet.methods.registry import resolve_method
from rknet.methods.tableau import get_tableau
from rknet.network.odenet import ODENet
from rknet.network.rediscretize import rediscretize


def _gradients(model: ODENet, x: torch.Tensor, labels: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-block flattened parameter gradients of the cross-entropy, and all gradients (input included)."""
    x = x.detach().requires_grad_()
    model.zero_grad()
    F.cross_entropy(model(x), labels).backward()
    blocks = [torch.cat([p.grad.flatten() for p in block.parameters()]) for block in model.blocks]
    everything = torch.cat([x.grad.flatten()] + [p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return blocks, everything


def gradient_agreement(model: ODENet, x: torch.Tensor, labels: torch.Tensor,
                       steps_per_unit_time: Sequence[int] = (1, 2, 4, 8, 16),
                       methods: Sequence[str] = ("euler", "rk4")) -> list[dict[str, Any]]:
    """Rows {method, steps, steps_per_unit_time, blocks: [relative difference per block], total}."""
    if not model.spec.capabilities.vector_field:
        raise ValueError(f"gradient agreement needs Runge-Kutta blocks (the adjoint strategy); this network's "
                         f"method is {model.spec.method_name}")
    for method in methods:  # every variant must be re-discretisable, before any of them runs
        check_rediscretization(model.spec.method, resolve_method(method))
    span = model.spec.t_states[-1] - model.spec.t_states[0]
    x, rows = x.double(), []
    for method in methods:
        for rate in steps_per_unit_time:
            count = max(1, round(rate * span))
            variant = rediscretize(model, method, count).double().eval()
            results = {}
            for gradient in ("backprop", "adjoint"):
                copy = variant.resampled(variant.spec.replace(gradient=gradient)).double().eval()
                results[gradient] = _gradients(copy, x, labels)
            (od_blocks, od_all), (do_blocks, do_all) = results["adjoint"], results["backprop"]
            relative = lambda a, b: ((a - b).norm() / b.norm()).item()  # noqa: E731
            rows.append({"method": variant.spec.method_name, "steps": count, "steps_per_unit_time": rate,
                         "blocks": [relative(a, b) for a, b in zip(od_blocks, do_blocks)],
                         "total": relative(od_all, do_all)})
    return rows


def format_agreement(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of `gradient_agreement`'s rows."""
    blocks = len(rows[0]["blocks"]) if rows else 0
    lines = ["| method | steps per unit time | steps per block | "
             + " | ".join(f"block {i}" for i in range(blocks)) + " | total |", "|---" * (blocks + 4) + "|"]
    for row in rows:
        cells = " | ".join(f"{value:.2e}" for value in row["blocks"])
        lines.append(f"| {row['method']} | {row['steps_per_unit_time']} | {row['steps']} | {cells} | "
                     f"{row['total']:.2e} |")
    return "\n".join(lines)


def plot_agreement(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Log-log plot of the total relative difference against the step size, one line per method, with a
    dashed reference line of slope p (the method's order) through its finest point: where the adjoint solve
    converges, the measured line runs parallel to it."""
    figure = agg_figure((6.4, 4.6))
    axis = figure.subplots()
    for index, method in enumerate(dict.fromkeys(row["method"] for row in rows)):
        mine = sorted((row for row in rows if row["method"] == method), key=lambda row: row["steps_per_unit_time"])
        steps = [1 / row["steps_per_unit_time"] for row in mine]
        errors = [row["total"] for row in mine]
        colour = f"C{index}"
        axis.loglog(steps, errors, "o-", color=colour, label=method)
        order = _order(method)
        if order is not None and errors[-1] > 0:
            finest, error = steps[-1], errors[-1]
            axis.loglog(steps, [error * (h / finest) ** order for h in steps], "--", color=colour, linewidth=1,
                        alpha=0.7, label=f"slope {order} (h^{order}, order of {method})")
    measured = [row["total"] for row in rows if row["total"] > 0]
    if measured:  # the measured values set the scale; a steep reference line leaves the frame
        axis.set_ylim(min(measured) / 3, max(measured) * 3)
    axis.set_xlabel("step size h (1 / steps per unit time)")
    axis.set_ylabel("|g_OD - g_DO| / |g_DO|")
    axis.set_title("adjoint (OD) against backprop (DO) gradients\ndashed: slope-p reference through the finest point",
                   fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=8)
    return save_figure(figure, path)


def _order(method: str) -> int | None:
    """The classical order of a method's tableau; None where it has none (no reference line is drawn)."""
    try:
        return get_tableau(method).order
    except (ValueError, TypeError, KeyError):
        return None
