"""``warm_start=True``: ``fit`` continues from the fitted model."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from xlogreg import LogisticRegression


@pytest.mark.parametrize("data", ["breast_cancer", "digits"])
@pytest.mark.parametrize("solver", ["lbfgs", "gd"])
def test_refit_after_a_small_change_of_C_is_shorter_and_reaches_the_optimum(
        request, data, solver, relative_gap):
    X, y = request.getfixturevalue(data)
    params = dict(backend="numpy", solver=solver, tol=1e-9 if solver == "gd" else 1e-6,
                  max_epochs=20000)
    warm = LogisticRegression(warm_start=True, C=1.0, **params).fit(X, y)
    first = warm.coef_.copy()
    warm.set_params(C=1.2).fit(X, y)
    cold = LogisticRegression(C=1.2, **params).fit(X, y)
    assert warm.n_iter_ < cold.n_iter_
    assert not np.allclose(warm.coef_, first)  # it moved to the new optimum
    ref = SkLogisticRegression(C=1.2, tol=1e-10, max_iter=10000).fit(X, y)
    assert relative_gap(X, y, warm, ref, C=1.2) < 1e-6
    assert relative_gap(X, y, cold, ref, C=1.2) < 1e-6


def test_warm_start_false_starts_from_zero(breast_cancer):
    X, y = breast_cancer
    est = LogisticRegression(backend="numpy", max_epochs=3, tol=None).fit(X, y)
    again = est.fit(X, y)
    assert again.loss_curve_[0] == pytest.approx(np.log(2))  # J at zero
    warm = LogisticRegression(backend="numpy", max_epochs=3, tol=None,
                              warm_start=True).fit(X, y)
    start = warm.loss_curve_[-1]
    warm.fit(X, y)
    assert warm.loss_curve_[0] <= start + 1e-12  # continues where it stopped


def test_minibatch_warm_start_continues(breast_cancer):
    X, y = breast_cancer
    est = LogisticRegression(backend="numpy", batch_size=32, warm_start=True,
                             max_epochs=2, tol=None, random_state=0).fit(X, y)
    before = est.loss_curve_[-1]
    est.fit(X, y)
    assert est.loss_curve_[0] < 0.5 * np.log(2)
    assert est.loss_curve_[0] < before * 1.5


def test_warm_start_refuses_other_features_or_classes(breast_cancer, digits):
    X, y = breast_cancer
    est = LogisticRegression(backend="numpy", warm_start=True).fit(X, y)
    coef = est.coef_.copy()
    with pytest.raises(ValueError, match="warm_start"):
        est.fit(X[:, :10], y)
    with pytest.raises(ValueError, match="warm_start"):
        est.fit(X, np.where(y == 1, 2, 0))  # other labels
    Xd, yd = digits
    with pytest.raises(ValueError, match="warm_start"):
        est.fit(Xd[:, :30], yd)
    np.testing.assert_array_equal(est.coef_, coef)  # the model is left as it was
    assert est.n_features_in_ == 30
