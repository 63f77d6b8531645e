"""Butcher tableaus: validation, order from the order conditions, stability function, presets."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import torch

from rknet.common.limits import check_label
from rknet.methods.presets import IMPLICIT_PRESETS, PRESETS

_TOLERANCE = 1e-12
# Coefficients printed to 14 digits miss their exact values by ~1e-10 after a few sums: consistency and
# order conditions accept that much round-off, and nothing near a real inconsistency (>= 1e-6 in practice).
ROUND_OFF = 1e-8
MAX_ORDER_CHECKED = 8


def coefficient(value, what: str) -> float:
    """A finite number from a number or an exact fraction written as text ("1/6", "-2/3", "0.25")."""
    try:
        number = float(Fraction(value.strip())) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, ZeroDivisionError) as error:
        raise ValueError(f"tableau {what} must hold numbers or fractions such as \"1/6\", got {value!r}") from error
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"tableau {what} must hold finite numbers, got {value!r}")
    return number


def _as_floats(values: Sequence, what: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"tableau {what} must be a sequence of numbers, got {values!r}")
    return tuple(coefficient(v, what) for v in values)


@functools.cache
def _rooted_trees(order: int) -> tuple[tuple, ...]:
    """All rooted trees with `order` nodes; a tree is the sorted tuple of its subtrees."""
    if order == 1:
        return ((),)
    trees = set()
    for children in _forests(order - 1, order - 1):
        trees.add(tuple(sorted(children)))
    return tuple(sorted(trees))


def _forests(nodes: int, largest: int) -> list[tuple]:
    """Multisets of rooted trees with `nodes` nodes in total, each tree at most `largest` nodes."""
    if nodes == 0:
        return [()]
    forests = []
    for size in range(min(nodes, largest), 0, -1):
        for tree in _rooted_trees(size):
            for rest in _forests(nodes - size, size):
                forests.append((tree, *rest))
    return forests


def _tree_order(tree: tuple) -> int:
    return 1 + sum(_tree_order(child) for child in tree)


def _density(tree: tuple) -> int:
    """gamma(t): the tree's order times the densities of its subtrees."""
    return _tree_order(tree) * math.prod(_density(child) for child in tree)


class ButcherTableau:
    """A Runge-Kutta method `(A, b, c)`, validated on construction.

    `order` is computed from the order conditions `b^T Phi(t) = 1 / gamma(t)` over all rooted trees
    (checked up to order 8), so a user-supplied tableau gets its true order, not a claimed one. An
    embedded pair also carries `b_hat`, the weights of a second solution of another order
    (`embedded_order`, computed the same way), for error estimates and adaptive steps.
    """

    def __init__(self, a: Sequence[Sequence[float]], b: Sequence[float], c: Sequence[float],
                 name: str | None = None, b_hat: Sequence[float] | None = None) -> None:
        self.b = _as_floats(b, "b")
        self.c = _as_floats(c, "c")
        stages = len(self.b)
        if stages == 0:
            raise ValueError("tableau b must have at least one entry")
        if isinstance(a, (str, bytes)) or not isinstance(a, Sequence):
            raise ValueError(f"tableau a must be a square matrix (sequence of rows), got {a!r}")
        rows = list(a)
        if len(rows) != stages:
            raise ValueError(f"tableau a has {len(rows)} rows but b has {stages} entries; a must be "
                             f"{stages} x {stages}")
        self.a = tuple(_as_floats(row, f"row {i} of a") for i, row in enumerate(rows))
        for i, row in enumerate(self.a):
            if len(row) != stages:
                raise ValueError(f"tableau a is ragged or not square: row {i} has {len(row)} entries, "
                                 f"expected {stages}")
        if len(self.c) != stages:
            raise ValueError(f"tableau c has {len(self.c)} entries, expected {stages} (one per stage)")
        for i, (row, ci) in enumerate(zip(self.a, self.c)):
            if abs(sum(row) - ci) > ROUND_OFF:
                raise ValueError(f"tableau row {i} of a sums to {sum(row):.12g} but c[{i}] = {ci:.12g}; "
                                 "each row of a must sum to c")
        if abs(sum(self.b) - 1.0) > ROUND_OFF:
            raise ValueError(f"tableau b sums to {sum(self.b):.12g}; the weights b must sum to 1 "
                             "(consistency)")
        self.b_hat = None if b_hat is None else _as_floats(b_hat, "b_hat")
        if self.b_hat is not None and (len(self.b_hat) != stages or abs(sum(self.b_hat) - 1.0) > ROUND_OFF):
            raise ValueError(f"tableau b_hat (embedded weights) must have {stages} entries summing to 1, got "
                             f"{len(self.b_hat)} summing to {sum(self.b_hat):.12g}")
        self.name = "custom" if name is None else check_label(name, "tableau name")

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def explicit(self) -> bool:
        """True when A is strictly lower triangular, so each stage depends only on earlier ones."""
        return all(abs(self.a[i][j]) <= _TOLERANCE for i in range(self.stages)
                   for j in range(i, self.stages))

    def require_explicit(self) -> ButcherTableau:
        """This tableau, for what takes explicit methods only (`odeint`, adaptive stepping, the adjoint)."""
        if not self.explicit:
            raise ValueError(f"tableau {self.name!r} is implicit (A is not strictly lower triangular); this solver "
                             "takes explicit methods only (implicit ones run in rknet.integrate on a fixed grid "
                             "without the adjoint, and in implicit blocks)")
        return self

    @functools.cached_property
    def order(self) -> int:
        """The highest p <= 8 such that every order condition up to p holds.

        Checked up to `MAX_ORDER_CHECKED` (8, 200 rooted trees); when all of them hold, the true order may
        be higher and `order_is_lower_bound` is True (the repr then says "order>=8").
        """
        return self._order_of(self.b)

    @functools.cached_property
    def embedded_order(self) -> int | None:
        """The order of the embedded solution (weights `b_hat`), or None without one."""
        return None if self.b_hat is None else self._order_of(self.b_hat)

    def _order_of(self, weights: tuple[float, ...]) -> int:
        order = 0
        for p in range(1, MAX_ORDER_CHECKED + 1):
            if not all(self._condition_holds(tree, weights) for tree in _rooted_trees(p)):
                break
            order = p
        return order

    @property
    def order_is_lower_bound(self) -> bool:
        """True when every condition that was checked holds, so the order is at least `order`."""
        return self.order == MAX_ORDER_CHECKED

    def _condition_holds(self, tree: tuple, b: tuple[float, ...]) -> bool:
        weights = self._stage_weights(tree)
        phi = sum(bi * wi for bi, wi in zip(b, weights))
        return abs(phi - 1.0 / _density(tree)) <= ROUND_OFF

    def _stage_weights(self, tree: tuple) -> tuple[float, ...]:
        """Per-stage elementary weights: product over subtrees of A applied to their weights."""
        cache = self.__dict__.setdefault("_weights_cache", {})
        if tree not in cache:
            weights = [1.0] * self.stages
            for child in tree:
                child_weights = self._stage_weights(child)
                applied = [sum(aij * wj for aij, wj in zip(row, child_weights)) for row in self.a]
                weights = [w * x for w, x in zip(weights, applied)]
            cache[tree] = tuple(weights)
        return cache[tree]

    def stability(self, z):
        """R(z) = 1 + z b^T (I - z A)^{-1} 1: the step's amplification for y' = lambda y, z = h lambda.

        Accepts a Python number (returns a complex) or a tensor of any shape (returns a complex tensor).
        """
        if isinstance(z, torch.Tensor):
            dtype = torch.complex128
            zs = z.to(dtype).reshape(-1, 1, 1)
            a = torch.tensor(self.a, dtype=dtype, device=z.device)
            b = torch.tensor(self.b, dtype=dtype, device=z.device)
            eye = torch.eye(self.stages, dtype=dtype, device=z.device)
            ones = torch.ones(self.stages, 1, dtype=dtype, device=z.device)
            solved = torch.linalg.solve(eye - zs * a, ones.expand(zs.shape[0], -1, -1))
            values = 1 + zs.reshape(-1) * (b @ solved.squeeze(-1).T)
            return values.reshape(z.shape)
        return complex(self.stability(torch.tensor([complex(z)], dtype=torch.complex128)).item())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ButcherTableau):
            return NotImplemented
        return (self.a, self.b, self.c, self.b_hat) == (other.a, other.b, other.c, other.b_hat)

    def __hash__(self) -> int:
        return hash((self.a, self.b, self.c, self.b_hat))

    def to_dict(self) -> dict[str, Any]:
        """The tableau by value (name, a, b, c, and b_hat for an embedded pair, as floats): JSON-able, and
        `from_dict` rebuilds it exactly."""
        values = {"name": self.name, "a": [list(row) for row in self.a], "b": list(self.b), "c": list(self.c)}
        if self.b_hat is not None:
            values["b_hat"] = list(self.b_hat)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ButcherTableau:
        """A tableau from a mapping with keys a, b, c (numbers or fraction strings), optionally name and b_hat."""
        if not isinstance(values, Mapping):
            raise ValueError(f"a tableau must be a table with keys a, b, c and name, got {values!r}")
        missing = [key for key in ("a", "b", "c") if key not in values]
        unknown = sorted(set(values) - {"a", "b", "c", "name", "b_hat"})
        if missing or unknown:
            problem = f"misses {', '.join(missing)}" if missing else f"has unknown keys {', '.join(unknown)}"
            raise ValueError(f"a tableau {problem}; it takes a, b, c, an optional name and an optional b_hat "
                             "(embedded weights)")
        return cls(values["a"], values["b"], values["c"], name=values.get("name"), b_hat=values.get("b_hat"))

    def __repr__(self) -> str:
        order = f">={self.order}" if self.order_is_lower_bound else f"={self.order}"
        embedded = "" if self.b_hat is None else f", embedded_order={self.embedded_order}"
        return f"ButcherTableau(name={self.name!r}, stages={self.stages}, order{order}{embedded})"


def _tableau(name: str, a: list[list], b: list, c: list, b_hat: list | None = None) -> ButcherTableau:
    text = lambda values: [str(v) for v in values]  # noqa: E731  exact fractions, parsed by `coefficient`
    return ButcherTableau([text(row) for row in a], text(b), text(c), name=name,
                          b_hat=None if b_hat is None else text(b_hat))


_PRESETS = {name: _tableau(name, **coefficients) for name, coefficients in PRESETS.items()}

_IMPLICIT_PRESETS = {name: _tableau(name, **coefficients) for name, coefficients in IMPLICIT_PRESETS.items()}
_ALL_PRESETS = {**_PRESETS, **_IMPLICIT_PRESETS}

TABLEAUS: tuple[str, ...] = tuple(_PRESETS)
"""The names of the explicit preset Butcher tableaus, for `get_tableau`."""
IMPLICIT_TABLEAUS: tuple[str, ...] = tuple(_IMPLICIT_PRESETS)
"""The names of the implicit preset tableaus (backward_euler, sdirk2, ..., gauss2)."""


def get_tableau(method: str | ButcherTableau | Mapping[str, Any]) -> ButcherTableau:
    """The preset tableau named `method`, a tableau given by value (a mapping with a, b, c and name), or
    `method` itself when it is already a tableau."""
    if isinstance(method, ButcherTableau):
        return method
    if isinstance(method, Mapping):
        return ButcherTableau.from_dict(method)
    if not isinstance(method, str):
        raise TypeError(f"method must be a name or a ButcherTableau, got {type(method).__name__}")
    key = method.strip().lower()
    if key not in _ALL_PRESETS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(_ALL_PRESETS)}, or a tableau "
                         "file (.toml/.json with a, b, c)")
    return _ALL_PRESETS[key]


def preset_name(tableau: ButcherTableau) -> str | None:
    """The name of the preset with exactly these coefficients, else None (a user's own tableau)."""
    preset = _ALL_PRESETS.get(tableau.name)
    return tableau.name if preset is not None and preset == tableau else None
