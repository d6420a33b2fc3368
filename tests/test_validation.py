"""Bad input: a clear error naming the problem, raised before any training work."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import xlogreg.estimator
from xlogreg import LogisticRegression


@pytest.fixture
def no_training(monkeypatch):
    """Any call into the training loop fails the test: errors must come first."""
    def forbidden(*args, **kwargs):
        raise AssertionError("training started before the input was rejected")

    monkeypatch.setattr(xlogreg.estimator, "gradient_descent", forbidden)


@pytest.fixture
def data(rng):
    X = rng.normal(size=(20, 3))
    return X, (X[:, 0] > 0).astype(int)


def _bad(value, where=0):
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[where, 1] = value
    return X


@pytest.mark.parametrize(
    "X, y, match",
    [
        (_bad(np.nan), None, "Input X contains NaN"),
        (_bad(np.inf), None, "Input X contains infinity"),
        (np.zeros(20), None, "Expected 2D array, got 1D array"),
        (np.zeros((20, 3, 1)), None, "Found array with dim 3"),
        (np.zeros((0, 3)), np.zeros(0), "0 sample"),
        (np.zeros((20, 0)), None, "0 feature"),
        ([["a", "b", "c"]] * 20, None, "could not convert string to float"),
        (None, np.zeros(19), "inconsistent numbers of samples: \\[20, 19\\]"),
        (None, np.ones(20), "at least 2 classes.*only one class: 1"),
        (None, np.ones((1, 20)), "y should be a 1d array, got an array of shape \\(1, 20\\)"),
        (None, np.ones((20, 2)), "y should be a 1d array"),
        (None, np.linspace(0, 1, 20), "Unknown label type: continuous"),
    ],
)
def test_bad_data_is_rejected_before_training(X, y, match, data, no_training):
    X0, y0 = data
    X = X0 if X is None else X
    y = y0 if y is None else y
    with pytest.raises(ValueError, match=match):
        LogisticRegression(backend="numpy").fit(X, y)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"batch_size": 0}, "'batch_size' parameter .* range \\[1, inf\\)"),
        ({"batch_size": 2.5}, "'batch_size' parameter"),
        ({"learning_rate": 0.0}, "'learning_rate' parameter .* range \\(0.0, inf\\)"),
        ({"learning_rate": -1.0}, "'learning_rate' parameter"),
        ({"max_epochs": 0}, "'max_epochs' parameter"),
        ({"C": 0.0}, "'C' parameter"),
        ({"C": -1.0}, "'C' parameter"),
        ({"tol": -1e-3}, "'tol' parameter"),
        ({"n_iter_no_change": 0}, "'n_iter_no_change' parameter"),
        ({"validation_fraction": 1.0}, "'validation_fraction' parameter"),
        ({"lr_schedule": "cosine"}, "'lr_schedule' parameter .* among .*'adaptive'.*Got 'cosine'"),
        ({"backend": "tpu"}, "'backend' parameter .* among (?=.*'cuda')(?=.*'numpy').*Got 'tpu'"),
    ],
)
def test_bad_parameters_are_rejected_before_training(params, match, data, no_training):
    with pytest.raises(ValueError, match=match):
        LogisticRegression(**params).fit(*data)


def test_negative_sample_weight(data, no_training):
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        LogisticRegression(backend="numpy").fit(*data, sample_weight=-np.ones(20))


def test_early_stopping_needs_validation_rows(no_training):
    X, y = np.eye(4), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="validation_fraction=0.1 of the 4 samples with positive weight"):
        LogisticRegression(backend="numpy", early_stopping=True).fit(X, y)


def test_predicting_before_fitting(data):
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(LogisticRegression(), method)(data[0])


def test_wrong_number_of_features_at_predict(data):
    clf = LogisticRegression(backend="numpy", max_epochs=3, tol=None).fit(*data)
    with pytest.raises(ValueError, match="X has 2 features, but LogisticRegression is "
                                         "expecting 3 features"):
        clf.predict(data[0][:, :2])


def test_partial_fit_needs_classes_and_known_labels(data):
    X, y = data
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        LogisticRegression().partial_fit(X, y)
    clf = LogisticRegression(backend="numpy").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="y contains labels not in classes: array\\(\\[2\\]\\)"):
        clf.partial_fit(X, np.where(y == 1, 2, 0))
    with pytest.raises(ValueError, match="not the same as on the first call"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="at least 2 classes in classes"):
        LogisticRegression().partial_fit(X, np.zeros(20), classes=[0])


def test_diverging_run_names_the_learning_rate(data):
    X, y = data
    for batch_size in (None, 4):
        with pytest.raises(FloatingPointError, match="diverged.*learning_rate=1e\\+06 is too"):
            LogisticRegression(backend="numpy", learning_rate=1e6, batch_size=batch_size,
                               tol=None, max_epochs=100).fit(X * 1e3, y)


def test_device_input_with_host_backend_says_what_to_do(data, no_training):
    strict = pytest.importorskip("array_api_strict")
    X, y = data
    with pytest.raises(ValueError, match="X is a array_api_strict array but backend='numpy'"):
        LogisticRegression(backend="numpy").fit(strict.asarray(X), strict.asarray(y))
    with pytest.raises(TypeError, match="mix array libraries"):
        LogisticRegression().fit(strict.asarray(X), y)


@pytest.mark.parametrize(
    "X, y, match",
    [
        ("nan", None, "Input X contains NaN or infinity"),
        ("1d", None, "Expected a 2-D X"),
        ("empty", None, "X is empty"),
        (None, "short", "inconsistent numbers of samples"),
        (None, "row", "y should be a 1d array"),
        (None, "float", "Unknown label type: continuous"),
        (None, "one", "only one class"),
    ],
)
def test_device_arrays_get_the_same_checks(X, y, match, data, no_training):
    strict = pytest.importorskip("array_api_strict")
    X0, y0 = data
    X_ = {"nan": _bad(np.nan), "1d": X0[:, 0], "empty": X0[:0], None: X0}[X]
    y_ = {"short": y0[:5], "row": y0[None, :], "float": np.linspace(0, 1, 20),
          "one": np.ones(20), None: y0}[y]
    with pytest.raises(ValueError, match=match):
        LogisticRegression().fit(strict.asarray(X_), strict.asarray(y_))


def test_linear_time_classes_equal_np_unique():
    from xlogreg._data import _unique_inverse

    rng = np.random.default_rng(0)
    for y in [rng.integers(-3, 5, 1000), rng.integers(0, 2, 10_000).astype(np.int8),
              np.array([True, False, True]), rng.integers(3, 10, 100).astype(np.uint8),
              np.array([5, 5, 7], dtype=np.int32), np.array([0, 10**12, 10**12]),
              rng.integers(0, 3, 100), np.array([0, 1, 3]),
              # no wrap-around where y's own type cannot hold the range
              np.array([127, -128, 127], np.int8), np.array([-30000, 30000], np.int16),
              np.array([2 ** 63 + 5, 2 ** 63 + 7], np.uint64)]:
        kept = y.copy()
        classes, index = _unique_inverse(y)
        ref_classes, ref_index = np.unique(y, return_inverse=True)
        np.testing.assert_array_equal(classes, ref_classes)
        assert classes.dtype == ref_classes.dtype
        np.testing.assert_array_equal(index, ref_index.ravel())
        assert index.dtype == ref_index.dtype
        np.testing.assert_array_equal(y, kept)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_leaves_the_labels_as_they_were():
    """Labels 0..k-1 are their own class indices (no copy is made of them): training
    must not write into them."""
    from xlogreg import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 4))
    for k in (2, 3):
        y = rng.integers(0, k, 300)
        kept = y.copy()
        for solver in ("gd", "lbfgs", "newton"):
            LogisticRegression(solver=solver, batch_size=None if solver != "gd" else 32,
                               max_epochs=5).fit(X, y)
            np.testing.assert_array_equal(y, kept)


def test_parallel_finite_check_of_large_x(monkeypatch):
    from xlogreg import _data
    from xlogreg import LogisticRegression

    monkeypatch.setattr(_data, "PARALLEL_CHECK_SIZE", 0)
    X = np.random.default_rng(0).standard_normal((1000, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    X[-1, 3] = 3e38  # finite, but the sum of the block overflows
    X[-2, 3] = 3e38
    assert _data._all_finite(X)
    for bad in (np.nan, np.inf, -np.inf):
        Xb = X.copy()
        Xb[777, 2] = bad
        assert not _data._all_finite(Xb)
        with pytest.raises(ValueError, match="NaN or infinity"):
            LogisticRegression(backend="numpy").fit(Xb, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_x_check_is_the_scan_of_its_scale(monkeypatch, dtype):
    """Large X is proved finite by the scan of its scale, which training then reuses:
    one read of X before the first epoch, the same model as with a separate check,
    and NaN or infinity anywhere still refused before any work."""
    from xlogreg import _data, estimator
    from xlogreg import LogisticRegression
    from xlogreg.backends import _numpy as numpy_backend

    rng = np.random.default_rng(1)
    X = rng.standard_normal((3000, 8)).astype(dtype)
    y = (X[:, 0] + 0.5 * rng.standard_normal(3000) > 0).astype(int)
    monkeypatch.setattr(numpy_backend, "FUSED_MIN_SIZE", 0)  # the compiled scan too
    reference = {s: LogisticRegression(backend="numpy", solver=s).fit(X, y)
                 for s in ("gd", "lbfgs")}  # checked, then scanned: two reads
    monkeypatch.setattr(_data, "PARALLEL_CHECK_SIZE", 0)
    # the scan's first gradient, rounded differently, is test_scan's subject
    monkeypatch.setattr(estimator, "gradient_at_zero", lambda scan, k: None)
    calls = []
    scan = numpy_backend.NumpyBackend.data_scale
    monkeypatch.setattr(numpy_backend.NumpyBackend, "data_scale",
                        lambda self, *a, **k: calls.append(a[0].shape) or scan(self, *a, **k))
    for solver, ref in reference.items():
        del calls[:]
        model = LogisticRegression(backend="numpy", solver=solver).fit(X, y)
        assert calls == [X.shape]  # the check's scan, and no second one
        # the same scale, to rounding (the scan sums each label's rows apart)
        np.testing.assert_allclose(model.coef_, ref.coef_,
                                   rtol=1e-10 if dtype == np.float64 else 1e-5)
        np.testing.assert_array_equal(model.n_iter_, ref.n_iter_)
    for bad in (np.nan, np.inf, -np.inf):
        Xb = X.copy()
        Xb[2345, 5] = bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            LogisticRegression(backend="numpy").fit(Xb, y)
    # finite values whose squares overflow float64: judged finite by the exact check
    Xh = X.astype(np.float64)
    Xh[10, 1] = 1e200
    assert _data._plain(Xh, y, None)
    with pytest.raises(ValueError, match="overflow|rescale"):
        LogisticRegression(backend="numpy").fit(Xh, y)


def test_parameters_checked_on_every_fit_though_remembered():
    """Valid parameter values are remembered (scikit-learn's check reads the signature
    each call); a value changed afterwards, by set_params or by assignment, is still
    checked, with scikit-learn's message."""
    from xlogreg import LogisticRegression

    X = np.random.default_rng(0).standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    est = LogisticRegression(backend="numpy").fit(X, y)
    for name, bad in (("C", -1.0), ("solver", "sag"), ("batch_size", 0), ("tol", -1e-3),
                      ("class_weight", "even")):
        est = LogisticRegression(backend="numpy").fit(X, y)
        est.set_params(**{name: bad})
        with pytest.raises(ValueError, match=f"'{name}' parameter"):
            est.fit(X, y)
        setattr(est, name, bad)
        with pytest.raises(ValueError, match=f"'{name}' parameter"):
            est.fit(X, y)
    # an equal value of another type is checked on its own: 1.0 == 1, but a batch
    # size must be an integer
    LogisticRegression(backend="numpy", batch_size=1, max_epochs=1, tol=None).fit(X, y)
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        LogisticRegression(backend="numpy", batch_size=1.0, max_epochs=1, tol=None).fit(X, y)


def test_plain_arrays_take_the_short_path_with_the_same_attributes():
    """NumPy float X and integer y skip validate_data: the fitted attributes are the
    same, a refit on an array forgets the feature names of a DataFrame, and anything
    the short path does not cover (NaN, lists, float labels, a wrong y length) gets
    scikit-learn's own error."""
    pd = pytest.importorskip("pandas")
    from xlogreg import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] > 0).astype(int)
    est = LogisticRegression(backend="numpy").fit(pd.DataFrame(X, columns=list("abcd")), y)
    assert list(est.feature_names_in_) == list("abcd")
    with pytest.warns(UserWarning, match="valid feature names"):  # scikit-learn's
        est.predict(X)
    est.fit(X, y)
    assert not hasattr(est, "feature_names_in_") and est.n_features_in_ == 4
    with pytest.raises(ValueError, match="4 features"):
        est.predict(X[:, :3])
    ref = LogisticRegression(backend="numpy").fit(X.tolist(), y.tolist())  # the long path
    np.testing.assert_array_equal(est.coef_, ref.coef_)
    Xn = X.copy()
    Xn[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression(backend="numpy").fit(Xn, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LogisticRegression(backend="numpy").fit(X, y[:-1])
    with pytest.raises(ValueError, match="Unknown label type"):
        LogisticRegression(backend="numpy").fit(X, y + 0.5)
    # whole-number float labels (benchopt's -1.0, 1.0) take the short path too
    signed = LogisticRegression(backend="numpy").fit(X, 2.0 * y - 1.0)
    np.testing.assert_array_equal(signed.classes_, [-1.0, 1.0])
    np.testing.assert_array_equal(signed.coef_, ref.coef_)
    for bad in (np.nan, np.inf):
        yb = (2.0 * y - 1.0)
        yb[3] = bad
        with pytest.raises(ValueError, match="NaN|infinity|Unknown label"):
            LogisticRegression(backend="numpy").fit(X, yb)
