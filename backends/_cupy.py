"""The CuPy backend: arrays in GPU memory. CuPy is imported only when asked for."""

from __future__ import annotations

import numpy as np

from . import _sparse_kind
from ._base import Backend, BackendUnavailableError

__all__ = ["CupyBackend", "import_cupy"]

INSTALL_HINT = 'pip install "xlogreg[cuda]"'


def import_cupy():
    """Import CuPy and check that it sees a CUDA device; two causes, two errors."""
    try:
        import cupy
    except ModuleNotFoundError as err:
        if err.name not in ("cupy", None):
            raise BackendUnavailableError(
                f"CuPy is installed but failed to import ({err}); reinstall it with "
                f"{INSTALL_HINT}"
            ) from err
        raise ImportError(
            f'backend "cupy" needs CuPy, which is not installed: {INSTALL_HINT} '
            "(CUDA 12; see https://docs.cupy.dev/en/stable/install.html for others)"
        ) from err
    except ImportError as err:  # CuPy's own guard: the CUDA libraries failed to load
        raise BackendUnavailableError(
            f"CuPy is installed but cannot load CUDA: {err}"
        ) from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError: no driver, or a driver too old
        raise BackendUnavailableError(
            f"CuPy is installed but no usable CUDA device or driver was found: {err}"
        ) from err
    if count < 1:
        raise BackendUnavailableError(
            "CuPy is installed but no CUDA device is visible "
            "(check CUDA_VISIBLE_DEVICES and nvidia-smi)"
        )
    return cupy


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self):
        self._cupy = import_cupy()
        import array_api_compat.cupy as xp

        self.xp = xp

    def _sparse(self):
        import cupyx.scipy.sparse

        return cupyx.scipy.sparse

    def asarray(self, x, dtype=None):
        kind = _sparse_kind(x)
        if kind is not None:
            if dtype is not None and x.dtype != dtype:
                # on the host first for SciPy's: CuPy's sparse matrices take floats
                # only, and a count matrix (int64) is a common input
                x = x.astype(dtype)
            if kind == "numpy":
                # to the device as CSR, whatever its format: CuPy's CSR is the format
                # its sparse products are made for
                x = self._sparse().csr_matrix(x)
            return x
        return self._cupy.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return self._cupy.asnumpy(x)

    def owns(self, x) -> bool:
        return isinstance(x, self._cupy.ndarray) or _sparse_kind(x) == "cupy"

    def take_rows(self, X, rows):
        if _sparse_kind(X) == "cupy":
            # row indexing is CSR's (and CSC's); COO cannot be indexed
            return (X if X.format in ("csr", "csc") else X.tocsr())[rows]
        return self._cupy.take(X, rows, axis=0)

    def data_scale(self, X, sample_weight=None, rows=None, columns=True):
        """``xlogreg.optimizers.data_scale`` of a ``cupyx.scipy.sparse`` ``X`` from
        sparse products on the device, in float64, nothing of the dense size made;
        ``None`` for a dense ``X`` (the generic code then reads it in chunks).

        UNVERIFIED: written from CuPy's documented API (``astype``, ``multiply``,
        ``sum(axis=...)``, ``.T @ vector``, row indexing of CSR) without a GPU to
        run it on; the NumPy backend's ``_sparse_data_scale`` is the same sums."""
        if _sparse_kind(X) != "cupy":
            return None
        cupy = self._cupy
        X = X.tocsr()  # the format whose element-wise product and row indexing are sure
        if rows is not None:
            X = X[rows]
            if sample_weight is not None:
                sample_weight = cupy.take(sample_weight, rows, axis=0)
        X64 = X.astype(cupy.float64)
        S = X64.multiply(X64)
        m = X.shape[0]
        norms = cupy.asarray(S.sum(axis=1)).ravel() + 1.0
        if sample_weight is None:
            total, top, mean_row = float(m), float(norms.max()), float(norms.mean())
        else:
            w = sample_weight.astype(cupy.float64)
            total = float(w.sum())
            top = float((norms * w).max())
            mean_row = float(norms @ w) / total
        out = {"max_row": top * m / total, "mean_row": mean_row}
        if columns:
            if sample_weight is None:
                s1, s2 = X64.sum(axis=0), S.sum(axis=0)
            else:
                s1, s2 = X64.T @ w, S.T @ w
            mean = cupy.asnumpy(cupy.asarray(s1).ravel()) / total
            sq = cupy.asnumpy(cupy.asarray(s2).ravel()) / total
            out.update(mean=mean, var=np.maximum(sq - mean * mean, 0.0), sq=sq)
        return out

    def cholesky(self, A):
        """The lower Cholesky factor of ``A`` on the device, or ``None`` where ``A``
        is not positive definite.

        UNVERIFIED: written from CuPy's documented API (``cupy.linalg.cholesky``)
        without a GPU to run it on. CuPy's ``cholesky`` does not raise on a matrix
        that is not positive definite unless ``cupyx.errstate(linalg="raise")`` is
        set: it returns a factor with NaN, which is checked for here (and the error
        caught where it does raise)."""
        cupy = self._cupy
        try:
            L = cupy.linalg.cholesky(A)
        except Exception as err:  # LinAlgError, under NumPy's or CuPy's name
            if "LinAlgError" in type(err).__name__ or "posit" in str(err).lower():
                return None
            raise
        return L if bool(cupy.isfinite(L).all()) else None

    def cho_solve(self, L, g):
        """``A^-1 g`` from ``A``'s lower Cholesky factor ``L``: two triangular solves
        on the device (``cupyx.scipy.linalg.solve_triangular``). UNVERIFIED on a GPU."""
        from cupyx.scipy.linalg import solve_triangular

        y = solve_triangular(L, g, lower=True)
        return solve_triangular(L, y, lower=True, trans="T")

    def free_memory(self) -> int:
        """Bytes free on the device: the driver's free memory plus what CuPy's memory
        pool holds free for reuse (UNVERIFIED: ``cupy.cuda.runtime.memGetInfo`` and
        ``MemoryPool.free_bytes``, no GPU here)."""
        cupy = self._cupy
        free = cupy.cuda.runtime.memGetInfo()[0]
        return int(free + cupy.get_default_memory_pool().free_bytes())

    def synchronize(self) -> None:
        self._cupy.cuda.get_current_stream().synchronize()

    def default_rng(self, seed):
        return self._cupy.random.RandomState(seed)

    def permutation(self, rng, n):
        return rng.permutation(n)

    def device_info(self) -> dict:
        cupy = self._cupy
        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"]
        return {
            "backend": self.name,
            "device": f"cuda:{dev.id}",
            "gpu": name.decode() if isinstance(name, bytes) else str(name),
            "gpu_memory_gib": round(props["totalGlobalMem"] / 2**30, 1),
            "cupy": cupy.__version__,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
            "numpy": np.__version__,
        }
