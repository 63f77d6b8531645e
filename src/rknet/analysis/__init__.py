"""Analysis of rknet models: stability regions, Jacobian spectra, feature trajectories, memory, and the
agreement of adjoint and backprop gradients.

Plotting functions need matplotlib (`pip install 'rknet[plots]'`), imported only when they are called.
"""

from rknet.analysis.arnoldi import arnoldi_eigenvalues
from rknet.analysis.evaluation_plot import plot_evaluation
from rknet.analysis.gradients import format_agreement, gradient_agreement, plot_agreement
from rknet.analysis.memory import held_for_backward
from rknet.analysis.plots import plot_spectra, plot_stability_regions, plot_trajectories
from rknet.analysis.spectrum import BlockSpectrum, block_spectra, jacobian_spectrum
from rknet.analysis.stability import StabilityCount, count_unstable, is_stable, stability_grid
from rknet.analysis.trajectories import feature_trajectories, inference, logits_after_block

__all__ = [
    "BlockSpectrum", "StabilityCount", "arnoldi_eigenvalues", "block_spectra", "count_unstable", "format_agreement",
    "gradient_agreement", "plot_agreement",
    "feature_trajectories", "held_for_backward", "inference", "is_stable", "jacobian_spectrum", "logits_after_block",
    "plot_evaluation", "plot_spectra", "plot_stability_regions", "plot_trajectories", "stability_grid",
]
