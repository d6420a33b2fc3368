"""The NumPy backend: arrays in host memory, BLAS for the products."""

from __future__ import annotations

import functools
import os
import platform

import numpy as np

from ._base import Backend

__all__ = ["EPOCH_MIN_STEPS", "FUSED_MIN_SIZE", "NumpyBackend", "cpu_info", "numba_kernels"]

NUMBA_ENV = "XLOGREG_NUMBA"
# The compiled kernels only pay on large data. Numba compiles each kernel once per
# dtype (8-13 s on 2 busy cores, empty cache) and caches it; a later process pays
# ~0.5 s to import Numba and load it. So a kernel runs only where it saves about 10 ms
# a call: the compile is then repaid within a 1000-epoch fit, the load within 50
# epochs, and small data (scikit-learn's toy sets) never imports Numba. Measured on
# one thread (process time, best of 5-9) against the plain xp code:
# - full-batch gradient: the fused pass saves 0.8 ns per element of X (float64,
#   binary; 0.25 ns float32, 2.3 ns with 10 classes) on one thread, more on several
#   (it reads X once, BLAS twice). Above 2**20 elements (a million) it is on: on
#   digits (1797 x 64, 115,000 elements) it would save 0.3 ms a call, 30,000 calls to
#   repay a first compile, so toy sets stay off it; at 160,000 x 100 it makes L-BFGS
#   about 3x faster with the cache warm, and a first compile says so once (2**24, the
#   break-even of a first-ever compile, cost that 3x on every later fit).
# - mini-batch epoch: the compiled epoch saves 35-45 us a step, the call overhead of
#   the plain step, and little per element (wide float64 batches of 256 rows: up to
#   150 us a step): 10 ms at 300 steps. Breast cancer at batch 64 has 9 steps, digits 29.
FUSED_MIN_SIZE = 1 << 20
EPOCH_MIN_STEPS = 300


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

    # the size tests come first: numba_kernels() imports Numba
    def fused_gradient(self, X, Y, W, b, scale, alpha, sample_weight=None):
        if X.size < FUSED_MIN_SIZE or not _compiled_ok(X, Y, sample_weight):
            return None
        kernels = numba_kernels()
        if kernels is None:
            return None
        return kernels.gradient(X, Y, W, b, scale, alpha, sample_weight)

    def train_epoch(self, X, Y, W, b, *, rows, batch, etas, mean_w, alpha, fit_intercept,
                    sample_weight=None):
        m = X.shape[0] if rows is None else rows.shape[0]
        if -(-m // batch) < EPOCH_MIN_STEPS or not _compiled_ok(X, Y, sample_weight):
            return None
        kernels = numba_kernels()
        if kernels is None:
            return None
        return kernels.epoch(X, Y, W, b, rows=rows, batch=batch, etas=etas, mean_w=mean_w,
                             alpha=alpha, fit_intercept=fit_intercept,
                             sample_weight=sample_weight)

    def data_scale(self, X, sample_weight=None, rows=None, columns=True):
        """The statistics of ``xlogreg.optimizers.data_scale`` from ``einsum`` in
        ``X``'s dtype, with no copy of ``X``: one read for the row norms, two more
        for the column statistics. ``None`` where that overflows (the generic code
        then sums in float64) or for a row subset (read through the index there)."""
        if rows is not None or X.dtype not in (np.float32, np.float64):
            return None
        m = X.shape[0]
        norms = np.einsum("ij,ij->i", X, X).astype(np.float64) + 1.0
        if sample_weight is None:
            total, top, mean_row = float(m), float(np.max(norms)), float(np.mean(norms))
        else:
            total = float(np.sum(sample_weight, dtype=np.float64))
            top = float(np.max(norms * sample_weight))
            mean_row = float(norms @ sample_weight) / total
        out = {"max_row": top * m / total, "mean_row": mean_row}
        if columns:
            # no BLAS here: OpenBLAS's threads spin for a while after a call, and on
            # 2 cores that halved the speed of the Numba kernels that come next
            if sample_weight is None:
                s1, s2 = np.sum(X, axis=0), np.einsum("ij,ij->j", X, X)
            else:
                s1 = np.einsum("i,ij->j", sample_weight, X)
                s2 = np.einsum("i,ij,ij->j", sample_weight, X, X)
            mean = np.asarray(s1, np.float64) / total
            sq = np.asarray(s2, np.float64) / total
            out.update(mean=mean, var=np.maximum(sq - mean * mean, 0.0), sq=sq)
        if not all(np.isfinite(v).all() for v in out.values()):
            return None  # squares beyond float32: the generic code sums in float64
        return out

    def device_info(self) -> dict:
        kernels = numba_kernels()
        return {"backend": self.name, "device": "cpu", "numpy": np.__version__,
                "numba": kernels and kernels.numba.__version__, **cpu_info()}
