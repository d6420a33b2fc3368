"""Benchmark fixtures, and the machine description stored in every result file."""

import numpy as np
import pytest

from xlogreg import backends
from _common import SIZE, gpu_backend_or_skip


def pytest_benchmark_update_machine_info(config, machine_info):
    info = backends.get_backend("numpy").device_info()
    machine_info["xlogreg"] = {"bench_size": SIZE, **info}
    try:
        machine_info["xlogreg"]["gpu"] = backends.get_backend("cupy").device_info()
    except (ImportError, backends.BackendUnavailableError) as err:
        machine_info["xlogreg"]["gpu"] = {"skipped": f"no GPU: {err}"}


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """NumPy, and CuPy where a GPU is present (else the row says 'skipped: no GPU')."""
    if request.param == "cupy":
        return gpu_backend_or_skip()
    return backends.get_backend("numpy")


@pytest.fixture(scope="session")
def host_rng():
    return np.random.default_rng(0)
