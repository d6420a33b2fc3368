"""Sparse ``X`` (SciPy CSR/CSC matrices and arrays) through the estimator: the same
models as the dense ``X.toarray()`` gives, and no step that densifies ``X``."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from xlogreg import LogisticRegression, fit_out_of_core
from xlogreg.backends import _numpy


def _data(m=1500, n=200, n_classes=2, density=0.04, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=density, format="csr", random_state=seed,
                  data_rvs=lambda k: rng.uniform(0.5, 2.0, k))
    W = rng.normal(size=(n, n_classes))
    y = np.argmax(X @ W + 0.3 * rng.normal(size=(m, n_classes)), axis=1)
    return X, y


SETTINGS = [dict(), dict(solver="lbfgs"), dict(batch_size=1), dict(batch_size=16),
            dict(batch_size=64, learning_rate=0.05), dict(penalty="l1"),
            dict(penalty="elasticnet", l1_ratio=0.5, batch_size=32),
            dict(class_weight="balanced", batch_size=16), dict(batch_size=16, early_stopping=True)]


@pytest.fixture(params=["compiled", "plain"])
def kernels(request, monkeypatch):
    """The CPU fast path (the Numba kernels on every size) or the plain xp code."""
    if request.param == "plain":
        monkeypatch.setattr(_numpy, "numba_kernels", lambda: None)
    else:
        if _numpy.numba_kernels() is None:
            pytest.skip("numba is not installed")
        monkeypatch.setattr(_numpy, "FUSED_MIN_SIZE", 0)
        monkeypatch.setattr(_numpy, "EPOCH_MIN_STEPS", 0)
        for name in ("SPARSE_FUSED_MIN_NNZ", "FUSED_MIN_NNZ"):
            if hasattr(_numpy, name):
                monkeypatch.setattr(_numpy, name, 0)
    return request.param


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("params", SETTINGS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_csr_gives_the_dense_model(params, dtype, n_classes, kernels):
    X, y = _data(n_classes=n_classes)
    X = X.astype(dtype)
    common = dict(backend="numpy", random_state=0, max_epochs=20, **params)
    sparse = LogisticRegression(**common).fit(X, y)
    dense = LogisticRegression(**common).fit(X.toarray(), y)
    # the same steps in another summation order: float64 to 1e-9; float32 rounding
    # (1e-7) grows through a fit's line-search decisions to about 1e-4
    rtol = 1e-8 if dtype == np.float64 else 2e-3
    scale = np.abs(dense.coef_).max()
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(sparse.intercept_, dense.intercept_, rtol=rtol,
                               atol=rtol * scale)
    assert sparse.coef_.dtype == dtype
    if "penalty" in params and dtype == np.float64:
        np.testing.assert_array_equal(sparse.coef_ == 0, dense.coef_ == 0)
    for method in ("decision_function", "predict_proba", "predict_log_proba", "predict"):
        out = getattr(sparse, method)(X)
        ref = getattr(sparse, method)(X.toarray())
        np.testing.assert_allclose(out, ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-6 if dtype == np.float32 else 1e-12)
    assert sparse.score(X, y) == pytest.approx(sparse.score(X.toarray(), y))
    assert sparse.score(X, y) > 0.7


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "csr_array", "csc_array", "dok"])
def test_other_formats(fmt):
    X, y = _data()
    ref = LogisticRegression(backend="numpy", solver="lbfgs").fit(X, y)
    if fmt.endswith("_array"):
        Xf = getattr(sp, fmt)(X)
    else:
        Xf = X.asformat(fmt)
    for params in [dict(solver="lbfgs"), dict(batch_size=32, max_epochs=2, tol=None)]:
        est = LogisticRegression(backend="numpy", random_state=0, **params).fit(Xf, y)
        if "solver" in params:
            np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(est.predict_proba(Xf), est.predict_proba(X), rtol=1e-12)


def test_int64_and_int32_indices_give_the_same_model():
    X, y = _data()
    X64 = X.copy()
    X64.indices = X64.indices.astype(np.int64)
    X64.indptr = X64.indptr.astype(np.int64)
    for params in [dict(solver="lbfgs"), dict(batch_size=1, max_epochs=2, tol=None)]:
        a = LogisticRegression(backend="numpy", random_state=0, **params).fit(X, y)
        b = LogisticRegression(backend="numpy", random_state=0, **params).fit(X64, y)
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-12)


def test_a_matrix_too_large_to_densify_trains_and_predicts():
    """1,000,000 x 1,000,000 (8 TB dense) with 3 non-zeros a row."""
    m = n = 1_000_000
    rng = np.random.default_rng(0)
    cols = rng.integers(0, n, size=(m, 3))
    X = sp.csr_matrix((np.ones(3 * m), cols.ravel(), np.arange(0, 3 * m + 1, 3)), shape=(m, n))
    X.sum_duplicates()
    w = rng.normal(size=n)
    y = (X @ w > 0).astype(int)
    for params in [dict(max_epochs=3), dict(solver="lbfgs", max_epochs=5),
                   dict(batch_size=4, max_epochs=2)]:
        est = LogisticRegression(backend="numpy", tol=None if "solver" not in params else 1e-4,
                                 random_state=0, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a few epochs only
            est.fit(X, y)
        assert est.coef_.shape == (1, n)
        proba = est.predict_proba(X[:1000])
        assert proba.shape == (1000, 2) and np.all(np.isfinite(proba))
        assert est.score(X[:20000], y[:20000]) > 0.55


def test_nan_in_sparse_data_is_refused():
    X, y = _data()
    X = X.copy()
    X.data[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression(backend="numpy").fit(X, y)


def test_array_api_strict_and_dask_refuse_sparse_clearly():
    X, y = _data()
    with pytest.raises(TypeError, match="sparse"):
        LogisticRegression(backend="array_api_strict").fit(X, y)
    da = pytest.importorskip("dask.array")
    Xd = da.from_array(X, chunks=(1000, -1), asarray=False)
    with pytest.raises(TypeError, match="sparse chunks"):
        LogisticRegression(backend="numpy").fit(Xd, da.from_array(y, chunks=1000))


def test_partial_fit_on_sparse_chunks_equals_dense_chunks():
    X, y = _data()
    a = LogisticRegression(backend="numpy", batch_size=16, random_state=0)
    b = LogisticRegression(backend="numpy", batch_size=16, random_state=0)
    for lo in range(0, X.shape[0], 1000):
        a.partial_fit(X[lo:lo + 1000], y[lo:lo + 1000], classes=[0, 1])
        b.partial_fit(X[lo:lo + 1000].toarray(), y[lo:lo + 1000], classes=[0, 1])
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-9, atol=1e-12)


def test_fit_out_of_core_streams_sparse_rows():
    X, y = _data()
    est = LogisticRegression(backend="numpy", batch_size=32, random_state=0, shuffle=False)
    fit_out_of_core(est, X, y, epochs=2, chunk_rows=700, progress=False)
    ref = LogisticRegression(backend="numpy", batch_size=32, random_state=0, shuffle=False)
    for _ in range(2):
        for lo in range(0, X.shape[0], 700):
            ref.partial_fit(X[lo:lo + 700].toarray(), y[lo:lo + 700], classes=[0, 1])
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    bad = X.copy()
    bad.data[-1] = np.inf
    with pytest.raises(ValueError, match=f"row {X.shape[0] - 1}"):
        fit_out_of_core(LogisticRegression(backend="numpy"), bad, y, progress=False)


def test_sample_weight_and_class_weight_on_sparse():
    X, y = _data(n_classes=3)
    sw = np.random.default_rng(1).uniform(0.5, 2, X.shape[0])
    params = dict(backend="numpy", solver="lbfgs", class_weight="balanced", tol=1e-8)
    a = LogisticRegression(**params).fit(X, y, sample_weight=sw)
    b = LogisticRegression(**params).fit(X.toarray(), y, sample_weight=sw)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-7, atol=1e-9)
