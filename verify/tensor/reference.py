r"""Symmetric cubic tensor power iteration with deflation, step by step (numpy reference).

For a symmetric $T \in \mathbb R^{k\times k\times k}$ and fixed unit seeds $s_0, \dots, s_{R-1}$:

.. math::

    T_0 = T,\qquad v^{(0)} = s_j,\qquad
    v^{(t+1)} = \frac{T_j(I, v^{(t)}, v^{(t)})}{\lVert T_j(I, v^{(t)}, v^{(t)})\rVert},\qquad
    \lambda_j = T_j(v, v, v),\qquad T_{j+1} = T_j - \lambda_j v^{\otimes 3},

with $T(I, v, v)_a = \sum_{b,c} T_{abc} v_b v_c$ and $v = v^{(J)}$ after $J$ iterations.
The deflation is explicit (the tensor is formed), unlike the construction, which subtracts
$\sum_p \lambda_p (v_p\cdot v)^2 v_p$ from data-token sums; agreeing is therefore a real check.

:func:`spectral_gmm` is the whole Hsu-Kakade / Anandkumar et al. pipeline: moments, whitening,
this power method on the explicit whitened tensor, un-whitening $\mu_k = \lambda_k B v_k$,
$\pi_k \propto \lambda_k^{-2}$. :func:`tensorly_decomposition` wraps tensorly's own (random-restart)
power method, used only to cross-check converged decompositions. :func:`em_from_bad_init` is the EM baseline of
the comparison (sklearn, one $\mathcal N(0, I)$ start); :func:`matched_mean_errors` is the Hungarian-matched metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .moments import SphericalMoments, Whitening, spherical_moments, whitened_tensor, whitening


@dataclass(frozen=True)
class PowerDecomposition:
    r"""``eigenvalues`` $(R,)$, ``vectors`` $(R, k)$, ``iterates`` $(R, J+1, k)$ (``iterates[j, 0]`` is the
    seed) and ``squared_norms`` $(R, J)$: $\lVert T_j(I, v^{(t)}, v^{(t)})\rVert^2$, the inputs of the normaliser."""

    eigenvalues: np.ndarray
    vectors: np.ndarray
    iterates: np.ndarray
    squared_norms: np.ndarray


@dataclass(frozen=True)
class SpectralEstimate:
    """Mixture estimate ``weights`` $(K,)$ (summing to 1) and ``means`` $(K, d)$ with every intermediate."""

    weights: np.ndarray
    means: np.ndarray
    moments: SphericalMoments
    whitening: Whitening
    tensor: np.ndarray
    decomposition: PowerDecomposition


def contract(tensor: np.ndarray, v: np.ndarray) -> np.ndarray:
    """$T(I, v, v)$."""
    return np.einsum("abc,b,c->a", tensor, v, v)


def tensor_power_method(tensor: np.ndarray, seeds: np.ndarray, iterations: int) -> PowerDecomposition:
    """Power iteration from ``seeds[j]`` for component $j$, $J$ = ``iterations`` steps each, with deflation."""
    tensor = np.asarray(tensor, dtype=np.float64)
    seeds = np.asarray(seeds, dtype=np.float64)
    if tensor.ndim != 3 or len(set(tensor.shape)) != 1:
        raise ValueError(f"tensor must be cubic (k, k, k), got shape {tensor.shape}")
    if seeds.ndim != 2 or seeds.shape[1] != tensor.shape[0] or seeds.shape[0] > tensor.shape[0]:
        raise ValueError(f"seeds must have shape (R, {tensor.shape[0]}) with R <= {tensor.shape[0]}, got {seeds.shape}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    deflated = tensor.copy()
    eigenvalues, vectors, iterates, squared_norms = [], [], [], []
    for seed in seeds:
        path, norms = [seed], []
        v = seed
        for _ in range(iterations):
            u = contract(deflated, v)
            norms.append(u @ u)
            v = u / np.sqrt(u @ u)
            path.append(v)
        eigenvalue = float(v @ contract(deflated, v))
        deflated = deflated - eigenvalue * np.einsum("a,b,c->abc", v, v, v)
        eigenvalues.append(eigenvalue)
        vectors.append(v)
        iterates.append(path)
        squared_norms.append(norms)
    return PowerDecomposition(np.array(eigenvalues), np.array(vectors), np.array(iterates), np.array(squared_norms))


def deflation_targets(
    components: np.ndarray, eigenvalues: np.ndarray, seeds: np.ndarray, stored_norms: np.ndarray
) -> list[int]:
    r"""The component each stage of a deflated tensor power method converges to, on an odeco
    $T = \sum_k \lambda_k v_k^{\otimes 3}$ (``components`` $v_k$ as orthonormal rows), when stage $j$ stores its
    vector with norm $s_j$ = ``stored_norms[j]`` (the transformer's norm error) and deflates with
    $\hat\lambda_j\hat v_j^{\otimes 3} = s_j^6\lambda v^{\otimes 3}$.

    After stage $j$ the component it found keeps $\lambda(1 - s_j^6)$: the deflated tensor is still odeco, and from
    seed $j$ with overlaps $c_k$ the iteration converges to $\arg\max_k |\lambda^{\rm eff}_k c_k|$ (the coefficient
    formula of :func:`tfconstruct.theory.propagation.tensor_power_coefficients`, signs aside). A stage whose target
    was found before is **captured** by the deflation residual: it returns that component again, with eigenvalue
    $\approx |1 - s^6|\lambda$.
    """
    effective = np.asarray(eigenvalues, dtype=np.float64).copy()
    targets = []
    for seed, norm in zip(seeds, stored_norms):
        target = int(np.argmax(np.abs(effective * (components @ seed))))
        targets.append(target)
        effective[target] -= eigenvalues[target] * norm**6
    return targets


def unwhiten(decomposition: PowerDecomposition, white: Whitening) -> tuple[np.ndarray, np.ndarray]:
    r"""$\pi_k = \lambda_k^{-2} / \sum_j \lambda_j^{-2}$ and $\mu_k = \lambda_k B v_k$ (rows)."""
    raw = decomposition.eigenvalues**-2.0
    means = decomposition.eigenvalues[:, None] * (decomposition.vectors @ white.unwhiten.T)
    return raw / raw.sum(), means


def spectral_gmm(x: np.ndarray, components: int, seeds: np.ndarray, iterations: int = 30) -> SpectralEstimate:
    r"""The spectral estimate of a spherical mixture with ``components`` $K \le d$ from samples ``x`` $(n, d)$."""
    moments = spherical_moments(x, components)
    white = whitening(moments.pairs, components)
    tensor = whitened_tensor(x, moments, white)
    decomposition = tensor_power_method(tensor, seeds, iterations)
    weights, means = unwhiten(decomposition, white)
    return SpectralEstimate(weights, means, moments, white, tensor, decomposition)


def match_components(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    r"""The permutation ``p`` minimising $\sum_k \lVert \hat\mu_{p_k} - \mu_k\rVert^2$ (Hungarian), so that
    ``estimated[p]`` lines up with ``truth``."""
    costs = ((truth[:, None, :] - estimated[None, :, :]) ** 2).sum(axis=-1)
    rows, columns = linear_sum_assignment(costs)
    return columns[np.argsort(rows)]


def matched_mean_errors(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    r"""$\lVert \hat\mu_{p_k} - \mu_k \rVert_2$ per true component after Hungarian matching."""
    return np.linalg.norm(estimated[match_components(estimated, truth)] - truth, axis=1)


def tensorly_decomposition(tensor: np.ndarray, rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """tensorly's symmetric power method (10 restarts x 30 updates, best restart kept, then deflation):
    ``(weights (rank,), vectors (rank, k))``. tensorly draws its starts from numpy's *global* RNG, so this
    seeds it and restores the previous global state afterwards."""
    from tensorly.decomposition import symmetric_parafac_power_iteration

    state = np.random.get_state()
    try:
        np.random.seed(seed)
        weights, factor = symmetric_parafac_power_iteration(np.asarray(tensor, dtype=np.float64), rank)
    finally:
        np.random.set_state(state)
    return np.asarray(weights), np.asarray(factor).T


def em_from_bad_init(x: np.ndarray, components: int, seed: int, max_iter: int = 100) -> np.ndarray:
    r"""The EM baseline of the TGMM comparison: sklearn ``GaussianMixture(covariance_type="spherical")`` from ONE
    initialisation with means $\sim \mathcal N(0, I_d)$ (drawn with ``seed``, unrelated to the truth), uniform
    weights and unit variances, no restarts. Returns the fitted means $(K, d)$."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal((components, x.shape[1]))
    model = GaussianMixture(
        components,
        covariance_type="spherical",
        means_init=start,
        weights_init=np.full(components, 1.0 / components),
        precisions_init=np.ones(components),
        max_iter=max_iter,
        tol=1e-7,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x)
    return model.means_
