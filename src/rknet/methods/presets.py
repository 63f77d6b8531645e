"""Coefficients of the preset Butcher tableaus, as plain data: exact fractions where they exist.

`tableau.py` builds and validates them (and computes their orders). An embedded pair carries `b_hat`,
the weights of its second solution; the difference of the two estimates the local error, which adaptive
stepping controls (`rknet.solvers.adaptive`). Fixed-grid integration uses `b` only.
"""

from __future__ import annotations

import math

# Tsitouras (2011), "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
# assumption": coefficients as published, to 16 digits.
_TSIT5_B = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
            2.324710524099774, 0]
_TSIT5_ERROR = [0.001780011052226, 0.000816434459657, -0.007880878010262, 0.144711007173263,
                -0.582357165452555, 0.458082105929187]

PRESETS: dict[str, dict[str, list]] = {
    "euler": {"a": [[0]], "b": [1], "c": [0]},
    "midpoint": {"a": [[0, 0], ["1/2", 0]], "b": [0, 1], "c": [0, "1/2"]},
    "heun": {"a": [[0, 0], [1, 0]], "b": ["1/2", "1/2"], "c": [0, 1]},
    "ralston": {"a": [[0, 0], ["2/3", 0]], "b": ["1/4", "3/4"], "c": [0, "2/3"]},
    "rk3": {"a": [[0, 0, 0], ["1/2", 0, 0], [-1, 2, 0]], "b": ["1/6", "2/3", "1/6"], "c": [0, "1/2", 1]},
    "ssprk3": {"a": [[0, 0, 0], [1, 0, 0], ["1/4", "1/4", 0]], "b": ["1/6", "1/6", "2/3"], "c": [0, 1, "1/2"]},
    "rk4": {"a": [[0, 0, 0, 0], ["1/2", 0, 0, 0], [0, "1/2", 0, 0], [0, 0, 1, 0]],
            "b": ["1/6", "1/3", "1/3", "1/6"], "c": [0, "1/2", "1/2", 1]},
    "rk38": {"a": [[0, 0, 0, 0], ["1/3", 0, 0, 0], ["-1/3", 1, 0, 0], [1, -1, 1, 0]],
             "b": ["1/8", "3/8", "3/8", "1/8"], "c": [0, "1/3", "2/3", 1]},
    # Bogacki-Shampine 3(2): third-order solution, second-order embedded one; first same as last (FSAL).
    "bs3": {"a": [[0, 0, 0, 0], ["1/2", 0, 0, 0], [0, "3/4", 0, 0], ["2/9", "1/3", "4/9", 0]],
            "b": ["2/9", "1/3", "4/9", 0], "c": [0, "1/2", "3/4", 1],
            "b_hat": ["7/24", "1/4", "1/3", "1/8"]},
    # Runge-Kutta-Fehlberg 4(5): the fourth-order solution is propagated, the fifth-order one estimates.
    "fehlberg45": {"a": [[0, 0, 0, 0, 0, 0], ["1/4", 0, 0, 0, 0, 0], ["3/32", "9/32", 0, 0, 0, 0],
                         ["1932/2197", "-7200/2197", "7296/2197", 0, 0, 0],
                         ["439/216", -8, "3680/513", "-845/4104", 0, 0],
                         ["-8/27", 2, "-3544/2565", "1859/4104", "-11/40", 0]],
                   "b": ["25/216", 0, "1408/2565", "2197/4104", "-1/5", 0],
                   "c": [0, "1/4", "3/8", "12/13", 1, "1/2"],
                   "b_hat": ["16/135", 0, "6656/12825", "28561/56430", "-9/50", "2/55"]},
    # Dormand-Prince 5(4), FSAL: the method of ode45, scipy's RK45 and torchdiffeq's dopri5.
    "dopri5": {"a": [[0, 0, 0, 0, 0, 0, 0], ["1/5", 0, 0, 0, 0, 0, 0], ["3/40", "9/40", 0, 0, 0, 0, 0],
                     ["44/45", "-56/15", "32/9", 0, 0, 0, 0],
                     ["19372/6561", "-25360/2187", "64448/6561", "-212/729", 0, 0, 0],
                     ["9017/3168", "-355/33", "46732/5247", "49/176", "-5103/18656", 0, 0],
                     ["35/384", 0, "500/1113", "125/192", "-2187/6784", "11/84", 0]],
               "b": ["35/384", 0, "500/1113", "125/192", "-2187/6784", "11/84", 0],
               "c": [0, "1/5", "3/10", "4/5", "8/9", 1, 1],
               "b_hat": ["5179/57600", 0, "7571/16695", "393/640", "-92097/339200", "187/2100", "1/40"]},
    # Tsitouras 5(4), FSAL. b_hat = b + the published error weights (whose last entry is -1/66).
    "tsit5": {"a": [[0, 0, 0, 0, 0, 0, 0], [0.161, 0, 0, 0, 0, 0, 0],
                    [-0.008480655492356992, 0.3354806554923570, 0, 0, 0, 0, 0],
                    [2.897153057105495, -6.359448489975075, 4.362295432869581, 0, 0, 0, 0],
                    [5.32586482843926, -11.74888356406283, 7.495539342889836, -0.09249506636175525, 0, 0, 0],
                    [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.07158497328140100,
                     -0.02826905039406838, 0, 0],
                    _TSIT5_B],
              "b": _TSIT5_B, "c": [0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1],
              "b_hat": [b + e for b, e in zip(_TSIT5_B, _TSIT5_ERROR)] + ["-1/66"]},
}

# Implicit presets, each implicit solve by Newton-Krylov (rknet.solvers.newton_krylov). Diagonally implicit ones
# (A lower triangular) are integrated stage by stage; SDIRK2/SDIRK3 are Alexander's (1977) L-stable methods; gamma
# of SDIRK3 is the root of x^3 - 3x^2 + 3x/2 - 1/6 in (1/6, 1/2), to 16 digits. gauss2, the 2-stage
# Gauss-Legendre method (order 4, A-stable, symplectic), is fully implicit: its two stages are solved together.
_SDIRK2, _SDIRK3 = 0.2928932188134524, 0.4358665215084592
_SDIRK3_B = (1.2084966491760107, -0.6443631706844699)
_GAUSS = math.sqrt(3) / 6
IMPLICIT_PRESETS: dict[str, dict[str, list]] = {
    "backward_euler": {"a": [[1]], "b": [1], "c": [1]},
    "implicit_midpoint": {"a": [["1/2"]], "b": [1], "c": ["1/2"]},
    "trapezoid": {"a": [[0, 0], ["1/2", "1/2"]], "b": ["1/2", "1/2"], "c": [0, 1]},
    "sdirk2": {"a": [[_SDIRK2, 0], [1 - _SDIRK2, _SDIRK2]], "b": [1 - _SDIRK2, _SDIRK2], "c": [_SDIRK2, 1]},
    "sdirk3": {"a": [[_SDIRK3, 0, 0], [0.28206673924577036, _SDIRK3, 0], [*_SDIRK3_B, _SDIRK3]],
               "b": [*_SDIRK3_B, _SDIRK3], "c": [_SDIRK3, 0.7179332607542296, 1]},
    "gauss2": {"a": [["1/4", 0.25 - _GAUSS], [0.25 + _GAUSS, "1/4"]], "b": ["1/2", "1/2"],
               "c": [0.5 - _GAUSS, 0.5 + _GAUSS]},
}
