"""Shared test settings: hypothesis profiles sized for CI (2 cores, a few minutes in all)."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def single_torch_thread():
    """Run a module's torch work on one intra-op thread (restored afterwards).

    The constructions multiply many tiny matrices; on a loaded 2-core machine OpenMP's second
    thread spins and makes such tests ~3x slower. Use with
    ``pytestmark = pytest.mark.usefixtures("single_torch_thread")``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
