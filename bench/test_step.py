"""One logistic-regression gradient step: the slides' loops, NumPy, the GPU.

The size sweep runs from small (where launch overhead makes the GPU lose) to large
(where it wins), binary and multinomial, so the crossover shows in the report.
The ``numpy`` and ``cupy`` rows compute the gradient the way ``fit`` does
(``fast_loss_and_gradient``: on NumPy the fused Numba kernel where it applies, its
``fused`` flag says whether it did); ``numpy (two passes)`` is the slides' vectorized
code as written, ``X @ W`` then ``X.T @ dZ``.
"""

import numpy as np
import pytest

from _common import CFG, label, rounds_for, timed
from xlogreg import backends
from xlogreg.models import encode_targets, fast_loss_and_gradient, loss_and_gradient
from xlogreg.reference import loop_gradient

KINDS = {"binary": 2, "multinomial": CFG["classes"]}


def _data(m, n, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n), dtype=np.float32)
    y = rng.integers(0, n_classes, size=m)
    k = 1 if n_classes == 2 else n_classes
    W = (0.01 * rng.standard_normal((n, k))).astype(np.float32)
    return X, y, W, np.zeros(k, np.float32)


def _group(benchmark, kind, m, n):
    benchmark.group = f"step {kind} {m}x{n} float32"


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape", CFG["step"], ids=lambda s: f"{s[0]}x{s[1]}")
def test_step_loop(benchmark, kind, shape):
    m, n = shape
    n_classes = KINDS[kind]
    if m * n * (1 if n_classes == 2 else n_classes) > CFG["loop_step_max"] * 10:
        pytest.skip("the nested loops take minutes at this size")
    X, y, W, b = _data(m, n, n_classes)
    X_l, y_l, W_l, b_l = X.tolist(), y.tolist(), W.tolist(), b.tolist()
    _group(benchmark, kind, m, n)
    label(benchmark, "step", "python loop", kind=kind, m=m, n=n)

    def step():  # the slides' loop: accumulate J, dw, db, then update
        J, dW, db = loop_gradient(X_l, y_l, W_l, b_l, 0.0)
        return [[w - 0.1 * g for w, g in zip(rw, rg)] for rw, rg in zip(W_l, dW)], J

    W_new, _ = benchmark.pedantic(step, rounds=rounds_for(m * n * n_classes / 4e5),
                                  iterations=1)
    _, dW, _ = loss_and_gradient(X.astype(np.float64), encode_targets(y, n_classes, np.float64),
                                 W.astype(np.float64), b.astype(np.float64), 1.0 / m, 0.0)
    np.testing.assert_allclose(W_new, W - 0.1 * dW, rtol=1e-5, atol=1e-7)


def _vectorized_step(benchmark, backend, kind, shape, fit_path):
    m, n = shape
    n_classes = KINDS[kind]
    X_h, y_h, W_h, b_h = _data(m, n, n_classes)
    xp = backend.xp
    X, W, b = backend.asarray(X_h), backend.asarray(W_h), backend.asarray(b_h)
    Y = encode_targets(backend.asarray(y_h), n_classes, xp.float32, xp)
    _group(benchmark, kind, m, n)
    if fit_path:  # what fit runs; the probe also compiles the kernel, untimed
        fused = backend.fused_gradient(X, Y, W, b, 1.0 / m, 0.0) is not None
        label(benchmark, "step", backend.name, kind=kind, m=m, n=n, fused=fused)

        def gradient():
            return fast_loss_and_gradient(backend, X, Y, W, b, 1.0 / m, 0.0)
    else:
        label(benchmark, "step", "numpy (two passes)", kind=kind, m=m, n=n)

        def gradient():
            return loss_and_gradient(X, Y, W, b, 1.0 / m, 0.0, None, xp)

    def step():  # Z = XW + b; A = sigma(Z); dZ = A - Y; dW = X^T dZ / m; update
        _, dW, db = gradient()
        return W - 0.1 * dW, b - 0.1 * db

    W_new, _ = benchmark.pedantic(timed(backend, step), rounds=max(3, min(50, int(2e7 / (m * n)))),
                                  iterations=1, warmup_rounds=2)
    _, dW, _ = loss_and_gradient(X_h.astype(np.float64), encode_targets(y_h, n_classes, np.float64),
                                 W_h.astype(np.float64), b_h.astype(np.float64), 1.0 / m, 0.0)
    np.testing.assert_allclose(backend.to_numpy(W_new), W_h - 0.1 * dW, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape", CFG["step"], ids=lambda s: f"{s[0]}x{s[1]}")
def test_step_vectorized(benchmark, backend, kind, shape):
    """The gradient ``fit`` computes: ``fast_loss_and_gradient``."""
    _vectorized_step(benchmark, backend, kind, shape, fit_path=True)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape", CFG["step"], ids=lambda s: f"{s[0]}x{s[1]}")
def test_step_two_passes(benchmark, kind, shape):
    """The slides' vectorized step as written, on NumPy (on the GPU it is the row above)."""
    _vectorized_step(benchmark, backends.get_backend("numpy"), kind, shape, fit_path=False)
