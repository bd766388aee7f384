"""Input validation shared by every construction: clear errors, never a silent NaN.

Each check names the parameter and the allowed range in its message.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def as_batch(name: str, value: ArrayLike, ndim: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``value`` as a finite tensor with ``ndim`` dims, a leading batch dim added if it has ``ndim - 1``.

    Raises:
        ValueError: naming ``name``, for values that are not real numbers (complex, bool, strings, objects, ragged
            lists), the wrong number of dimensions, or a NaN or inf entry.
    """
    tensor = torch.as_tensor(real_array(name, value), dtype=dtype)
    if tensor.ndim == ndim - 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim - 1} or {ndim} dimensions (with a leading batch), got shape {tuple(tensor.shape)}"
        )
    if tensor.numel() and not bool(torch.isfinite(tensor).all()):
        first = tuple(torch.nonzero(~torch.isfinite(tensor))[0].tolist())
        raise ValueError(
            f"{name} contains non-finite values (NaN or inf), the first at index {first} of the batched shape "
            f"{tuple(tensor.shape)}: {float(tensor[first])}; all entries must be finite"
        )
    return tensor


def real_array(name: str, value: ArrayLike) -> ArrayLike:
    """``value`` itself if it holds real numbers (float or integer entries), else a ``ValueError`` naming ``name``."""
    if isinstance(value, torch.Tensor):
        kind = "complex" if value.is_complex() else "bool" if value.dtype == torch.bool else None
    else:
        try:
            array = np.asarray(value)
        except ValueError as err:  # a ragged nested list
            raise ValueError(f"{name} must be an array of real numbers, got a ragged sequence ({err})") from None
        kind = None if array.dtype.kind in "fiu" else str(array.dtype)
        value = array
    if kind is not None:
        raise ValueError(f"{name} must hold real numbers (float or integer), got {kind} entries")
    return value


def integer_in(name: str, value: int, low: int, high: float = math.inf) -> int:
    """``value`` as an int in ``[low, high]`` (an integral float such as 2.0 is accepted)."""
    integral = isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer())
    if isinstance(value, bool) or not integral or not (low <= value <= high):
        upper = "" if high == math.inf else f" and <= {int(high)}"
        raise ValueError(f"{name} must be an integer >= {low}{upper}, got {value!r}")
    return int(value)


def positive(name: str, value: float, high: float = math.inf) -> float:
    """``value`` as a finite float in ``(0, high]``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (math.isfinite(value) and 0 < value <= high)
    ):
        upper = "" if high == math.inf else f" and <= {high:g}"
        raise ValueError(f"{name} must be finite and > 0{upper}, got {value!r}")
    return float(value)


def dtype_of(name: str, dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float64, torch.float32):
        raise ValueError(f"{name} must be torch.float64 or torch.float32, got {dtype}")
    return dtype


NORM_ROUND_OFF = 1e-12  # norms computed by another library may differ from torch's in the last bits
RADIUS_SLACK = 100.0  # the largest radius / largest norm for which a self-selecting norm head stays exact


def within_radius(
    name: str, vectors: torch.Tensor, radius: float, *, parameter: str = "radius", max_ratio: float = RADIUS_SLACK
) -> float:
    r"""Check that every vector (last dimension) of ``vectors`` has norm $\le R$ = ``radius``, and that $R$ is at
        most ``max_ratio`` times the largest norm; return the largest norm.

        A head that selects $\lVert\mu_k
    Vert^2$ by the score $\langle\mu_k, \mu_l
    angle + B\langle e_k, e_l
    angle - B$
        with $B = 2R^2$ (EM's norm refresh) is exact only while every norm is $\le R$, and it cancels $B$ against
        $\lVert\mu_k
    Vert^2$, losing about $\epsilon B$: with $R$ much larger than the data the "exact" norm carries an
        error of $\epsilon R^2$ relative to $\lVert\mu
    Vert^2$ (2 % of the mean at $R = 10^8$ on unit data). Any
        construction using that trick checks its inputs with this helper.

        Raises:
            ValueError: naming ``name`` and ``parameter`` and the range of radii that work.
    """
    largest = float(torch.linalg.vector_norm(vectors, dim=-1).max()) if vectors.numel() else 0.0
    if largest > radius * (1 + NORM_ROUND_OFF):
        raise ValueError(
            f"a vector of {name} has norm {largest:.6g} > {parameter}={radius:g}; every vector must have norm <= "
            f"{parameter} (build with {parameter} >= {largest:.6g})"
        )
    if largest > 0 and radius > max_ratio * largest:
        raise ValueError(
            f"{parameter}={radius:g} is {radius / largest:.3g} times the largest norm {largest:.6g} in {name}: the exact "
            f"norm refresh would cancel 2*{parameter}^2 against the squared norms and lose ~eps*{parameter}^2 of them; "
            f"build with {parameter} in [{largest:.6g}, {max_ratio * largest:.6g}]"
        )
    return largest
