"""``penalty="l1"`` / ``"elasticnet"`` / ``None``: scikit-learn's objective, reached by
proximal gradient descent at every batch size, with the optimum's exact zeros.

References: scikit-learn's ``saga`` (breast cancer), and, where ``saga`` takes minutes
(digits), the same objective minimized by SciPy's L-BFGS-B on the split variables
``coef = u - v, u, v >= 0`` (a smooth bound-constrained problem, a different method).
"""

import warnings

import numpy as np
import pytest
from scipy import optimize, special
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from conftest import sklearn_objective as objective
from xlogreg import LogisticRegression


def split_variable_optimum(X, y, C, l1_ratio):
    """The optimum by L-BFGS-B on ``coef = u - v``: returns ``(coef, intercept, J)``."""
    n = X.shape[1]
    k = 1 if y.max() == 1 else int(y.max()) + 1
    Y = (y[:, None] == np.arange(k)[None]).astype(float) if k > 1 else y[:, None] * 1.0

    def fun(theta):
        u, v = theta[: n * k].reshape(k, n), theta[n * k: 2 * n * k].reshape(k, n)
        b = theta[2 * n * k:]
        W = u - v
        Z = X @ W.T + b
        if k == 1:
            P = special.expit(Z)
            L = np.logaddexp(0, Z) - Y * Z
        else:
            P = special.softmax(Z, axis=1)
            L = special.logsumexp(Z, axis=1, keepdims=True) - np.sum(Y * Z, 1, keepdims=True)
        G = C * (P - Y).T @ X + (1 - l1_ratio) * W
        J = C * L.sum() + 0.5 * (1 - l1_ratio) * np.sum(W * W) + l1_ratio * np.sum(u + v)
        grad = np.concatenate([(G + l1_ratio).ravel(), (-G + l1_ratio).ravel(),
                               C * (P - Y).sum(0)])
        return J, grad

    theta0 = np.zeros(2 * n * k + k)
    bounds = [(0, None)] * (2 * n * k) + [(None, None)] * k
    res = optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-10,
                                     "maxcor": 30})
    u, v = res.x[: n * k].reshape(k, n), res.x[n * k: 2 * n * k].reshape(k, n)
    return u - v, res.x[2 * n * k:], res.fun


@pytest.mark.parametrize("penalty, l1_ratio", [("l1", 1.0), ("elasticnet", 0.5)])
def test_full_batch_reaches_saga_optimum_with_its_zeros(breast_cancer, penalty, l1_ratio):
    X, y = breast_cancer
    C = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = SkLogisticRegression(solver="saga", C=C, l1_ratio=l1_ratio, tol=1e-9,
                                   max_iter=20000).fit(X, y)
    ours = LogisticRegression(backend="numpy", penalty=penalty, C=C, tol=1e-10,
                              max_epochs=20000,
                              l1_ratio=l1_ratio if penalty == "elasticnet" else None).fit(X, y)
    J_ref = objective(X, y, ref.coef_, ref.intercept_, C, l1_ratio=l1_ratio)
    J = objective(X, y, ours.coef_, ours.intercept_, C, l1_ratio=l1_ratio)
    assert abs(J - J_ref) / J_ref < 1e-4
    assert np.any(ref.coef_ == 0)  # the test means something: the optimum is sparse
    np.testing.assert_array_equal(ours.coef_ == 0, ref.coef_ == 0)


@pytest.mark.parametrize("penalty, l1_ratio", [("l1", 1.0), ("elasticnet", 0.3)])
def test_full_batch_multinomial_reaches_the_optimum_with_its_zeros(digits, penalty, l1_ratio):
    X, y = digits
    C = 0.5
    coef_ref, _, J_ref = split_variable_optimum(X, y, C, l1_ratio=l1_ratio)
    ours = LogisticRegression(backend="numpy", penalty=penalty, C=C, tol=1e-10,
                              max_epochs=20000,
                              l1_ratio=l1_ratio if penalty == "elasticnet" else None).fit(X, y)
    J = objective(X, y, ours.coef_, ours.intercept_, C, l1_ratio=l1_ratio)
    assert J <= J_ref * (1 + 1e-6)  # as low as L-BFGS-B's optimum (or lower)
    zero = ours.coef_ == 0
    assert zero.sum() > 50
    # where ours is exactly 0 the reference is 0 up to its own precision, and the
    # reference's clear non-zeros are non-zero here
    assert np.abs(coef_ref[zero]).max() < 1e-4
    assert not np.any(zero & (np.abs(coef_ref) > 1e-3))


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("batch_size", [16, 64])
def test_minibatch_proximal_steps_leave_exact_zeros_where_the_optimum_has_them(
        breast_cancer, backend_name, batch_size):
    X, y = breast_cancer
    C, l1_ratio = 0.05, 1.0
    coef_ref, _, J_ref = split_variable_optimum(X, y, C, l1_ratio=l1_ratio)
    ours = LogisticRegression(backend=backend_name, penalty="l1", C=C, batch_size=batch_size,
                              random_state=0).fit(X, y)
    coef = np.asarray(ours.coef_)
    J = objective(X, y, coef, np.asarray(ours.intercept_), C, l1_ratio=l1_ratio)
    # a constant step's noise floor, as with L2 (mini-batches do not reach 1e-4)
    assert (J - J_ref) / J_ref < 0.05
    zero = coef == 0
    assert zero.sum() >= 5  # soft-thresholding leaves exact zeros ...
    assert not np.any(zero & (np.abs(coef_ref) > 1e-2))  # ... where the optimum has them


def test_minibatch_compiled_epoch_applies_the_proximal_step(breast_cancer, monkeypatch):
    """The compiled epoch and the plain xp loop take the same proximal steps."""
    from xlogreg.backends import _numpy

    X, y = breast_cancer
    X = np.tile(X, (20, 1))  # 11,380 rows: 711 steps of 16, above the compiled gate
    y = np.tile(y, 20)
    # C / 20 for 20 copies of the rows: the penalty of C = 0.05 on the original
    params = dict(backend="numpy", penalty="elasticnet", l1_ratio=0.7, C=0.0025,
                  batch_size=16, max_epochs=3, tol=None, random_state=0)
    compiled = LogisticRegression(**params).fit(X, y)
    monkeypatch.setattr(_numpy, "numba_kernels", lambda: None)
    plain = LogisticRegression(**params).fit(X, y)
    assert (plain.coef_ == 0).sum() > 0
    np.testing.assert_allclose(compiled.coef_, plain.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(compiled.coef_ == 0, plain.coef_ == 0)


def test_strict_backend_full_batch_reaches_the_optimum_too(breast_cancer):
    X, y = breast_cancer
    C, ratio = 0.3, 0.5
    coef_ref, _, J_ref = split_variable_optimum(X, y, C, l1_ratio=ratio)
    params = dict(penalty="elasticnet", l1_ratio=ratio, C=C, tol=1e-10, max_epochs=5000)
    for name in ["numpy", "array_api_strict"]:
        est = LogisticRegression(backend=name, **params).fit(X, y)
        coef = np.asarray(est.coef_)
        J = objective(X, y, coef, np.asarray(est.intercept_), C, l1_ratio=ratio)
        assert J <= J_ref * (1 + 1e-7)
        np.testing.assert_array_equal(coef == 0, np.abs(coef_ref) < 1e-6)


def test_no_penalty_is_scikit_learns_unpenalized_optimum(breast_cancer):
    X, y = breast_cancer
    X = X[:, :5]  # separable data has no unpenalized optimum: keep it overlapping
    ref = SkLogisticRegression(C=np.inf, tol=1e-10, max_iter=10000).fit(X, y)
    J_ref = objective(X, y, ref.coef_, ref.intercept_, 1.0) - 0.5 * np.sum(ref.coef_**2)
    # penalty=None ignores C, as scikit-learn's does
    for params in [dict(penalty=None, C=0.001), dict(C=np.inf),
                   dict(penalty=None, C=0.001, solver="lbfgs")]:
        ours = LogisticRegression(backend="numpy", tol=1e-10, max_epochs=20000,
                                  **params).fit(X, y)
        J = objective(X, y, ours.coef_, ours.intercept_, 1.0) - 0.5 * np.sum(ours.coef_**2)
        assert J <= J_ref * (1 + 1e-6)
        assert np.linalg.norm(ours.coef_) > 20  # no penalty: far from C=0.001's model


def test_lbfgs_refuses_an_l1_part_and_names_the_solver(breast_cancer):
    X, y = breast_cancer
    for params in [dict(penalty="l1"), dict(penalty="elasticnet", l1_ratio=0.5)]:
        est = LogisticRegression(backend="numpy", solver="lbfgs", **params)
        with pytest.raises(ValueError, match="solver='gd'"):
            est.fit(X, y)
        assert not hasattr(est, "coef_")
    # elastic-net with no L1 share is plain L2: lbfgs takes it
    LogisticRegression(backend="numpy", solver="lbfgs", penalty="elasticnet",
                       l1_ratio=0.0).fit(X, y)


def test_elasticnet_needs_l1_ratio_and_others_warn_about_it(breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError, match="l1_ratio"):
        LogisticRegression(backend="numpy", penalty="elasticnet").fit(X, y)
    with pytest.warns(UserWarning, match="l1_ratio is only used"):
        LogisticRegression(backend="numpy", penalty="l2", l1_ratio=0.5, max_epochs=5,
                           tol=None).fit(X, y)
    with pytest.raises(ValueError, match="l1_ratio"):
        LogisticRegression(backend="numpy", penalty="elasticnet", l1_ratio=1.5).fit(X, y)
    with pytest.raises(ValueError, match="penalty"):
        LogisticRegression(backend="numpy", penalty="l3").fit(X, y)


def test_elasticnet_l1_ratio_ends_are_l2_and_l1(breast_cancer):
    X, y = breast_cancer
    params = dict(backend="numpy", C=0.5, tol=1e-10, max_epochs=20000)
    for ratio, same in [(0.0, "l2"), (1.0, "l1")]:
        a = LogisticRegression(penalty="elasticnet", l1_ratio=ratio, **params).fit(X, y)
        b = LogisticRegression(penalty=same, **params).fit(X, y)
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-12, atol=1e-14)


def test_loss_curve_is_the_l1_penalized_objective(breast_cancer):
    X, y = breast_cancer
    C = 0.5
    est = LogisticRegression(backend="numpy", penalty="l1", C=C, max_epochs=1,
                             tol=None).fit(X, y)
    assert est.loss_curve_[0] == pytest.approx(np.log(2))  # J at W = 0
    est = LogisticRegression(backend="numpy", penalty="l1", C=C, tol=1e-10,
                             max_epochs=3000).fit(X, y)
    m = X.shape[0]
    J = objective(X, y, est.coef_, est.intercept_, C, l1_ratio=1.0) / (C * m)
    assert est.loss_curve_[-1] == pytest.approx(J, rel=1e-6)
    assert np.all(np.diff(est.loss_curve_) <= 1e-12)  # proximal steps never go up
