"""The comparison figures: accuracy vs parameters, accuracy vs training time, learning curves.

matplotlib is imported only when a figure is drawn (here, in `rknet.analysis`'s plots and in
`rknet.common.figures`, which makes the canvas), and figures are rendered on the Agg canvas directly (no
pyplot): nothing changes the backend of an interactive session and no figure stays open.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path

from rknet.common.figures import agg_figure, save_figure
from rknet.compare.paired import PairedDifference
from rknet.compare.paired_plot import DIFFERENCES, plot_paired_differences
from rknet.compare.plan import plural, varying_phrases, widths_text
from rknet.compare.results import SettingResult

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
ACC_VS_PARAMS = "accuracy_vs_params.png"
ACC_VS_TIME = "accuracy_vs_time.png"
CURVES = "learning_curves.png"
DODGE_POINTS = 7.0  # sideways offset on the page (not in x) between methods drawn at the same x


def _colours(methods: list[str]) -> dict[str, str]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors if len(methods) <= 10 else colormaps["tab20"].colors
    return {method: palette[i % len(palette)] for i, method in enumerate(methods)}


def _varying(results: list[SettingResult]) -> Callable[[SettingResult], str]:
    """A short point label from the axes other than method and layer that take several values."""
    phrases = varying_phrases([r.setting for r in results])
    return lambda r: ", ".join(phrases(r.setting))


def _accuracy_limits(ax) -> None:
    """Keep the accuracy axis within [0, 100] % (error bars past the ends are cut off, not extended)."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(max(bottom, -1.0), min(top, 101.0))


def _seeds_text(counts: set[int]) -> str:
    counts = sorted(counts)
    return plural(counts[0], "seed") if len(counts) == 1 else f"{'/'.join(map(str, counts))} seeds"


def _legends(figure, methods: list[str], layers: list[str], colours: dict[str, str]) -> None:
    """Colour = method, marker = layer, as two legends to the right of the axes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    method_handles = [Patch(facecolor=colours[m], edgecolor="none", label=m) for m in methods]
    layer_handles = [Line2D([], [], color="0.35", marker=MARKERS[i % len(MARKERS)], linestyle="none", label=layer)
                     for i, layer in enumerate(layers)]
    figure.legend(handles=method_handles, title="method (colour)", loc="outside right upper")
    figure.legend(handles=layer_handles, title="layer (marker)", loc="outside right lower")


def _scatter(results: list[SettingResult], x_of: Callable[[SettingResult], float], xlabel: str, title: str,
             path: Path, dodge: bool, integer_x: bool, from_zero: bool = False) -> Path:
    """Mean test accuracy (%) against x, error bars = sample std over seeds, colour/marker legends."""
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import ScaledTranslation

    done = [r for r in results if r.test_acc]
    methods = list(dict.fromkeys(r.setting.method_label for r in results))
    layers = list(dict.fromkeys(r.setting.layer for r in results))
    colours = _colours(methods)
    label = _varying(results)
    figure = agg_figure((8.0, 5.0))
    ax = figure.subplots()
    xs = [x_of(r) for r in done]
    shared = {x for x in xs if xs.count(x) > 1}
    points = []
    for result, x in zip(done, xs):
        shift = 0.0
        if dodge and x in shared:  # moved on the page only: x stays the true value, marked by a dotted line
            shift = DODGE_POINTS * (methods.index(result.setting.method_label) - (len(methods) - 1) / 2)
        std = result.acc_std
        ax.errorbar(x, 100 * result.acc_mean, yerr=None if std is None else 100 * std,
                    color=colours[result.setting.method_label], marker=MARKERS[layers.index(result.setting.layer)
                                                                     % len(MARKERS)],
                    markersize=7, capsize=4, linestyle="none", markeredgecolor="black", markeredgewidth=0.5,
                    transform=ax.transData + ScaledTranslation(shift / 72, 0, figure.dpi_scale_trans))
        spread = 0.0 if std is None else 100 * std
        ax.update_datalim([(x, 100 * result.acc_mean - spread), (x, 100 * result.acc_mean + spread)])
        points.append(((x, 100 * result.acc_mean), label(result), colours[result.setting.method_label], shift))
    ax.autoscale_view()
    if dodge:
        _mark_shared(ax, sorted(shared), integer_x)
    if xs and max(xs) / max(min(xs), 1e-12) >= 10:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: _tick(v, integer_x) if _leading(v) in (2, 5)
                                                   else ""))
    else:
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v, integer_x)))
    if from_zero and ax.get_xscale() == "linear":
        ax.set_xlim(0, max(xs, default=1.0) * 1.15)  # from zero: differences in time read as ratios
    elif xs and len(set(xs)) == 1:
        ax.set_xlim(xs[0] * 0.9, xs[0] * 1.1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    _accuracy_limits(ax)
    ax.grid(True, alpha=0.3)
    seeds = {len(r.test_acc) for r in done}
    subtitle = f"mean over {_seeds_text(seeds)}; error bars: ± 1 std over seeds (cut off at 100 %)"
    if seeds == {1}:
        subtitle = "one seed per setting: no error bars"
    if from_zero and any(r.contended for r in done):
        subtitle += "\ntimes taken under contention: inflated, unreliable (see the report)"
    if dodge and shared:
        subtitle += "\nmethods with equal counts are spread sideways around the dotted line at their count"
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    _legends(figure, methods, layers, colours)
    _place_labels(figure, ax, points)
    return save_figure(figure, path)


def _mark_shared(ax, values: list[float], integer: bool) -> None:
    """A dotted vertical line at each x that several points share, labelled with its exact value at the foot."""
    for value in values:
        ax.axvline(value, color="0.55", linestyle=":", linewidth=0.9, zorder=0.5)
        right_half = ax.transAxes.inverted().transform(ax.transData.transform((value, 0)))[0] > 0.5
        ax.annotate(_tick(value, integer), (value, 0), xycoords=("data", "axes fraction"),
                    xytext=(-3 if right_half else 3, 3), textcoords="offset points",
                    ha="right" if right_half else "left", va="bottom", fontsize=7, color="0.35")


def _tick(value: float, integer: bool) -> str:
    return f"{value:,.0f}" if integer and value >= 1 else f"{value:g}"


def _leading(value: float) -> int:
    """The leading digit of a positive number (2 for 0.2, 20, 2000)."""
    return int(round(value / 10 ** math.floor(math.log10(value)))) if value > 0 else 0


_LABEL_OFFSETS = ((6, 4, "left", "bottom"), (6, -4, "left", "top"), (-6, 4, "right", "bottom"),
                  (-6, -4, "right", "top"), (0, 9, "center", "bottom"), (0, -9, "center", "top"),
                  (0, 20, "center", "bottom"), (0, -20, "center", "top"), (12, 14, "left", "bottom"),
                  (-12, -14, "right", "top"))
SAME_LABEL_PIXELS = 40  # points this close (on the page) that carry the same label get one label between them


def _merge_labels(figure, ax, points: list[tuple[tuple[float, float], str, object, float]]) -> list:
    """Points with the same label text lying close together on the page (e.g. the methods spread around one
    parameter count) share one grey label at the middle one, instead of repeating it over each other."""
    def page(point):
        (x, y), _, _, shift = point
        px, py = ax.transData.transform((x, y))
        return px + shift * figure.dpi / 72, py

    merged, used = [], set()
    for i, point in enumerate(points):
        if i in used:
            continue
        group = [j for j in range(i, len(points)) if j not in used and points[j][1] == point[1] and
                 all(abs(a - b) < SAME_LABEL_PIXELS for a, b in zip(page(points[j]), page(point)))]
        used.update(group)
        middle = points[group[len(group) // 2]]
        merged.append(middle if len(group) == 1 else (middle[0], middle[1], "0.25", middle[3]))
    return merged



def _place_labels(figure, ax, points: list[tuple[tuple[float, float], str, object, float]]) -> None:
    """Annotate each point ((x, y), text, colour, sideways shift in points) beside it in its colour, trying
    several sides so labels overlap neither each other nor the markers where that is possible (the layout
    is fixed first; labels do not take part in it)."""
    if not any(text for _, text, _, _ in points):
        return
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    taken = []
    for (x, y), _, _, shift in points:
        cx, cy = ax.transData.transform((x, y))
        cx += shift * figure.dpi / 72
        taken.append((cx - 5, cy - 5, cx + 5, cy + 5))
    inside = ax.get_window_extent(renderer)
    for (x, y), text, colour, shift in _merge_labels(figure, ax, points):
        if not text:
            continue
        best = None
        for dx, dy, ha, va in _LABEL_OFFSETS:
            note = ax.annotate(text, (x, y), xytext=(dx + shift, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=7, color=colour)
            note.set_in_layout(False)
            box = note.get_window_extent(renderer)
            box = (box.x0, box.y0, box.x1, box.y1)
            clashes = sum(_overlap(box, other) for other in taken)
            clashes += 0 if (box[0] >= inside.x0 and box[2] <= inside.x1 and box[1] >= inside.y0
                             and box[3] <= inside.y1) else 1e6
            if best is None or clashes < best[0]:
                if best is not None:
                    best[1].remove()
                best = (clashes, note, box)
            else:
                note.remove()
            if clashes == 0:
                break
        taken.append(best[2])


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Area shared by two boxes (x0, y0, x1, y1)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def plot_accuracy_vs_params(results: list[SettingResult], path: Path) -> Path:
    return _scatter(results, lambda r: r.params, "parameters", "Test accuracy vs parameters", path,
                    dodge=True, integer_x=True)


def plot_accuracy_vs_time(results: list[SettingResult], path: Path) -> Path:
    return _scatter(results, lambda r: statistics.fmean(r.wall_seconds),
                    "training time per run (s, wall clock, mean over seeds)", "Test accuracy vs training time",
                    path, dodge=False, integer_x=False, from_zero=True)


def plot_learning_curves(results: list[SettingResult], path: Path) -> Path:
    """One panel per (layer, steps, control grid, widths), one line per method: mean over seeds per epoch,
    shaded ± 1 std over seeds."""
    from matplotlib.ticker import MaxNLocator

    done = [r for r in results if r.curves]
    methods = list(dict.fromkeys(r.setting.method_label for r in results))
    colours = _colours(methods)
    groups: dict[tuple, list[SettingResult]] = {}
    for result in done:
        s = result.setting
        groups.setdefault((s.layer, s.steps, s.control_steps, s.widths), []).append(result)
    panels = max(1, len(groups))
    columns = min(panels, 3)
    rows = math.ceil(panels / columns)
    figure = agg_figure((max(7.0, 4.2 * columns + 0.6), 3.3 * rows + 1.4))
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    metric = "validation" if all(r.curve_metric == "val_acc" for r in done) else "training"
    for ax, members in zip(axes, groups.values()):
        for result in members:
            mean, std = result.curve()
            epochs = list(range(1, len(mean) + 1))
            colour = colours[result.setting.method_label]
            ax.plot(epochs, [100 * m for m in mean], color=colour, marker="o", markersize=3)
            if std is not None:
                ax.fill_between(epochs, [100 * (m - s) for m, s in zip(mean, std)],
                                [100 * (m + s) for m, s in zip(mean, std)], color=colour, alpha=0.15, linewidth=0)
        s = members[0].setting
        ax.set_title(f"{s.layer}, {s.steps_phrase}, {s.controls_phrase}\nwidths {widths_text(s.widths)}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    for ax in axes[::columns]:
        ax.set_ylabel(f"{metric} accuracy (%)")
    if done:
        _accuracy_limits(axes[0])
    else:
        axes[0].text(0.5, 0.5, "no completed runs", ha="center", va="center", transform=axes[0].transAxes)
    seeds = {len(r.curves) for r in done} or {0}
    band = "" if seeds == {1} else "; band: ± 1 std over seeds"
    figure.suptitle(f"Learning curves: {metric} accuracy per epoch\nmean over {_seeds_text(seeds)}{band}",
                    fontsize=10)
    from matplotlib.lines import Line2D

    figure.legend(handles=[Line2D([], [], color=colours[m], marker="o", markersize=3, label=m) for m in methods],
                  title="method", loc="outside lower center", ncols=min(len(methods), 6))  # clear of the title
    return save_figure(figure, path)


def draw_all(results: list[SettingResult], out: Path, differences: list[PairedDifference] = ()) -> dict[str, Path]:
    """The figures in `out`; keys: params, time, curves, and differences when there are paired differences."""
    plots = {"params": plot_accuracy_vs_params(results, out / ACC_VS_PARAMS),
             "time": plot_accuracy_vs_time(results, out / ACC_VS_TIME),
             "curves": plot_learning_curves(results, out / CURVES)}
    if differences:
        plots["differences"] = plot_paired_differences(list(differences), out / DIFFERENCES)
    return plots
