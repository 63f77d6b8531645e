"""The pictures a researcher reads: one label for close points that share it, the time axis from zero, the
learning-curve legend clear of the title, slope-p lines on gradients.png, implicit stability regions apart."""

import pytest

from rknet.compare.plan import Setting
from rknet.compare.results import SettingResult

pytest.importorskip("matplotlib")


def drawn_by(monkeypatch, module):
    drawn = {}
    monkeypatch.setattr(module, "save_figure", lambda figure, path: drawn.setdefault("figure", figure))
    return drawn


def results_at(steps_list, contended=()):
    return [SettingResult(Setting(method, "double", steps, None, (4, 4)), seeds=[0, 1], test_acc=[0.9, 0.92],
                          params=100 * steps, wall_seconds=[2.0 * steps, 2.2 * steps], contended=list(contended))
            for steps in steps_list for method in ("euler", "heun", "rk4")]


def test_close_points_with_the_same_label_share_one_grey_label(monkeypatch):
    from rknet.compare import plots

    drawn = drawn_by(monkeypatch, plots)
    plots.plot_accuracy_vs_params(results_at([1, 2]), "unused.png")
    labels = [text for text in drawn["figure"].axes[0].texts if "step" in text.get_text()]
    assert sorted(text.get_text() for text in labels) == ["1 step", "2 steps"]  # not three of each
    assert all(text.get_color() == "0.25" for text in labels)


def test_time_axis_starts_at_zero_and_says_when_times_are_contended(monkeypatch):
    from rknet.compare import plots

    drawn = drawn_by(monkeypatch, plots)
    plots.plot_accuracy_vs_time(results_at([4], contended=[0]), "unused.png")
    ax = drawn["figure"].axes[0]
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] > 8.8
    assert "under contention" in ax.get_title()


def test_learning_curve_legend_sits_below_a_wide_enough_figure(monkeypatch):
    from rknet.compare import plots

    drawn = drawn_by(monkeypatch, plots)
    results = results_at([4])
    for result in results:
        result.curves = [[0.5, 0.8], [0.6, 0.9]]
    plots.plot_learning_curves(results, "unused.png")
    figure = drawn["figure"]
    figure.canvas.draw()
    assert figure.get_size_inches()[0] >= 7.0
    (legend,) = figure.legends
    title = figure._suptitle.get_window_extent()
    assert legend.get_window_extent().y1 < figure.axes[0].get_window_extent().y0 < title.y0
    assert title.x0 >= 0 and title.x1 <= figure.bbox.width  # not cut off


def test_gradient_plot_has_slope_p_reference_lines(monkeypatch):
    from rknet.analysis import gradients

    drawn = drawn_by(monkeypatch, gradients)
    rows = [{"method": method, "steps_per_unit_time": rate, "total": 0.1 / rate ** order}
            for method, order in (("euler", 1), ("rk4", 4)) for rate in (1, 2, 4)]
    gradients.plot_agreement(rows, "unused.png")
    lines = {line.get_label(): line for line in drawn["figure"].axes[0].lines}
    for method, order in (("euler", 1), ("rk4", 4)):
        reference = lines[f"slope {order} (h^{order}, order of {method})"]
        (h0, h1, _), (e0, e1, _) = reference.get_xdata(), reference.get_ydata()
        assert e0 / e1 == pytest.approx((h0 / h1) ** order)
        assert list(reference.get_ydata()) == pytest.approx(list(lines[method].get_ydata()))  # exact order p data


def test_implicit_stability_regions_get_a_panel_each_and_reach_re_3(monkeypatch):
    from rknet.analysis import plots

    drawn = drawn_by(monkeypatch, plots)
    plots.plot_stability_regions(["rk4", "backward_euler", "trapezoid"], "unused.png", resolution=60)
    axes = [ax for ax in drawn["figure"].axes if ax.get_visible()]
    assert len(axes) == 3 and all(ax.get_xlim() == (-5.0, 3.0) for ax in axes)
    assert not drawn["figure"].legends and not any(ax.get_legend() for ax in axes)
    drawn.clear()
    plots.plot_stability_regions(["euler", "rk4"], "unused.png", resolution=60)
    assert len(drawn["figure"].axes) == 1 and drawn["figure"].axes[0].get_xlim() == (-5.0, 1.0)
