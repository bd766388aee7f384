r"""In-context regression instances built to the bound's assumptions: a prescribed spectrum of $X^\top X/n$ (so
$X$ has full column rank and the contraction factor $\rho$ is known), a step with $\eta\mu_{\max} \in (0, 2)$, and
targets with weight on every eigenvector (so the slowest mode is present and sets the rate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

#: The range of $|w\cdot q_i|\sqrt d$ and $|x_q\cdot q_i|\sqrt d$ along each eigenvector $q_i$.
AMPLITUDES = (0.5, 1.5)


@dataclass(frozen=True)
class RegressionInstance:
    """Data ``X`` $(n, d)$ with $X^\\top X/n = Q\\,\\mathrm{diag}(\\lambda)\\,Q^\\top$ (``spectrum`` $\\lambda$, ``rotation``
    $Q$), labels ``y``, a ``query``, the step ``eta`` and an optional ``preconditioner``."""

    X: np.ndarray
    y: np.ndarray
    query: np.ndarray
    eta: float
    spectrum: np.ndarray
    rotation: np.ndarray
    preconditioner: np.ndarray | None = None


def haar(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal $d \\times d$ matrix."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def study_spectrum(dim: int, condition: float = 10.0) -> np.ndarray:
    r"""$\lambda_1 = 1$, $\lambda_d = 1/$``condition`` and the others geometric in $[1/2, 1]$: for $\eta \in (0, 2)$
    the slowest mode is $\lambda_d$ or $\lambda_1$, well separated from the rest (a clean asymptotic rate)."""
    if dim == 1:
        return np.ones(1)
    middle = 0.5 ** (np.arange(dim - 1) / max(dim - 2, 1))
    return np.concatenate([middle, [1.0 / condition]])


def build_regression(
    seed: int,
    dim: int,
    tokens: int,
    spectrum: np.ndarray,
    eta: float,
    *,
    noise: float = 0.0,
    preconditioner: np.ndarray | None = None,
) -> RegressionInstance:
    r"""$X = \sqrt n\,U\,\mathrm{diag}(\sqrt\lambda)\,Q^\top$ with orthonormal $U$ (exact second moment), $y = Xw + $
    ``noise`` $\cdot\,\varepsilon$, and $w$, $x_q$ with entries $\pm a/\sqrt d$, $a \in [1/2, 3/2]$ (see
    :data:`AMPLITUDES`), along every eigenvector: every mode is present, so the slowest sets the rate."""
    if tokens < dim:
        raise ValueError(f"tokens must be >= dim (full column rank), got tokens={tokens}, dim={dim}")
    rng = np.random.default_rng(seed)
    rotation = haar(dim, rng)
    frame = np.linalg.qr(rng.standard_normal((tokens, dim)))[0]
    X = np.sqrt(tokens) * frame @ np.diag(np.sqrt(spectrum)) @ rotation.T
    weights, query = (
        rotation @ (rng.choice([-1.0, 1.0], dim) * rng.uniform(*AMPLITUDES, dim)) / np.sqrt(dim) for _ in "wq"
    )
    y = X @ weights + noise * rng.standard_normal(tokens)
    return RegressionInstance(X, y, query, float(eta), np.asarray(spectrum, dtype=np.float64), rotation, preconditioner)


@st.composite
def regression_instances(
    draw: st.DrawFn,
    dims: tuple[int, int] = (1, 6),
    extra_tokens: tuple[int, int] = (0, 30),
    condition: tuple[float, float] = (1.0, 20.0),
    step: tuple[float, float] = (0.05, 1.95),
    noise: tuple[float, float] = (0.0, 0.5),
    preconditioned: st.SearchStrategy[bool] = st.booleans(),
) -> RegressionInstance:
    r"""A random instance inside the assumptions: $d$ in ``dims``, $n = d +$ ``extra_tokens``, $\lambda_{\max} \in
    [1/2, 2]$ and condition number in ``condition``, $\eta\mu_{\max}$ in ``step``, and (when ``preconditioned``) a
    symmetric positive definite $P$ with condition number up to 10."""
    dim = draw(st.integers(*dims))
    top = draw(st.floats(0.5, 2.0))
    spectrum = top * draw(st.floats(*condition)) ** (-np.arange(dim) / max(dim - 1, 1))
    seed = draw(st.integers(0, 2**32 - 1))
    preconditioner = None
    if draw(preconditioned):
        rng = np.random.default_rng(seed + 1)
        values = np.exp(rng.uniform(0.0, np.log(10.0), dim))
        basis = haar(dim, rng)
        preconditioner = basis @ np.diag(values) @ basis.T
    instance = build_regression(
        seed, dim, dim + draw(st.integers(*extra_tokens)), spectrum, 1.0, noise=draw(st.floats(*noise)),
        preconditioner=preconditioner,
    )  # fmt: skip
    sigma = instance.X.T @ instance.X / instance.X.shape[0]
    largest = float(np.max(np.linalg.eigvals((np.eye(dim) if preconditioner is None else preconditioner) @ sigma).real))
    return RegressionInstance(
        instance.X, instance.y, instance.query, draw(st.floats(*step)) / largest, instance.spectrum,
        instance.rotation, preconditioner,
    )  # fmt: skip
