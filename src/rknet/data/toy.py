"""Two-dimensional toy classification sets, generated in code from a fixed seed so they never change."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rknet.data.raw import RawSplits

TOY_SEED = 0
TOY_TRAIN = 2000
TOY_TEST = 1000
PEAKS_CLASSES = 5
SWISSROLL_NOISE = 0.02
CIRCLES_NOISE = 0.05
CIRCLES_INNER_RADIUS = 0.5


def peaks_surface(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MATLAB's `peaks` function z(x, y)."""
    return (
        3 * (1 - x) ** 2 * torch.exp(-(x**2) - (y + 1) ** 2)
        - 10 * (x / 5 - x**3 - y**5) * torch.exp(-(x**2) - y**2)
        - torch.exp(-((x + 1) ** 2) - y**2) / 3
    )


def make_peaks(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform points on [-3, 3]^2, labelled by which of 5 level bands of the peaks surface they lie in;
    the band edges are quantiles of z over the sample, so the classes are balanced."""
    points = torch.rand(n, 2, generator=generator) * 6 - 3
    z = peaks_surface(points[:, 0], points[:, 1])
    edges = torch.quantile(z, torch.arange(1, PEAKS_CLASSES) / PEAKS_CLASSES)
    return points, torch.bucketize(z, edges)


def make_swissroll(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals of 1.5 turns (one rotated by pi), alternate points in each class."""
    labels = torch.arange(n) % 2
    t = torch.rand(n, generator=generator).sqrt()  # uniform density along the arc
    angle = 3 * math.pi * t + math.pi * labels
    points = t[:, None] * torch.stack((angle.cos(), angle.sin()), dim=1)
    return points + SWISSROLL_NOISE * torch.randn(n, 2, generator=generator), labels


def make_circles(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two concentric noisy circles (radius 1 and 0.5), alternate points in each class."""
    labels = torch.arange(n) % 2
    angle = 2 * math.pi * torch.rand(n, generator=generator)
    radius = torch.where(labels == 0, 1.0, CIRCLES_INNER_RADIUS)
    points = radius[:, None] * torch.stack((angle.cos(), angle.sin()), dim=1)
    return points + CIRCLES_NOISE * torch.randn(n, 2, generator=generator), labels


TOY_SETS: dict[str, tuple[Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]], int]] = {
    "peaks": (make_peaks, PEAKS_CLASSES),
    "swissroll": (make_swissroll, 2),
    "circles": (make_circles, 2),
}


def load_toy(name: str) -> RawSplits:
    """The toy set `name`: TOY_TRAIN training and TOY_TEST test points drawn from one fixed generator."""
    make, num_classes = TOY_SETS[name]
    x, y = make(TOY_TRAIN + TOY_TEST, torch.Generator().manual_seed(TOY_SEED))
    x = x.float()
    return RawSplits(
        source=name,
        x_train=x[:TOY_TRAIN],
        y_train=y[:TOY_TRAIN],
        x_test=x[TOY_TRAIN:],
        y_test=y[TOY_TRAIN:],
        num_classes=num_classes,
    )
