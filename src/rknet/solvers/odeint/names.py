"""torchdiffeq's method names, each meaning inside `rknet.odeint` what it means in torchdiffeq.

A name maps to a kind of solver (an embedded pair stepped adaptively, a tableau on a fixed grid, an Adams
multistep method, SciPy's `solve_ivp`) and, for Runge-Kutta methods, to the rknet preset with the same
coefficients. `rk4` is torchdiffeq's 3/8 rule (rknet's `rk38`), not the classic method (rknet's `rk4`
preset: pass `get_tableau("rk4")` for that). Any other rknet preset name, or a `ButcherTableau`, is
accepted too: stepped adaptively when it has an embedded pair, on a fixed grid otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from rknet.methods.tableau import ButcherTableau, get_tableau

ADAPTIVE, FIXED, ADAMS, SCIPY = "adaptive", "fixed", "adams", "scipy"

# torchdiffeq name -> (kind, rknet preset); Adams entries carry whether the corrector is used.
TORCHDIFFEQ_METHODS: dict[str, tuple[str, str | bool | None]] = {
    "dopri8": (ADAPTIVE, "dopri8"), "dopri5": (ADAPTIVE, "dopri5"), "tsit5": (ADAPTIVE, "tsit5"),
    "bosh3": (ADAPTIVE, "bs3"), "fehlberg2": (ADAPTIVE, "fehlberg2"), "adaptive_heun": (ADAPTIVE, "heun_euler"),
    "euler": (FIXED, "euler"), "midpoint": (FIXED, "midpoint"), "heun2": (FIXED, "heun"), "heun3": (FIXED, "heun3"),
    "rk4": (FIXED, "rk38"), "explicit_adams": (ADAMS, False), "implicit_adams": (ADAMS, True),
    "fixed_adams": (ADAMS, True), "implicit_euler": (FIXED, "backward_euler"),
    "implicit_midpoint": (FIXED, "implicit_midpoint"), "trapezoid": (FIXED, "trapezoid"),
    "radauIIA3": (FIXED, "radau_iia3"), "gl4": (FIXED, "gauss2"), "radauIIA5": (FIXED, "radau_iia5"),
    "gl6": (FIXED, "gauss3"), "sdirk2": (FIXED, "sdirk2"), "trbdf2": (FIXED, "trbdf2"), "scipy_solver": (SCIPY, None),
}
ALIASES = {"fehlberg": "fehlberg45"}

_FIXED_OPTIONS = frozenset({"step_size", "grid_constructor", "interp", "perturb"})
# The options torchdiffeq's solvers of each kind take (`norm` is taken, and ignored where unused, by all), and
# rknet's: an adaptive `interp` ("dense", default, or "step": land on every output) and `controller`.
OPTIONS = {
    ADAPTIVE: frozenset({"first_step", "safety", "ifactor", "dfactor", "max_num_steps", "step_t", "jump_t",
                         "min_step", "max_step", "dtype", "norm", "interp", "controller"}),
    FIXED: _FIXED_OPTIONS | {"norm"},
    "implicit": _FIXED_OPTIONS | {"norm", "max_iters"},
    ADAMS: _FIXED_OPTIONS | {"norm", "max_iters", "max_order"},
    SCIPY: frozenset({"solver", "min_step", "max_step", "norm", "grid_points", "eps"}),
}
ALL_OPTIONS = frozenset().union(*OPTIONS.values())


@dataclass(frozen=True)
class Method:
    """What a `method=` argument asks for: the solver kind, its tableau (Runge-Kutta kinds), and for Adams
    whether the implicit corrector is used."""

    name: str
    kind: str
    tableau: ButcherTableau | None = None
    implicit: bool = False

    @property
    def options(self) -> frozenset[str]:
        implicit_rk = self.kind == FIXED and self.tableau is not None and not self.tableau.explicit
        return OPTIONS["implicit" if implicit_rk else self.kind]


def check_name(method) -> None:
    """ValueError unless `method` is a torchdiffeq name, an rknet preset name or a ButcherTableau."""
    if method is None or isinstance(method, ButcherTableau) or method in TORCHDIFFEQ_METHODS:
        return
    resolve(method)


def resolve(method: str | ButcherTableau | None) -> Method:
    """The solver a `method=` argument names (default dopri5), with its tableau loaded."""
    method = "dopri5" if method is None else method
    if isinstance(method, ButcherTableau):
        return Method(method.name or "tableau", ADAPTIVE if method.b_hat is not None else FIXED, method)
    if not isinstance(method, str):
        raise TypeError(f"method must be a name (e.g. 'dopri5') or a ButcherTableau, got {type(method).__name__}")
    if method not in TORCHDIFFEQ_METHODS:
        try:
            tableau = get_tableau(ALIASES.get(method, method))
        except ValueError as error:
            raise ValueError(f"invalid method {method!r}: give one of torchdiffeq's names "
                             f"({', '.join(TORCHDIFFEQ_METHODS)}), an rknet preset name or a ButcherTableau") from error
        return Method(method, ADAPTIVE if tableau.b_hat is not None else FIXED, tableau)
    kind, detail = TORCHDIFFEQ_METHODS[method]
    if kind == ADAMS:
        return Method(method, kind, implicit=bool(detail))
    if kind == SCIPY:
        return Method(method, kind)
    try:
        tableau = get_tableau(detail)
    except ValueError as error:
        raise NotImplementedError(f"method {method!r} needs rknet's preset {detail!r} (torchdiffeq's coefficients), "
                                  "which this build does not have yet") from error
    return Method(method, kind, tableau)
