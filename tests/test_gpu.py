"""CuPy against NumPy: the same results, and CuPy data kept on the GPU.

Every test here needs CuPy and a CUDA device; without them they skip with the reason.
(The tests parametrized over the ``backend`` fixture also run their CuPy case.)
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from xlogreg import LogisticRegression

pytestmark = pytest.mark.gpu


@pytest.fixture
def cp(cupy_backend):
    import cupy

    return cupy


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
@pytest.mark.parametrize("batch_size", [None, 32, 1])
def test_fit_on_gpu_matches_numpy(cp, breast_cancer, dtype, rtol, batch_size):
    X, y = breast_cancer
    X = X.astype(dtype)
    params = dict(batch_size=batch_size, shuffle=False, max_epochs=5, tol=None)
    cpu = LogisticRegression(backend="numpy", **params).fit(X, y)
    gpu = LogisticRegression(backend="cuda", **params).fit(X, y)
    assert gpu.backend_ == "cupy"
    assert isinstance(gpu.coef_, np.ndarray) and gpu.coef_.dtype == dtype  # NumPy in, NumPy out
    assert_allclose(gpu.coef_, cpu.coef_, rtol=rtol, atol=rtol * 1e-2)
    assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=rtol)
    assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), rtol=rtol, atol=1e-6)


def test_multinomial_on_gpu_matches_numpy(cp, digits):
    X, y = digits
    params = dict(batch_size=64, shuffle=False, max_epochs=3, tol=None)
    cpu = LogisticRegression(backend="numpy", **params).fit(X, y)
    gpu = LogisticRegression(backend="gpu", **params).fit(X, y)
    assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-10, atol=1e-12)
    assert_array_equal(gpu.predict(X), cpu.predict(X))


def test_cupy_in_cupy_out(cp, breast_cancer):
    X, y = breast_cancer
    Xd, yd = cp.asarray(X), cp.asarray(y)
    clf = LogisticRegression(batch_size=64, random_state=0, max_epochs=20, tol=None).fit(Xd, yd)
    assert clf.backend_ == "cupy"
    for out in (clf.coef_, clf.intercept_, clf.classes_, clf.predict(Xd),
                clf.predict_proba(Xd), clf.decision_function(Xd)):
        assert isinstance(out, cp.ndarray)
    assert clf.score(Xd, yd) > 0.95
    # the fitted model predicts host data too, and returns host arrays
    assert isinstance(clf.predict(X), np.ndarray)
    assert_array_equal(clf.predict(X), cp.asnumpy(clf.predict(Xd)))


def test_cupy_input_with_numpy_backend_says_what_to_do(cp, breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError, match="X is a cupy array but backend='numpy'.*backend='cuda'"):
        LogisticRegression(backend="numpy").fit(cp.asarray(X), cp.asarray(y))
    with pytest.raises(TypeError, match="mix array libraries"):
        LogisticRegression().fit(cp.asarray(X), y)


def test_gpu_device_checks_reject_nan(cp, breast_cancer):
    X, y = breast_cancer
    X = X.copy()
    X[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        LogisticRegression().fit(cp.asarray(X), cp.asarray(y))


def test_batch_gd_reaches_sklearn_optimum_on_gpu(cp, breast_cancer, relative_gap):
    from sklearn.linear_model import LogisticRegression as Sk

    X, y = breast_cancer
    ref = Sk(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    ours = LogisticRegression(backend="cuda", learning_rate=1.0, tol=1e-12,
                              max_epochs=20_000).fit(cp.asarray(X), cp.asarray(y))
    ours.coef_, ours.intercept_ = cp.asnumpy(ours.coef_), cp.asnumpy(ours.intercept_)
    assert relative_gap(X, y, ours, ref) < 1e-6


def test_device_info_names_the_gpu(cupy_backend):
    info = cupy_backend.device_info()
    assert info["gpu"] and info["gpu_memory_gib"] > 0 and info["cupy"]


@pytest.mark.parametrize("params", [
    dict(penalty="l1", C=0.1, tol=1e-8, max_epochs=3000),
    dict(penalty="elasticnet", l1_ratio=0.5, batch_size=32, shuffle=False, max_epochs=3,
         tol=None),
    dict(class_weight="balanced", solver="lbfgs", tol=1e-10),
    dict(solver="newton", tol=1e-10),
], ids=["l1", "elasticnet-minibatch", "class-weight", "newton"])
def test_issue_13_and_14_options_on_gpu_match_numpy(cp, breast_cancer, params):
    X, y = breast_cancer
    cpu = LogisticRegression(backend="numpy", **params).fit(X, y)
    gpu = LogisticRegression(backend="cuda", **params).fit(cp.asarray(X), cp.asarray(y))
    assert isinstance(gpu.coef_, cp.ndarray)
    rtol = 1e-3 if params.get("tol") == 1e-8 else 1e-7
    assert_allclose(cp.asnumpy(gpu.coef_), cpu.coef_, rtol=rtol, atol=rtol * 1e-3)
    if "penalty" in params:
        assert_array_equal(cp.asnumpy(gpu.coef_) == 0, cpu.coef_ == 0)


@pytest.mark.parametrize("params", [dict(), dict(solver="lbfgs"),
                                    dict(batch_size=16, max_epochs=3, tol=None)])
def test_cupyx_sparse_stays_on_the_gpu_and_matches_scipy(cp, params):
    import cupyx.scipy.sparse as cusp
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = sp.random(2000, 300, density=0.03, format="csr", random_state=0)
    y = (X @ rng.normal(size=300) > 0).astype(np.int64)
    cpu = LogisticRegression(backend="numpy", random_state=0, **params).fit(X, y)
    Xg = cusp.csr_matrix(X)
    gpu = LogisticRegression(backend="auto", random_state=0, **params).fit(Xg, cp.asarray(y))
    assert gpu.backend_ == "cupy" and isinstance(gpu.coef_, cp.ndarray)
    assert_allclose(cp.asnumpy(gpu.coef_), cpu.coef_, rtol=1e-6, atol=1e-9)
    proba = gpu.predict_proba(Xg)
    assert isinstance(proba, cp.ndarray)
    assert_allclose(cp.asnumpy(proba), cpu.predict_proba(X), rtol=1e-6, atol=1e-9)
