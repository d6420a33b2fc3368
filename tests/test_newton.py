"""``solver="newton"``: the exact Hessian, held to scikit-learn's optimum and to the
other solvers, on every backend; refused where the Hessian would not fit."""

import itertools
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from conftest import sklearn_objective as objective
from xlogreg import LogisticRegression
from xlogreg.optimizers import hessian_pass


def _reference(X, y, sw, fit_intercept, C=1.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        solver = "newton-cholesky" if len(np.unique(y)) == 2 else "lbfgs"
        return SkLogisticRegression(solver=solver, C=C, tol=1e-12, max_iter=100000,
                                    fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("data", ["breast_cancer", "digits"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_newton_reaches_sklearn_optimum(request, data, weighted, fit_intercept, rng):
    X, y = request.getfixturevalue(data)
    sw = rng.uniform(0.2, 3.0, len(y)) if weighted else None
    ref = _reference(X, y, sw, fit_intercept)
    ours = LogisticRegression(backend="numpy", solver="newton", tol=1e-10,
                              fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)
    J_ref = objective(X, y, ref.coef_, ref.intercept_, 1.0, sw)
    J = objective(X, y, ours.coef_, ours.intercept_, 1.0, sw)
    assert (J - J_ref) / J_ref < 1e-8
    assert ours.n_iter_ < 30  # Newton's few iterations
    lbfgs = LogisticRegression(backend="numpy", solver="lbfgs", tol=1e-10, max_epochs=10000,
                               fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(ours.coef_, lbfgs.coef_, rtol=1e-4, atol=1e-5)


def test_newton_on_raw_unscaled_data_in_a_few_iterations():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    ref = _reference(X, y, None, True)
    ours = LogisticRegression(backend="numpy", solver="newton").fit(X, y)
    J_ref = objective(X, y, ref.coef_, ref.intercept_, 1.0)
    assert (objective(X, y, ours.coef_, ours.intercept_, 1.0) - J_ref) / J_ref < 1e-8
    assert ours.n_iter_ < 20


def test_hessian_is_the_jacobian_of_the_gradient(rng):
    """Finite differences of the gradient, binary and softmax, with weights."""
    from xlogreg import backends
    from xlogreg.models import encode_targets

    be = backends.get_backend("numpy")
    X = rng.normal(size=(60, 4))
    sw = rng.uniform(0.5, 2, 60)
    for n_classes, fit_intercept in [(2, True), (2, False), (3, True), (3, False)]:
        k = 1 if n_classes == 2 else n_classes
        Y = encode_targets(rng.integers(0, n_classes, 60), n_classes, np.float64)
        W, b = rng.normal(size=(4, k)), rng.normal(size=k) * fit_intercept
        p = 4 + fit_intercept
        _, g, H = hessian_pass(be, X, Y, W, b, alpha=0.3, sample_weight=sw,
                               fit_intercept=fit_intercept)

        def grad(theta):
            T = theta.reshape(k, p)
            bb = T[:, 4] if fit_intercept else np.zeros(k)
            return hessian_pass(be, X, Y, T[:, :4].T.copy(), bb, alpha=0.3,
                                sample_weight=sw, fit_intercept=fit_intercept)[1]

        theta = np.concatenate([W.T, b[:, None]], axis=1).ravel() if fit_intercept \
            else W.T.ravel()
        h = 1e-6
        numeric = np.stack([(grad(theta + h * e) - grad(theta - h * e)) / (2 * h)
                            for e in np.eye(theta.size)], axis=1)
        np.testing.assert_allclose(H, numeric, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(H, H.T, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_small_binary_pass_against_float64_sums(rng, dtype, weighted, fit_intercept):
    """NumPy's lean pass over small binary data (``_small_binary_sums``, which
    ``hessian_pass`` takes there) against the sums written out in float64 from
    SciPy's ``expit`` and ``logaddexp``, with scores beyond +-20 (probabilities
    within float64's resolution of 0 and 1)."""
    from scipy.special import expit

    from xlogreg import backends

    be = backends.get_backend("numpy")
    X = (rng.normal(size=(500, 7)) * rng.uniform(0.1, 10, 7)).astype(dtype)
    y = rng.integers(0, 2, 500)
    Y = y[:, None].astype(dtype)
    sw = rng.uniform(0.5, 2, 500).astype(dtype) if weighted else None
    W = (rng.normal(size=(7, 1)) * 1.5).astype(dtype)
    b = np.array([0.7 if fit_intercept else 0.0], dtype)
    X64, s = X.astype(np.float64), np.ones(500) if sw is None else sw.astype(np.float64)
    z = X64 @ W[:, 0].astype(np.float64) + float(b[0])
    assert np.abs(z).max() > 20
    Xt = np.hstack([X64, np.ones((500, 1))]) if fit_intercept else X64
    p = expit(z)
    loss = float(s @ (np.logaddexp(0.0, z) - y * z))
    G = Xt.T @ (s * (p - y))
    H = Xt.T @ (Xt * (s * p * (1 - p))[:, None])
    for curvature in (True, False):
        got = be.hessian_sums(X, Y, W, b, sw, fit_intercept, curvature)
        assert got is not None  # the lean pass, not the plain code's
        assert got[0] == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(got[1][0], G, rtol=1e-10, atol=1e-10 * np.abs(G).max())
        if curvature:
            np.testing.assert_allclose(got[2], H, rtol=1e-10, atol=1e-12 * np.abs(H).max())
        else:
            assert got[2] is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_blocked_pass_of_wide_data_against_float64_sums(rng, dtype, weighted,
                                                            fit_intercept, monkeypatch):
    """A pass without curvature over large binary data of more than ``HESSIAN_MAX_P``
    parameters: the lean pass on blocks that stay in cache (three here, the last
    short), against the sums written out in float64. Newton's passes take it with
    float32 Hessians too (``exact=False``: no Hessian, nothing to be inexact); with
    curvature the plain code's blocks stay."""
    from scipy.special import expit

    from xlogreg import backends, optimizers
    from xlogreg.backends import _numpy as numpy_backend

    monkeypatch.setattr(numpy_backend, "FUSED_MIN_SIZE", 0)  # large, at this size
    be = backends.get_backend("numpy")
    m, n = 20_000, 60  # blocks of 2**19 // 60 = 8,738 rows
    X = (rng.normal(size=(m, n)) * rng.uniform(0.1, 3, n)).astype(dtype)
    y = rng.integers(0, 2, m)
    Y = y[:, None].astype(dtype)
    sw = rng.uniform(0.5, 2, m).astype(dtype) if weighted else None
    W = (rng.normal(size=(n, 1)) * 0.5).astype(dtype)
    b = np.array([0.7 if fit_intercept else 0.0], dtype)
    X64, s = X.astype(np.float64), np.ones(m) if sw is None else sw.astype(np.float64)
    z = X64 @ W[:, 0].astype(np.float64) + float(b[0])
    Xt = np.hstack([X64, np.ones((m, 1))]) if fit_intercept else X64
    loss = float(s @ (np.logaddexp(0.0, z) - y * z))
    G = Xt.T @ (s * (expit(z) - y))
    got = be.hessian_sums(X, Y, W, b, sw, fit_intercept, False)
    assert got[0] == pytest.approx(loss, rel=1e-12) and got[2] is None
    np.testing.assert_allclose(got[1][0], G, rtol=1e-10, atol=1e-10 * np.abs(G).max())
    assert be.hessian_sums(X, Y, W, b, sw, fit_intercept, True) is None  # syrk's blocks
    calls = []
    real = numpy_backend.NumpyBackend.hessian_sums
    monkeypatch.setattr(numpy_backend.NumpyBackend, "hessian_sums",
                        lambda self, *a: calls.append(a[-1]) or real(self, *a))
    J, g, H = optimizers.hessian_pass(be, X, Y, W, b, alpha=0.0, sample_weight=sw,
                                      fit_intercept=fit_intercept, curvature=False,
                                      exact=False)
    assert calls == [False] and H is None
    # (scaled by the weights' sum as hessian_pass takes it, in their dtype, as the
    # estimator's penalty is: the optimum does not depend on its rounding)
    S = m if sw is None else float(np.sum(sw))
    assert J == pytest.approx(loss / S, rel=1e-12)
    np.testing.assert_allclose(g, G / S, rtol=1e-10, atol=1e-10 * np.abs(G).max())


def test_a_pass_without_the_hessian_gives_the_same_loss_and_gradient(rng):
    """``curvature=False``: binary, softmax and sparse, the same ``J`` and gradient
    (the same operations) and no Hessian."""
    import scipy.sparse as sp

    from xlogreg import backends
    from xlogreg.models import encode_targets

    be = backends.get_backend("numpy")
    X = rng.normal(size=(300, 5))
    sw = rng.uniform(0.5, 2, 300)
    for n_classes, data in [(2, X), (4, X), (2, sp.csr_matrix(X * (X > 0.5))),
                            (3, sp.csr_matrix(X * (X > 0.5)))]:
        k = 1 if n_classes == 2 else n_classes
        Y = encode_targets(rng.integers(0, n_classes, 300), n_classes, np.float64)
        W, b = rng.normal(size=(5, k)), rng.normal(size=k)
        J, g, H = hessian_pass(be, data, Y, W, b, alpha=0.3, sample_weight=sw)
        J2, g2, H2 = hessian_pass(be, data, Y, W, b, alpha=0.3, sample_weight=sw,
                                  curvature=False)
        assert H.shape == (6 * k, 6 * k) and H2 is None
        assert J2 == J
        np.testing.assert_array_equal(g2, g)


def _passes(monkeypatch, always_curvature):
    """Spies on Newton's passes: the list of their ``curvature`` flags; with
    ``always_curvature`` every pass computes the Hessian (plain Newton)."""
    from xlogreg import optimizers

    flags = []
    real = optimizers.hessian_pass

    def spy(*args, curvature=True, **kwargs):
        curvature = curvature or always_curvature
        flags.append(curvature)
        return real(*args, curvature=curvature, **kwargs)

    monkeypatch.setattr(optimizers, "hessian_pass", spy)
    return flags


@pytest.mark.parametrize("case", ["binary", "softmax", "foreseen wrongly"])
def test_newton_leaves_out_the_last_hessian_and_keeps_its_iterates(case, breast_cancer,
                                                                   digits, monkeypatch):
    """The step Newton's quadratic convergence says is the last is evaluated without
    its Hessian; where it is not the last after all, the Hessian is computed before
    the next step: the coefficients are those of plain Newton, bit for bit."""
    from sklearn.datasets import load_digits

    X, y = {"binary": breast_cancer, "softmax": digits,
            "foreseen wrongly": load_digits(return_X_y=True)}[case]
    from xlogreg import optimizers

    tol = 1e-2 if case == "foreseen wrongly" else 1e-8
    # plain Newton, a Hessian at every step (digits would otherwise take products)
    monkeypatch.setattr(optimizers, "products_per_hessian", lambda *args: 0)
    fits = {}
    for always in (True, False):
        with monkeypatch.context() as m:
            flags = _passes(m, always)
            est = LogisticRegression(backend="numpy", solver="newton", tol=tol).fit(X, y)
        fits[always] = (est, flags)
    (plain, plain_flags), (ours, flags) = fits[True], fits[False]
    if case != "binary":  # softmax starts with J and g at 0, then the Kronecker Hessian
        assert flags[:2] == [False, True]
        flags = flags[1:]
        plain_flags = plain_flags[1:]
    np.testing.assert_array_equal(ours.coef_, plain.coef_)
    np.testing.assert_array_equal(ours.intercept_, plain.intercept_)
    assert ours.n_iter_ == plain.n_iter_ and all(plain_flags)
    assert flags[-1] is False  # the last pass: loss and gradient alone
    if case == "foreseen wrongly":  # a step without its Hessian, then one more pass
        assert flags.count(False) == 2 and len(flags) == len(plain_flags) + 1
    else:
        assert flags.count(False) == 1 and len(flags) == len(plain_flags)


@pytest.mark.parametrize("backend_name", ["array_api_strict", "cupy"])
def test_newton_on_other_backends(backend_name, breast_cancer, digits):
    if backend_name == "cupy":
        pytest.importorskip("cupy")
    for (X, y), fit_intercept in itertools.product((breast_cancer, digits), (True, False)):
        ref = LogisticRegression(backend="numpy", solver="newton", tol=1e-10,
                                 fit_intercept=fit_intercept).fit(X, y)
        ours = LogisticRegression(backend=backend_name, solver="newton", tol=1e-10,
                                  fit_intercept=fit_intercept).fit(X, y)
        np.testing.assert_allclose(np.asarray(ours.coef_), ref.coef_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
def test_the_ridge_goes_on_the_weights_diagonal_only(backend_name, rng):
    """``_add_ridge`` against ``H + diag(ridge)`` built by hand: 1 and 3 classes, with
    and without intercepts, C- and Fortran-ordered and read-only NumPy arrays (the last
    two are not changed in place: a reshape would copy, a write would fail)."""
    from xlogreg import backends
    from xlogreg.optimizers import _add_ridge

    xp = backends.get_backend(backend_name).xp
    n = 4
    for k, fit_intercept in itertools.product((1, 3), (True, False)):
        p = n + fit_intercept
        H = rng.normal(size=(k * p, k * p))
        ridge = np.tile(np.r_[np.full(n, 0.3), np.zeros(p - n)], k)
        expected = H + np.diag(ridge)
        layouts = [H.copy()]
        if backend_name == "numpy":
            frozen = H.copy()
            frozen.setflags(write=False)
            layouts += [np.asfortranarray(H), frozen]
        for A in layouts:
            got = _add_ridge(xp.asarray(A), 0.3, n, p, k, xp)
            got = got if isinstance(got, np.ndarray) else np.from_dlpack(got)
            np.testing.assert_array_equal(got, expected)
    if backend_name == "numpy":  # flags without "writeable", as CuPy's before 14: in place
        class OldFlags:
            c_contiguous, f_contiguous, owndata = True, False, True

        class Device(np.ndarray):
            flags = property(lambda self: OldFlags())

        H = np.zeros((5, 5)).view(Device)
        assert _add_ridge(H, 0.3, 4, 5, 1, xp) is H
        np.testing.assert_array_equal(np.diag(np.asarray(H)), [0.3, 0.3, 0.3, 0.3, 0.0])


def test_newton_float32_and_sparse(breast_cancer):
    import scipy.sparse as sp

    X, y = breast_cancer
    ref = _reference(X, y, None, True)
    J_ref = objective(X, y, ref.coef_, ref.intercept_, 1.0)
    est = LogisticRegression(backend="numpy", solver="newton", tol=1e-6).fit(
        X.astype(np.float32), y)
    assert est.coef_.dtype == np.float32
    assert (objective(X, y, est.coef_, est.intercept_, 1.0) - J_ref) / J_ref < 1e-6
    est = LogisticRegression(backend="numpy", solver="newton", tol=1e-10).fit(
        sp.csr_matrix(X), y)
    assert (objective(X, y, est.coef_, est.intercept_, 1.0) - J_ref) / J_ref < 1e-8


def test_newton_on_dask_matches_in_memory(digits):
    da = pytest.importorskip("dask.array")
    X, y = digits
    ref = LogisticRegression(backend="numpy", solver="newton", tol=1e-10).fit(X, y)
    ours = LogisticRegression(backend="numpy", solver="newton", tol=1e-10).fit(
        da.from_array(X, chunks=500), da.from_array(y, chunks=500))
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-7, atol=1e-9)


def test_newton_refuses_a_hessian_that_does_not_fit(breast_cancer, rng, monkeypatch):
    """Refused before any work where the Hessian and its factor would take over half
    the free memory (here 1.45 MB, of 2 MB free); one of at most 1 MiB never is (no
    memory query for it)."""
    from xlogreg import backends, estimator

    X = rng.normal(size=(100, 300))  # 301 parameters: 2 x 8 x 301^2 bytes, 1.45 MB
    y = (X[:, 0] > 0).astype(int)
    be = backends.get_backend("numpy")
    monkeypatch.setattr(estimator, "_host_free", lambda: 2_000_000)  # bytes, either way
    if hasattr(be, "free_memory"):
        monkeypatch.setattr(type(be), "free_memory", lambda self: 2_000_000)
    est = LogisticRegression(backend="numpy", solver="newton")
    with pytest.raises(MemoryError, match="solver=.lbfgs."):
        est.fit(X, y)
    with pytest.raises(ValueError, match="solver=.lbfgs."):
        est.fit(X, y)
    assert not hasattr(est, "coef_")
    LogisticRegression(backend="numpy", solver="lbfgs").fit(X, y)
    # 31 parameters, 15 kB: fitted even where 10 kB would be free
    monkeypatch.setattr(estimator, "_host_free", lambda: 10_000)
    if hasattr(be, "free_memory"):
        monkeypatch.setattr(type(be), "free_memory", lambda self: 10_000)
    LogisticRegression(backend="numpy", solver="newton").fit(*breast_cancer)


def test_newton_errors_like_lbfgs(breast_cancer):
    X, y = breast_cancer
    with pytest.raises(ValueError, match="batch_size"):
        LogisticRegression(backend="numpy", solver="newton", batch_size=32).fit(X, y)
    with pytest.raises(ValueError, match="solver='gd'"):
        LogisticRegression(backend="numpy", solver="newton", penalty="l1").fit(X, y)
    assert not hasattr(LogisticRegression(solver="newton"), "partial_fit")
    with pytest.warns(ConvergenceWarning, match="max_epochs=1"):
        LogisticRegression(backend="numpy", solver="newton", max_epochs=1).fit(X, y)


def test_a_tol_below_float32s_resolution_is_named_as_such():
    """A line search that stalls once the gradient is a few float32 units of its start
    (float32 coefficients) says so and what tol float32 reaches; elsewhere the stall
    is still "may be far from the optimum". 200,000 x 20 float32 at tol=1e-8 stalls
    at 7.1e-8, 1e-13 above the float64 optimum (README)."""
    from xlogreg.optimizers import LBFGSResult

    est = LogisticRegression(solver="newton")
    cases = [(np.float32, 7.1e-8, "float32's resolution.*about 7e-08"),
             (np.float64, 7.1e-8, "may be far from the optimum"),
             (np.float32, 1e-3, "may be far from the optimum")]
    for dtype, end, message in cases:
        result = LBFGSResult(None, None, n_iter=6, line_search_failed=True,
                             grad_start=0.2, grad_end=end)
        with pytest.warns(ConvergenceWarning, match=message):
            est._warn_lbfgs(result, 100, 1e-8, np.dtype(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est._warn_lbfgs(LBFGSResult(None, None, converged=True), 100, 1e-8, np.float32)


# ------------------------------- Hessian-vector products between two Hessians
def _theta(W, b, fit_intercept):
    return np.concatenate([W.T, b[:, None]], axis=1).ravel() if fit_intercept \
        else W.T.ravel()


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("kind", ["dense", "float32", "sparse"])
def test_hessian_product_is_the_derivative_of_the_gradient(n_classes, fit_intercept, kind,
                                                           rng):
    """``hessian_product(v)`` against central differences of the gradient along
    ``v``, with weights: binary and softmax, with and without intercept, float32
    and sparse ``X``."""
    import scipy.sparse as sp

    from xlogreg import backends
    from xlogreg.models import encode_targets
    from xlogreg.optimizers import hessian_product

    be = backends.get_backend("numpy")
    m, n = 80, 5
    X = rng.normal(size=(m, n))
    X = X * (X > 0.3) if kind == "sparse" else X
    sw = rng.uniform(0.5, 2, m)
    k = 1 if n_classes == 2 else n_classes
    p = n + fit_intercept
    Y = encode_targets(rng.integers(0, n_classes, m), n_classes, np.float64)
    W, b = rng.normal(size=(n, k)), rng.normal(size=k) * fit_intercept
    data = {"dense": X, "float32": X.astype(np.float32), "sparse": sp.csr_matrix(X)}[kind]
    Wd = W.astype(data.dtype)
    bd = b.astype(data.dtype)
    product = hessian_product(be, data, Wd, bd, alpha=0.3, sample_weight=sw,
                              fit_intercept=fit_intercept)

    def grad(theta):  # float64, dense: the reference
        T = theta.reshape(k, p)
        bb = T[:, n] if fit_intercept else np.zeros(k)
        return hessian_pass(be, X, Y, T[:, :n].T.copy(), bb, alpha=0.3, sample_weight=sw,
                            fit_intercept=fit_intercept, curvature=False)[1]

    theta = _theta(Wd.astype(np.float64), bd.astype(np.float64), fit_intercept)
    rtol = 1e-5 if kind == "float32" else 1e-7
    for v in rng.normal(size=(3, k * p)):
        h = 1e-5
        numeric = (grad(theta + h * v) - grad(theta - h * v)) / (2 * h)
        got = product(v)
        assert got.dtype == np.float64 and got.shape == (k * p,)
        np.testing.assert_allclose(got, numeric, rtol=rtol, atol=rtol * np.abs(numeric).max())


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_hessian_at_zero_weights_is_the_kronecker_product(fit_intercept, weighted,
                                                                  rng):
    """Where ``W`` is 0 every row has the probabilities ``softmax(b)``: the Hessian
    built from one binary-sized pass equals the full softmax Hessian."""
    from xlogreg import backends
    from xlogreg.models import encode_targets
    from xlogreg.optimizers import _shared_hessian

    be = backends.get_backend("numpy")
    X = rng.normal(size=(90, 6)) * np.array([1, 10, 0.1, 1, 5, 1])
    sw = rng.uniform(0.5, 2, 90) if weighted else None
    Y = encode_targets(rng.integers(0, 5, 90), 5, np.float64)
    b = rng.normal(size=5) * fit_intercept
    H = hessian_pass(be, X, Y, np.zeros((6, 5)), b, alpha=0.2, sample_weight=sw,
                     fit_intercept=fit_intercept)[2]
    got = _shared_hessian(be, X, Y, b, alpha=0.2, sample_weight=sw,
                          fit_intercept=fit_intercept)
    np.testing.assert_allclose(got, H, rtol=1e-12, atol=1e-12 * np.abs(H).max())


def test_preconditioned_cg_solves_the_newton_system(rng):
    """With the exact factor, one product gives Newton's step; with a stale one, CG
    reaches its tolerance, ``min(1/2, sqrt(||g||)) ||g||``, within the budget."""
    from xlogreg import backends
    from xlogreg.optimizers import _preconditioned_cg, cho_factor

    be = backends.get_backend("numpy")
    B = rng.normal(size=(40, 40))
    H = B @ B.T / 40 + 0.1 * np.eye(40)
    g = rng.normal(size=40) * 1e-3
    calls = []

    def product(v):
        calls.append(1)
        return H @ v

    d, used = _preconditioned_cg(be, product, cho_factor(be, H), g, 10)
    assert used == 1
    np.testing.assert_allclose(d, -np.linalg.solve(H, g), rtol=1e-9)
    E = rng.normal(size=(40, 40)) * 0.05
    stale = H + E @ E.T  # the Hessian at a point some way back
    d, used = _preconditioned_cg(be, product, cho_factor(be, stale), g, 30)
    gn = np.linalg.norm(g)
    assert 1 < used < 30 and used == len(calls) - 1
    assert np.linalg.norm(H @ d + g) <= min(0.5, np.sqrt(gn)) * gn
    d, used = _preconditioned_cg(be, product, cho_factor(be, stale), g, 2)
    assert used == 2 and float(g @ d) < 0  # out of budget: still a descent direction


def test_products_per_hessian_follows_the_cost_of_a_hessian(breast_cancer, digits):
    """Plain Newton where a Hessian costs about a gradient (narrow binary data), products
    where it costs many (softmax, wide data), none on Dask."""
    from xlogreg import backends
    from xlogreg.optimizers import products_per_hessian

    be = backends.get_backend("numpy")
    assert products_per_hessian(be, breast_cancer[0], 1, 31) == 0
    assert products_per_hessian(be, np.empty((2_000_000, 20)), 1, 21) == 0
    assert products_per_hessian(be, digits[0], 10, 65) >= 8
    assert products_per_hessian(be, np.empty((20_000, 2_000)), 1, 2001) >= 8
    pytest.importorskip("dask.array")
    from xlogreg._dask import DaskBackend

    assert products_per_hessian(DaskBackend(be), digits[0], 10, 65) == 0


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_newton_with_products_reaches_the_optimum_with_fewer_hessians(raw, weighted,
                                                                       fit_intercept, digits,
                                                                       rng, monkeypatch):
    """Digits (650 parameters), raw and standardized: Newton with products between
    Hessians ends at scikit-learn's optimum (1e-8 relative) with fewer Hessians than
    plain Newton, whose optimum it matches."""
    from sklearn.datasets import load_digits

    from xlogreg import optimizers

    X, y = load_digits(return_X_y=True) if raw else digits
    sw = rng.uniform(0.2, 3.0, len(y)) if weighted else None
    ref = SkLogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000,
                               fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)
    J_ref = objective(X, y, ref.coef_, ref.intercept_, 1.0, sw)
    counts = {}
    for plain in (False, True):
        with monkeypatch.context() as m:
            if plain:
                m.setattr(optimizers, "products_per_hessian", lambda *args: 0)
            flags = _passes(m, False)
            est = LogisticRegression(backend="numpy", solver="newton", tol=1e-9,
                                     fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)
        J = objective(X, y, est.coef_, est.intercept_, 1.0, sw)
        assert (J - J_ref) / J_ref < 1e-8, plain
        counts[plain] = flags.count(True)
    assert counts[False] < counts[True]


def test_newton_computes_a_hessian_when_the_products_run_out(digits, monkeypatch):
    """A budget of two products a step (the least the cost model gives): the steps
    that use it up are followed by a Hessian, and the fit still ends at plain
    Newton's optimum."""
    from sklearn.datasets import load_digits

    from xlogreg import optimizers

    X, y = load_digits(return_X_y=True)
    plain = LogisticRegression(backend="numpy", solver="newton", tol=1e-9)
    with monkeypatch.context() as m:
        m.setattr(optimizers, "products_per_hessian", lambda *args: 0)
        plain.fit(X, y)
    with monkeypatch.context() as m:
        m.setattr(optimizers, "products_per_hessian", lambda *args: 2)
        flags = _passes(m, False)
        ours = LogisticRegression(backend="numpy", solver="newton", tol=1e-9).fit(X, y)
    assert flags.count(True) > 2  # Hessians again and again
    J_plain = objective(X, y, plain.coef_, plain.intercept_, 1.0)
    J = objective(X, y, ours.coef_, ours.intercept_, 1.0)
    assert abs(J - J_plain) / J_plain < 1e-9


def test_newton_judges_every_trial_step_in_float64(digits):
    """float32 features in the millions at a weak penalty: the line search's trials
    are judged by the same float64 pass as the full step. Judged in float32, a trial
    once passed for a decrease, and the fit stopped as converged with a gradient of
    1.6 (a million times ``tol``); the gradient here is recomputed in float64."""
    from sklearn.datasets import load_digits

    from xlogreg import backends
    from xlogreg.models import encode_targets

    X, y = load_digits(return_X_y=True)
    X32 = (X * 1e6).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = LogisticRegression(backend="numpy", solver="newton", tol=1e-6, C=1e4).fit(X32, y)
    g = hessian_pass(backends.get_backend("numpy"), X32.astype(np.float64),
                     encode_targets(y, 10, np.float64), est.coef_.T.astype(np.float64),
                     est.intercept_.astype(np.float64), alpha=1 / (1e4 * len(y)),
                     curvature=False)[1]
    assert np.abs(g).max() < 1e-5


def test_a_rough_hessian_is_the_exact_one_to_float32_precision(rng):
    """``exact=False`` (the Hessians that only precondition products): a binary
    Hessian from float32 products, within float32's error of the float64 one (float64
    and float32 data, weighted, weights near float32's underflow too), not equal to
    it; softmax's and sparse data's stay exact."""
    import scipy.sparse as sp

    from xlogreg import backends
    from xlogreg.models import encode_targets

    be = backends.get_backend("numpy")
    X = rng.normal(size=(3000, 40)) * rng.uniform(0.1, 10, 40)
    sw = rng.uniform(0.5, 2, 3000)
    for n_classes in (2, 4):
        k = 1 if n_classes == 2 else n_classes
        Y = encode_targets(rng.integers(0, n_classes, 3000), n_classes, np.float64)
        W, b = rng.normal(size=(40, k)) * 0.05, rng.normal(size=k)
        for data, weights in ((X, sw), (X.astype(np.float32), sw), (X, sw * 1e-46)):
            J, g, H = hessian_pass(be, data, Y, W, b, alpha=0.3, sample_weight=weights)
            J2, g2, H2 = hessian_pass(be, data, Y, W, b, alpha=0.3, sample_weight=weights,
                                      exact=False)
            # the same J and g (exact=True takes the backend's own pass on small
            # binary data, exact=False the plain code: equal up to rounding)
            assert H2.dtype == np.float64 and J2 == pytest.approx(J, rel=1e-14)
            np.testing.assert_allclose(g2, g, rtol=1e-13, atol=1e-15 * np.abs(g).max())
            error = np.abs(H2 - H).max() / np.abs(H).max()
            if k == 1:
                assert 0 < error < 1e-5
            else:
                assert error == 0
        sparse = sp.csr_matrix(X * (X > 1))
        H = hessian_pass(be, sparse, Y, W, b, alpha=0.3, sample_weight=sw)[2]
        np.testing.assert_array_equal(
            hessian_pass(be, sparse, Y, W, b, alpha=0.3, sample_weight=sw, exact=False)[2], H)


def _exact_flags(monkeypatch, spoil=False):
    """Spies on Newton's Hessians: the list of their ``exact`` flags. With ``spoil``,
    a float32 Hessian comes back with its off-diagonal half scaled by 1.5 (a float32
    Hessian gone wrong)."""
    from xlogreg import optimizers

    flags = []
    real = optimizers.hessian_pass

    def spy(*args, curvature=True, exact=True, **kwargs):
        J, g, H = real(*args, curvature=curvature, exact=exact, **kwargs)
        if curvature:
            flags.append(exact)
            if spoil and not exact:
                H = 1.5 * H - 0.5 * np.diag(np.diag(H))
        return J, g, H

    monkeypatch.setattr(optimizers, "hessian_pass", spy)
    return flags


@pytest.mark.parametrize("case", ["float32 holds", "float32 gone wrong", "overflow"])
def test_newton_takes_float32_hessians_only_where_they_precondition_well(case, monkeypatch):
    """With products, Newton's binary Hessians are float32 ones. Where the first one's
    own step needs 3 products or more (here a spoiled one), or float32 overflows
    (features near 1e19), the Hessians after it are exact. Either way the fit ends at
    plain (float64-Hessian) Newton's optimum."""
    from sklearn.datasets import load_digits

    from xlogreg import optimizers

    X, y = load_digits(return_X_y=True)
    y = (y >= 5).astype(int)
    X = X * (1e19 if case == "overflow" else 1.0)
    with monkeypatch.context() as m:
        # the least budget the cost model gives, 2, where it is spoiled
        budget = 2 if case == "float32 gone wrong" else 8
        m.setattr(optimizers, "products_per_hessian", lambda *args: budget)
        flags = _exact_flags(m, spoil=case == "float32 gone wrong")
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            ours = LogisticRegression(backend="numpy", solver="newton", tol=1e-8).fit(X, y)
    assert flags[0] is False
    assert flags[-1] is (case != "float32 holds")
    plain = LogisticRegression(backend="numpy", solver="newton", tol=1e-8)
    with monkeypatch.context() as m:
        m.setattr(optimizers, "products_per_hessian", lambda *args: 0)
        plain.fit(X, y)
    J_plain = objective(X, y, plain.coef_, plain.intercept_, 1.0)
    J = objective(X, y, ours.coef_, ours.intercept_, 1.0)
    assert abs(J - J_plain) / J_plain < 1e-9


def test_a_gradient_pass_over_many_blocks_of_rows(rng):
    """Wide rows, so that the pass without the Hessian goes through two blocks of
    rows: its loss and gradient sums against a direct float64 computation, from
    float32 data too."""
    from scipy.special import expit

    from xlogreg import backends
    from xlogreg.optimizers import hessian_sums

    be = backends.get_backend("numpy")
    X = rng.normal(size=(500, 10000))  # blocks of 419 rows: 2**22 // 10001
    y = (rng.random(500) < 0.4).astype(np.float64)
    sw = rng.uniform(0.5, 2, 500)
    W, b = rng.normal(size=(10000, 1)) * 0.01, np.array([0.3])
    for data in (X, X.astype(np.float32)):
        Xr, w = data.astype(np.float64), W[:, 0].astype(data.dtype).astype(np.float64)
        z = Xr @ w + float(b.astype(data.dtype)[0])
        loss = np.sum(sw * (np.logaddexp(0, z) - y * z))
        dz = sw * (expit(z) - y)
        G_ref = np.concatenate([Xr.T @ dz, [dz.sum()]])
        J, G, H = hessian_sums(be, data, y[:, None].astype(data.dtype), W.astype(data.dtype),
                               b.astype(data.dtype), sw, True, curvature=False)
        assert H is None
        np.testing.assert_allclose(J, loss, rtol=1e-12)
        np.testing.assert_allclose(G[0], G_ref, rtol=1e-10, atol=1e-10 * np.abs(G_ref).max())
