r"""The spectral method of moments for spherical GMMs, with the tensor power core as transformer layers.

**Pipeline** (:class:`SpectralGMM`), for samples $x_1..x_n \in \mathbb R^d$ and $K \le d$ components:

1. *Pre-processing (outside the transformer, torch float64, as the paper takes it as given):*
   $\hat\sigma^2 = \lambda_{\min}(\mathrm{Cov})$ with eigenvector $u$; $M_1 = \frac1n\sum_i x_i (u^\top(x_i-\bar x))^2$;
   $M_2 = \frac1n\sum_i x_i x_i^\top - \hat\sigma^2 I$; whitening $W = U\Lambda^{-1/2}$ and $B = U\Lambda^{1/2}$ from
   the
   top-$K$ eigenpairs of $M_2$ (:func:`preprocess`); the embedding writes $y_i = W^\top x_i$, $m = W^\top M_1$ and the
   rows of $W$, $B$.
2. *Transformer layers:* $R = K$ components x $J$ iterations of the deflated power engine over the exact data-token
   contraction :class:`~tfconstruct.constructions.tensor.whitened.WhitenedData`, then un-whitening
   $\hat\mu_j = B\,(\lambda_j v_j)$ (:class:`~tfconstruct.constructions.tensor.whitened.WhitenedDataPowerIteration`).
3. *Post-processing:* $\hat\pi_j = \lambda_j^{-2} / \sum_l \lambda_l^{-2}$ (a division; outside the transformer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import as_batch, integer_in, positive
from ..construction import TutorialExample
from ..gadgets import InverseSqrt, NormalisationDomain
from ..model import Trace
from ..power.engine import PowerResult, default_seeds
from .codes import CodeKind
from .whitened import Preprocessed, WhitenedDataPowerIteration

RANK_TOLERANCE = 1e-10  # the K-th eigenvalue of M2 over the top one: below this, whitening divides by round-off


def preprocess(x: torch.Tensor | np.ndarray, components: int) -> Preprocessed:
    r"""Moments and whitening (Hsu & Kakade 2013) of samples $x$ ``(n, d)`` or ``(b, n, d)``; $K \le d$ required."""
    x = as_batch("x", x, 3)
    n, d = x.shape[1:]
    integer_in("samples n", n, 2)
    k = integer_in("components K", components, 1)
    if k > d:
        raise ValueError(
            f"components K={k} exceeds the data dimension d={d}: the spectral method of moments needs K <= d "
            f"(linearly independent means; sigma^2 as the smallest eigenvalue of Cov(x))"
        )
    mean = x.mean(dim=1)
    second = x.transpose(1, 2) @ x / n
    covariance = second - mean[:, :, None] * mean[:, None, :]
    values, vectors = torch.linalg.eigh(covariance)
    noise, direction = values[:, 0], vectors[:, :, 0]
    projections = ((x - mean[:, None, :]) @ direction[:, :, None])[..., 0]
    first = (x * projections[..., None] ** 2).mean(dim=1)
    pairs = second - noise[:, None, None] * torch.eye(d, dtype=x.dtype)
    pair_values, pair_vectors = torch.linalg.eigh(pairs)
    top_values, top_vectors = pair_values.flip(-1)[:, :k], pair_vectors.flip(-1)[:, :, :k]
    # rank K relative to the top eigenvalue (an absolute test passes round-off such as 7e-16 on identical points)
    relative = top_values[:, -1] / top_values[:, 0].abs().clamp(min=torch.finfo(x.dtype).tiny)
    if not bool((relative > RANK_TOLERANCE).all()):
        worst = int(relative.argmin())
        raise ValueError(
            f"M2 has no K={k} well-separated positive eigenvalues (instance {worst}: the K-th is "
            f"{top_values[worst, -1].item():.3g}, {relative[worst].item():.3g} of the top one; at least "
            f"{RANK_TOLERANCE:g} is needed): the means are not linearly independent at this sample size (or the "
            f"points coincide), so the data cannot be whitened; use fewer components"
        )
    whiten = top_vectors / top_values.sqrt()[:, None, :]
    unwhiten = top_vectors * top_values.sqrt()[:, None, :]
    moment = (whiten.transpose(1, 2) @ first[:, :, None])[..., 0]
    return Preprocessed(x @ whiten, moment, whiten, unwhiten, noise, top_values)


def contraction_bound(pre: Preprocessed) -> float:
    r"""$\max_b \sup_{\lVert v\rVert = 1} \lVert T(I, v, v)\rVert \le \frac1n\sum_i \lVert y_i\rVert^3
    + 3\lVert m\rVert \lVert G\rVert$ (triangle inequality term by term)."""
    cubes = pre.y.norm(dim=-1).pow(3).mean(dim=1)
    gram_norm = torch.linalg.matrix_norm(pre.whiten.transpose(1, 2) @ pre.whiten, ord=2)
    return float((cubes + 3.0 * pre.moment.norm(dim=-1) * gram_norm).max())


@dataclass(frozen=True)
class GMMEstimate:
    """``weights`` $(b, K)$, ``means`` $(b, K, d)$, the power read-out, the pre-processing and the construction."""

    weights: torch.Tensor
    means: torch.Tensor
    power: PowerResult
    preprocessed: Preprocessed
    construction: WhitenedDataPowerIteration
    trace: Trace | None


#: The largest normaliser error the pipeline's domain allows: its top $1.5\,C^2$ assumes $\lVert v\rVert^4 \le 1.5$.
DOMAIN_NORM_ERROR = 0.1


class SpectralGMM:
    r"""Pre-processing + transformer + post-processing; ``fit(x)`` returns $(\hat\pi, \hat\mu)$.

    The normaliser's domain is $[\text{floor}\cdot\lambda_-^2,\ 1.5\,C^2]$ with $\lambda_- = 1/2$ (population
    eigenvalues are $\pi_k^{-1/2} \ge 1$) and $C$ = :func:`contraction_bound`, so that $r_t \le C^2\lVert v\rVert^4$
    stays inside while $\delta_M \le 0.1$ (checked: a smaller width is a ``ValueError``); the self-selection bound
    uses $\max_i\lVert y_i\rVert$. Both are read from the data, so the weights are built per call.
    """

    def __init__(
        self,
        components: int,
        *,
        iterations: int = 30,
        width: int = 64,
        newton_steps: int = 2,
        code: CodeKind = "torus",
        seed: int = 0,
        floor: float = 1e-9,
    ):
        self.components = integer_in("components K", components, 1)
        self.iterations = integer_in("iterations", iterations, 1)
        self.width = integer_in("width", width, 1)
        self.newton_steps = integer_in("newton_steps", newton_steps, 0)
        self.code = code
        self.seeds = default_seeds(self.components, self.components, seed)
        self.floor = positive("floor", floor, 1.0)

    def build(self, pre: Preprocessed) -> WhitenedDataPowerIteration:
        """The construction sized for this pre-processed batch."""
        domain = NormalisationDomain(self.floor * 0.25, 1.5 * contraction_bound(pre) ** 2)
        n, d = pre.y.shape[1], pre.whiten.shape[1]
        bound = float(pre.y.norm(dim=-1).max())
        construction = WhitenedDataPowerIteration(
            n,
            d,
            components=self.components,
            iterations=self.iterations,
            width=self.width,
            domain=domain,
            data_bound=bound,
            newton_steps=self.newton_steps,
            code=self.code,
        )
        if construction.engine.norm_error > DOMAIN_NORM_ERROR:
            raise ValueError(
                f"width M={self.width} gives a normaliser error {construction.engine.norm_error:.3g} > "
                f"{DOMAIN_NORM_ERROR} on this data's domain [{domain.low:.3g}, {domain.high:.3g}]; the domain's top "
                f"1.5 C^2 assumes |v|^4 <= 1.5, so use width >= "
                f"{InverseSqrt.min_width(domain, DOMAIN_NORM_ERROR)}"
            )
        return construction

    def fit(self, x: torch.Tensor | np.ndarray, *, trace: bool = False) -> GMMEstimate:
        pre = preprocess(x, self.components)
        construction = self.build(pre)
        stream = construction.embed(pre, self.seeds)
        result = construction.model(stream, trace=trace)
        final = result.output if trace else result
        power, means = construction.readout(final)
        raw = power.eigenvalues.pow(-2.0)
        return GMMEstimate(
            raw / raw.sum(dim=1, keepdim=True), means, power, pre, construction, result if trace else None
        )


def tutorial_notes(construction: WhitenedDataPowerIteration, comparison: str = "") -> str:
    """Markdown notes for :func:`tutorial_example`, ending with ``comparison`` (Markdown: the read-out beside numpy's)."""
    c = construction.contraction
    return rf"""
A spherical mixture with $d = {c.data_dim}$, $K = {c.dim}$ and $n = {c.tokens}$ samples, one token per sample.
Pre-processing (moments, $\hat\sigma^2$, the eigen-decomposition of $M_2$) happened before the embedding, which
holds the whitened samples $y_i = W^\top x_i \in \mathbb R^K$.

**Subspaces.** `data` = $y_i$; `position` = a {c.codes.kind} code $p_i$ (gap $\gamma = {c.codes.gap:.3g}$);
`moment` = $m = W^\top M_1$ (same in every token); `whiten_row`, `unwhiten_row`, `coordinate` = row $a$ of $W$,
row $a$ of $B$ and $e_a$ in token $a < d$; `v` = the iterate (starts at a fixed seed); `u`, `norm_sq`, `inv_norm`,
`next`, `product`, `gram_v`, `overlap` = scratch, zero between iterations; `seed{{j}}`, `component{{j}}`,
`weighted{{j}}` ($=\lambda_j v_j$), `eigenvalue{{j}}`, `mean{{j}}` = inputs and results per component.

**One iteration** (4 attention + 2 MLP sublayers, the same weights every time):

1. `contract1`: heads with score $\pm v\cdot y_j + \beta(p_i\cdot p_j - 1)$, $\beta = {c.gate_bound:.4g}$: every
   off-diagonal score is negative, so token $i$ adds $(v\cdot y_i)\,y_i$ to `product`. Heads $\pm\langle v, w_j\rangle$
   add $Gv = \sum_a (v\cdot w_a) w_a$ to `gram_v`. Deflation heads $\pm\langle v, v_p\rangle$ write $c_p$ to `overlap`.
2. `contract2`: $u = \frac1n\sum_j (v\cdot y_j)^2 y_j - (v^\top G v)\,m - 2(m\cdot v)\,Gv - \sum_p \lambda_p c_p^2 v_p$,
   exactly the deflated whitened tensor applied as $T_j(I, v, v)$.
3. `norm`: score $\langle u, u\rangle \ge 0$ writes $r = \lVert u\rVert^2$.
4. MLP `inv_sqrt`: {construction.engine.width + 2} right-anchored hinge units $\mathrm{{ReLU}}(t_m - r)$ give
   $f = \hat\phi_M(r) \approx r^{{-1/2}}$ (and clear the scratch).
5. `rescale`: score $f > 0$, value $u$: `next` $= f\,u$.
6. MLP `overwrite`: `v` $\leftarrow$ `next`, scratch cleared.

**Finishing component $j$**: `eigen` heads $\pm\langle v, u\rangle$ write $\lambda_j = T_j(v, v, v)$ and
$\lambda_j v$; an MLP stores $v$ in `component{{j}}` and loads `seed{{j+1}}`. **Un-whitening**: heads
$\pm\langle \lambda_j v_j, b_a\rangle$ with value $n\,e_a$ write $\hat\mu_j = B\lambda_j v_j$ into `mean{{j}}`.

**Reading the result**: token 0 of the final stream holds `eigenvalue{{j}}` and `mean{{j}}`;
$\hat\pi_j = \lambda_j^{{-2}}/\sum_l \lambda_l^{{-2}}$ is post-processing. The direction of every iterate is that of the
exact power method; only $\lVert v\rVert$ carries the hinge error $\delta \le \tfrac{{3}}{{32}}(\rho-1)^2\sqrt\rho$.

{comparison}
"""


def tutorial_samples() -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's $n = 12$ samples ``(12, 2)`` and the two means they are drawn around ``(2, 2)``."""
    rng = np.random.default_rng(0)
    means = np.array([[3.0, 0.5], [-0.5, 3.0]])
    labels = np.arange(12) % 2
    return means[labels] + 0.5 * rng.standard_normal((12, 2)), means


def tutorial_example() -> TutorialExample:
    """Two components in $d = 2$ from $n = 12$ samples, 2 iterations each, $M = 48$ knots, one Newton step."""
    x, means = tutorial_samples()
    pipeline = SpectralGMM(2, iterations=2, width=48, newton_steps=1)
    pre = preprocess(x, 2)
    construction = pipeline.build(pre)
    stream = construction.embed(pre, pipeline.seeds)
    with torch.no_grad():
        out = construction.model(stream)
    layout = construction.layout
    seeds = np.asarray(pipeline.seeds)
    short, converged = _numpy_spectral(pre, seeds, pipeline.iterations), _numpy_spectral(pre, seeds, 100)
    rows = [
        "| $j$ | `eigenvalue{j}` | numpy, same $J$ | `mean{j}` | numpy, same $J$ | numpy, 100 steps |",
        "|---|---|---|---|---|---|",
    ]
    for j in range(pipeline.components):
        value, mean = layout.read(out, f"eigenvalue{j}")[0, 0, 0], layout.read(out, f"mean{j}")[0, 0]
        rows.append(
            f"| {j} | {float(value):.4g} | {short[0][j]:.4g} | {_pair(mean)} | {_pair(short[1][j])} | "
            f"{_pair(converged[1][j])} |"
        )
    comparison = (
        f"**On this example.** The read-out beside numpy's run of the same method (same pre-processing and seeds, "
        f"exact normalisation): after $J = {pipeline.iterations}$ steps the eigenvalues and means differ from it only "
        "through the normaliser's norm error, and both are still short of the converged estimate (100 steps) and of "
        "the means "
        f"{_pair(means[0])}, {_pair(means[1])} the {len(x)} samples were drawn around.\n\n" + "\n".join(rows)
    )
    return TutorialExample(
        "Spectral method of moments: cubic tensor power iteration from data tokens",
        construction.model,
        stream,
        tutorial_notes(construction, comparison),
        roles={
            **dict.fromkeys(("data", "position", "moment", "whiten_row", "unwhiten_row", "coordinate"), "input"),
            **dict.fromkeys(("product", "gram_v"), "scratch"),
            **dict.fromkeys(("mean0", "mean1"), "result"),
            **construction.roles(),
        },
    )


def _numpy_spectral(pre: Preprocessed, seeds: np.ndarray, iterations: int) -> tuple[list[float], list[np.ndarray]]:
    r"""Eigenvalues $\lambda_j$ and means $B\lambda_j v_j$ of the deflated power method on the whitened tensor in numpy
    (exact normalisation), for the first instance of ``pre``:
    $T_j(I, v, v) = \frac1n\sum_i (v\cdot y_i)^2 y_i - (v^\top G v)\,m - 2(m\cdot v)\,Gv
    - \sum_{p<j}\lambda_p (v_p\cdot v)^2 v_p$ with $G = W^\top W$."""
    y, moment, whiten, unwhiten = (a[0].numpy() for a in (pre.y, pre.moment, pre.whiten, pre.unwhiten))
    gram = whiten.T @ whiten
    values: list[float] = []
    vectors: list[np.ndarray] = []

    def contract(v: np.ndarray) -> np.ndarray:
        u = (y @ v) ** 2 @ y / len(y) - (v @ gram @ v) * moment - 2 * (moment @ v) * (gram @ v)
        return u - sum(value * (vector @ v) ** 2 * vector for value, vector in zip(values, vectors))

    for seed in seeds:
        v = seed / np.linalg.norm(seed)
        for _ in range(iterations):
            u = contract(v)
            v = u / np.linalg.norm(u)
        values.append(float(v @ contract(v)))
        vectors.append(v)
    return values, [unwhiten @ (value * vector) for value, vector in zip(values, vectors)]


def _pair(values: np.ndarray | torch.Tensor) -> str:
    """A 2-vector rounded to 4 significant digits."""
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
