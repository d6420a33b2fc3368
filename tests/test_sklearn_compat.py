"""scikit-learn's own estimator checks, and the meta-estimators users combine it with."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from xlogreg import LogisticRegression

# Checks expected to fail, with the reason; scikit-learn reports them as xfail.
_DIVERGES = (
    "its data has unscaled features (normal around 100) with random labels, where plain gradient descent at the default learning_rate=0.1 diverges (the "
    "gradient's Lipschitz constant is ~5e3, so steps must be below ~4e-4); "
    "the estimator raises FloatingPointError naming the learning rate instead of "
    "returning weights that oscillate"
)
EXPECTED_FAILED_CHECKS = {
    "check_fit_idempotent": _DIVERGES,
    "check_fit_check_is_fitted": _DIVERGES,
    "check_n_features_in": _DIVERGES,
}


@parametrize_with_checks(
    [LogisticRegression(backend="numpy")],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_clone_pipeline_and_grid_search(breast_cancer_split):
    X_tr, X_te, y_tr, y_te = breast_cancer_split
    est = LogisticRegression(backend="numpy", batch_size=32, C=0.5, random_state=0)
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    pipe = make_pipeline(StandardScaler(), LogisticRegression(backend="numpy", random_state=0))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.01, 1.0],
                                 "logisticregression__batch_size": [None, 64]}, cv=3)
    search.fit(X_tr, y_tr)
    assert set(search.best_params_) == {"logisticregression__C",
                                        "logisticregression__batch_size"}
    assert search.score(X_te, y_te) > 0.95
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
