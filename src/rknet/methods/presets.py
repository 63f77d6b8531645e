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

_DOPRI8_A = [
    [], ["1/18"], ["1/48", "1/16"], ["1/32", 0, "3/32"], ["5/16", 0, "-75/64", "75/64"],
    ["3/80", 0, 0, "3/16", "3/20"],
    ["29443841/614563906", 0, 0, "77736538/692538347", "-28693883/1125000000", "23124283/1800000000"],
    ["16016141/946692911", 0, 0, "61564180/158732637", "22789713/633445777", "545815736/2771057229",
     "-180193667/1043307555"],
    ["39632708/573591083", 0, 0, "-433636366/683701615", "-421739975/2616292301", "100302831/723423059",
     "790204164/839813087", "800635310/3783071287"],
    ["246121993/1340847787", 0, 0, "-37695042795/15268766246", "-309121744/1061227803", "-12992083/490766935",
     "6005943493/2108947869", "393006217/1396673457", "123872331/1001029789"],
    ["-1028468189/846180014", 0, 0, "8478235783/508512852", "1311729495/1432422823", "-10304129995/1701304382",
     "-48777925059/3047939560", "15336726248/1032824649", "-45442868181/3398467696", "3065993473/597172653"],
    ["185892177/718116043", 0, 0, "-3185094517/667107341", "-477755414/1098053517", "-703635378/230739211",
     "5731566787/1027545527", "5232866602/850066563", "-4093664535/808688257", "3962137247/1805957418",
     "65686358/487910083"],
    ["403863854/491063109", 0, 0, "-5068492393/434740067", "-411421997/543043805", "652783627/914296604",
     "11173962825/925320556", "-13158990841/6184727034", "3936647629/1978049680", "-160528059/685178525",
     "248638103/1413531060", 0],
]
_DOPRI8_B = ["14005451/335480064", 0, 0, 0, 0, "-59238493/1068277825", "181606767/758867731", "561292985/797845732",
             "-1041891430/1371343529", "760417239/1151165299", "118820643/751138087", "-528747749/2220607170", "1/4", 0]
_DOPRI8_B_HAT = ["13451932/455176623", 0, 0, 0, 0, "-808719846/976000145", "1757004468/5645159321",
                 "656045339/265891186", "-3867574721/1518517206", "465885868/322736535", "53011238/667516719", "2/45",
                 0, 0]
_DOPRI8_C = [0, "1/18", "1/12", "1/8", "5/16", "3/8", "59/400", "93/200", "5490023248/9719169821", "13/20",
             "1201146811/1299019798", 1, 1, 1]
_DOPRI8 = {"a": [row + [0] * (14 - len(row)) for row in [*_DOPRI8_A, _DOPRI8_B[:13]]], "b": _DOPRI8_B,
           "c": _DOPRI8_C, "b_hat": _DOPRI8_B_HAT}

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
    # Heun's third-order method (Heun 1900; Hairer, Norsett & Wanner, Solving ODEs I, Table II.1.1):
    # torchdiffeq's `heun3`.
    "heun3": {"a": [[0, 0, 0], ["1/3", 0, 0], [0, "2/3", 0]], "b": ["1/4", 0, "3/4"], "c": [0, "1/3", "2/3"]},
    # Heun-Euler 2(1): Heun's second-order solution, Euler's first-order one to estimate (torchdiffeq's
    # `adaptive_heun`; its error weights are +-1/2, the same up to sign).
    "heun_euler": {"a": [[0, 0], [1, 0]], "b": ["1/2", "1/2"], "c": [0, 1], "b_hat": [1, 0]},
    # Runge-Kutta-Fehlberg 1(2) (Fehlberg 1969, NASA TR R-315, Table 3): torchdiffeq's `fehlberg2` propagates
    # the second-order solution b and estimates with the first-order one b_hat (the third stage's row).
    "fehlberg2": {"a": [[0, 0, 0], ["1/2", 0, 0], ["1/256", "255/256", 0]], "b": ["1/512", "255/256", "1/512"],
                  "c": [0, "1/2", 1], "b_hat": ["1/256", "255/256", 0]},
    # Dormand-Prince 8(7) "RK8(7)13M" (Prince & Dormand 1981, "High order embedded Runge-Kutta formulae",
    # J. Comput. Appl. Math. 7, Table 2, the published rational approximations): 13 stages and a 14th, f at
    # the new state, first same as last as in torchdiffeq's `dopri8`.
    "dopri8": _DOPRI8,
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
_S2, _S6, _S15 = math.sqrt(2), math.sqrt(6), math.sqrt(15)
_TRBDF2 = 1 - _S2 / 2
IMPLICIT_PRESETS: dict[str, dict[str, list]] = {
    "backward_euler": {"a": [[1]], "b": [1], "c": [1]},
    "implicit_midpoint": {"a": [["1/2"]], "b": [1], "c": ["1/2"]},
    "trapezoid": {"a": [[0, 0], ["1/2", "1/2"]], "b": ["1/2", "1/2"], "c": [0, 1]},
    "sdirk2": {"a": [[_SDIRK2, 0], [1 - _SDIRK2, _SDIRK2]], "b": [1 - _SDIRK2, _SDIRK2], "c": [_SDIRK2, 1]},
    "sdirk3": {"a": [[_SDIRK3, 0, 0], [0.28206673924577036, _SDIRK3, 0], [*_SDIRK3_B, _SDIRK3]],
               "b": [*_SDIRK3_B, _SDIRK3], "c": [_SDIRK3, 0.7179332607542296, 1]},
    # Radau IIA (Ehle 1969; Hairer & Wanner, Solving ODEs II, Table IV.5.5/5.6): 2 stages order 3, 3 stages
    # order 5, stiffly accurate and L-stable, fully implicit (torchdiffeq's `radauIIA3`, `radauIIA5`).
    "radau_iia3": {"a": [["5/12", "-1/12"], ["3/4", "1/4"]], "b": ["3/4", "1/4"], "c": ["1/3", 1]},
    "radau_iia5": {"a": [[11 / 45 - 7 * _S6 / 360, 37 / 225 - 169 * _S6 / 1800, -2 / 225 + _S6 / 75],
                         [37 / 225 + 169 * _S6 / 1800, 11 / 45 + 7 * _S6 / 360, -2 / 225 - _S6 / 75],
                         [4 / 9 - _S6 / 36, 4 / 9 + _S6 / 36, "1/9"]],
                   "b": [4 / 9 - _S6 / 36, 4 / 9 + _S6 / 36, "1/9"], "c": [0.4 - _S6 / 10, 0.4 + _S6 / 10, 1]},
    # Gauss-Legendre with 3 stages (Butcher 1964; Hairer & Wanner II, Table IV.5.2): order 6, A-stable,
    # symplectic (torchdiffeq's `gl6`).
    "gauss3": {"a": [["5/36", 2 / 9 - _S15 / 15, 5 / 36 - _S15 / 30], [5 / 36 + _S15 / 24, "2/9", 5 / 36 - _S15 / 24],
                     [5 / 36 + _S15 / 30, 2 / 9 + _S15 / 15, "5/36"]],
               "b": ["5/18", "4/9", "5/18"], "c": [0.5 - _S15 / 10, "1/2", 0.5 + _S15 / 10]},
    # TR-BDF2 as an ESDIRK (Bank et al. 1985; Hosea & Shampine 1996, "Analysis and implementation of TR-BDF2",
    # gamma = 2 - sqrt 2): trapezoid to 2 gamma', then BDF2; order 2, L-stable (torchdiffeq's `trbdf2`,
    # without an embedded row there).
    "trbdf2": {"a": [[0, 0, 0], [_TRBDF2, _TRBDF2, 0], [_S2 / 4, _S2 / 4, _TRBDF2]], "b": [_S2 / 4, _S2 / 4, _TRBDF2],
               "c": [0, 2 * _TRBDF2, 1]},
    "gauss2": {"a": [["1/4", 0.25 - _GAUSS], [0.25 + _GAUSS, "1/4"]], "b": ["1/2", "1/2"],
               "c": [0.5 - _GAUSS, 0.5 + _GAUSS]},
}
