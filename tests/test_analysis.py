"""rknet.analysis: stability regions, Jacobian spectra, trajectories, gradient norms, plots."""

import sys

import pytest
import torch

import rknet
from rknet.analysis import (
    BlockSpectrum,
    block_spectra,
    count_unstable,
    feature_trajectories,
    is_stable,
    jacobian_spectrum,
    plot_spectra,
    plot_stability_regions,
    plot_trajectories,
    stability_grid,
)
from rknet.layers import Double, DoubleSym, Single
from rknet.training.gradient_norms import block_gradient_norms

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# torch.func.jvp loads decompositions that torch itself still builds with the deprecated torch.jit.script.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _random_controls(block: rknet.DynamicBlock) -> rknet.DynamicBlock:
    with torch.no_grad():
        for stacked in block.controls.values():
            stacked.copy_(torch.randn_like(stacked))
    return block


def _max_unmatched(found: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest distance from an expected eigenvalue to its partner, pairing each found value once."""
    remaining = list(found.tolist())
    worst = 0.0
    for value in expected.tolist():
        nearest = min(range(len(remaining)), key=lambda i: abs(remaining[i] - value))
        worst = max(worst, abs(remaining.pop(nearest) - value))
    return worst


@pytest.mark.parametrize(("method", "polynomial"), [
    ("euler", lambda z: 1 + z),
    ("heun", lambda z: 1 + z + z**2 / 2),
    ("rk4", lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24),
])
def test_stability_function_matches_closed_form(method, polynomial):
    z = torch.complex(torch.randn(200, dtype=torch.float64), torch.randn(200, dtype=torch.float64)) * 2
    tableau = rknet.get_tableau(method)
    assert torch.allclose(tableau.stability(z), polynomial(z), rtol=1e-12, atol=1e-12)
    real, imag, magnitude = stability_grid(method, re=(-3, 1), im=(-2, 2), resolution=41)
    assert real.shape == imag.shape == magnitude.shape == (41, 41)
    assert torch.allclose(magnitude, polynomial(torch.complex(real, imag)).abs())
    assert torch.equal(is_stable(method, z), polynomial(z).abs() <= 1 + 1e-6)


def test_stability_grid_rejects_bad_window():
    with pytest.raises(ValueError, match="re must be finite with low < high"):
        stability_grid("rk4", re=(1, -5))
    with pytest.raises(ValueError, match="resolution must be an integer >= 2"):
        stability_grid("rk4", resolution=1)
    with pytest.raises(ValueError, match="unknown method"):
        stability_grid("rk5")


def test_linear_layer_spectrum_is_eigenvalues_of_its_matrix():
    block = _random_controls(rknet.DynamicBlock(Single(6, dims=0, activation="identity"), "rk4", (0, 1, 2)))
    y = torch.randn(6)
    kernel = block.controls["K"].detach()
    for t, matrix in ((0.0, kernel[0]), (1.5, (kernel[1] + kernel[2]) / 2)):
        eigenvalues = jacobian_spectrum(block, y, t)
        assert eigenvalues.dtype == torch.complex128 and eigenvalues.shape == (6,)
        assert _max_unmatched(eigenvalues, torch.linalg.eigvals(matrix.double())) < 1e-4


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_doublesym_spectrum_is_real_and_non_positive(activation):
    layer = DoubleSym(8, dims=0, activation=activation)
    block = _random_controls(rknet.DynamicBlock(layer, "rk4", (0, 1))).double()
    eigenvalues = jacobian_spectrum(block, torch.randn(1, 8, dtype=torch.float64), 0.5)
    scale = eigenvalues.abs().max()
    assert scale > 0
    assert eigenvalues.imag.abs().max() <= 1e-8 * scale
    assert eigenvalues.real.max() <= 1e-8 * scale


def test_krylov_estimate_matches_exact_largest_eigenvalue():
    block = _random_controls(rknet.DynamicBlock(Double(2, dims=2, activation="tanh"), "rk4", (0, 1)))
    y = torch.randn(2, 6, 6)
    exact = jacobian_spectrum(block, y, 0.0)
    estimate = jacobian_spectrum(block, y, 0.0, exact_limit=0, krylov_dim=30, top=4)
    assert exact.shape == (72,) and estimate.shape == (4,)
    largest = exact.abs().max()
    assert abs(estimate.abs().max() - largest) <= 0.03 * largest
    assert _max_unmatched(exact, estimate[:1]) <= 0.03 * largest


def test_batch_norm_spectrum_uses_running_statistics():
    # f = N(K y + b) with identity activation: df/dy = diag(w / sqrt(var + eps)) K for the evaluation used.
    block = rknet.DynamicBlock(Single(3, dims=1, norm="batch", activation="identity"), "heun", (0, 1, 2)).double()
    block(torch.randn(16, 3, 5, dtype=torch.float64))  # a training pass fills the running statistics
    y = torch.randn(3, 5, dtype=torch.float64)
    before = jacobian_spectrum(block, y, 2.0)
    used = block.nearest_evaluation(2.0)  # the last stage of the last step
    assert used == 3
    with torch.no_grad():
        block.norm_running_var[used] = 4 * (block.norm_running_var[used] + 1e-5) - 1e-5
        block.norm_running_var[0].mul_(9)  # another evaluation's statistics: no effect at t = 2
        block.norm_running_mean[used].add_(5)  # a shift of the mean does not change the Jacobian
    after = jacobian_spectrum(block, y, 2.0)
    assert before.shape == (15,)
    key = lambda values: values[torch.argsort(values.real * 1e6 + values.imag)]  # noqa: E731
    torch.testing.assert_close(key(after), key(before) / 2, rtol=1e-9, atol=1e-12)


def test_jacobian_spectrum_rejects_bad_sample_and_time():
    block = rknet.DynamicBlock(Single(3, dims=2), "euler", (0, 1))
    with pytest.raises(ValueError, match=r"one sample of shape \(3, H, W\) or \(1, 3, H, W\)"):
        jacobian_spectrum(block, torch.randn(2, 3, 4, 4), 0.0)
    with pytest.raises(ValueError, match=r"t must lie in the block's time interval \[0, 1\]"):
        jacobian_spectrum(block, torch.randn(3, 4, 4), 1.5)
    with pytest.raises(ValueError, match="exact_limit must be an integer >= 0"):
        jacobian_spectrum(block, torch.randn(3, 4, 4), 0.0, exact_limit=-1)


def _toy_net(**options) -> rknet.ODENet:
    net = rknet.ODENet(2, 3, widths=(2, 2, 4), layer="double", method="rk4", t_states=(0, 0.5, 1),
                       norm=None, activation="tanh", dims=0, **options)
    net.train()
    net(torch.randn(32, 2))  # settle the connectors' batch-norm statistics
    return net


def _rk4_step(block: rknet.DynamicBlock, t: float, h: float, y: torch.Tensor) -> torch.Tensor:
    """Classical RK4 written out with the block's vector field: the reference the states must follow."""
    k1 = block.vector_field(t, y)
    k2 = block.vector_field(t + h / 2, y + h / 2 * k1)
    k3 = block.vector_field(t + h / 2, y + h / 2 * k2)
    k4 = block.vector_field(t + h, y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def test_feature_trajectories_follow_the_forward_pass():
    net = _toy_net()
    x = torch.randn(10, 2)
    trajectories = feature_trajectories(net, x)
    assert net.training, "analysis must restore the training mode"
    assert [tuple(states.shape) for states in trajectories] == [(3, 10, 2), (3, 10, 2)]
    net.eval()
    with torch.no_grad():
        state = net.opening_act(net.opening(x))
        for block, connector, states in zip(net.blocks, net.connectors, trajectories, strict=True):
            torch.testing.assert_close(states[0], state)  # each block starts where the network's pass is
            for k, (t, h) in enumerate(zip(block.t_states, block.step_sizes)):
                state = _rk4_step(block, t, h, state)
                torch.testing.assert_close(states[k + 1], state, rtol=1e-5, atol=1e-6)
            state = connector(state)
        torch.testing.assert_close(net.classifier(net.pool(state)), net(x), rtol=1e-5, atol=1e-6)


def test_block_spectra_scale_by_step_and_report_stability():
    net = _toy_net()
    x = torch.randn(8, 2)
    spectra = block_spectra(net, x, samples=3)
    assert len(spectra) == 2
    trajectories = feature_trajectories(net, x[:3])
    for spectrum, block, states in zip(spectra, net.blocks, trajectories, strict=True):
        assert spectrum.tableau is block.tableau and spectrum.times == (0.0, 0.5) and spectrum.exact
        assert [tuple(values.shape) for values in spectrum.eigenvalues] == [(6,), (6,)]
        for k, (time, step) in enumerate(zip(spectrum.times, block.step_sizes, strict=True)):
            unscaled = torch.cat([jacobian_spectrum(block, sample, time) for sample in states[k]])
            torch.testing.assert_close(spectrum.eigenvalues[k], step * unscaled)  # h * lambda, h = 0.5
        z = torch.cat(spectrum.eigenvalues)
        inside = (1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24).abs() <= 1 + 1e-9  # RK4's R(z), written out
        assert spectrum.fraction_stable() == pytest.approx(inside.double().mean().item())
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        block_spectra(net, torch.randn(8, 2), samples=0)


RK4 = lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24  # noqa: E731


def _diagonal_block(*diagonals: tuple[float, ...]) -> rknet.DynamicBlock:
    """RK4 over unit steps of f(y) = K(t) y with K = diag(diagonals[k]) at control time k: h*lambda is known."""
    block = rknet.DynamicBlock(Single(3, dims=0, activation="identity", norm=None), "rk4",
                               tuple(range(len(diagonals))))
    with torch.no_grad():
        for k, diagonal in enumerate(diagonals):
            block.controls["K"][k] = torch.diag(torch.tensor(diagonal))
            block.controls["b"][k] = 0
    return block


def test_an_eigenvalue_just_outside_the_region_is_reported_outside():
    # RK4's region ends at -2.785 on the real axis: -2.9 is just outside it, -2.7 just inside
    block = _diagonal_block((-2.9, -2.7, -1.0), (-2.7, -1.0, -0.5), (0.0, 0.0, 0.0))
    y = torch.randn(3)
    spectrum = BlockSpectrum(block.tableau, (0.0, 1.0),
                             tuple(jacobian_spectrum(block, y, t) for t in (0.0, 1.0)), exact=True)
    overall = spectrum.stability()
    assert (overall.total, overall.outside) == (6, 1)
    assert overall.worst == pytest.approx(-2.9, abs=1e-5)
    assert overall.max_amplification == pytest.approx(abs(RK4(-2.9)), rel=1e-5) and overall.max_amplification > 1
    first, second = spectrum.stability_per_time()
    assert (first.outside, second.outside) == (1, 0)
    assert second.max_amplification == pytest.approx(abs(RK4(-2.7)), rel=1e-5) and second.max_amplification < 1
    assert spectrum.fraction_stable() == pytest.approx(5 / 6)
    lines = spectrum.describe("block 0")
    assert lines[0].startswith("block 0 (rk4, all eigenvalues): 83.33 % inside, 1 of 6 outside; largest "
                               "|R(h*lambda)| 1.187")
    assert "at h*lambda = -2.9+0i" in lines[0]
    assert lines[1].startswith("  t=0: 66.66 % inside, 1 of 3 outside")
    assert lines[2] == "  t=1: all 3 inside, largest |R(h*lambda)| 0.8788; largest |h*lambda| 2.7 at h*lambda = -2.7+0i"


def test_a_violation_is_never_rounded_away():
    z = torch.full((16_384,), -1.0, dtype=torch.complex128)
    z[:8] = -3.21
    assert count_unstable("rk4", z).text().startswith("99.95 % inside, 8 of 16,384 outside; largest |R(hλ)|")
    z = torch.full((1_000_000,), -1.0, dtype=torch.complex128)
    z[0] = -2.7855  # RK4 region ends at -2.78529: |R| exceeds 1 by about 3e-4
    text = count_unstable("rk4", z).text()
    assert text.startswith("99.99 % inside, 1 of 1,000,000 outside; largest |R(hλ)| 1.000")
    assert float(text.split("|R(hλ)| ")[1].split()[0]) > 1
    assert count_unstable("rk4", z[1:]).text() == ("all 999,999 inside, largest |R(hλ)| 0.375; "
                                                   "largest |hλ| 1 at hλ = -1+0i")


def test_block_gradient_norms_one_positive_entry_per_block():
    net = rknet.ODENet(3, 4, widths=(4, 6, 6), dims=1, norm="tv")
    torch.nn.functional.cross_entropy(net(torch.randn(5, 3, 8)), torch.tensor([0, 1, 2, 3, 0])).backward()
    norms = block_gradient_norms(net)
    assert list(norms) == ["blocks.0", "blocks.1"]
    assert all(torch.isfinite(torch.tensor(value)) and value > 0 for value in norms.values())


def _assert_png(path, min_size=300):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert min(image.shape[:2]) >= min_size
    assert image.std() > 0.01, "the figure is blank"


def test_plots_write_png_files(tmp_path):
    pytest.importorskip("matplotlib")
    net = _toy_net()
    x = torch.randn(40, 2)
    regions = plot_stability_regions(["euler", "heun", rknet.get_tableau("rk4")], tmp_path / "stability.png",
                                     resolution=120)
    spectra = plot_spectra(block_spectra(net, x, samples=4), tmp_path / "nested" / "spectra.png",
                           resolution=80)
    paths = plot_trajectories(net, x, torch.arange(40) % 3, tmp_path / "trajectories.png")
    for path in (regions, spectra, paths):
        _assert_png(path)


def test_spectra_plot_has_one_panel_per_block_and_time_and_marks_the_outside(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from rknet.analysis import plots

    drawn = {}
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.setdefault("figure", figure))
    block = _diagonal_block((-2.9, -2.7, -1.0), (-2.7, -1.0, -0.5), (-1.0, -1.0, -1.0))
    y = torch.randn(3)
    unstable = BlockSpectrum(block.tableau, (0.0, 1.0), tuple(jacobian_spectrum(block, y, t) for t in (0.0, 1.0)),
                             exact=True)
    stable = BlockSpectrum(block.tableau, (1.0,), (jacobian_spectrum(block, y, 1.0),), exact=True)
    plot_spectra([unstable, stable], tmp_path / "spectra.png", resolution=40)
    panels = [ax for ax in drawn["figure"].axes if ax.get_visible()]
    assert [ax.get_title().splitlines()[0] for ax in panels] == [
        "block 0 (rk4), t=0", "block 0 (rk4), t=1", "block 1 (rk4), t=1"]
    assert "1 of 3 outside" in panels[0].get_title() and "all 3 inside" in panels[1].get_title()
    # inside points and outside crosses are separate collections: one cross at -2.9 in the first panel
    inside, outside = panels[0].collections[-2:]
    assert outside.get_offsets().tolist() == [[pytest.approx(-2.9, abs=1e-5), pytest.approx(0.0, abs=1e-8)]]
    assert len(inside.get_offsets()) == 2 and 0 < inside.get_alpha() < 1


def test_decision_boundaries_are_smooth_not_staircases():
    pytest.importorskip("matplotlib")
    from rknet.analysis.plots import _decision_regions, class_colours
    from rknet.common.figures import agg_figure

    ax = agg_figure((4, 4)).subplots()
    points = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    # the classes meet on the line x1 = x2 (a diagonal: the worst case for a boundary made of grid cells)
    _decision_regions(ax, lambda grid: torch.stack((grid[:, 0] - grid[:, 1], torch.zeros(len(grid))), dim=1),
                      points, class_colours(2), 2)
    boundaries = [contours for contours in ax.collections if getattr(contours, "filled", True) is False]
    vertices = torch.cat([torch.as_tensor(path.vertices) for lines in boundaries for path in lines.get_paths()])
    assert len(boundaries) == 2 and len(vertices) > 100
    cell = 2.2 / 400  # the grid spacing
    assert (vertices[:, 0] - vertices[:, 1]).abs().max() < 1e-3 * cell


def test_class_colours_are_distinct_and_colour_blind_safe():
    pytest.importorskip("matplotlib")
    from rknet.analysis.plots import CLASS_COLOURS, class_colours

    assert class_colours(5) == list(CLASS_COLOURS[:5]) and len(set(class_colours(7))) == 7
    assert len(set(class_colours(12))) == 12


def test_plot_errors_are_clear(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="methods must hold at least one method"):
        plot_stability_regions([], tmp_path / "empty.png")
    image_net = rknet.ODENet(3, 2, widths=(4, 4), dims=2)
    with pytest.raises(ValueError, match="needs a dense ODENet .* got dims=2, in_channels=3"):
        plot_trajectories(image_net, torch.randn(4, 2), [0, 1, 0, 1], tmp_path / "t.png")
    with pytest.raises(ValueError, match="one label each"):
        plot_trajectories(_toy_net(), torch.randn(4, 2), [0, 1], tmp_path / "t.png")
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\] for this 3-class network"):
        plot_trajectories(_toy_net(), torch.randn(2, 2), [0, 3], tmp_path / "t.png")
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_stability_regions("rk4", tmp_path / "missing.png")
