"""The helpers a construction's tests import: profiles and the exactness check with its stated allowance."""

import numpy as np
import pytest
import torch
from hypothesis import settings

from tfconstruct.verify.testing import PROFILES, assert_exact, load_profile, round_off_allowance

EPS = float(np.finfo(np.float64).eps)


def test_profiles_are_registered_and_the_environment_picks_one(monkeypatch):
    current = settings.get_current_profile_name()
    try:
        monkeypatch.setenv("HYPOTHESIS_PROFILE", "thorough")
        assert load_profile() == "thorough" and settings().max_examples == PROFILES["thorough"]["max_examples"]
        monkeypatch.setenv("HYPOTHESIS_PROFILE", "nightly")
        with pytest.raises(ValueError, match=r"HYPOTHESIS_PROFILE must be one of \['ci', 'thorough'\], got 'nightly'"):
            load_profile()
    finally:
        settings.load_profile(current)


def test_assert_exact_allows_round_off_scaled_by_depth_and_magnitude():
    reference = np.array([1e3, -2e3, 5.0])
    allowance = round_off_allowance(2e3, depth=4)
    assert allowance == pytest.approx(16 * EPS * 5 * 2e3)
    assert assert_exact(reference + 0.9 * allowance, reference, depth=4) == pytest.approx(0.9 * allowance)
    with pytest.raises(AssertionError, match=r"means is not exact: at \(1,\) measured"):
        assert_exact(reference + np.array([0.0, 1.1 * allowance, 0.0]), reference, depth=4, what="means")
    # float32 tensors are held to float32's epsilon
    single = torch.tensor([1.0, 2.0], dtype=torch.float32)
    assert_exact(single + 1e-6, single.double())
    with pytest.raises(ValueError, match="shape"):
        assert_exact(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="non-finite"):
        assert_exact(np.array([np.nan]), np.zeros(1))
