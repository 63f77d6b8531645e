"""Figures: stability regions, Jacobian spectra against them, feature trajectories of 2-D toy problems.

matplotlib is optional (`pip install 'rknet[plots]'`) and imported only when a figure is drawn. Figures
are rendered by the Agg canvas directly, without pyplot, so drawing never switches the backend of an
interactive session (e.g. a notebook) and leaves no open figures behind.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from rknet.analysis.spectrum import BlockSpectrum
from rknet.analysis.stability import group_by_stability, is_stable, stability_grid
from rknet.analysis.trajectories import feature_trajectories, inference, logits_after_block
from rknet.common.figures import agg_figure, require_matplotlib, save_figure
from rknet.methods.imex_pairs import IMEX_PAIRS, get_imex_pair
from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.network.odenet import ODENet

REGION_RE = (-5.0, 1.0)
REGION_RE_IMPLICIT = (-5.0, 3.0)  # backward Euler's unstable disc |1 - z| < 1 reaches Re = 2
REGION_IM = (-3.5, 3.5)
REGION_ALPHA = 0.18
LINESTYLES = ("-", "--", ":", "-.")
DECISION_RESOLUTION = 400
SPECTRUM_COLUMNS = 4
# Okabe & Ito's colour-blind-safe palette (black left out: it draws edges and boundaries)
CLASS_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442")
INSIDE_STYLE = {"c": "#0072B2", "s": 9, "alpha": 0.35, "linewidths": 0, "zorder": 3}
OUTSIDE_STYLE = {"c": "#D55E00", "s": 42, "marker": "X", "edgecolors": "k", "linewidths": 0.4, "zorder": 4}
_MARGIN = 0.1


def _new_figure(panels: int, panel_size: tuple[float, float], columns: int = 3):
    """A figure with `panels` axes on an Agg canvas; raises PlotsUnavailable naming the fix without matplotlib."""
    figure, (axes,) = _panel_grid([panels], panel_size, min(panels, columns))
    return figure, axes


def _panel_grid(counts: Sequence[int], panel_size: tuple[float, float], columns: int):
    """A figure in which group g fills `counts[g]` panels, starting on a new row and wrapping after
    `columns`; returns the figure and each group's axes (unused cells hidden)."""
    rows = [math.ceil(count / columns) for count in counts]
    figure = agg_figure((panel_size[0] * columns, panel_size[1] * sum(rows)))
    axes = figure.subplots(sum(rows), columns, squeeze=False)
    groups, row = [], 0
    for count, height in zip(counts, rows, strict=True):
        cells = axes[row:row + height].ravel()
        for unused in cells[count:]:
            unused.set_visible(False)
        groups.append(cells[:count])
        row += height
    return figure, groups


def _complex_plane(ax, re: Sequence[float], im: Sequence[float]) -> None:
    """Axes for h * lambda over re x im: labelled, equal aspect, grid, and the real and imaginary axes."""
    ax.set_xlabel("Re(hλ)")
    ax.set_ylabel("Im(hλ)")
    ax.set_xlim(*re)
    ax.set_ylim(*im)
    ax.set_aspect("equal")
    ax.grid(True, linewidth=0.5, alpha=0.5)
    ax.axhline(0, color="0.4", linewidth=0.8, zorder=1.5)
    ax.axvline(0, color="0.4", linewidth=0.8, zorder=1.5)


def _draw_region(ax, tableau: ButcherTableau, re: Sequence[float], im: Sequence[float], resolution: int,
                 colour, linestyle: str = "-", alpha: float | None = REGION_ALPHA, linewidth: float = 1.6) -> None:
    """Shade |R(z)| <= 1 (unless alpha is None) and outline |R(z)| = 1; outlines sit above every fill."""
    real, imag, magnitude = (grid.numpy() for grid in stability_grid(tableau, re, im, resolution))
    if alpha is not None:
        ax.contourf(real, imag, magnitude, levels=[0, 1], colors=[colour], alpha=alpha, zorder=1)
    ax.contour(real, imag, magnitude, levels=[1], colors=[colour], linestyles=[linestyle], linewidths=linewidth,
               zorder=2)


def _describe(group: Sequence[ButcherTableau]) -> str:
    """Legend text: names, with order and stages once when the whole group shares them."""
    details = [(tableau.order, tableau.stages) for tableau in group]
    text = lambda order, stages: f"order {order}, {stages} stage{'s' * (stages > 1)}"  # noqa: E731
    if len(set(details)) == 1:
        return f"{', '.join(tableau.name for tableau in group)} ({text(*details[0])})"
    return ", ".join(f"{tableau.name} ({text(*detail)})" for tableau, detail in zip(group, details, strict=True))


def plot_stability_regions(methods: str | ButcherTableau | Sequence[str | ButcherTableau],
                           path: str | os.PathLike, re: Sequence[float] | None = None,
                           im: Sequence[float] = REGION_IM, resolution: int = 400) -> Path:
    """The stability regions |R(h lambda)| <= 1 of several methods (names or tableaus); save a PNG.

    Methods with the same stability function (e.g. every 2-stage method of order 2) have the same region:
    it is drawn once, named after them all. Explicit methods' bounded regions share one panel; with an
    implicit method (unbounded regions, whose fills would pile up) each region gets its own panel, the
    others' boundaries in grey. `re` defaults to [-5, 1], or [-5, 3] with an implicit method, so that
    unstable discs to the right of the imaginary axis (backward Euler's |1 - z| < 1) show whole.
    """
    from_one = isinstance(methods, (str, ButcherTableau))
    tableaus = [tableau for method in ([methods] if from_one else methods) for tableau in _tableaus(method)]
    if not tableaus:
        raise ValueError("methods must hold at least one method name or ButcherTableau, got none")
    require_matplotlib()  # PlotsUnavailable naming the extra, before the imports below
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    explicit = all(tableau.explicit for tableau in tableaus)
    re = (REGION_RE if explicit else REGION_RE_IMPLICIT) if re is None else re
    groups, colours = group_by_stability(tableaus), colormaps["tab10"].colors
    if explicit or len(groups) == 1:
        figure, (ax,) = _new_figure(1, (7.5, 7.0))
        handles = []
        for index, group in enumerate(groups):
            colour, style = colours[index % len(colours)], LINESTYLES[index % len(LINESTYLES)]
            _draw_region(ax, group[0], re, im, resolution, colour, style)
            handles.append(Patch(facecolor=(*colour, REGION_ALPHA), edgecolor=colour, linestyle=style,
                                 linewidth=1.6, label=_describe(group)))
        _complex_plane(ax, re, im)
        ax.set_title("Stability regions |R(hλ)| ≤ 1 (shaded; line: |R(hλ)| = 1)")
        figure.legend(handles=handles, loc="outside lower center", ncols=1 if len(groups) > 3 else len(groups))
        return save_figure(figure, path)
    figure, axes = _new_figure(len(groups), (3.6, 3.6))
    for index, (ax, group) in enumerate(zip(axes, groups, strict=False)):
        for other in groups:
            if other is not group:
                _draw_region(ax, other[0], re, im, resolution, "0.6", alpha=None, linewidth=0.8)
        _draw_region(ax, group[0], re, im, resolution, colours[index % len(colours)], alpha=0.35)
        _complex_plane(ax, re, im)
        ax.set_title(textwrap.fill(_describe(group), 42), fontsize=9)
    figure.suptitle("Stability regions |R(hλ)| ≤ 1: shaded, bounded by the coloured line; grey lines: the other "
                    "panels' boundaries", fontsize=10)
    return save_figure(figure, path)


def _tableaus(method: str | ButcherTableau) -> list[ButcherTableau]:
    """A method's tableau; for an IMEX pair both halves (the explicit region bounds f's eigenvalues h lambda,
    the implicit one those of -L)."""
    if isinstance(method, str) and method.strip().lower() in IMEX_PAIRS:
        pair = get_imex_pair(method)
        return [pair.explicit, pair.implicit]
    return [get_tableau(method)]


def _window(points: torch.Tensor) -> tuple[tuple[float, float], tuple[float, float]]:
    """A square (re, im) window holding the default region window and the points, with a margin where
    the points stretch it; square so that equal-aspect panels fill their space."""
    bounds = []
    for values, (low, high) in ((points.real, REGION_RE), (points.imag, REGION_IM)):
        smallest, largest = min(low, values.min().item()), max(high, values.max().item())
        margin = _MARGIN * (largest - smallest) if (smallest, largest) != (low, high) else 0.0
        bounds.append((smallest - margin, largest + margin))
    half = max(high - low for low, high in bounds) / 2
    return tuple(((low + high) / 2 - half, (low + high) / 2 + half) for low, high in bounds)


def plot_spectra(spectra: Sequence[BlockSpectrum], path: str | os.PathLike, resolution: int = 300) -> Path:
    """One panel per block and state time: the method's stability region and that time's scaled eigenvalues
    h * lambda, half transparent so that dense clusters show; those outside the region are drawn as crosses
    on top. Titles give the count outside, the largest |R(h lambda)| and where it is. Saves a PNG."""
    if not spectra:
        raise ValueError("spectra must hold at least one BlockSpectrum (from block_spectra), got none")
    columns = min(max(len(spectrum.times) for spectrum in spectra), SPECTRUM_COLUMNS)
    figure, groups = _panel_grid([len(spectrum.times) for spectrum in spectra], (3.9, 3.9), columns)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    for index, (axes, spectrum) in enumerate(zip(groups, spectra, strict=True)):
        re, im = _window(torch.cat(spectrum.eigenvalues).cpu())
        for ax, time, values, count in zip(axes, spectrum.times, spectrum.eigenvalues, spectrum.stability_per_time(),
                                           strict=True):
            values = values.cpu()
            _draw_region(ax, spectrum.tableau, re, im, resolution, "0.55", alpha=0.35)
            outside = ~is_stable(spectrum.tableau, values)
            for chosen, style in ((~outside, INSIDE_STYLE), (outside, OUTSIDE_STYLE)):
                ax.scatter(values[chosen].real.numpy(), values[chosen].imag.numpy(), **style)
            _complex_plane(ax, re, im)
            estimate = "" if spectrum.exact else ", largest |λ| only"
            ax.set_title(f"block {index} ({spectrum.tableau.name}), t={time:g}{estimate}\n"
                         + count.text().replace("; ", "\n"), fontsize=8.5)
    handles = [Patch(facecolor=(0.55, 0.55, 0.55, 0.35), edgecolor="0.55", label="stability region |R(hλ)| ≤ 1"),
               Line2D([], [], linestyle="", marker="o", color=INSIDE_STYLE["c"], alpha=0.6,
                      label="hλ inside (half transparent: darker = denser)"),
               Line2D([], [], linestyle="", marker="X", color=OUTSIDE_STYLE["c"], markeredgecolor="k",
                      label="hλ outside: this mode grows by |R(hλ)| > 1 per step")]
    exact = all(spectrum.exact for spectrum in spectra)
    figure.suptitle("Scaled eigenvalues hλ (step × eigenvalue of df/dy) along the trajectories, per block and "
                    "state time t" + ("" if exact else "\n(large states: Arnoldi estimates of the largest |λ|)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small")
    return save_figure(figure, path)


def _check_toy_net(net: ODENet) -> None:
    widths = list(net.spec.widths[:-1])
    if net.spec.dims != 0 or net.spec.in_channels != 2 or any(width != 2 for width in widths):
        raise ValueError(f"plot_trajectories needs a dense ODENet (dims=0) with 2 input features and blocks "
                         f"of width 2, got dims={net.spec.dims}, in_channels={net.spec.in_channels}, block widths "
                         f"{widths}")


def _decision_regions(ax, logits: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                      colours: Sequence, classes: int) -> None:
    """Shade the plane around `points` by the predicted class and draw the class boundaries.

    Each class's region is where its margin, its logit minus the largest other logit, is positive; the
    boundary is the margin's zero line, interpolated between grid points, so it is smooth rather than a
    staircase of grid cells.
    """
    lows, highs = points.min(dim=0).values, points.max(dim=0).values
    margin = _MARGIN * (highs - lows).clamp(min=1e-3)
    axes = [torch.linspace(low, high, DECISION_RESOLUTION) for low, high in
            zip((lows - margin).tolist(), (highs + margin).tolist(), strict=True)]
    first, second = torch.meshgrid(*axes, indexing="xy")
    grid = torch.stack((first.reshape(-1), second.reshape(-1)), dim=1).to(points.dtype)
    values = logits(grid).double()
    first, second = first.numpy(), second.numpy()
    for k in range(classes):
        others = torch.cat((values[:, :k], values[:, k + 1:]), dim=1).max(dim=1).values
        class_margin = (values[:, k] - others).reshape(first.shape).numpy()
        if (class_margin > 0).any():
            ax.contourf(first, second, class_margin, levels=[0, math.inf], colors=[colours[k]], alpha=0.22)
            ax.contour(first, second, class_margin, levels=[0], colors="k", linewidths=0.8)


def class_colours(classes: int) -> list:
    """A colour per class: Okabe & Ito's colour-blind-safe palette, tab20 beyond its 7 colours."""
    if classes <= len(CLASS_COLOURS):
        return list(CLASS_COLOURS[:classes])
    from matplotlib import colormaps

    return [colormaps["tab20"].colors[k % 20] for k in range(classes)]


def _draw_paths(ax, paths, colours) -> None:
    """Each point's path (N, times, 2) as a faint line, hollow at its start, filled at its end."""
    from matplotlib.collections import LineCollection

    ax.add_collection(LineCollection(paths, colors=colours, alpha=0.2, linewidths=0.7))
    ax.scatter(paths[:, 0, 0], paths[:, 0, 1], s=9, facecolors="none", edgecolors=colours, linewidths=0.6)
    ax.scatter(paths[:, -1, 0], paths[:, -1, 1], c=colours, s=12, edgecolors="k", linewidths=0.3)


def plot_trajectories(net: ODENet, x: torch.Tensor, labels: torch.Tensor | Sequence[int],
                      path: str | os.PathLike) -> Path:
    """For a 2-D toy ODENet: the input plane with the network's decision regions, then per block the
    points moving through the block (faint paths, hollow start, filled end, coloured by true class) over
    the decision regions the rest of the network gives the block's output. Saves a PNG."""
    _check_toy_net(net)
    x = x.detach()
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if x.dim() != 2 or x.shape[1] != 2 or x.shape[0] != labels.numel() or labels.numel() == 0:
        raise ValueError(f"x must be (N, 2) points with one label each, got x of shape {tuple(x.shape)} and "
                         f"{labels.numel()} labels")
    classes = net.classifier.out_features
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must be class indices in [0, {classes - 1}] for this {classes}-class network, "
                         f"got values from {labels.min().item()} to {labels.max().item()}")
    trajectories = [states.cpu() for states in feature_trajectories(net, x)]
    figure, axes = _new_figure(1 + len(trajectories), (5.5, 5.0), columns=4)
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    palette = class_colours(classes)
    cmap = ListedColormap(palette)
    colours = cmap(labels.numpy())
    device = next(net.parameters()).device
    with inference(net):
        _decision_regions(axes[0], lambda grid: net(grid.to(device)).cpu(), x.cpu(), palette, classes)
        for index, (ax, states) in enumerate(zip(axes[1:], trajectories, strict=True)):
            _decision_regions(ax, lambda grid, i=index: logits_after_block(net, i, grid.to(device)).cpu(),
                              states.reshape(-1, 2), palette, classes)
    points = x.cpu().numpy()
    axes[0].scatter(points[:, 0], points[:, 1], c=colours, s=10, edgecolors="k", linewidths=0.2)
    axes[0].set(title="input plane: decision regions of the network", xlabel="x₁", ylabel="x₂")
    for index, (ax, states, block) in enumerate(zip(axes[1:], trajectories, net.blocks, strict=True)):
        _draw_paths(ax, states.permute(1, 0, 2).numpy(), colours)
        first, last = block.t_states[0], block.t_states[-1]
        ax.set(title=f"block {index} ({block.method_name}): features from t={first:g} to t={last:g}",
               xlabel="feature y₁(t)", ylabel="feature y₂(t)")
    handles = [Line2D([], [], marker="o", linestyle="", color=cmap(k), markeredgecolor="k",
                      label=f"class {k}") for k in range(classes)]
    handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="0.3",
                       label="start of block"),
                Line2D([], [], marker="o", linestyle="", color="0.3", label="end of block"),
                Patch(facecolor="0.85", label="shading: predicted class"),
                Line2D([], [], color="k", linewidth=0.8, label="decision boundary")]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")
    return save_figure(figure, path)
