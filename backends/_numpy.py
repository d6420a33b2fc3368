"""The NumPy backend: arrays in host memory, BLAS for the products."""

from __future__ import annotations

import functools
import os
import platform

import numpy as np

from ._base import Backend

__all__ = ["FUSED_MIN_SIZE", "NumpyBackend", "cpu_info", "numba_kernels"]

NUMBA_ENV = "XLOGREG_NUMBA"
# Below this many elements of X a gradient takes microseconds either way; above it
# the fused kernel's single pass over X wins
FUSED_MIN_SIZE = 1 << 16


@functools.cache
def numba_kernels():
    """The compiled kernels module, or ``None`` when Numba is missing or turned off
    with ``XLOGREG_NUMBA=0`` (the plain NumPy code then runs)."""
    if os.environ.get(NUMBA_ENV, "1") == "0":
        return None
    try:
        from . import _numba
    except ImportError:
        return None
    return _numba


def _compiled_ok(X, *others):
    """The kernels take C-contiguous float32/float64 arrays of one dtype."""
    if X.dtype not in (np.float32, np.float64) or not X.flags.c_contiguous:
        return False
    return all(a is None or (a.dtype == X.dtype and a.flags.c_contiguous) for a in others)


def cpu_info() -> dict:
    """CPU model, core count and BLAS threads of this machine."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": model, "cpu_count": os.cpu_count()}
    try:  # threadpoolctl ships with scikit-learn; the report is poorer without it
        from threadpoolctl import threadpool_info
    except ImportError:
        return info
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if blas:
        info["blas"] = f"{blas[0].get('internal_api')} {blas[0].get('version')}"
        info["blas_threads"] = blas[0].get("num_threads")
    return info


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self):
        import array_api_compat.numpy as xp

        self.xp = xp

    def asarray(self, x, dtype=None):
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return np.asarray(x)

    def owns(self, x) -> bool:
        return isinstance(x, (np.ndarray, np.generic))

    def default_rng(self, seed):
        return np.random.default_rng(seed)

    def permutation(self, rng, n):
        return rng.permutation(n)

    def fused_gradient(self, X, Y, W, b, scale, alpha, sample_weight=None):
        kernels = numba_kernels()
        if kernels is None or X.size < FUSED_MIN_SIZE or not _compiled_ok(X, Y, sample_weight):
            return None
        return kernels.gradient(X, Y, W, b, scale, alpha, sample_weight)

    def train_epoch(self, X, Y, W, b, *, rows, batch, etas, mean_w, alpha, fit_intercept,
                    sample_weight=None):
        kernels = numba_kernels()
        if kernels is None or not _compiled_ok(X, Y, sample_weight):
            return None
        return kernels.epoch(X, Y, W, b, rows=rows, batch=batch, etas=etas, mean_w=mean_w,
                             alpha=alpha, fit_intercept=fit_intercept,
                             sample_weight=sample_weight)

    def device_info(self) -> dict:
        kernels = numba_kernels()
        return {"backend": self.name, "device": "cpu", "numpy": np.__version__,
                "numba": kernels and kernels.numba.__version__, **cpu_info()}
