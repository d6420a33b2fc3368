"""LogisticRegression: optimum and accuracy against scikit-learn, and its API."""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import special
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import train_test_split

from xlogreg import LogisticRegression
from xlogreg.optimizers import LearningRate
from xlogreg.reference import loop_gradient


@pytest.mark.slow
def test_batch_gd_reaches_sklearn_optimum_binary(backend, breast_cancer, relative_gap):
    X, y = breast_cancer
    ref = SkLogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    ours = LogisticRegression(backend=backend.name, learning_rate=1.0, tol=1e-12,
                              max_epochs=20_000).fit(X, y)
    assert relative_gap(X, y, ours, ref) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_batch_gd_reaches_sklearn_optimum_multinomial(name, digits, request, relative_gap):
    backend = request.getfixturevalue("cupy_backend") if name == "cupy" else None
    X, y = digits
    ref = SkLogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    ours = LogisticRegression(backend=name if backend is None else backend.name,
                              learning_rate=2.0, tol=1e-11, max_epochs=40_000).fit(X, y)
    assert ours.coef_.shape == (10, 64) and ours.intercept_.shape == (10,)
    assert relative_gap(X, y, ours, ref) < 1e-6


@pytest.mark.parametrize("batch_size", [64, 1])
def test_minibatch_and_sgd_accuracy_matches_sklearn(backend, batch_size, breast_cancer_split):
    X_tr, X_te, y_tr, y_te = breast_cancer_split
    reference = SkLogisticRegression().fit(X_tr, y_tr).score(X_te, y_te)
    clf = LogisticRegression(backend=backend.name, batch_size=batch_size, random_state=0,
                             learning_rate=0.01 if batch_size == 1 else 0.1, max_epochs=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_tr, y_tr)
    assert clf.score(X_te, y_te) >= reference - 0.01


@pytest.mark.parametrize("batch_size", [64, 1])
def test_minibatch_and_sgd_accuracy_matches_sklearn_multinomial(batch_size, digits):
    X_tr, X_te, y_tr, y_te = train_test_split(*digits, test_size=0.25, random_state=0,
                                              stratify=digits[1])
    reference = SkLogisticRegression().fit(X_tr, y_tr).score(X_te, y_te)
    clf = LogisticRegression(backend="numpy", batch_size=batch_size, random_state=0,
                             learning_rate=0.01 if batch_size == 1 else 0.1, max_epochs=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_tr, y_tr)
    assert clf.score(X_te, y_te) >= reference - 0.01


def test_batch_size_none_m_and_larger_are_the_same_run(breast_cancer):
    X, y = breast_cancer
    fits = [LogisticRegression(backend="numpy", batch_size=bs, max_epochs=50, tol=None)
            .fit(X, y) for bs in (None, len(y), 10 * len(y))]
    for other in fits[1:]:
        assert_array_equal(other.coef_, fits[0].coef_)
        assert_array_equal(other.intercept_, fits[0].intercept_)


def test_first_loss_is_log_k_and_bgd_loss_decreases(breast_cancer, digits):
    for (X, y), k in ((breast_cancer, 2), (digits, 10)):
        clf = LogisticRegression(backend="numpy", max_epochs=30, tol=None).fit(X, y)
        assert_allclose(clf.loss_curve_[0], math.log(k), rtol=1e-14)  # W = 0: uniform
        assert np.all(np.diff(clf.loss_curve_) < 0)
        assert len(clf.loss_curve_) == clf.n_iter_ == 30


def _manual_epoch(X, y, batch, eta, C, sample_weight=None, n_classes=2):
    """One unshuffled epoch of mini-batch steps built from the loop reference."""
    m, n = X.shape
    k = 1 if n_classes == 2 else n_classes
    W, b = np.zeros((n, k)), np.zeros(k)
    s = np.ones(m) if sample_weight is None else sample_weight
    alpha = 1.0 / (C * s.sum())
    for start in range(0, m, batch):
        rows = slice(start, start + batch)
        nb = len(y[rows])
        _, dW, db = loop_gradient(X[rows].tolist(), y[rows].tolist(), W.tolist(), b.tolist(),
                                  0.0, s[rows].tolist())
        # loop_gradient divides by the batch's weight; the loop scales by nb * mean(s)
        ratio = s[rows].sum() / (nb * s.mean())
        W = W - eta * (np.array(dW) * ratio + alpha * W)
        b = b - eta * np.array(db) * ratio
    return W, b


@pytest.mark.parametrize("batch", [1, 4, 7])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_one_epoch_equals_hand_written_steps(backend, batch, weighted, n_classes, rng):
    X = rng.normal(size=(23, 4))
    y = rng.integers(0, n_classes, size=23)
    s = rng.uniform(0.5, 2.0, size=23) if weighted else None
    clf = LogisticRegression(backend=backend.name, batch_size=batch, shuffle=False,
                             max_epochs=1, tol=None, learning_rate=0.3, C=0.5)
    clf.fit(X, y, sample_weight=s)
    W, b = _manual_epoch(X, y, batch, 0.3, 0.5, s, n_classes)
    assert_allclose(clf.coef_, W.T, rtol=1e-10, atol=1e-13)
    assert_allclose(clf.intercept_, b, rtol=1e-10, atol=1e-13)
    assert clf.t_ == math.ceil(23 / batch)


@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
def test_partial_fit_continues_like_fit(schedule, rng):
    X = rng.normal(size=(40, 3))
    y = np.array(["a", "b", "c", "b"] * 10)
    params = dict(backend="numpy", batch_size=8, shuffle=False, lr_schedule=schedule)
    full = LogisticRegression(max_epochs=6, tol=None, **params).fit(X, y)
    part = LogisticRegression(**params)
    for _ in range(6):
        part.partial_fit(X, y, classes=["a", "b", "c"])
    assert_allclose(part.coef_, full.coef_, rtol=1e-12)
    assert_allclose(part.intercept_, full.intercept_, rtol=1e-12)
    assert part.t_ == full.t_ == 30 and part.n_iter_ == 1
    assert_array_equal(part.classes_, ["a", "b", "c"])


def test_sample_weight_equals_repeating_rows(rng):
    X = rng.normal(size=(30, 4))
    y = rng.integers(0, 3, size=30)
    w = rng.integers(1, 4, size=30)
    # a fixed step: the same updates to rounding
    params = dict(backend="numpy", max_epochs=200, tol=None, learning_rate=0.1)
    weighted = LogisticRegression(**params).fit(X, y, w)
    repeated = LogisticRegression(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-10)
    assert_allclose(weighted.intercept_, repeated.intercept_, rtol=1e-10, atol=1e-14)
    # the automatic step: the same optimum
    weighted = LogisticRegression(backend="numpy", tol=1e-10).fit(X, y, w)
    repeated = LogisticRegression(backend="numpy", tol=1e-10).fit(
        np.repeat(X, w, axis=0), np.repeat(y, w))
    assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-6, atol=1e-9)
    assert_allclose(weighted.intercept_, repeated.intercept_, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_float32_is_kept_and_close_to_float64(backend_name, breast_cancer):
    X, y = breast_cancer
    params = dict(backend=backend_name, batch_size=32, random_state=0, max_epochs=20, tol=None)
    c32 = LogisticRegression(**params).fit(X.astype(np.float32), y)
    c64 = LogisticRegression(**params).fit(X, y)
    assert c32.coef_.dtype == np.float32 and c32.intercept_.dtype == np.float32
    assert c32.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert c64.coef_.dtype == np.float64
    assert_allclose(c32.coef_, c64.coef_, rtol=1e-3, atol=1e-4)


def test_probabilities_and_scores_are_consistent(backend, breast_cancer, digits):
    for X, y in (breast_cancer, digits):
        clf = LogisticRegression(backend=backend.name, max_epochs=50, tol=None).fit(X, y)
        P, L = clf.predict_proba(X), clf.predict_log_proba(X)
        D = clf.decision_function(X)
        assert isinstance(P, np.ndarray) and P.shape == (len(y), len(clf.classes_))
        assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
        assert_allclose(L, np.log(P), rtol=1e-10, atol=1e-12)
        assert_allclose(D, X @ clf.coef_.T[:, 0] + clf.intercept_[0] if D.ndim == 1
                        else X @ clf.coef_.T + clf.intercept_, rtol=1e-10, atol=1e-12)
        expected = (D >= 0).astype(int) if D.ndim == 1 else np.argmax(D, axis=1)
        assert_array_equal(clf.predict(X), clf.classes_[expected])
        assert_allclose(P, special.softmax(np.c_[np.zeros(len(y)), D] if D.ndim == 1 else D,
                                           axis=1), rtol=1e-10)


def test_log_proba_finite_for_huge_scores(breast_cancer):
    X, y = breast_cancer
    clf = LogisticRegression(backend="numpy", max_epochs=20, tol=None).fit(X, y)
    huge = X * 1e4  # scores in the tens of thousands
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L = clf.predict_log_proba(huge)
        P = clf.predict_proba(huge)
    assert np.all(np.isfinite(L)) and np.all(L <= 0)
    assert_allclose(P.sum(axis=1), 1.0)
    assert np.max(-L) > 1000


def test_any_label_type(rng):
    X = rng.normal(size=(60, 3))
    X[:, 0] += np.repeat([-3, 0, 3], 20)
    for labels in (np.array(["cat", "dog", "emu"]), np.array([-7, 2, 40]),
                   np.array([False, True, True])):
        y = np.repeat(labels, 20)
        clf = LogisticRegression(backend="numpy", max_epochs=300).fit(X, y)
        assert_array_equal(clf.classes_, np.unique(labels))
        pred = clf.predict(X)
        assert pred.dtype == y.dtype
        assert np.mean(pred == y) > 0.8


def test_pandas_and_lists(breast_cancer):
    pd = pytest.importorskip("pandas")
    X, y = breast_cancer
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    a = LogisticRegression(backend="numpy", max_epochs=30, tol=None).fit(frame, pd.Series(y))
    b = LogisticRegression(backend="numpy", max_epochs=30, tol=None).fit(X.tolist(), y.tolist())
    assert_array_equal(a.feature_names_in_, frame.columns)
    assert_allclose(a.coef_, b.coef_, rtol=1e-9)  # memory order changes the rounding
    assert_array_equal(a.predict(frame), b.predict(X.tolist()))


def test_column_vector_y_is_accepted_with_a_warning(breast_cancer):
    X, y = breast_cancer
    with pytest.warns(DataConversionWarning):
        col = LogisticRegression(backend="numpy", max_epochs=5, tol=None).fit(X, y[:, None])
    flat = LogisticRegression(backend="numpy", max_epochs=5, tol=None).fit(X, y)
    assert_array_equal(col.coef_, flat.coef_)


def test_convergence_warning_and_tol_none(breast_cancer):
    X, y = breast_cancer
    with pytest.warns(ConvergenceWarning, match="max_epochs=3"):
        LogisticRegression(backend="numpy", max_epochs=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = LogisticRegression(backend="numpy", max_epochs=7, tol=None).fit(X, y)
    assert clf.n_iter_ == 7


def test_stops_after_n_iter_no_change(breast_cancer):
    X, y = breast_cancer
    clf = LogisticRegression(backend="numpy", batch_size=16, random_state=0, tol=1e-3,
                             n_iter_no_change=3).fit(X, y)
    curve = np.array(clf.loss_curve_)
    best, stall = np.inf, 0
    for i, loss in enumerate(curve):  # the rule, relative, replayed on the recorded curve
        stall = stall + 1 if loss > best - 1e-3 * abs(best) else 0
        best = min(best, loss)
        if stall >= 3:
            break
    assert clf.n_iter_ == i + 1 < 1000


def test_learning_rate_schedules():
    constant = LearningRate("constant", 0.5)
    assert constant(0) == constant(10_000) == 0.5 and not constant.plateau()
    inv = LearningRate("invscaling", 0.5, power_t=0.25)
    assert_allclose([inv(t) for t in (0, 15, 80)], [0.5, 0.25, 0.5 / 81**0.25])
    ada = LearningRate("adaptive", 0.1)
    cuts = 0
    while ada.plateau():
        cuts += 1
    assert cuts == 8 and math.isclose(ada(0), 0.1 / 5**8)
    with pytest.raises(ValueError, match="unknown lr_schedule 'cosine'"):
        LearningRate("cosine")


def test_adaptive_schedule_cuts_until_tiny(breast_cancer):
    X, y = breast_cancer
    clf = LogisticRegression(backend="numpy", batch_size=32, lr_schedule="adaptive",
                             learning_rate=0.1, random_state=0, max_epochs=2000).fit(X, y)
    assert math.isclose(clf.learning_rate_, 0.1 / 5**8)
    inv = LogisticRegression(backend="numpy", lr_schedule="invscaling", max_epochs=9,
                             learning_rate=0.1, tol=None).fit(X, y)
    assert math.isclose(inv.learning_rate_, 0.1 / 9**0.5)


def test_early_stopping(breast_cancer):
    X, y = breast_cancer
    clf = LogisticRegression(backend="numpy", batch_size=16, early_stopping=True,
                             validation_fraction=0.2, random_state=0, tol=1e-3,
                             n_iter_no_change=4, max_epochs=500).fit(X, y)
    scores = np.array(clf.validation_scores_)
    assert len(scores) == clf.n_iter_ < 500
    best, stall = -np.inf, 0
    for i, s in enumerate(scores):
        stall = stall + 1 if s < best + 1e-3 else 0
        best = max(best, s)
        if stall >= 4:
            break
    assert clf.n_iter_ == i + 1
    assert clf.score(X, y) > 0.95
    plain = LogisticRegression(backend="numpy", batch_size=16, random_state=0).fit(X, y)
    assert plain.validation_scores_ is None


def test_random_state_makes_runs_repeatable(breast_cancer):
    X, y = breast_cancer
    fit = lambda seed: LogisticRegression(backend="numpy", batch_size=8, random_state=seed,  # noqa: E731
                                          max_epochs=3, tol=None).fit(X, y).coef_
    assert_array_equal(fit(1), fit(1))
    assert not np.array_equal(fit(1), fit(2))


def test_unpenalized_and_no_intercept(rng):
    X = rng.normal(size=(200, 3))
    y = (X @ [1.0, -2.0, 0.5] + 2.0 * rng.normal(size=200) > 0).astype(int)
    free = LogisticRegression(backend="numpy", C=None, fit_intercept=False, learning_rate=1.0,
                              tol=1e-12, max_epochs=20_000).fit(X, y)
    ref = SkLogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)
    ref.fit(X, y)
    assert_array_equal(free.intercept_, [0.0])
    assert_allclose(free.coef_, ref.coef_, rtol=1e-4)


def test_verbose_shows_a_progress_bar_with_the_loss(breast_cancer, capsys):
    X, y = breast_cancer
    LogisticRegression(backend="numpy", verbose=True, max_epochs=40, tol=None).fit(X, y)
    err = capsys.readouterr().err
    assert "epoch" in err and "loss=" in err


def test_device_input_stays_on_its_device(breast_cancer):
    """array-api-strict stands in for CuPy: its arrays in, its arrays out."""
    strict = pytest.importorskip("array_api_strict")
    X, y = breast_cancer
    Xd, yd = strict.asarray(X), strict.asarray(y)
    clf = LogisticRegression(max_epochs=30, tol=None).fit(Xd, yd)
    host = LogisticRegression(backend="numpy", max_epochs=30, tol=None).fit(X, y)
    assert clf.backend_ == "array_api_strict"
    for got in (clf.coef_, clf.predict(Xd), clf.predict_proba(Xd), clf.classes_):
        assert isinstance(got, type(Xd))
    assert_allclose(np.from_dlpack(clf.coef_), host.coef_, rtol=1e-9)  # the data scale is summed in another order
    assert_array_equal(np.from_dlpack(clf.predict(Xd)), host.predict(X))
    assert clf.score(Xd, yd) == host.score(X, y)
    # host data predicted with a device-fitted model comes back on the host
    assert_array_equal(clf.predict(X), host.predict(X))
