"""The picture of `rknet eval`: test accuracy and loss against the number of steps, one line per method.

If a network learned an ODE, its accuracy and loss settle as the steps grow for every convergent method;
if it learned a fixed-depth map, they do not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rknet.common.figures import agg_figure, save_figure


def plot_evaluation(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Accuracy (left) and loss (right) against state steps per block, one line per method, the trained
    setting ringed; rows as `rknet.evaluate_run` returns them."""
    rows = [row for row in rows if row["steps"] is not None]  # adaptive rows have no step count
    figure = agg_figure((10, 4))
    from matplotlib.ticker import NullLocator

    accuracy_axes, loss_axes = figure.subplots(1, 2)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    for method in methods:
        mine = sorted((row for row in rows if row["method"] == method), key=lambda row: row["steps"])
        steps = [row["steps"] for row in mine]
        line, = accuracy_axes.plot(steps, [100 * row["test_acc"] for row in mine], marker="o", label=method)
        loss_axes.plot(steps, [row["test_loss"] for row in mine], marker="o", color=line.get_color())
        for row in mine:
            if row["trained"]:
                for axes, value in ((accuracy_axes, 100 * row["test_acc"]), (loss_axes, row["test_loss"])):
                    axes.plot(row["steps"], value, marker="o", markersize=13, fillstyle="none", color="k")
    counts = sorted({row["steps"] for row in rows})
    loss_axes.set_yscale("log")
    for axes, label in ((accuracy_axes, "test accuracy (%)"), (loss_axes, "test loss (log scale)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(counts, labels=[str(count) for count in counts])
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set(xlabel="state steps per block", ylabel=label)
        axes.grid(alpha=0.3)
    accuracy_axes.legend(title="method (ringed: as trained)")
    figure.suptitle("Re-discretised evaluation: the same weights theta(t), other integrators and grids")
    return save_figure(figure, path)
