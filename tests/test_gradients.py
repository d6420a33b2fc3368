"""Vectorized gradient == the slides' loops == central finite differences."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from xlogreg.gradcheck import check_gradient, numerical_gradient
from xlogreg.models import encode_targets, objective
from xlogreg.reference import loop_dot, loop_gradient, loop_matvec


def test_computation_graph_from_the_slides():
    # J(a, b, c) = 3(a + bc): at (5, 3, 2) J = 33 and the nudge gives (3, 6, 9)
    def J(p):
        a, b, c = p
        return 3 * (a + b * c)

    point = np.array([5.0, 3.0, 2.0])
    assert J(point) == 33
    assert_allclose(numerical_gradient(J, point, h=1e-3), [3.0, 6.0, 9.0], rtol=1e-9)
    exact = lambda p: np.array([3.0, 3 * p[2], 3 * p[1]])  # noqa: E731
    assert check_gradient(J, exact, point) < 1e-7
    wrong = lambda p: np.array([3.0, 3 * p[2], 3 * p[1] + 1e-3])  # noqa: E731
    assert check_gradient(J, wrong, point) > 1e-4


def test_loop_dot_and_matvec_match_numpy(rng):
    u, v = rng.normal(size=50), rng.normal(size=50)
    A = rng.normal(size=(7, 50))
    assert_allclose(loop_dot(u, v), u @ v, rtol=1e-12)
    assert_allclose(loop_matvec(A, v), A @ v, rtol=1e-12)


def _problem(rng, n_classes, weighted, m=13, n=5):
    X = rng.normal(size=(m, n))
    y = rng.integers(0, n_classes, size=m)
    y[:n_classes] = np.arange(n_classes)
    k = 1 if n_classes == 2 else n_classes
    W = rng.normal(size=(n, k))
    b = rng.normal(size=k)
    s = rng.uniform(0.2, 3.0, size=m) if weighted else None
    return X, y, W, b, s


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_vectorized_gradient_equals_loops_and_finite_differences(backend, n_classes, weighted,
                                                                 alpha, rng):
    X, y, W, b, s = _problem(rng, n_classes, weighted)
    n, k = W.shape

    J_loop, dW_loop, db_loop = loop_gradient(X.tolist(), y.tolist(), W.tolist(), b.tolist(),
                                             alpha, None if s is None else s.tolist())
    xp = backend.xp
    dev = backend.asarray
    Y = encode_targets(dev(y), n_classes, xp.float64, xp)
    J, dW, db = objective(dev(X), Y, dev(W), dev(b), alpha,
                          None if s is None else dev(s), xp)
    J, dW, db = float(J), backend.to_numpy(dW), backend.to_numpy(db)

    assert_allclose(J, J_loop, rtol=1e-12)
    assert_allclose(dW, np.array(dW_loop), rtol=1e-10, atol=1e-14)
    assert_allclose(db, np.array(db_loop), rtol=1e-10, atol=1e-14)

    # central differences over every weight and intercept, on the loop objective
    # (independent of the vectorized code)
    def J_of(theta):
        return loop_gradient(X.tolist(), y.tolist(), theta[: n * k].reshape(n, k).tolist(),
                             theta[n * k:].tolist(), alpha,
                             None if s is None else s.tolist())[0]

    theta = np.concatenate([W.ravel(), b])
    numeric = numerical_gradient(J_of, theta, h=1e-5)
    assert_allclose(np.concatenate([dW.ravel(), db]), numeric, rtol=1e-7, atol=1e-9)


def test_gradient_check_catches_a_wrong_gradient(rng):
    X, y, W, b, _ = _problem(rng, 2, False)
    Y = encode_targets(y, 2, np.float64)
    f = lambda w: float(objective(X, Y, w.reshape(-1, 1), b, 0.1)[0])  # noqa: E731
    good = lambda w: objective(X, Y, w.reshape(-1, 1), b, 0.1)[1].ravel()  # noqa: E731
    missing_penalty = lambda w: objective(X, Y, w.reshape(-1, 1), b, 0.0)[1].ravel()  # noqa: E731
    assert check_gradient(f, good, W.ravel()) < 1e-7
    assert check_gradient(f, missing_penalty, W.ravel()) > 1e-3


def test_objective_float32_keeps_dtype(backend, rng):
    X, y, W, b, _ = _problem(rng, 3, False)
    xp = backend.xp
    X32, W32, b32 = (backend.asarray(a, dtype=xp.float32) for a in (X, W, b))
    Y = encode_targets(backend.asarray(y), 3, xp.float32, xp)
    J, dW, db = objective(X32, Y, W32, b32, 0.1, None, xp)
    assert J.dtype == xp.float32 and dW.dtype == xp.float32 and db.dtype == xp.float32
    J64 = objective(X, np.eye(3)[y], W, b, 0.1)[0]
    assert_allclose(float(J), J64, rtol=1e-5)
