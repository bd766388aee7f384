"""Shared test settings: the package's hypothesis profiles (``ci`` by default, ``HYPOTHESIS_PROFILE=thorough``)."""

import pytest
import torch

from tfconstruct.verify.testing import load_profile

load_profile()


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
