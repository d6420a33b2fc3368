"""``class_weight``: scikit-learn's meaning (it multiplies ``sample_weight``), its
optimum, and ``partial_fit``'s rule for ``"balanced"``."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.utils.class_weight import compute_class_weight

from conftest import sklearn_objective as objective
from xlogreg import LogisticRegression


def _imbalanced(X, y, rng, keep=0.2):
    """Keep a fifth of the rows of every class but the last, so classes are uneven."""
    last = y.max()
    rows = np.flatnonzero((y == last) | (rng.random(len(y)) < keep))
    return X[rows], y[rows]


@pytest.mark.parametrize("data", ["breast_cancer", "digits"])
@pytest.mark.parametrize("solver", ["lbfgs", "gd"])
@pytest.mark.parametrize("weighted", [False, True])
def test_class_weight_reaches_sklearn_optimum(request, data, solver, weighted, rng):
    X, y = _imbalanced(*request.getfixturevalue(data), rng)
    sw = rng.uniform(0.5, 2.0, len(y)) if weighted else None
    classes = np.unique(y)
    custom = {int(c): 1.0 + 0.5 * i for i, c in enumerate(classes[::2])}  # some left out
    for class_weight in ["balanced", custom]:
        ref = SkLogisticRegression(class_weight=class_weight, tol=1e-12,
                                   max_iter=100000).fit(X, y, sample_weight=sw)
        ours = LogisticRegression(backend="numpy", solver=solver, class_weight=class_weight,
                                  tol=1e-12 if solver == "gd" else 1e-10,
                                  max_epochs=50000).fit(X, y, sample_weight=sw)
        cw = compute_class_weight(class_weight, classes=classes, y=y, sample_weight=sw)
        w = cw[np.searchsorted(classes, y)] * (1.0 if sw is None else sw)
        J_ref = objective(X, y, ref.coef_, ref.intercept_, 1.0, w)
        J = objective(X, y, ours.coef_, ours.intercept_, 1.0, w)
        assert abs(J - J_ref) / J_ref < 1e-6, class_weight


def test_balanced_weights_what_scikit_learn_computes(breast_cancer, rng):
    """The optimum moves as the weights say: not the unweighted one."""
    X, y = _imbalanced(*breast_cancer, rng, keep=0.1)
    plain = LogisticRegression(backend="numpy", solver="lbfgs").fit(X, y)
    balanced = LogisticRegression(backend="numpy", solver="lbfgs",
                                  class_weight="balanced").fit(X, y)
    # the minority class (0) gains weight: its intercept share grows
    assert balanced.intercept_[0] < plain.intercept_[0] - 0.1


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("batch_size", [None, 16])
def test_class_weight_equals_the_same_sample_weight(digits, backend_name, batch_size, rng):
    X, y = digits
    weights = {int(c): float(w) for c, w in zip(range(10), rng.uniform(0.2, 3.0, 10))}
    sw = rng.uniform(0.5, 2.0, len(y))
    params = dict(backend=backend_name, batch_size=batch_size, max_epochs=20,
                  tol=None, random_state=0)
    a = LogisticRegression(class_weight=weights, **params).fit(X, y, sample_weight=sw)
    folded = sw * np.array([weights[int(c)] for c in y])
    b = LogisticRegression(**params).fit(X, y, sample_weight=folded)
    np.testing.assert_allclose(np.asarray(a.coef_), np.asarray(b.coef_), rtol=1e-10,
                               atol=1e-13)


def test_class_weight_dict_with_string_labels_and_errors(breast_cancer):
    X, y = breast_cancer
    labels = np.array(["benign", "malignant"])[y]
    a = LogisticRegression(backend="numpy", solver="lbfgs",
                           class_weight={"benign": 3.0}).fit(X, labels)
    b = LogisticRegression(backend="numpy", solver="lbfgs").fit(
        X, labels, sample_weight=np.where(labels == "benign", 3.0, 1.0))
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10)
    with pytest.raises(ValueError, match="not in class_weight"):
        LogisticRegression(backend="numpy", class_weight={"cat": 2.0}).fit(X, labels)
    with pytest.raises(ValueError, match="class_weight"):
        LogisticRegression(backend="numpy", class_weight="heavy").fit(X, labels)


def test_partial_fit_balanced_weighs_each_calls_labels(breast_cancer):
    X, y = breast_cancer
    est = LogisticRegression(backend="numpy", batch_size=32, class_weight="balanced",
                             random_state=0)
    with pytest.raises(ValueError, match="classes.*balanced"):
        est.partial_fit(X, y)
    # a call's balanced weights are those of its own labels: each epoch equals one
    # with those weights as sample_weight
    twin = LogisticRegression(backend="numpy", batch_size=32, random_state=0)
    for rows, classes in [(slice(0, 300), [0, 1]), (slice(300, None), None)]:
        est.partial_fit(X[rows], y[rows], classes=classes)
        cw = compute_class_weight("balanced", classes=np.array([0, 1]), y=y[rows])
        twin.partial_fit(X[rows], y[rows], classes=classes, sample_weight=cw[y[rows]])
        np.testing.assert_allclose(est.coef_, twin.coef_, rtol=1e-10)


def test_partial_fit_balanced_chunk_missing_a_class(digits):
    X, y = digits
    est = LogisticRegression(backend="numpy", batch_size=32, class_weight="balanced")
    rows = y != 3
    est.partial_fit(X[rows], y[rows], classes=np.arange(10))
    assert np.all(np.isfinite(est.coef_))


def test_class_weight_on_dask_matches_in_memory(breast_cancer):
    da = pytest.importorskip("dask.array")
    X, y = breast_cancer
    params = dict(backend="numpy", solver="lbfgs", class_weight="balanced", tol=1e-10)
    ref = LogisticRegression(**params).fit(X, y)
    ours = LogisticRegression(**params).fit(da.from_array(X, chunks=100),
                                            da.from_array(y, chunks=100))
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-6)
