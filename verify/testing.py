r"""Helpers for testing a construction: hypothesis profiles and exactness checks with a stated round-off allowance.

A construction's test suite (the shipped ones, or a user's for a plugin family) calls :func:`load_profile` from its
``conftest.py``, so ``HYPOTHESIS_PROFILE=thorough`` means the same everywhere:

* ``ci``: 15 derandomized examples per property (reproducible, a few minutes in all on 2 cores);
* ``thorough``: 200 random examples per property (run before calling a change done).

An *exact* part of a construction (a product computed by heads, a move by ReLU pairs) agrees with its numpy
reference up to floating-point round-off only. :func:`assert_exact` states that allowance: ``ulps`` units of
roundoff per step, over ``depth`` steps, on values of the reference's magnitude:

.. math::  \max_i |m_i - r_i| \le \text{ulps}\cdot\epsilon\cdot(1 + \text{depth})\cdot\text{scale},
           \qquad \text{scale} = \max_i |r_i| \text{ unless given.}
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, settings

PROFILES: dict[str, dict[str, Any]] = {
    "ci": {
        "max_examples": 15,
        "deadline": None,
        "derandomize": True,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    },
    "thorough": {"max_examples": 200, "deadline": None, "suppress_health_check": [HealthCheck.too_slow]},
}


def load_profile(default: str = "ci") -> str:
    """Register :data:`PROFILES` and load ``$HYPOTHESIS_PROFILE`` (``default`` when unset); return its name.

    Raises:
        ValueError: naming the profiles, when ``$HYPOTHESIS_PROFILE`` is none of them.
    """
    for name, options in PROFILES.items():
        settings.register_profile(name, **options)
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    if name not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE must be one of {sorted(PROFILES)}, got {name!r}")
    settings.load_profile(name)
    return name


def round_off_allowance(scale: float, *, depth: int = 1, ulps: float = 16.0, dtype: Any = np.float64) -> float:
    r"""``ulps`` $\cdot\,\epsilon\,(1 + \text{depth})\,$``scale``: what ``depth`` exact steps may accumulate on values of
    magnitude ``scale`` in ``dtype`` (float64 by default; a torch or numpy dtype)."""
    if not (depth >= 0 and ulps > 0 and np.isfinite(scale) and scale >= 0):
        raise ValueError(f"need depth >= 0, ulps > 0 and a finite scale >= 0, got {depth}, {ulps}, {scale}")
    eps = torch.finfo(dtype).eps if isinstance(dtype, torch.dtype) else float(np.finfo(dtype).eps)
    return ulps * eps * (1 + depth) * scale


def assert_exact(
    measured: Any,
    reference: Any,
    *,
    depth: int = 1,
    scale: float | None = None,
    ulps: float = 16.0,
    what: str = "value",
) -> float:
    """Assert that ``measured`` equals ``reference`` up to :func:`round_off_allowance`; return the largest difference.

    ``scale`` defaults to the largest magnitude in ``reference`` (1 when it is all zeros); tensors are compared in
    their own precision's epsilon.

    Raises:
        AssertionError: naming ``what``, the worst index, both values, the difference and the allowance.
        ValueError: on different shapes, or a non-finite entry in either.
    """
    dtype = measured.dtype if isinstance(measured, torch.Tensor) else np.float64
    m = measured.detach().cpu().numpy() if isinstance(measured, torch.Tensor) else np.asarray(measured, dtype=float)
    r = reference.detach().cpu().numpy() if isinstance(reference, torch.Tensor) else np.asarray(reference, dtype=float)
    if m.shape != r.shape:
        raise ValueError(f"{what}: measured shape {m.shape} differs from the reference's {r.shape}")
    if not (np.isfinite(m).all() and np.isfinite(r).all()):
        raise ValueError(
            f"{what}: non-finite entries (measured {np.isfinite(m).all()}, reference {np.isfinite(r).all()})"
        )
    if scale is None:
        scale = float(np.abs(r).max()) if r.size and np.abs(r).max() > 0 else 1.0
    allowance = round_off_allowance(scale, depth=depth, ulps=ulps, dtype=dtype)
    difference = np.abs(m - r)
    worst = float(difference.max()) if difference.size else 0.0
    if worst > allowance:
        index = np.unravel_index(int(np.argmax(difference)), difference.shape)
        raise AssertionError(
            f"{what} is not exact: at {tuple(int(i) for i in index)} measured {m[index]!r}, reference {r[index]!r}, "
            f"|difference| {worst:.3g} > allowance {allowance:.3g} ({ulps:g} ulps x (1 + depth {depth}) x scale {scale:.3g})"
        )
    return worst
