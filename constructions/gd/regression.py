r"""In-context linear regression by gradient descent, one linear-attention layer per step (von Oswald et al. 2023).

Written with the public interface only (``tfconstruct.constructions``), as a user's plugin would be.

**Tokens.** $n$ data tokens $(x_i, y_i)$, then one query token $(x_q, 0)$. **Subspaces:** ``x`` ($d$), ``y`` (1),
``is_data`` (1 on data tokens: the attention's key mask) and ``prediction`` (1, written at the end).

**One GD step = one linear head.** Gradient descent on $\frac1{2n}\lVert y - Xw\rVert^2$ from $w_0 = 0$ with step $\eta$
and a fixed symmetric positive definite preconditioner $P$ (default $I$),
$w_{t+1} = w_t + \frac\eta n P X^\top (y - X w_t)$, moves the residuals $r_t = y - X w_t$ by
$r_{t+1} = (I - \frac\eta n X P X^\top) r_t$. The head with score $s_{ij} = x_i^\top P x_j$ (query ``x``, key ``x``),
value $-\eta\,y_j \to y$, linear scoring and keys restricted to the data tokens adds to every token $i$

.. math::  \frac1n \sum_{j \le n} s_{ij}\,(-\eta\,y_j) = -\frac\eta n\, x_i^\top P X^\top r_t

(the toolkit's linear attention divides by the $n$ attended keys, not by all $n + 1$ tokens). So data token $i$
holds $r_t$ after $t$ steps, and the query's label slot holds $-x_q^\top w_t$ (it starts at $0 = -x_q^\top w_0$).
A final exact MLP writes $\sigma(-y) - \sigma(y) = -y$ into ``prediction``: $\hat y_t = x_q^\top w_t$.

Depth $L$ = $L$ steps (1 head each, no MLP) plus the read-out MLP (2 units); residual width $d + 3$.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tfconstruct.constructions import (
    AttentionHead,
    Bilinear,
    Construction,
    LinearMap,
    MLPBuilder,
    MultiHeadAttention,
    ResidualLayout,
    Role,
    Transformer,
    TutorialExample,
    as_batch,
    integer_in,
    positive,
)

SYMMETRY_TOLERANCE = 1e-12


@dataclass(frozen=True)
class RegressionReadout:
    """``prediction`` $(b,)$: $\\hat y = x_q^\\top w_L$; ``residuals`` $(b, n)$: $y - X w_L$ on the data tokens."""

    prediction: torch.Tensor
    residuals: torch.Tensor


class InContextRegression(Construction):
    r"""$L$ steps of (preconditioned) gradient descent on the in-context least-squares problem, as linear attention.

    Args:
        dim: $d \ge 1$, the dimension of the $x_i$.
        steps: $L \ge 0$ GD steps (one layer each; $L = 0$ predicts 0).
        eta: the step size $\eta > 0$ (GD converges when $\eta\mu_{\max} < 2$, $\mu$ the eigenvalues of
            $P^{1/2}\,X^\top X/n\,P^{1/2}$).
        preconditioner: $P$, a symmetric positive definite $d \times d$ matrix (default the identity).

    Raises:
        ValueError: naming the parameter and its allowed range.
    """

    def __init__(self, dim: int, *, steps: int, eta: float, preconditioner: np.ndarray | torch.Tensor | None = None):
        self.dim = integer_in("dim", dim, 1)
        self.steps = integer_in("steps", steps, 0)
        self.eta = positive("eta", eta)
        self.preconditioner = _check_preconditioner(preconditioner, self.dim)
        self.layout = ResidualLayout([("x", self.dim), ("y", 1), ("is_data", 1), ("prediction", 1)])
        step = AttentionHead(
            Bilinear(self.layout).add("x", "x", matrix=self.preconditioner),
            LinearMap(self.layout).add("y", "y", -self.eta),
            "linear",
            keys="is_data",
            label="gradient step",
        )
        gd = Transformer(self.layout, [MultiHeadAttention([step], label="gd")], ["gd"])
        flip = MLPBuilder(self.layout, "prediction = -y")
        flip.group({"y": -1.0}, {"prediction": 1.0}, label="relu(-y)")
        flip.group({"y": 1.0}, {"prediction": -1.0}, label="-relu(y)")
        self.model = gd * self.steps + Transformer(self.layout, [flip.build()], ["readout"])

    def embed(
        self,
        X: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        query: np.ndarray | torch.Tensor,
        *,
        device: str | torch.device | None = None,
    ) -> torch.Tensor:
        """The input stream: data tokens $(x_i, y_i)$, then the query token $(x_q, 0)$.

        Args:
            X: ``(n, d)`` or ``(b, n, d)``, $n \\ge 1$. y: ``(n,)`` or ``(b, n)``. query: ``(d,)`` or ``(b, d)``.

        Raises:
            ValueError: on a wrong shape or a non-finite entry, naming the argument.
        """
        X, y, query = as_batch("X", X, 3), as_batch("y", y, 2), as_batch("query", query, 2)
        batch, n, d = X.shape
        if d != self.dim or n < 1:
            raise ValueError(f"X must have shape (batch, n >= 1, d = {self.dim}), got {tuple(X.shape)}")
        if tuple(y.shape) != (batch, n):
            raise ValueError(f"y must have shape ({batch}, {n}) (one label per data point), got {tuple(y.shape)}")
        if tuple(query.shape) != (batch, d):
            raise ValueError(f"query must have shape ({batch}, {d}), got {tuple(query.shape)}")
        values = {
            "x": torch.cat([X, query[:, None, :]], dim=1),
            "y": torch.cat([y, torch.zeros(batch, 1, dtype=y.dtype)], dim=1)[..., None],
            "is_data": torch.cat([torch.ones(n), torch.zeros(1)]).reshape(1, n + 1, 1),
        }
        return self.layout.embed(batch, n + 1, values, device=device)

    def readout(self, stream: torch.Tensor) -> RegressionReadout:
        """The prediction (query token's ``prediction``) and the residuals (data tokens' ``y``)."""
        return RegressionReadout(
            self.layout.read(stream[:, -1], "prediction")[:, 0], self.layout.read(stream[:, :-1], "y")[..., 0]
        )

    def trajectory(self, stream: torch.Tensor) -> torch.Tensor:
        r"""$\hat y_t = x_q^\top w_t$ for $t = 0..L$, shape $(b, L + 1)$, from one forward pass (the query's $-y$)."""
        hooks = [f"iter{t}.gd" for t in range(self.steps)]
        trace = self.model(stream, trace=hooks)
        queries = [stream] + [trace[hook] for hook in hooks]
        return -torch.stack([self.layout.read(q[:, -1], "y")[:, 0] for q in queries], dim=1)


def _check_preconditioner(preconditioner: np.ndarray | torch.Tensor | None, dim: int) -> torch.Tensor:
    if preconditioner is None:
        return torch.eye(dim, dtype=torch.float64)
    matrix = as_batch("preconditioner", preconditioner, 3)
    if tuple(matrix.shape) != (1, dim, dim):
        raise ValueError(f"preconditioner must have shape ({dim}, {dim}), got {tuple(matrix.shape[1:])}")
    matrix = matrix[0]
    if not torch.allclose(matrix, matrix.T, rtol=0.0, atol=SYMMETRY_TOLERANCE * float(matrix.abs().max())):
        raise ValueError("preconditioner must be symmetric (the bound and the rate assume P = P^T)")
    smallest = float(torch.linalg.eigvalsh(matrix).min())
    if not smallest > 0:
        raise ValueError(f"preconditioner must be positive definite, its smallest eigenvalue is {smallest:.3g}")
    return matrix


TUTORIAL_ROLES: dict[str, Role] = {"x": "input", "y": "state", "is_data": "input", "prediction": "result"}
ROUND_OFF = 1e-12  # differences below this are printed as round-off, so the tutorial's text does not depend on them


def tutorial_example() -> TutorialExample:
    r"""Two GD steps ($\eta = 0.5$) on four points in the plane, then the read-out; the notes give the prediction
    beside numpy's gradient descent and least squares."""
    X = np.array([[1.0, 0.5], [-0.5, 1.0], [1.5, -1.0], [0.0, 2.0]])
    w_star, query, eta, steps = np.array([1.0, -0.5]), np.array([1.0, 1.0]), 0.5, 2
    construction = InContextRegression(2, steps=steps, eta=eta)
    stream = construction.embed(X, X @ w_star, query)
    with torch.no_grad():
        prediction = float(construction.readout(construction.model(stream)).prediction[0])
    w = np.zeros(2)
    for _ in range(steps):
        w = w + eta / len(X) * X.T @ (X @ w_star - X @ w)
    least_squares = float(np.linalg.lstsq(X, X @ w_star, rcond=None)[0] @ query)
    difference = abs(prediction - float(w @ query))
    agreement = r"below $10^{-12}$, round-off" if difference < ROUND_OFF else f"{difference:.4g}"
    notes = rf"""
**In-context regression by gradient descent.** Four data tokens $(x_i, y_i)$ with $y_i = x_i^\top w_\star$,
$w_\star = (1, -0.5)$, and a query token $(x_q, 0)$, $x_q = (1, 1)$. Gradient descent on
$\frac1{{2n}}\lVert y - Xw\rVert^2$ from $w^{{(0)}} = 0$ with $\eta = {eta:g}$:
$w^{{(t+1)}} = w^{{(t)}} + \frac\eta n X^\top(y - X w^{{(t)}})$ (the superscript counts steps, subscripts index tokens).

**Subspaces.** `x`, `y` hold the data (the query's `y` starts at 0); `is_data` is 1 on the data tokens and masks the
keys; `prediction` is written by the last sublayer.

**Each step** (`iter<t>.gd`) is one linear head: score $x_i^\top x_j$ (query `x`, key `x`), value $-\eta\,y_j \to y$,
keys the data tokens, divided by the $n = 4$ attended keys, so its pattern is $A_{{ij}} = x_i^\top x_j / 4$ (rows do not
sum to 1). Data token $i$'s `y` becomes the residual $r^{{(t+1)}}_i$ of
$r^{{(t+1)}} = r^{{(t)}} - \frac\eta n X X^\top r^{{(t)}}$, the query's `y` becomes $-x_q^\top w^{{(t+1)}}$.

**Read-out** (`readout`): an MLP with units $\mathrm{{ReLU}}(-y)$ and $\mathrm{{ReLU}}(y)$ writes $-y$ into `prediction`,
so the query token's `prediction` is $\hat y^{{(2)}} = x_q^\top w^{{(2)}}$ (the data tokens' `prediction`, $-r_i$, is a
per-token leftover that nothing reads). Every sublayer is exact:

| | prediction for $x_q$ |
|---|---|
| `prediction` (this transformer) | {prediction:.4g} |
| $x_q^\top w^{{(2)}}$, gradient descent in numpy (difference: {agreement}) | {float(w @ query):.4g} |
| least squares $x_q^\top w_\star$ (`numpy.linalg.lstsq`), the limit as $t \to \infty$ | {least_squares:.4g} |
"""
    return TutorialExample(
        "In-context linear regression: two gradient-descent steps",
        construction.model,
        stream,
        notes,
        roles=TUTORIAL_ROLES,
    )
