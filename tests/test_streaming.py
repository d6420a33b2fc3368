"""Out-of-core training: ``fit_out_of_core`` streams chunks of a memory-mapped
``.npy`` file or a Zarr array into ``partial_fit``, holding one chunk at a time."""

import gc
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from xlogreg import LogisticRegression, fit_out_of_core
from xlogreg.streaming import open_array

zarr = pytest.importorskip("zarr", reason='needs the dask extra: pip install "xlogreg[dask]"')


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(20_000, 20, n_informative=10, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def stores(problem, tmp_path_factory):
    X, y = problem
    root = tmp_path_factory.mktemp("ooc")
    np.save(root / "X.npy", X)
    np.save(root / "y.npy", y)
    z = zarr.create_array(str(root / "X.zarr"), shape=X.shape, chunks=(1_500, 20),
                          dtype="float32")
    z[:] = X
    return {"npy": str(root / "X.npy"), "zarr": str(root / "X.zarr"), "y": str(root / "y.npy")}


@pytest.mark.parametrize("source", ["npy", "zarr"])
def test_streams_to_sklearn_accuracy_and_near_its_optimum(problem, stores, source,
                                                          relative_gap):
    X, y = problem
    est = LogisticRegression(batch_size=64, learning_rate=0.05, random_state=0)
    fit_out_of_core(est, stores[source], stores["y"], epochs=4, chunk_rows=3_000,
                    progress=False)
    ref = SkLogisticRegression(tol=1e-10, max_iter=10_000).fit(X, y)
    assert est.n_iter_ == 4 and len(est.loss_curve_) == 4
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    assert est.t_ == 4 * (6 * 47 + 32)  # 6 chunks of 3,000 rows and one of 2,000
    assert est.score(X, y) >= ref.score(X, y) - 0.01
    assert relative_gap(X, y, est, ref) < 0.01


def test_same_model_as_partial_fit_over_the_same_chunks(problem, stores):
    """Without shuffling, the stream is exactly ``partial_fit`` on each slice in turn."""
    X, y = problem
    kw = dict(batch_size=100, shuffle=False, learning_rate=0.05)
    est = fit_out_of_core(LogisticRegression(**kw), stores["zarr"], y, epochs=2,
                          chunk_rows=4_500, progress=False)
    ref = LogisticRegression(backend="numpy", **kw)
    for _ in range(2):
        for start in range(0, X.shape[0], 4_500):
            ref.partial_fit(X[start:start + 4_500], y[start:start + 4_500], classes=[0, 1])
    assert_allclose(est.coef_, ref.coef_, rtol=1e-6)
    assert est.t_ == ref.t_


def test_holds_one_chunk_not_the_file(problem, stores):
    X, y = problem
    chunk_rows = 1_000  # 1/20 of the file
    est = LogisticRegression(batch_size=64, random_state=0)
    fit_out_of_core(est, stores["npy"], stores["y"], chunk_rows=chunk_rows,
                    progress=False)  # compiles and warms up outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        fit_out_of_core(est, stores["npy"], stores["y"], epochs=2, chunk_rows=chunk_rows,
                        progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    chunk_bytes = chunk_rows * X.shape[1] * X.dtype.itemsize
    assert peak < 4 * chunk_bytes, (peak, chunk_bytes, X.nbytes)


def test_progress_bar_counts_rows(problem, stores, capsys):
    _, y = problem
    fit_out_of_core(LogisticRegression(batch_size=256), stores["npy"], y,
                    chunk_rows=5_000, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "20.0k/20.0k" in err and "rows/s" in err


def test_bad_chunk_is_refused_before_any_training(problem, tmp_path):
    X, y = problem
    X = X.copy()
    X[17_345, 3] = np.nan
    np.save(tmp_path / "bad.npy", X)
    est = LogisticRegression(batch_size=64)
    with pytest.raises(ValueError, match=r"NaN or infinity \(row 17345\)"):
        fit_out_of_core(est, str(tmp_path / "bad.npy"), y, chunk_rows=1_000, progress=False)
    assert not hasattr(est, "coef_")


def test_labels_shapes_and_sources_are_checked(problem, stores):
    X, y = problem
    est = LogisticRegression()
    with pytest.raises(ValueError, match=r"labels not in classes: array\(\[1\]\)"):
        fit_out_of_core(est, stores["npy"], y, classes=[0, 2], progress=False)
    with pytest.raises(ValueError, match=r"y has shape \(19999,\)"):
        fit_out_of_core(est, stores["npy"], y[:-1], progress=False)
    with pytest.raises(ValueError, match="classes must be given"):
        fit_out_of_core(est, stores["npy"], y, check_input=False, progress=False)
    with pytest.raises(ValueError, match="continuous"):
        fit_out_of_core(est, stores["npy"], y + 0.5, progress=False)
    with pytest.raises(ValueError, match="expected a .npy file or a Zarr store"):
        open_array("data.csv")
    with pytest.raises(TypeError, match="array-like with shape"):
        open_array(42)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        fit_out_of_core(est, stores["npy"], y, epochs=0, progress=False)
