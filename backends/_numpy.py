"""The NumPy backend: arrays in host memory, BLAS for the products."""

from __future__ import annotations

import os
import platform

import numpy as np

from ._base import Backend

__all__ = ["NumpyBackend", "cpu_info"]


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

    def device_info(self) -> dict:
        return {"backend": self.name, "device": "cpu", "numpy": np.__version__, **cpu_info()}
