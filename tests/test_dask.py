"""Training on Dask arrays on a real ``LocalCluster`` (2 worker processes, loopback):
the same model as the in-memory fit, lazy prediction, worker loss and bad input."""

import os
import signal
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from xlogreg import LogisticRegression
from xlogreg import _dask as xdask

da = pytest.importorskip("dask.array", reason='needs the dask extra: pip install "xlogreg[dask]"')
distributed = pytest.importorskip("distributed")

# uneven chunks with a short last one; row counts that 64-row batches do not divide
CHUNKS = (97, 150, 31, 120, 171)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, worker_dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data(breast_cancer):
    X, y = breast_cancer
    assert sum(CHUNKS) == X.shape[0]
    return X, y, da.from_array(X, chunks=(CHUNKS, 30)), da.from_array(y, chunks=(CHUNKS,))


def _fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


@pytest.mark.parametrize("kw", [
    dict(solver="lbfgs", tol=1e-10, max_epochs=1000),
    dict(learning_rate=1.0, max_epochs=60, tol=None),
], ids=["lbfgs", "full-batch"])
def test_full_batch_and_lbfgs_equal_the_in_memory_fit(client, data, kw, relative_gap):
    X, y, dX, dy = data
    ours = _fit(LogisticRegression(**kw), dX, dy)
    mem = _fit(LogisticRegression(backend="numpy", **kw), X, y)
    assert ours.backend_ == "dask[numpy]"
    assert isinstance(ours.coef_, np.ndarray)
    assert ours.n_iter_ == mem.n_iter_
    assert relative_gap(X, y, ours, mem) < 1e-6
    assert_allclose(ours.coef_, mem.coef_, rtol=1e-6, atol=1e-9)
    assert_allclose(ours.loss_curve_, mem.loss_curve_, rtol=1e-9)


def test_lbfgs_reaches_sklearn_optimum_multinomial_with_weights(client, digits):
    X, y = digits
    sw = np.random.default_rng(0).uniform(0.5, 2.0, size=y.shape[0])
    chunks = (600, 600, 597)
    dX, dy = da.from_array(X, chunks=(chunks, 64)), da.from_array(y, chunks=(chunks,))
    dsw = da.from_array(sw, chunks=(chunks,))
    ours = _fit(LogisticRegression(solver="lbfgs", tol=1e-10, max_epochs=2000), dX, dy,
                sample_weight=dsw)
    ref = SkLogisticRegression(tol=1e-12, max_iter=10_000).fit(X, y, sample_weight=sw)

    def J(model):  # sklearn's weighted objective, float64, SciPy
        Z = X @ model.coef_.T + model.intercept_
        losses = special.logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]
        return np.sum(sw * losses) + 0.5 * np.sum(model.coef_ ** 2)

    assert abs(J(ours) - J(ref)) / J(ref) < 1e-6


@pytest.mark.parametrize("batch_size", [64, 1, 500])
def test_minibatch_in_chunk_order_equals_in_memory_epochs(client, data, batch_size):
    """Without shuffling, streaming the chunks (handing leftover rows on to the next
    chunk) makes exactly the batches of an in-memory epoch."""
    X, y, dX, dy = data
    kw = dict(batch_size=batch_size, shuffle=False, max_epochs=2, tol=None,
              learning_rate=0.05)
    ours = _fit(LogisticRegression(**kw), dX, dy)
    mem = _fit(LogisticRegression(backend="numpy", **kw), X, y)
    assert ours.t_ == mem.t_ == 2 * -(-X.shape[0] // batch_size)
    assert_allclose(ours.coef_, mem.coef_, rtol=1e-9, atol=1e-12)
    assert_allclose(ours.intercept_, mem.intercept_, rtol=1e-9, atol=1e-12)
    assert_allclose(ours.loss_curve_, mem.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize("kw", [
    dict(penalty="l1", C=0.1, tol=1e-8, max_epochs=3000),
    dict(penalty="elasticnet", l1_ratio=0.9, C=0.02, batch_size=64, shuffle=False,
         max_epochs=3, tol=None, learning_rate=0.05),
    dict(solver="newton", class_weight="balanced", tol=1e-10),
    dict(class_weight={0: 3.0}, batch_size=64, shuffle=False, max_epochs=2, tol=None),
], ids=["l1-full", "elasticnet-minibatch", "newton-balanced", "class-weight-minibatch"])
def test_issue_13_and_14_options_equal_the_in_memory_fit(client, data, kw):
    """Penalties, class weights and Newton on Dask arrays take the in-memory steps."""
    X, y, dX, dy = data
    ours = _fit(LogisticRegression(**kw), dX, dy)
    mem = _fit(LogisticRegression(backend="numpy", **kw), X, y)
    if kw.get("tol") == 1e-8:
        # where a converged full batch stops moves with the sums' rounding: compare
        # the penalized objectives, which agree far closer than the coefficients
        from conftest import sklearn_objective

        J = [sklearn_objective(X, y, e.coef_, e.intercept_, kw["C"], l1_ratio=1.0)
             for e in (ours, mem)]
        assert abs(J[0] - J[1]) / J[1] < 1e-6
    else:
        assert_allclose(ours.coef_, mem.coef_, rtol=1e-7, atol=1e-10)
    if "penalty" in kw:
        assert np.any(mem.coef_ == 0)
        np.testing.assert_array_equal(ours.coef_ == 0, mem.coef_ == 0)


def test_warm_start_on_dask(client, data):
    X, y, dX, dy = data
    est = _fit(LogisticRegression(solver="lbfgs", warm_start=True, tol=1e-8), dX, dy)
    cold = _fit(LogisticRegression(solver="lbfgs", C=1.3, tol=1e-8), dX, dy)
    warm = _fit(est.set_params(C=1.3), dX, dy)
    assert warm.n_iter_ < cold.n_iter_
    assert_allclose(warm.coef_, cold.coef_, rtol=1e-4, atol=1e-6)


def test_shuffled_minibatch_matches_sklearn_accuracy_and_is_seeded(client, data):
    X, y, dX, dy = data
    kw = dict(batch_size=32, max_epochs=20, random_state=0)
    a = _fit(LogisticRegression(**kw), dX, dy)
    b = _fit(LogisticRegression(**kw), dX, dy)
    assert_allclose(a.coef_, b.coef_, rtol=0, atol=0)
    ref = SkLogisticRegression().fit(X, y)
    assert a.score(X, y) >= ref.score(X, y) - 0.01


def test_partial_fit_on_dask_arrays(client, data):
    X, y, dX, dy = data
    ours = LogisticRegression(batch_size=64, shuffle=False)
    mem = LogisticRegression(backend="numpy", batch_size=64, shuffle=False)
    for _ in range(2):
        ours.partial_fit(dX, dy, classes=np.array([0, 1]))
        mem.partial_fit(X, y, classes=np.array([0, 1]))
    assert_allclose(ours.coef_, mem.coef_, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match=r"labels not in classes: array\(\[7\]\)"):
        ours.partial_fit(dX, da.where(dy == 1, 7, dy))


def test_predict_is_lazy_and_equals_in_memory(client, data):
    X, y, dX, dy = data
    est = _fit(LogisticRegression(solver="lbfgs"), dX, dy)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        lazy = getattr(est, method)(dX)
        assert isinstance(lazy, da.Array), method
        assert_allclose(lazy.compute(), getattr(est, method)(X), rtol=1e-12, err_msg=method)
    assert est.score(dX, dy) == pytest.approx(est.score(X, y))
    sw = np.linspace(0.1, 1, X.shape[0])
    assert est.score(dX, dy, sw) == pytest.approx(est.score(X, y, sw))


def test_host_labels_and_column_chunks_are_aligned(client, data):
    """y as NumPy, X chunked along columns too: both are rechunked to X's rows."""
    X, y, _, _ = data
    dX = da.from_array(X, chunks=(100, 7))
    ours = _fit(LogisticRegression(solver="lbfgs"), dX, y)
    mem = _fit(LogisticRegression(backend="numpy", solver="lbfgs"), X, y)
    assert_allclose(ours.coef_, mem.coef_, rtol=1e-6, atol=1e-9)


@pytest.fixture
def kill_worker_at(client, monkeypatch):
    """``kill_worker_at(n)``: SIGKILL one worker process as the n-th distributed
    gradient of the fit starts; returns the list the calls are counted in."""
    def arm(n):
        real, calls = xdask.DaskBackend.fused_gradient, []

        def killing(self, *args, **kw):
            calls.append(1)
            if len(calls) == n:
                addr, pid = sorted(client.run(os.getpid).items())[0]
                os.kill(pid, signal.SIGKILL)
            return real(self, *args, **kw)

        monkeypatch.setattr(xdask.DaskBackend, "fused_gradient", killing)
        return calls

    yield arm
    client.wait_for_workers(2, timeout=30)  # the nanny restarts it


def test_worker_killed_mid_fit_is_survived(data, kill_worker_at, relative_gap):
    """Dask recomputes the lost chunks from their source; the model is unchanged."""
    X, y, dX, dy = data
    calls = kill_worker_at(3)
    ours = _fit(LogisticRegression(solver="lbfgs", tol=1e-10), dX, dy)
    mem = _fit(LogisticRegression(backend="numpy", solver="lbfgs", tol=1e-10), X, y)
    assert len(calls) > 3
    assert relative_gap(X, y, ours, mem) < 1e-6


def test_lost_data_is_reported_and_leaves_no_model(client, data, kill_worker_at):
    """Scattered data has no source to recompute from: an error, never a model."""
    X, y, _, _ = data
    client.wait_for_workers(2, timeout=30)
    halves = [slice(0, 300), slice(300, None)]
    fx = client.scatter([X[h] for h in halves])
    fy = client.scatter([y[h] for h in halves])
    dX = da.concatenate([da.from_delayed(f, X[h].shape, X.dtype) for f, h in zip(fx, halves)])
    dy = da.concatenate([da.from_delayed(f, y[h].shape, y.dtype) for f, h in zip(fy, halves)])
    kill_worker_at(2)
    est = LogisticRegression(solver="lbfgs")
    with pytest.raises(RuntimeError, match="worker was lost during fit"):
        est.fit(dX, dy)
    assert not hasattr(est, "coef_") and not hasattr(est, "classes_")


@pytest.mark.parametrize("bad, match", [
    (lambda X, y: (da.where(da.arange(X.shape[0])[:, None] == 300, np.inf, X), y),
     "NaN or infinity"),
    (lambda X, y: (X, da.zeros_like(y)), "only one class"),
    (lambda X, y: (X, y.astype(float) + 0.5), "continuous"),
    (lambda X, y: (X[:, 0], y), "2-D X"),
    (lambda X, y: (X, y[:-1]), "inconsistent numbers of samples"),
    (lambda X, y: (X[X[:, 0] > 0], y[X[:, 0] > 0]), "unknown size"),
], ids=["nan", "one-class", "continuous", "1d", "length", "unknown-chunks"])
def test_bad_input_is_refused_before_training(client, data, bad, match, monkeypatch):
    _, _, dX, dy = data
    monkeypatch.setattr(xdask.DaskBackend, "fused_gradient",
                        lambda *a, **k: pytest.fail("trained on bad input"))
    with pytest.raises(ValueError, match=match):
        LogisticRegression(solver="lbfgs").fit(*bad(dX, dy))


def test_bad_weights_backend_and_options(client, data):
    _, _, dX, dy = data
    with pytest.raises(ValueError, match="non-negative"):
        LogisticRegression().fit(dX, dy, sample_weight=da.full(dy.shape, -1.0, chunks=dy.chunks))
    with pytest.raises(ValueError, match="early_stopping is not available for Dask"):
        LogisticRegression(early_stopping=True).fit(dX, dy)
    with pytest.raises(ValueError, match="NumPy or CuPy chunks"):
        LogisticRegression(backend="array_api_strict").fit(dX, dy)
    with pytest.raises(TypeError, match="pass X as a Dask array too"):
        LogisticRegression().fit(np.ones((4, 2)), da.from_array(np.array([0, 1, 0, 1])))
    est = _fit(LogisticRegression(solver="lbfgs"), dX, dy)
    with pytest.raises(ValueError, match="X has 29 features"):
        est.predict(dX[:, 1:])


def test_missing_extra_names_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(ImportError, match=r'pip install "xlogreg\[dask\]"'):
        xdask.require("zarr", "reading X from a Zarr store")
