"""Fixtures of the baseline tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def small_model_cpu_settings():
    """Settings for test-sized models (widths 4-32) on a shared CPU, restored afterwards.

    oneDNN (mkldnn) spends milliseconds setting up each new convolution shape, which dominates at these
    widths, and with one thread the many tiny matrix products do not wait on each other; together they
    make these tests several times faster.
    """
    enabled, threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(1)
    yield
    torch.backends.mkldnn.enabled = enabled
    torch.set_num_threads(threads)
