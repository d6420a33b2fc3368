"""The NumPy backend: arrays in host memory, BLAS for the products."""

from __future__ import annotations

import functools
import os
import platform

import numpy as np

from ._base import Backend
from . import is_sparse

__all__ = ["EPOCH_MIN_STEPS", "FUSED_MIN_NNZ", "FUSED_MIN_SIZE", "NumpyBackend", "cpu_info",
           "host_free_memory", "numba_kernels", "numba_sparse_kernels"]

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
# - sparse (CSR) full-batch gradient, binary: against SciPy's two products (``X @ W``,
#   ``X.T @ dZ``, one thread each) and NumPy's per-row work, the fused pass saves
#   0.7 ns a non-zero on one thread in float64 (200,000 x 100,000, 47 non-zeros a
#   row: 29 ms against 36 ms), loses 0.3 ns in float32 (29 against 26: SciPy's
#   float32 weights sit in L2, the kernel's float64 ones do not), and saves 2.2 ns on
#   two threads (14 ms, either dtype). The bar is the dense one, a million, in
#   non-zeros: 1-2 ms saved a call on two threads, which repays a first compile
#   within a few thousand calls and the load from the cache within a few hundred.
#   With classes (k > 1) the pass is no faster than SciPy's (200-250 ms against 240
#   at 10 classes: the gather of ``k`` weights and the scatter of ``k`` gradients a
#   non-zero are bound by cache misses, and a second thread's accumulator only adds
#   to them), so softmax problems keep SciPy's products.
FUSED_MIN_NNZ = 1 << 20
# Cholesky factors up to this size come from SciPy's potrf, called directly (see
# NumpyBackend.cholesky): OpenBLAS factors them on one thread or nearly (below 4 x
# GEMM_UNROLL_N, 32 rows on x86, on one: lapack/potrf/potrf_L_parallel.c), so the
# threads of SciPy's copy of OpenBLAS have little to contend with
SMALL_FACTOR = 64


def numba_sparse_kernels():  # not cached itself: it follows numba_kernels
    """The compiled CSR kernels, or ``None`` as for ``numba_kernels``."""
    if numba_kernels() is None:
        return None
    from . import _numba_sparse

    return _numba_sparse


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


@functools.cache
def _lapack(name, dtype):
    """SciPy's LAPACK routine ``name`` for the dtype ``dtype`` (a character): looked up
    once, not on each call of a small solve (2 us)."""
    from scipy.linalg.lapack import get_lapack_funcs

    return get_lapack_funcs((name,), dtype=np.dtype(dtype))[0]


def _csr_ok(X, *others):
    """The sparse kernels take a CSR ``X`` of float32/float64 values and int32/int64
    indices, and C-contiguous ``Y`` and weights of the values' dtype."""
    if X.format != "csr" or X.data.dtype not in (np.float32, np.float64):
        return False
    if X.indices.dtype not in (np.int32, np.int64) or X.indptr.dtype not in (np.int32, np.int64):
        return False
    if not all(a.flags.c_contiguous for a in (X.data, X.indices, X.indptr)):
        return False  # views SciPy was handed: another compile of every kernel
    dtype = X.data.dtype
    return all(a is None or (a.dtype == dtype and a.flags.c_contiguous) for a in others)


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


def host_free_memory() -> int | None:
    """``NumpyBackend.free_memory``: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else
    ``os.sysconf`` free pages (which leaves out the caches Linux would drop)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self):
        import array_api_compat.numpy as xp

        self.xp = xp

    def asarray(self, x, dtype=None):
        if is_sparse(x):  # SciPy's: kept sparse, as it is (np.asarray would box it)
            return x if dtype is None or x.dtype == dtype else x.astype(dtype)
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return np.asarray(x)

    def owns(self, x) -> bool:
        return isinstance(x, (np.ndarray, np.generic)) or is_sparse(x)

    def take_rows(self, X, rows):
        if is_sparse(X):
            # COO and the others cannot be indexed; CSR is what the kernels read
            return (X if X.format in ("csr", "csc") else X.tocsr())[rows]
        return np.take(X, rows, axis=0)

    def default_rng(self, seed):
        return np.random.default_rng(seed)

    def permutation(self, rng, n):
        return rng.permutation(n)

    # the size tests come first: numba_kernels() imports Numba
    def fused_gradient(self, X, Y, W, b, scale, alpha, sample_weight=None):
        if is_sparse(X):
            if X.nnz < FUSED_MIN_NNZ or W.shape[1] > 1 or not _csr_ok(X, Y, sample_weight):
                return None  # CSC and the rest: SciPy's products, in the plain code
            kernels = numba_sparse_kernels()
            if kernels is None:
                return None
            return kernels.gradient(X, Y, W, b, scale, alpha, sample_weight)
        if X.size < FUSED_MIN_SIZE or not _compiled_ok(X, Y, sample_weight):
            return None
        kernels = numba_kernels()
        if kernels is None or not kernels.gradient_suits(X, W.shape[1]):
            return None
        return kernels.gradient(X, Y, W, b, scale, alpha, sample_weight)

    def hessian_sums(self, X, Y, W, b, sample_weight, fit_intercept, curvature=True):
        """``xlogreg.optimizers.hessian_sums`` of dense binary data: in one compiled
        pass where the kernel has it (large, at most ``HESSIAN_MAX_P`` parameters),
        in a few whole-array NumPy calls on small data (``_small_binary_sums``), the
        same calls on blocks that stay in cache for a pass without ``curvature`` over
        large wide data, else None (the plain code: blocks of X and BLAS)."""
        if is_sparse(X) or W.shape[1] != 1 or X.dtype not in (np.float32, np.float64):
            return None
        if X.size < FUSED_MIN_SIZE:
            return _small_binary_sums(X, Y, W, b, sample_weight, fit_intercept, curvature)
        kernels = numba_kernels() if _compiled_ok(X, Y, sample_weight) else None
        if kernels is not None and X.shape[1] + fit_intercept <= kernels.HESSIAN_MAX_P:
            return kernels.hessian(X, Y, W, b, sample_weight, fit_intercept, curvature)
        if curvature:
            return None
        # the loss and gradient alone, of wide data: blocks of 4 MiB in float64, so
        # that a block's two products (its scores, then dz @ X) read it from cache,
        # not memory (20,000 x 2,000 float32: 40 against 77 ms in blocks of 32 MiB)
        rows = max(1, (1 << 19) // X.shape[1])
        loss, G = 0.0, 0.0
        for lo in range(0, X.shape[0], rows):
            part = slice(lo, lo + rows)
            found = _small_binary_sums(X[part], Y[part], W, b, None if sample_weight is None
                                       else sample_weight[part], fit_intercept, False)
            loss, G = loss + found[0], G + found[1]
        return loss, G, None

    def train_epoch(self, X, Y, W, b, *, rows, batch, etas, mean_w, alpha, fit_intercept,
                    sample_weight=None, l1=0.0):
        m = X.shape[0] if rows is None else rows.shape[0]
        if -(-m // batch) < EPOCH_MIN_STEPS:
            return None
        sparse = is_sparse(X)
        if not (_csr_ok if sparse else _compiled_ok)(X, Y, sample_weight):
            return None
        kernels = numba_sparse_kernels() if sparse else numba_kernels()
        if kernels is None:
            return None
        return kernels.epoch(X, Y, W, b, rows=rows, batch=batch, etas=etas, mean_w=mean_w,
                             alpha=alpha, fit_intercept=fit_intercept,
                             sample_weight=sample_weight, l1=l1)

    def data_scale(self, X, sample_weight=None, rows=None, columns=True, labels=None):
        """The statistics of ``xlogreg.optimizers.data_scale`` with no copy of ``X``.
        Large C-contiguous float ``X`` (``FUSED_MIN_SIZE``), all rows: one parallel
        read by the compiled ``_numba.data_scale``, summed in float64 (measured
        against 3 single-threaded ``einsum`` reads before). Smaller ``X``: ``einsum``
        in ``X``'s dtype, one read for the row norms, two more for the column
        statistics; ``None`` where that overflows (the generic code then sums in
        float64). ``None`` for a row subset (read through the index there). A SciPy
        sparse ``X`` has its own code, ``_sparse_data_scale``. ``labels``: the compiled
        read's class sums (``_numba.data_scale``), which only it computes."""
        if is_sparse(X):
            return _sparse_data_scale(X, sample_weight, rows, columns)
        if rows is not None or X.dtype not in (np.float32, np.float64):
            return None
        if X.size >= FUSED_MIN_SIZE and _compiled_ok(X, sample_weight):
            kernels = numba_kernels()
            if kernels is not None:
                # one parallel read in float64 (einsum: three single-threaded ones);
                # non-finite X gives non-finite entries, which the caller reports
                return kernels.data_scale(X, sample_weight, columns, labels)
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

    def all_finite(self, X) -> bool:
        """Whether every value of ``X`` (NumPy array or SciPy sparse matrix) is
        finite: one parallel read for a large C-contiguous float array, NumPy's
        ``isfinite`` otherwise (integers and booleans always are)."""
        if is_sparse(X):
            X = X.data
        X = np.asarray(X)
        if X.dtype.kind not in "fc":
            return True
        if X.size >= FUSED_MIN_SIZE and _compiled_ok(X):
            kernels = numba_kernels()
            if kernels is not None:
                return kernels.all_finite(X)
        return bool(np.isfinite(X).all())

    def cholesky(self, A):
        """The lower Cholesky factor of ``A``, or ``None`` where ``A`` is not positive
        definite. NumPy's (LAPACK on NumPy's own BLAS, which built ``A``): SciPy ships
        a second copy of OpenBLAS, whose threads contend with the first's, still
        spinning after the product, for the cores (measured at 650 x 650 on two cores:
        25-180 ms against 14-29 ms for the product and NumPy's factor). Up to
        ``SMALL_FACTOR`` rows, SciPy's ``potrf`` called directly: NumPy's cost there is
        its call (7 against 18 us at 31 x 31, 20 against 27 at 64 x 64)."""
        if A.shape[0] <= SMALL_FACTOR and A.dtype == np.float64:
            L, info = _lapack("potrf", "d")(A, lower=1)  # Fortran order, upper half 0
            return L if info == 0 and np.isfinite(L).all() else None
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            return None
        return L if np.isfinite(L).all() else None

    def cho_solve(self, L, g):
        """``A^-1 g`` from ``A``'s lower Cholesky factor ``L``: LAPACK's ``potrs``
        called directly, O(n^2) (``solve_triangular``'s checks cost more than the
        solves on small problems)."""
        # Fortran order, as LAPACK takes it: a C-ordered factor (NumPy's) is passed
        # as its transpose, the upper one, so that it is not copied a call
        lower = bool(L.flags.f_contiguous)
        U = L if lower else L.T
        x, info = _lapack("potrs", np.result_type(U, g).char)(U, g, lower=lower)
        if info != 0:
            raise np.linalg.LinAlgError(f"potrs failed: info={info}")
        return x

    def free_memory(self) -> int | None:
        """Bytes of host memory available to a new allocation: ``MemAvailable`` of
        ``/proc/meminfo`` (free memory plus the caches the kernel can drop) on Linux,
        else free pages times the page size; ``None`` where neither is known."""
        return host_free_memory()

    def device_info(self) -> dict:
        kernels = numba_kernels()
        return {"backend": self.name, "device": "cpu", "numpy": np.__version__,
                "numba": kernels and kernels.numba.__version__, **cpu_info()}


def _small_binary_sums(X, Y, W, b, sample_weight, fit_intercept, curvature):
    """The binary ``hessian_sums`` in float64 for data below ``FUSED_MIN_SIZE`` (and
    for a block of larger data, without curvature), in as few NumPy calls as it
    takes: on breast cancer (569 x 30) the generic code's calls cost about twice its
    arithmetic (174 against 100 us a pass), and ``newton`` there is mostly such
    passes. The Hessian is exact whatever
    ``hessian_sums``'s ``exact`` says: small problems factor it at every step."""
    X = np.asarray(X, dtype=np.float64)  # a copy of float32 data only
    y = np.asarray(Y[:, 0], dtype=np.float64)
    z = X @ np.asarray(W[:, 0], dtype=np.float64) + float(b[0])
    # xlogreg.losses.binary_loss_and_dz's formulas, written out: the backends import
    # nothing of the package above them
    e = np.exp(-np.abs(z))
    loss = np.maximum(z, 0.0) + np.log1p(e) - y * z
    P = np.where(z >= 0, 1.0, e) / (1.0 + e)
    dz = P - y
    d = P * (1.0 - P)
    if sample_weight is not None:
        s = np.asarray(sample_weight, dtype=np.float64)
        loss, dz, d = loss * s, dz * s, d * s
    total = float(loss.sum())
    n = X.shape[1]
    p = n + (1 if fit_intercept else 0)
    G = np.empty((1, p))
    G[0, :n] = dz @ X
    if fit_intercept:
        G[0, n] = dz.sum()
    if not curvature:
        return total, G, None
    R = X * np.sqrt(d)[:, None]
    H = np.empty((p, p))
    H[:n, :n] = R.T @ R  # syrk: half a general product
    if fit_intercept:
        H[n, :n] = H[:n, n] = d @ X
        H[n, n] = d.sum()
    return total, G, H


def _sparse_data_scale(X, sample_weight, rows, columns):
    """``NumpyBackend.data_scale`` of a SciPy sparse ``X``, in float64, from sparse
    products: nothing of the size of the dense ``X`` is made. The squares and the
    float64 values are matrices of ``X``'s own structure (its ``indices`` and
    ``indptr`` shared, except where ``csr_matrix`` narrows int64 indices to int32;
    the values in float64 are a copy for float32).
    ``rows`` takes a copy of those rows (and formats other than CSR and CSC are
    converted to CSR), which the chunked generic code could not do for a sparse X."""
    if X.format not in ("csr", "csc"):
        X = X.tocsr()
    if rows is not None:
        X = X[rows]
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)[rows]
    if not X.has_canonical_format:  # duplicates: the square of a sum, not the sum of squares
        X = X.copy()
        X.sum_duplicates()
    m = X.shape[0]
    values = np.asarray(X.data, np.float64)
    X64 = type(X)((values, X.indices, X.indptr), shape=X.shape)
    S = type(X)((values * values, X.indices, X.indptr), shape=X.shape)
    norms = np.asarray(S.sum(axis=1), np.float64).ravel() + 1.0
    if sample_weight is None:
        total, top, mean_row = float(m), float(np.max(norms, initial=0.0)), float(np.mean(norms))
    else:
        w = np.asarray(sample_weight, np.float64)
        total = float(np.sum(w))
        top = float(np.max(norms * w, initial=0.0))
        mean_row = float(norms @ w) / total
    out = {"max_row": top * m / total, "mean_row": mean_row}
    if columns:
        if sample_weight is None:
            s1, s2 = X64.sum(axis=0), S.sum(axis=0)
        else:
            s1, s2 = X64.T @ w, S.T @ w
        mean = np.asarray(s1, np.float64).ravel() / total
        sq = np.asarray(s2, np.float64).ravel() / total
        out.update(mean=mean, var=np.maximum(sq - mean * mean, 0.0), sq=sq)
    return out
