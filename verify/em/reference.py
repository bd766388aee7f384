r"""Reference EM for spherical Gaussian mixtures and Lloyd's algorithm, in numpy, step by step.

Soft EM for $x_i = \theta_{z_i} + \sigma_{z_i}\,\varepsilon_i$ with state
$(\pi_k, \mu_k, \sigma_k^2)$, one step:

.. math::

    w_{ik} = \operatorname{softmax}_k\Big(\log\pi_k - \frac{\|x_i-\mu_k\|^2}{2\sigma_k^2}
             - \frac d2 \log\sigma_k^2\Big), \qquad
    \pi_k^+ = \frac1n\sum_i w_{ik}, \qquad
    \mu_k^+ = \frac{\sum_i \tilde w_{ik} x_i}{\sum_i \tilde w_{ik}},

with $\tilde w_{ik} = \max(w_{ik}, \varepsilon)$ for a ``floor`` $\varepsilon \ge 0$ (0 is
textbook EM; a positive floor is what the transformer's log-weight M-step computes in exact
arithmetic, see :mod:`tfconstruct.constructions.em`). Variances are kept fixed (the variant the
transformer implements: shared $\sigma^2 = 1/\beta$) or updated, per component
(``"spherical"``, $\sigma_k^{2+} = \sum_i w_{ik}\|x_i - \mu_k^+\|^2 / (d\,n\,\pi_k^+)$, as
scikit-learn's ``covariance_type="spherical"``) or shared (``"shared"``,
$\sigma^{2+} = \sum_{ik} w_{ik}\|x_i-\mu_k^+\|^2/(nd)$, the trace of scikit-learn's ``"tied"``
covariance over $d$).

Lloyd's step: $z_i = \arg\min_k \|x_i - \mu_k\|^2$ (lowest index on exact ties) and
$\mu_k^+ = $ mean of the points with $z_i = k$.

**Empty clusters** (both algorithms): a cluster whose M-step weights sum to 0 in floating point
gets the mean of all the data, $\mu_k^+ = \bar x$. This is what a softmax M-step head does
when every key scores the same, so the construction and the reference share the rule.
(scikit-learn's ``KMeans`` relocates empty clusters to far points instead; the adapters below
are only compared on instances without empty clusters.)

The scikit-learn adapters at the end run exactly one (or ``steps``) EM/Lloyd iterations from a
given state. Each is one function so that the attribute-level details stay in one place
(scikit-learn's own semantics): all three ``*_init`` given (no k-means initialisation),
``reg_covar=0``, ``max_iter=1`` with ``warm_start``, and ``ConvergenceWarning`` silenced.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

VarianceUpdate = Literal["fixed", "spherical", "shared"]
VARIANCE_UPDATES: tuple[str, ...] = ("fixed", "spherical", "shared")


@dataclass(frozen=True)
class MixtureState:
    """Parameters after a step, with the responsibilities of the E-step that produced them.

    Shapes: ``means`` $(K, d)$, ``weights`` $(K,)$, ``variances`` $(K,)$,
    ``responsibilities`` $(n, K)$ (``None`` for an initial state).
    """

    means: np.ndarray
    weights: np.ndarray
    variances: np.ndarray
    responsibilities: np.ndarray | None = None

    @property
    def labels(self) -> np.ndarray:
        r"""$\arg\max_k w_{ik}$ (the hard assignment of the producing E-step)."""
        if self.responsibilities is None:
            raise ValueError("an initial state has no responsibilities, hence no labels")
        return np.argmax(self.responsibilities, axis=1)


def initial_state(
    means: np.ndarray, weights: np.ndarray | None = None, variance: float | np.ndarray = 1.0
) -> MixtureState:
    r"""$(\mu^{(0)}, \pi^{(0)}, \sigma^{2(0)})$; weights default to uniform, a scalar variance is shared."""
    means = np.array(means, dtype=np.float64)
    k = means.shape[0]
    weights = np.full(k, 1.0 / k) if weights is None else np.array(weights, dtype=np.float64)
    variances = np.broadcast_to(np.asarray(variance, dtype=np.float64), (k,)).copy()
    return MixtureState(means, weights, variances)


def squared_distances(points: np.ndarray, means: np.ndarray) -> np.ndarray:
    r"""$\|x_i - \mu_k\|^2$ by differences (no cancellation), shape $(n, K)$."""
    diff = points[:, None, :] - means[None, :, :]
    return np.einsum("nkd,nkd->nk", diff, diff)


def responsibilities(points: np.ndarray, state: MixtureState) -> np.ndarray:
    """The E-step $w_{ik}$ (module docstring), computed with a max-shifted softmax."""
    d = points.shape[1]
    with np.errstate(divide="ignore"):
        log_weights = np.log(state.weights)
    logits = (
        log_weights - squared_distances(points, state.means) / (2 * state.variances) - 0.5 * d * np.log(state.variances)
    )
    logits = logits - logits.max(axis=1, keepdims=True)
    unnormalised = np.exp(logits)
    return unnormalised / unnormalised.sum(axis=1, keepdims=True)


def weighted_means(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    r"""$\sum_i w_{ik} x_i / \sum_i w_{ik}$ per column $k$; empty columns get the data mean."""
    totals = weights.sum(axis=0)
    means = np.empty((weights.shape[1], points.shape[1]))
    empty = totals == 0
    means[~empty] = (weights[:, ~empty].T @ points) / totals[~empty, None]
    means[empty] = points.mean(axis=0)
    return means


def soft_em_step(
    points: np.ndarray,
    state: MixtureState,
    *,
    floor: float = 0.0,
    update_weights: bool = True,
    variance_update: VarianceUpdate = "fixed",
) -> MixtureState:
    r"""One E-step and M-step (module docstring). ``update_weights=False`` keeps $\pi$ fixed."""
    if variance_update not in VARIANCE_UPDATES:
        raise ValueError(f"variance_update must be one of {VARIANCE_UPDATES}, got {variance_update!r}")
    resp = responsibilities(points, state)
    n, d = points.shape
    means = weighted_means(points, np.maximum(resp, floor))
    weights = resp.sum(axis=0) / n if update_weights else state.weights
    if variance_update == "fixed":
        variances = state.variances
    else:
        scatter = (resp * squared_distances(points, means)).sum(axis=0)
        if variance_update == "spherical":
            variances = scatter / (d * resp.sum(axis=0))
        else:
            variances = np.full(len(weights), scatter.sum() / (n * d))
    return MixtureState(means, weights, variances, resp)


def soft_em(points: np.ndarray, state: MixtureState, iterations: int, **step_options) -> list[MixtureState]:
    r"""The trajectory $[\theta^{(1)}, \dots, \theta^{(L)}]$ of ``soft_em_step``."""
    trajectory = []
    for _ in range(iterations):
        state = soft_em_step(points, state, **step_options)
        trajectory.append(state)
    return trajectory


def step_lipschitz(
    points: np.ndarray,
    state: MixtureState,
    *,
    weight_scale: float,
    update_weights: bool = True,
    step: float = 1e-6,
) -> float:
    r"""Local Lipschitz constant $\kappa$ of the fixed-variance EM map at ``state``.

    The spectral norm of the central-difference Jacobian of $z \mapsto z^+$ with
    $z = (\mu_1, \dots, \mu_K, s\,\pi)$, $s$ = ``weight_scale`` (the state norm of
    :mod:`tfconstruct.theory.em` uses $s = D$); $\pi$ is left out when weights are not updated.
    An estimate of the contraction factor used by the propagation bound, not a proof of it.
    """
    k, d = state.means.shape

    def flatten(s: MixtureState) -> np.ndarray:
        return np.concatenate([s.means.ravel(), weight_scale * s.weights]) if update_weights else s.means.ravel()

    def mapped(z: np.ndarray) -> np.ndarray:
        means = z[: k * d].reshape(k, d)
        weights = z[k * d :] / weight_scale if update_weights else state.weights
        return flatten(
            soft_em_step(points, MixtureState(means, weights, state.variances), update_weights=update_weights)
        )

    z0 = flatten(state)
    h = step * max(1.0, float(np.abs(z0).max()))
    columns = [(mapped(z0 + h * e) - mapped(z0 - h * e)) / (2 * h) for e in np.eye(z0.size)]
    return float(np.linalg.norm(np.stack(columns, axis=1), ord=2))


def state_distance(a: MixtureState, b: MixtureState, diameter: float) -> float:
    r"""$(\sum_k\|\Delta\mu_k\|^2 + D^2\|\Delta\pi\|^2 + \sum_k\Delta s_k^2)^{1/2}$, the state norm of the bounds
    with variance updates (:data:`tfconstruct.theory.em.EM_SPHERICAL_STEP`), $D$ = ``diameter``."""
    return float(
        np.sqrt(
            ((a.means - b.means) ** 2).sum()
            + diameter**2 * ((a.weights - b.weights) ** 2).sum()
            + ((a.variances - b.variances) ** 2).sum()
        )
    )


def variance_step_lipschitz(
    points: np.ndarray, state: MixtureState, diameter: float, update: VarianceUpdate, step: float = 1e-6
) -> float:
    r"""Local Lipschitz constant $\kappa$ of the EM map with variance updates (``update``) at ``state``: the
    spectral norm of its central-difference Jacobian in the norm of :func:`state_distance`. An estimate of the
    contraction factor used by the propagation bound, not a proof of it."""
    k, d = state.means.shape

    def flat(s: MixtureState) -> np.ndarray:
        return np.concatenate([s.means.ravel(), diameter * s.weights, s.variances])

    def mapped(z: np.ndarray) -> np.ndarray:
        s = MixtureState(z[: k * d].reshape(k, d), z[k * d : k * d + k] / diameter, z[k * d + k :])
        return flat(soft_em_step(points, s, variance_update=update))

    z0 = flat(state)
    h = step * max(1.0, float(np.abs(z0).max()))
    columns = [(mapped(z0 + h * e) - mapped(z0 - h * e)) / (2 * h) for e in np.eye(z0.size)]
    return float(np.linalg.norm(np.stack(columns, axis=1), ord=2))


def spherical_log_likelihood(points: np.ndarray, state: MixtureState) -> float:
    r"""$\sum_i \log\sum_k \pi_k\,(2\pi s_k)^{-d/2}\exp(-\|x_i - \mu_k\|^2/(2s_k))$, the log-likelihood of the
    points under the spherical mixture ``state`` (scikit-learn's ``GaussianMixture.score`` times $n$), by a
    max-shifted log-sum-exp."""
    d = points.shape[1]
    with np.errstate(divide="ignore"):
        log_weights = np.log(state.weights)
    logits = (
        log_weights
        - squared_distances(points, state.means) / (2 * state.variances)
        - 0.5 * d * np.log(2 * np.pi * state.variances)
    )
    top = logits.max(axis=1)
    return float((top + np.log(np.exp(logits - top[:, None]).sum(axis=1))).sum())


def lloyd_step(points: np.ndarray, means: np.ndarray) -> MixtureState:
    """One Lloyd iteration; ``weights`` are the cluster fractions, ``responsibilities`` one-hot labels."""
    labels = np.argmin(squared_distances(points, means), axis=1)
    onehot = np.eye(means.shape[0])[labels]
    new_means = weighted_means(points, onehot)
    k = means.shape[0]
    return MixtureState(new_means, onehot.mean(axis=0), np.full(k, np.nan), onehot)


def lloyd(points: np.ndarray, means: np.ndarray, iterations: int) -> list[MixtureState]:
    """The trajectory of ``lloyd_step`` from ``means``."""
    trajectory = []
    for _ in range(iterations):
        state = lloyd_step(points, np.asarray(means, dtype=np.float64))
        means = state.means
        trajectory.append(state)
    return trajectory


# --------------------------------------------------------------------------- scikit-learn adapters


def sklearn_gmm_steps(
    points: np.ndarray,
    state: MixtureState,
    *,
    covariance_type: Literal["spherical", "tied"] = "spherical",
    steps: int = 1,
) -> MixtureState:
    r"""``steps`` EM iterations of ``sklearn.mixture.GaussianMixture`` from ``state``: the last state of
    :func:`sklearn_gmm_trajectory`."""
    return sklearn_gmm_trajectory(points, state, covariance_type=covariance_type, steps=steps)[-1]


def sklearn_gmm_trajectory(
    points: np.ndarray,
    state: MixtureState,
    *,
    covariance_type: Literal["spherical", "tied"] = "spherical",
    steps: int = 1,
) -> list[MixtureState]:
    r"""The states after each of ``steps`` EM iterations of ``sklearn.mixture.GaussianMixture`` from ``state`` (one
    warm-started ``fit`` with ``max_iter=1`` per step).

    ``"spherical"``: precisions $1/\sigma_k^2$; the variances are updated per component.
    ``"tied"``: precision matrix $I/\sigma^2$ (``state`` must share one variance); the returned
    ``variances`` are $\operatorname{tr}(\Sigma)/d$ of the updated tied covariance, which is
    only isotropic-comparable after one step, so ``steps`` must be 1.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    k, d = state.means.shape
    if covariance_type == "spherical":
        precisions = 1.0 / state.variances
    elif covariance_type == "tied":
        if steps != 1 or not np.all(state.variances == state.variances[0]):
            raise ValueError("tied comparison needs one shared variance and steps=1")
        precisions = np.eye(d) / state.variances[0]
    else:
        raise ValueError(f"covariance_type must be 'spherical' or 'tied', got {covariance_type!r}")
    model = GaussianMixture(
        n_components=k,
        covariance_type=covariance_type,
        weights_init=state.weights,
        means_init=state.means,
        precisions_init=precisions,
        max_iter=1,
        n_init=1,
        tol=0.0,
        reg_covar=0.0,
        warm_start=True,
    )
    trajectory = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(steps):
            model.fit(points)
            if covariance_type == "spherical":
                variances = np.array(model.covariances_, dtype=np.float64)
            else:
                variances = np.full(k, np.trace(model.covariances_) / d)
            trajectory.append(MixtureState(model.means_.copy(), model.weights_.copy(), variances))
    return trajectory


def sklearn_responsibilities(points: np.ndarray, state: MixtureState) -> np.ndarray:
    """The E-step alone: ``GaussianMixture.predict_proba`` with the state's parameters set by hand."""
    from sklearn.mixture import GaussianMixture

    k, d = state.means.shape
    model = GaussianMixture(n_components=k, covariance_type="spherical")
    model.weights_ = state.weights
    model.means_ = state.means
    model.covariances_ = state.variances
    model.precisions_cholesky_ = 1.0 / np.sqrt(state.variances)
    model.n_features_in_ = d
    return model.predict_proba(points)


def sklearn_kmeans(points: np.ndarray, means: np.ndarray, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``KMeans(algorithm="lloyd", max_iter=steps, tol=0)`` from ``means``: centres and ``labels_``.

    ``labels_`` is the assignment to the *returned* centres, i.e. the labels of Lloyd step
    ``steps + 1``.
    """
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=means.shape[0], init=means, n_init=1, max_iter=steps, tol=0.0, algorithm="lloyd")
    model.fit(points)
    return model.cluster_centers_.copy(), model.labels_.copy()
