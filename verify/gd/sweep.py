r"""``tfconstruct sweep gd``: in-context gradient descent over depth (from $L = 0$) x step size x (d, n).

:class:`~tfconstruct.constructions.gd.InContextRegression` with $L$ = depth steps on instances with the prescribed
spectrum of :func:`~tfconstruct.verify.gd.strategies.study_spectrum` ($\lambda_{\max} = 1$, so $\eta \in (0, 2)$
converges). Metrics:

* ``error`` $= |\hat y_L - y_{LS}|$, bounded by $\lVert x_q\rVert\lVert w_{LS}\rVert\rho^L$ (``gd_prediction_depth``);
  its per-layer rate is fitted on each step size's asymptotic window and must match
  ``expected_rate`` $= \log\max_i|1 - \eta\lambda_i|$ to 3 digits (relative $10^{-3}$);
* ``exact_error`` $= |\hat y_L - x_q^\top w_L|$ against numpy gradient descent: 0 up to the round-off ``round_off``
  $= 16\epsilon(1 + L)\max(|\hat y|, 1)$;
* ``fit_from``: the window's start, the first $L$ where the other modes are $10^{-5}$ of the slowest,
  $(d - 1)\,A^2(\rho_2/\rho)^L \le 10^{-5}$ ($\rho_2$ the next largest $|1 - \eta\lambda_i|$, $A = 3$ the largest ratio of
  two modes' amplitudes in an instance).

Every row also holds the bound's inputs that are not grid parameters (``q`` $= \lVert x_q\rVert$, ``w``
$= \lVert w_{LS}\rVert$, ``rho`` $= \max_i|1 - \eta\lambda_i|$, ``kappa`` $= \kappa(P) = 1$), so ``error_bound`` can be
recomputed from ``results.csv`` alone (:meth:`~tfconstruct.verify.study.BoundColumn.evaluate`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tfconstruct.constructions.gd import InContextRegression
from tfconstruct.theory.gd import GD_PREDICTION, contraction_factor, per_layer_rate
from tfconstruct.verify import (
    BoundColumn,
    Fit,
    Study,
    depth_param,
    interval,
    positive_int,
    prefix_values,
    round_off_allowance,
)

from .reference import gradient_descent, least_squares
from .strategies import AMPLITUDES, RegressionInstance, build_regression, study_spectrum

CONTAMINATION = 1e-5  # the other modes' share at the start of the fit window
KAPPA = 1.0  # the condition number of the preconditioner P = I (plain GD)
FLOOR = 1e-13  # medians within 10x of this are round-off, left out of the fit


def instances(config: dict, seeds: Sequence[int]) -> list[RegressionInstance]:
    """Per seed: an instance of the study spectrum with the row's $d$, $n$ and $\\eta$ (noise-free labels)."""
    spectrum = study_spectrum(config["dim"])
    return [build_regression(seed, config["dim"], config["tokens"], spectrum, config["eta"]) for seed in seeds]


def fit_window(eta: float, spectrum: np.ndarray) -> float:
    r"""The first $L$ with $(d - 1)A^2(\rho_2/\rho)^L \le$ ``CONTAMINATION``: from there the slowest mode sets the rate."""
    factors = np.sort(np.unique(np.round(np.abs(1.0 - eta * spectrum), 15)))[::-1]
    if factors.size < 2 or factors[1] == 0:
        return 0.0
    spread = (AMPLITUDES[1] / AMPLITUDES[0]) ** 2
    return math.ceil(math.log(CONTAMINATION / ((spectrum.size - 1) * spread)) / math.log(factors[1] / factors[0]))


def measure(config: dict, seeds: Sequence[int]) -> list[dict[str, float]]:
    """One batched forward pass of the deepest GD model against numpy GD and the least-squares limit, read at every
    depth of ``config["depth"]`` (the study's prefix): the read-out sublayer applied to the stream after step $L$
    is the depth-$L$ model's output. Rows depth by depth."""
    batch = instances(config, seeds)
    depths, eta = prefix_values(config, "depth"), config["eta"]
    construction = InContextRegression(config["dim"], steps=max(depths), eta=eta)
    stream = construction.embed(
        np.array([i.X for i in batch]), np.array([i.y for i in batch]), np.array([i.query for i in batch])
    )
    after = {steps: f"iter{steps - 1}.gd" if steps else "input" for steps in depths}
    trace = construction.model(stream, trace=list(after.values()))
    readout = construction.model.part("readout")
    return [
        row
        for steps in depths
        for row in _rows(batch, eta, steps, construction.readout(readout(trace[after[steps]])).prediction.numpy())
    ]


def _rows(batch: list[RegressionInstance], eta: float, steps: int, predictions: np.ndarray) -> list[dict[str, float]]:
    """The metrics of every instance after ``steps`` GD layers."""
    rows = []
    for instance, prediction in zip(batch, predictions):
        reference = gradient_descent(instance.X, instance.y, instance.query, eta, steps).predictions[-1]
        weights, limit = least_squares(instance.X, instance.y, instance.query)
        q, w, rho = (
            float(np.linalg.norm(instance.query)),
            float(np.linalg.norm(weights)),
            contraction_factor(eta, instance.spectrum),
        )
        rows.append({
            "error": abs(prediction - limit),
            "error_bound": GD_PREDICTION(q=q, w=w, kappa=KAPPA, rho=rho, L=steps),
            "exact_error": abs(prediction - reference),
            "exact_error_bound": 0.0,
            "round_off": round_off_allowance(max(abs(reference), 1.0), depth=steps),
            "expected_rate": per_layer_rate(eta, instance.spectrum),
            "fit_from": fit_window(eta, instance.spectrum),
            # the bound's inputs that are not grid parameters (error_bound recomputes from the row alone)
            "q": q, "w": w, "rho": rho, "kappa": KAPPA,
        })  # fmt: skip
    return rows


def check_grid(grid: dict) -> list[str]:
    """Cross-parameter problems: $n \\ge d$ (full column rank, so the least-squares solution is unique)."""
    if max(grid["dim"]) > min(grid["tokens"]):
        return [
            f"gd needs --tokens >= --dim (X of full column rank), got tokens {grid['tokens']} and dim {grid['dim']}"
        ]
    return []


STUDY = Study(
    name="gd",
    description="in-context gradient descent",
    measure=measure,
    params=(
        positive_int("dim", [4], "d", "data dimension d"),
        positive_int("tokens", [64], "n", "data points n (in-context examples)"),
        interval("eta", [0.5, 1.0, 1.5], "eta", "GD step size (lambda_max = 1, so eta in (0, 2) converges)", 0.0, 2.0),
        depth_param([0, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160], "GD steps L (0: the prediction 0)", minimum=0),
    ),
    replicates=3,
    bounds=(
        BoundColumn("error", 1e-12, theory=GD_PREDICTION, inputs=(("L", "depth"),)),
        BoundColumn("exact_error", "round_off"),  # exact up to round-off: bound 0, no registered bound
    ),
    fits=(
        Fit(
            "error",
            "depth",
            "semilog",
            expected="expected_rate",
            tolerance=1e-3,
            relative=True,
            fit_from="fit_from",
            floor=FLOOR,
        ),
    ),  # fmt: skip
    constants={"spectrum": "study_spectrum(d): 1, geometric to 1/2, and 1/10", "noise": 0.0, "preconditioner": None},
    check_grid=check_grid,
    prefix="depth",
    metric_labels={
        "error": r"$|\hat y_L - x_q^\top w_{\mathrm{LS}}|$",
        "exact_error": r"$|\hat y_L - y_L^{\mathrm{GD}}|$",
    },
)
