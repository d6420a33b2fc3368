"""The NumPy backend's sparse fast path held to independent float64 references: the
CSR kernels (fused gradient, mini-batch epoch with L2 and L1) against the dense
``loss_and_gradient`` on ``X.toarray()``, the dense epoch's L1 step against a plain
loop, and the sparse ``data_scale``, ``take_rows``, ``is_sparse``, ``input_kind``.

Numba compiles each kernel once per dtype of the values and of the indices, so the
cases keep to three: float64 and float32 with int32 indices (``csr_matrix``), float64
with int64 indices (``csr_array``).
"""

import math
import subprocess
import sys
import types

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse

from xlogreg import backends
from xlogreg.backends import _numpy as numpy_backend
from xlogreg.models import encode_targets, loss_and_gradient

kernels = pytest.importorskip("xlogreg.backends._numba", reason="the fast path needs numba")
sparse_kernels = pytest.importorskip("xlogreg.backends._numba_sparse")

# (dtype of the values, container, dtype of the indices)
CASES = [
    (np.float64, sparse.csr_matrix, np.int32),
    (np.float32, sparse.csr_matrix, np.int32),
    (np.float64, sparse.csr_array, np.int64),
]
CASE_IDS = ["f64-matrix-i32", "f32-matrix-i32", "f64-array-i64"]


def _csr(dense, container=sparse.csr_matrix, index_dtype=np.int32):
    X = container(dense)
    # set after construction: SciPy picks int32 wherever the values fit
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    assert X.indices.dtype == index_dtype
    return X


def _problem(rng, m, n, n_classes, dtype, container=sparse.csr_matrix,
             index_dtype=np.int32, density=0.3, spread=1.0):
    """A CSR problem with empty rows and empty columns."""
    dense = spread * rng.standard_normal((m, n)) * (rng.random((m, n)) < density)
    dense[::7] = 0.0  # empty rows
    dense[:, ::5] = 0.0  # empty columns
    X = _csr(dense.astype(dtype), container, index_dtype)
    y = rng.integers(0, n_classes, size=m)
    Y = encode_targets(y, n_classes, dtype)
    k = Y.shape[1]
    W = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return X, Y, W, b


def _f64(*arrays):
    return [None if a is None else np.asarray(a, np.float64) for a in arrays]


def _soft(V, t):
    return np.sign(V) * np.maximum(np.abs(V) - t, 0.0)


# ------------------------------------------------------------------ is_sparse, kinds
def test_is_sparse_and_input_kind_of_scipy_matrices():
    dense = np.eye(3)
    for make in (sparse.csr_matrix, sparse.csr_array, sparse.csc_matrix, sparse.coo_array):
        X = make(dense)
        assert backends.is_sparse(X)
        assert backends.input_kind(X) == "numpy"
        assert backends.resolve_backend("auto", X).name == "numpy"
    for x in (dense, [[1.0]], 3.0, None):
        assert not backends.is_sparse(x)
    assert "is_sparse" in backends.__all__
    numpy_be = backends.get_backend("numpy")
    assert numpy_be.owns(sparse.csr_matrix(dense)) and numpy_be.owns(dense)


def test_is_sparse_imports_neither_scipy_nor_cupyx():
    code = ("import sys; from xlogreg import backends; import numpy as np; "
            "assert not backends.is_sparse(np.ones(2)) and not backends.is_sparse([1]); "
            "assert backends.input_kind(np.ones(2)) == 'numpy'; "
            "bad = [m for m in ('scipy', 'cupy', 'cupyx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cupyx_sparse_is_a_cupy_input(monkeypatch):
    """Without a GPU: a stand-in ``cupyx.scipy.sparse`` already imported, as CuPy
    would have it; its matrices are CuPy inputs, found without importing anything."""
    class FakeDeviceCSR:
        pass

    fake = types.ModuleType("cupyx.scipy.sparse")
    fake.issparse = lambda x: isinstance(x, FakeDeviceCSR)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.sparse", fake)
    assert backends.is_sparse(FakeDeviceCSR())
    assert backends.input_kind(FakeDeviceCSR()) == "cupy"
    assert backends.input_kind(sparse.csr_matrix(np.eye(2))) == "numpy"
    assert backends.input_kind(np.ones(2)) == "numpy"


def test_strict_backend_refuses_sparse():
    strict = backends.get_backend("array_api_strict")
    with pytest.raises(TypeError, match="array_api_strict has no sparse arrays"):
        strict.asarray(sparse.csr_matrix(np.eye(2)))


# ------------------------------------------------------------------ take_rows, asarray
@pytest.mark.parametrize("make", [sparse.csr_matrix, sparse.csr_array, sparse.csc_matrix,
                                  sparse.coo_array])
def test_take_rows_keeps_sparse(make, rng):
    dense = rng.standard_normal((20, 6)) * (rng.random((20, 6)) < 0.4)
    X = make(dense)
    rows = rng.permutation(20)[:13]
    be = backends.get_backend("numpy")
    got = be.take_rows(X, rows)
    assert backends.is_sparse(got)
    assert_array_equal(got.toarray(), dense[rows])
    assert_array_equal(be.take_rows(dense, rows), dense[rows])


def test_default_take_rows_is_xp_take():
    strict = backends.get_backend("array_api_strict")
    x = strict.asarray(np.arange(12.0).reshape(4, 3))
    got = strict.take_rows(x, strict.asarray(np.array([2, 0])))
    assert_array_equal(strict.to_numpy(got), np.arange(12.0).reshape(4, 3)[[2, 0]])


def test_numpy_asarray_keeps_sparse():
    be = backends.get_backend("numpy")
    X = sparse.csr_matrix(np.eye(3, dtype=np.float32))
    assert be.asarray(X) is X
    X64 = be.asarray(X, dtype=np.float64)
    assert backends.is_sparse(X64) and X64.dtype == np.float64


# ------------------------------------------------------------------ fused gradient
@pytest.mark.parametrize("dtype, container, index_dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("n_classes", [2, 5])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("m", [1, 70, 1_031])
def test_fused_gradient_equals_float64_reference(dtype, container, index_dtype, n_classes,
                                                 weighted, m, rng):
    X, Y, W, b = _problem(rng, m, 23, n_classes, dtype, container, index_dtype, spread=3.0)
    s = rng.uniform(0.2, 3.0, m).astype(dtype) if weighted else None
    loss, dW, db = sparse_kernels.gradient(X, Y, W, b, 1 / m, 0.25, s)
    Xd, Yd, Wd, bd, sd = _f64(X.toarray(), Y, W, b, s)
    loss_r, dW_r, db_r = loss_and_gradient(Xd, Yd, Wd, bd, 1 / m, 0.25, sd)
    assert loss.dtype == np.float64 and loss.shape == ()
    assert dW.dtype == db.dtype == dtype
    assert dW.shape == W.shape and db.shape == b.shape
    # float64 inside whatever the dtype: float32 only rounds the returned arrays
    assert_allclose(float(loss), float(loss_r), rtol=1e-12)
    rtol = 1e-12 if dtype == np.float64 else 2e-7
    assert_allclose(dW, dW_r, rtol=rtol, atol=rtol * np.abs(dW_r).max())
    assert_allclose(db, db_r, rtol=rtol, atol=rtol * np.abs(db_r).max())
    assert np.all(dW[::5] == 0.25 * W[::5])  # an empty column: the penalty alone


def test_fused_gradient_threads_split_many_rows(rng, monkeypatch):
    """Four chunks of about equal non-zeros, their accumulators summed in parallel
    (the chunk count follows Numba's thread count, made 4 here)."""
    X, Y, W, b = _problem(rng, 5_000, 40, 3, np.float64, density=0.2)
    monkeypatch.setattr(sparse_kernels.numba, "get_num_threads", lambda: 4)
    bounds = sparse_kernels._chunk_bounds(X.indptr, 4)
    assert bounds[0] == 0 and bounds[-1] == 5_000 and np.all(np.diff(bounds) > 0)
    loss, dW, db = sparse_kernels.gradient(X, Y, W, b, 1e-3, 0.0)
    loss_r, dW_r, db_r = loss_and_gradient(X.toarray(), Y, W, b, 1e-3, 0.0)
    assert_allclose(float(loss), float(loss_r), rtol=1e-12)
    assert_allclose(dW, dW_r, rtol=1e-12, atol=1e-12 * np.abs(dW_r).max())
    assert_allclose(db, db_r, rtol=1e-12)


def test_fused_gradient_sums_duplicates_and_unsorted_indices(rng):
    # row 0 holds column 2 twice, row 1 its columns out of order: SciPy's products
    # add duplicates, so must the kernel
    data = np.array([1.0, 2.0, -1.5, 0.5, 3.0])
    indices = np.array([2, 2, 3, 0, 1], np.int32)
    indptr = np.array([0, 2, 5, 5], np.int32)
    X = sparse.csr_matrix((data, indices, indptr), shape=(3, 4))
    assert not X.has_canonical_format
    Y = encode_targets(np.array([1, 0, 1]), 2, np.float64)
    W, b = rng.standard_normal((4, 1)), rng.standard_normal(1)
    got = sparse_kernels.gradient(X, Y, W, b, 0.5, 0.1)
    ref = loss_and_gradient(X.toarray(), Y, W, b, 0.5, 0.1)
    for g, r in zip(got, ref):
        assert_allclose(g, r, rtol=1e-13, atol=1e-15)


def test_backend_fused_gradient_takes_csr_only(rng, monkeypatch):
    X, Y, W, b = _problem(rng, 50, 8, 2, np.float64)
    be = backends.get_backend("numpy")
    assert be.fused_gradient(X, Y, W, b, 0.02, 0.0) is None  # under the size threshold
    monkeypatch.setattr(numpy_backend, "FUSED_MIN_NNZ", 0)
    out = be.fused_gradient(X, Y, W, b, 0.02, 0.0)
    assert out is not None  # the kernel ran
    assert_allclose(out[1], loss_and_gradient(X.toarray(), Y, W, b, 0.02, 0.0)[1], rtol=1e-12)
    assert be.fused_gradient(X.tocsc(), Y, W, b, 0.02, 0.0) is None  # SciPy's products
    X3, Y3, W3, b3 = _problem(rng, 50, 8, 3, np.float64)
    assert be.fused_gradient(X3, Y3, W3, b3, 0.02, 0.0) is None  # softmax: SciPy's too
    assert be.fused_gradient(X, Y.astype(np.float32), W, b, 0.02, 0.0) is None
    monkeypatch.setattr(numpy_backend, "numba_kernels", lambda: None)  # XLOGREG_NUMBA=0
    assert be.fused_gradient(X, Y, W, b, 0.02, 0.0) is None


# ------------------------------------------------------------------ epochs
def _reference_epoch(Xd, Y, W, b, s, perm, batch, etas, alpha, l1, fit_intercept=True):
    """The epoch in float64 NumPy on a dense copy, step by step: ``W <- soft(max(0,
    1 - eta alpha) W - eta dW_data, eta l1)`` with ``dW_data`` at the old ``W``; the
    intercept is not penalized."""
    m = Xd.shape[0] if perm is None else perm.shape[0]
    order = np.arange(m) if perm is None else perm
    s = np.ones(Xd.shape[0]) if s is None else s
    Xs, Ys, ss = (np.asarray(a, np.float64)[order] for a in (Xd, Y, s))
    W, b, total = np.asarray(W, np.float64), np.asarray(b, np.float64), 0.0
    mean_w = float(s.mean())  # as the callers pass it: a Python float, not float32
    for i, lo in enumerate(range(0, m, batch)):
        hi = min(lo + batch, m)
        loss, dW, db = loss_and_gradient(Xs[lo:hi], Ys[lo:hi], W, b,
                                         1 / ((hi - lo) * mean_w), 0.0, ss[lo:hi])
        W = _soft(max(0.0, 1.0 - etas[i] * alpha) * W - etas[i] * dW, etas[i] * l1)
        if fit_intercept:
            b = b - etas[i] * db
        total += float(loss)
    return W, b, total


def _epoch_case(rng, dtype, container, index_dtype, n_classes, m=600, n=37):
    X, Y, W, b = _problem(rng, m, n, n_classes, dtype, container, index_dtype, density=0.25)
    W, b = (0.1 * W).astype(dtype), (0.1 * b).astype(dtype)
    W[::5] = 0.0  # the empty columns' weights: no step may move them off 0
    s = rng.uniform(0.5, 2.0, m).astype(dtype)
    return X, Y, W, b, s


# alpha: mild; 10 (eta alpha up to 5: the shrink is 0 on the first steps, then
# positive and small, so ``a`` falls under FOLD and is folded); 1e3 (shrink 0 on every
# step). l1: none, mild, strong (most weights at 0).
@pytest.mark.parametrize("dtype, container, index_dtype", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("batch", [1, 16, 250])
@pytest.mark.parametrize("alpha", [1e-3, 10.0, 1e3])
@pytest.mark.parametrize("l1", [0.0, 1e-2, 0.5])
def test_sparse_epoch_equals_plain_steps(dtype, container, index_dtype, n_classes, batch,
                                         alpha, l1, rng):
    m = 600
    X, Y, W, b, s = _epoch_case(rng, dtype, container, index_dtype, n_classes, m)
    perm = rng.permutation(m)
    steps = math.ceil(m / batch)
    etas = [0.5 / (t + 1) ** 0.5 for t in range(steps)]
    W1, b1, loss1 = sparse_kernels.epoch(
        X, Y, W, b, rows=perm, batch=batch, etas=etas, mean_w=float(s.mean()), alpha=alpha,
        fit_intercept=True, sample_weight=s, l1=l1)
    W2, b2, loss2 = _reference_epoch(X.toarray(), Y, W, b, s, perm, batch, etas, alpha, l1)
    assert W1.dtype == b1.dtype == dtype and W1.shape == W.shape
    assert np.all(np.isfinite(W1))
    # float64 inside: float32 only rounds the returned weights
    tol = 1e-10 if dtype == np.float64 else 1e-6
    assert_allclose(W1, W2, rtol=tol, atol=tol * max(1.0, np.abs(W2).max()))
    assert_allclose(b1, b2, rtol=tol, atol=tol)
    assert_allclose(float(loss1), loss2, rtol=1e-10)
    if l1 == 0.5:
        assert np.mean(W1 == 0) > 0.5  # the L1 penalty sets weights to exactly 0
    assert np.all(W1[::5] == 0)  # the lazy updates leave empty columns alone


def test_sparse_epoch_folds_the_scale_without_loss_of_accuracy(rng):
    """A shrink of 0.9 a step over 400 steps takes ``a`` to 1e-18: it is folded into
    ``V`` several times, and with L1 the products restart as often."""
    X, Y, W, b, s = _epoch_case(rng, np.float64, sparse.csr_matrix, np.int32, 2, m=400)
    etas = np.full(400, 0.1)
    for l1 in (0.0, 1e-3):
        W1, b1, loss1 = sparse_kernels.epoch(X, Y, W, b, rows=None, batch=1, etas=etas,
                                             mean_w=float(s.mean()), alpha=1.0,
                                             fit_intercept=True, sample_weight=s, l1=l1)
        W2, b2, loss2 = _reference_epoch(X.toarray(), Y, W, b, s, None, 1, etas, 1.0, l1)
        assert_allclose(W1, W2, rtol=1e-10, atol=1e-12)
        assert_allclose(b1, b2, rtol=1e-10)
        assert_allclose(float(loss1), loss2, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("l1", [0.0, 1e-2])
def test_sparse_epoch_equals_dense_compiled_epoch(dtype, n_classes, l1, rng):
    """The CSR epoch and the dense one on ``X.toarray()``, the same rows in the same
    order, no sample weights, no intercept: the same to rounding (the dense kernel
    keeps float32 weights in float32)."""
    m = 500
    X, Y, W, b, _ = _epoch_case(rng, dtype, sparse.csr_matrix, np.int32, n_classes, m)
    perm = rng.permutation(m)
    etas = np.full(math.ceil(m / 32), 0.2)
    kw = dict(rows=perm, batch=32, etas=etas, mean_w=1.0, alpha=1e-2, fit_intercept=False,
              l1=l1)
    W1, b1, loss1 = sparse_kernels.epoch(X, Y, W, b, **kw)
    W2, b2, loss2 = kernels.epoch(X.toarray(), Y, W, b, **kw)
    tol = 1e-11 if dtype == np.float64 else 2e-4
    assert_allclose(W1, W2, rtol=tol, atol=tol)
    assert_array_equal(b1, b)  # no intercept: it stays
    assert_allclose(float(loss1), float(loss2), rtol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("l1", [1e-3, 0.3])
def test_dense_epoch_with_l1_equals_plain_steps(dtype, n_classes, l1, rng):
    m, n = 700, 9
    X = rng.standard_normal((m, n)).astype(dtype)
    Y = encode_targets(rng.integers(0, n_classes, m), n_classes, dtype)
    k = Y.shape[1]
    W = (0.1 * rng.standard_normal((n, k))).astype(dtype)
    b = (0.1 * rng.standard_normal(k)).astype(dtype)
    s = rng.uniform(0.5, 2.0, m).astype(dtype)
    perm = rng.permutation(m)
    etas = [0.5 / (t + 1) ** 0.5 for t in range(math.ceil(m / 64))]
    W1, b1, loss1 = kernels.epoch(X, Y, W, b, rows=perm, batch=64, etas=etas,
                                  mean_w=float(s.mean()), alpha=1e-2, fit_intercept=True,
                                  sample_weight=s, l1=l1)
    W2, b2, loss2 = _reference_epoch(X, Y, W, b, s, perm, 64, etas, 1e-2, l1)
    tol = 1e-11 if dtype == np.float64 else 2e-4
    assert_allclose(W1, W2, rtol=tol, atol=tol)
    assert_allclose(b1, b2, rtol=tol, atol=tol)
    assert_allclose(float(loss1), loss2, rtol=tol)
    if l1 == 0.3:
        assert np.any(W1 == 0)


def test_dense_epoch_l1_zero_is_the_old_step(rng):
    """``l1=0`` leaves the compiled epoch bit for bit as without the keyword."""
    X = rng.standard_normal((300, 7))
    Y = encode_targets(rng.integers(0, 2, 300), 2, np.float64)
    W, b = rng.standard_normal((7, 1)), rng.standard_normal(1)
    kw = dict(rows=rng.permutation(300), batch=16, etas=np.full(19, 0.1), mean_w=1.0,
              alpha=1e-2, fit_intercept=True)
    for got, ref in zip(kernels.epoch(X, Y, W, b, l1=0.0, **kw), kernels.epoch(X, Y, W, b, **kw)):
        assert_array_equal(got, ref)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_sparse_epoch_reports_divergence_as_a_non_finite_loss(n_classes, rng):
    X, Y, W, b = _problem(rng, 200, 5, n_classes, np.float64, spread=1e300, density=0.9)
    for l1 in (0.0, 1e-3):
        _, _, loss = sparse_kernels.epoch(X, Y, W, b, rows=rng.permutation(200), batch=8,
                                          etas=np.full(25, 0.1), mean_w=1.0, alpha=1e-4,
                                          fit_intercept=True, l1=l1)
        assert not np.isfinite(loss)


def test_backend_train_epoch_takes_csr(rng, monkeypatch):
    X, Y, W, b, s = _epoch_case(rng, np.float64, sparse.csr_matrix, np.int32, 2, m=300)
    be = backends.get_backend("numpy")
    kw = dict(rows=rng.permutation(300), batch=10, etas=np.full(30, 0.1), mean_w=float(s.mean()),
              alpha=1e-3, fit_intercept=True, sample_weight=s, l1=1e-3)
    assert be.train_epoch(X, Y, W, b, **kw) is None  # 30 steps: under EPOCH_MIN_STEPS
    monkeypatch.setattr(numpy_backend, "EPOCH_MIN_STEPS", 0)
    out = be.train_epoch(X, Y, W, b, **kw)
    assert out is not None  # the kernel ran
    ref = _reference_epoch(X.toarray(), Y, W, b, s, kw["rows"], 10, kw["etas"], 1e-3, 1e-3)
    assert_allclose(out[0], ref[0], rtol=1e-10, atol=1e-12)
    assert be.train_epoch(X.tocsc(), Y, W, b, **kw) is None


# ------------------------------------------------------------------ data_scale
def _reference_scale(dense, s, rows):
    X = np.asarray(dense, np.float64)
    if rows is not None:
        X = X[rows]
        s = None if s is None else s[rows]
    m = X.shape[0]
    w = np.ones(m) if s is None else np.asarray(s, np.float64)
    norms = (X * X).sum(axis=1) + 1.0
    total = w.sum()
    mean = w @ X / total
    sq = w @ (X * X) / total
    return {"max_row": np.max(norms * w) * m / total, "mean_row": norms @ w / total,
            "mean": mean, "sq": sq, "var": np.maximum(sq - mean * mean, 0.0)}


@pytest.mark.parametrize("make", [sparse.csr_matrix, sparse.csr_array, sparse.csc_matrix,
                                  sparse.coo_matrix])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("subset", [False, True])
def test_sparse_data_scale_equals_dense(make, dtype, weighted, subset, rng):
    dense = (rng.standard_normal((60, 11)) * (rng.random((60, 11)) < 0.3)).astype(dtype)
    dense[3] = 0.0
    dense[:, 4] = 0.0
    X = make(dense)
    s = rng.uniform(0.2, 2.0, 60) if weighted else None
    rows = rng.permutation(60)[:41] if subset else None
    be = backends.get_backend("numpy")
    got = be.data_scale(X, s, rows, True)
    ref = _reference_scale(dense, s, rows)
    assert set(got) == set(ref)
    for key in ref:
        assert_allclose(got[key], ref[key], rtol=1e-12, atol=1e-15, err_msg=key)
    assert set(be.data_scale(X, s, rows, False)) == {"max_row", "mean_row"}


def test_sparse_data_scale_sums_duplicates_first():
    data, indices, indptr = np.array([1.0, 2.0, 4.0]), np.array([0, 0, 1]), np.array([0, 2, 3])
    X = sparse.csr_matrix((data, indices, indptr), shape=(2, 2))
    got = backends.get_backend("numpy").data_scale(X, None, None, True)
    ref = _reference_scale(X.toarray(), None, None)
    for key in ref:
        assert_allclose(got[key], ref[key], rtol=1e-14, err_msg=key)
    assert X.data.shape == (3,)  # the caller's matrix is left as it was
