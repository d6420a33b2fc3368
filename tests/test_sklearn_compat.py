"""scikit-learn's own estimator checks, and the meta-estimators users combine it with."""

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from xlogreg import LogisticRegression


def _expected_failures(est):
    # a stochastic batch draws other batches from repeated rows than from weighted
    # ones; scikit-learn's own SGDClassifier declares the same
    if est.batch_size is not None:
        why = "mini-batches of repeated rows are not the batches of weighted rows"
        return {"check_sample_weight_equivalence_on_dense_data": why,
                "check_sample_weight_equivalence_on_sparse_data": why}
    return {}


@parametrize_with_checks(
    [LogisticRegression(backend="numpy"),
     LogisticRegression(backend="numpy", solver="lbfgs"),
     LogisticRegression(backend="numpy", batch_size=16),
     LogisticRegression(backend="numpy", class_weight="balanced"),
     LogisticRegression(backend="numpy", penalty="l1", C=10.0),
     LogisticRegression(backend="numpy", penalty="elasticnet", l1_ratio=0.5, batch_size=16),
     LogisticRegression(backend="numpy", warm_start=True, solver="lbfgs")],
    expected_failed_checks=_expected_failures,
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
