"""Figures: stability regions, Jacobian spectra against them, feature trajectories of 2-D toy problems.

matplotlib is optional (`pip install 'rknet[plots]'`) and imported only when a figure is drawn. Figures
are rendered by the Agg canvas directly, without pyplot, so drawing never switches the backend of an
interactive session (e.g. a notebook) and leaves no open figures behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..figures import agg_figure, save_figure
from ..network import ODENet
from ..tableau import ButcherTableau, get_tableau
from .spectrum import BlockSpectrum
from .stability import group_by_stability, stability_grid
from .trajectories import feature_trajectories, inference, logits_after_block

REGION_RE = (-5.0, 1.0)
REGION_IM = (-3.5, 3.5)
REGION_ALPHA = 0.18
LINESTYLES = ("-", "--", ":", "-.")
DECISION_RESOLUTION = 200
_MARGIN = 0.1


def _new_figure(panels: int, panel_size: tuple[float, float], columns: int = 3):
    """A figure with `panels` axes on an Agg canvas; raises ImportError naming the fix without matplotlib."""
    columns = min(panels, columns)
    rows = math.ceil(panels / columns)
    figure = agg_figure((panel_size[0] * columns, panel_size[1] * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


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
                 colour, linestyle: str = "-", alpha: float = REGION_ALPHA) -> None:
    """Shade |R(z)| <= 1 and outline |R(z)| = 1; outlines sit above every fill, points above both."""
    real, imag, magnitude = (grid.numpy() for grid in stability_grid(tableau, re, im, resolution))
    ax.contourf(real, imag, magnitude, levels=[0, 1], colors=[colour], alpha=alpha, zorder=1)
    ax.contour(real, imag, magnitude, levels=[1], colors=[colour], linestyles=[linestyle], linewidths=1.6,
               zorder=2)


def _describe(group: Sequence[ButcherTableau]) -> str:
    """Legend text: names, with order and stages once when the whole group shares them."""
    details = [(tableau.order, tableau.stages) for tableau in group]
    text = lambda order, stages: f"order {order}, {stages} stage{'s' * (stages > 1)}"  # noqa: E731
    if len(set(details)) == 1:
        return f"{', '.join(tableau.name for tableau in group)} ({text(*details[0])})"
    return ", ".join(f"{tableau.name} ({text(*detail)})" for tableau, detail in zip(group, details, strict=True))


def plot_stability_regions(methods: str | ButcherTableau | Sequence[str | ButcherTableau],
                           path: str | os.PathLike, re: Sequence[float] = REGION_RE,
                           im: Sequence[float] = REGION_IM, resolution: int = 400) -> Path:
    """Overlay the stability regions |R(h lambda)| <= 1 of several methods (names or tableaus); save a PNG.

    Methods with the same stability function (e.g. every 2-stage method of order 2) have the same region:
    it is drawn once, with one legend entry naming them all.
    """
    from_one = isinstance(methods, (str, ButcherTableau))
    tableaus = [get_tableau(method) for method in ([methods] if from_one else methods)]
    if not tableaus:
        raise ValueError("methods must hold at least one method name or ButcherTableau, got none")
    figure, (ax,) = _new_figure(1, (7.5, 7.0))
    from matplotlib import colormaps
    from matplotlib.patches import Patch

    colours = colormaps["tab10"].colors
    handles = []
    for index, group in enumerate(group_by_stability(tableaus)):
        colour, style = colours[index % len(colours)], LINESTYLES[index % len(LINESTYLES)]
        _draw_region(ax, group[0], re, im, resolution, colour, style)
        handles.append(Patch(facecolor=(*colour, REGION_ALPHA), edgecolor=colour, linestyle=style,
                             linewidth=1.6, label=_describe(group)))
    _complex_plane(ax, re, im)
    ax.set_title("Stability regions |R(hλ)| ≤ 1 (shaded; line: |R(hλ)| = 1)")
    ax.legend(handles=handles, loc="upper left", framealpha=0.9)
    return save_figure(figure, path)


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
    """One panel per block: its method's stability region and the scaled eigenvalues h * lambda, coloured
    by state time; the title gives the fraction inside the region. Saves a PNG."""
    if not spectra:
        raise ValueError("spectra must hold at least one BlockSpectrum (from block_spectra), got none")
    figure, axes = _new_figure(len(spectra), (5.5, 5.0))
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    for index, (ax, spectrum) in enumerate(zip(axes, spectra, strict=True)):
        values = torch.cat(spectrum.eigenvalues).cpu()
        times = torch.cat([torch.full((v.numel(),), t) for t, v in
                           zip(spectrum.times, spectrum.eigenvalues, strict=True)])
        re, im = _window(values)
        _draw_region(ax, spectrum.tableau, re, im, resolution, "0.55", alpha=0.35)
        points = ax.scatter(values.real.numpy(), values.imag.numpy(), c=times.numpy(), cmap="viridis",
                            vmin=spectrum.times[0], vmax=spectrum.times[-1], s=14, alpha=0.8, edgecolors="k",
                            linewidths=0.3, zorder=3)
        if len(spectrum.times) > 1:
            figure.colorbar(points, ax=ax, label="state time t (start of step)")
        _complex_plane(ax, re, im)
        which = "hλ" if spectrum.exact else "the largest hλ"
        ax.set_title(f"block {index} ({spectrum.tableau.name}): "
                     f"{spectrum.fraction_stable():.1%} of {which} inside the region")
        handles = [Patch(facecolor=(0.55, 0.55, 0.55, 0.35), edgecolor="0.55", label="stable: |R(hλ)| ≤ 1"),
                   Line2D([], [], marker="o", linestyle="", color="0.6", markeredgecolor="k",
                          label="hλ, all eigenvalues (exact)" if spectrum.exact
                          else "hλ, largest |λ| only (Arnoldi estimate)")]
        ax.legend(handles=handles, loc="upper left", fontsize="small", framealpha=0.9)
    return save_figure(figure, path)


def _check_toy_net(net: ODENet) -> None:
    widths = list(net.spec.widths[:-1])
    if net.spec.dims != 0 or net.spec.in_channels != 2 or any(width != 2 for width in widths):
        raise ValueError(f"plot_trajectories needs a dense ODENet (dims=0) with 2 input features and blocks "
                         f"of width 2, got dims={net.spec.dims}, in_channels={net.spec.in_channels}, block widths "
                         f"{widths}")


def _decision_regions(ax, logits: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                      cmap, classes: int) -> None:
    """Shade the plane around `points` by the predicted class, with the class boundaries drawn."""
    lows, highs = points.min(dim=0).values, points.max(dim=0).values
    margin = _MARGIN * (highs - lows).clamp(min=1e-3)
    axes = [torch.linspace(low, high, DECISION_RESOLUTION) for low, high in
            zip((lows - margin).tolist(), (highs + margin).tolist(), strict=True)]
    first, second = torch.meshgrid(*axes, indexing="xy")
    grid = torch.stack((first.reshape(-1), second.reshape(-1)), dim=1).to(points.dtype)
    predicted = logits(grid).argmax(dim=1).reshape(first.shape).numpy()
    first, second = first.numpy(), second.numpy()
    ax.contourf(first, second, predicted, levels=[k - 0.5 for k in range(classes + 1)], cmap=cmap, alpha=0.25)
    for k in range(classes):  # each class's own outline, so no boundary is drawn twice side by side
        if (predicted == k).any():
            ax.contour(first, second, (predicted == k).astype(float), levels=[0.5], colors="k", linewidths=0.8)


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
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    cmap = ListedColormap([colormaps["tab10"].colors[k % 10] for k in range(classes)])
    colours = cmap(labels.numpy())
    device = next(net.parameters()).device
    with inference(net):
        _decision_regions(axes[0], lambda grid: net(grid.to(device)).cpu(), x.cpu(), cmap, classes)
        for index, (ax, states) in enumerate(zip(axes[1:], trajectories, strict=True)):
            _decision_regions(ax, lambda grid, i=index: logits_after_block(net, i, grid.to(device)).cpu(),
                              states.reshape(-1, 2), cmap, classes)
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
