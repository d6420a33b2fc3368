"""Sizes, data and timing helpers shared by the benchmark modules."""

from __future__ import annotations

import os

import numpy as np
from scipy import special

from xlogreg import backends

# smoke: every benchmark at tiny sizes (CI); quick: a couple of minutes; full: real sizes
SIZES = {
    "smoke": dict(vector=1_000, matvec=[(20, 20), (200, 200)], loop_matvec_max=200 * 200,
                  step=[(200, 20), (2_000, 20)], loop_step_max=200 * 20 * 3, classes=3,
                  train=(2_000, 20), epochs=1, batches=[1, 64, None]),
    "quick": dict(vector=1_000_000, matvec=[(100, 100), (1_000, 1_000), (4_000, 4_000)],
                  loop_matvec_max=1_000 * 1_000,
                  step=[(1_000, 100), (10_000, 100), (100_000, 100), (1_000_000, 100)],
                  loop_step_max=1_000 * 100, classes=10,
                  train=(50_000, 100), epochs=2, batches=[1, 32, 64, 128, 1024, None]),
    "full": dict(vector=1_000_000, matvec=[(100, 100), (1_000, 1_000), (4_000, 4_000),
                                           (10_000, 10_000)],
                 loop_matvec_max=1_000 * 1_000,
                 step=[(1_000, 100), (10_000, 100), (100_000, 100), (1_000_000, 100),
                       (2_000_000, 100)],
                 loop_step_max=1_000 * 100, classes=10,
                 train=(200_000, 100), epochs=3, batches=[1, 32, 64, 128, 1024, None]),
}
SIZE = os.environ.get("XLOGREG_BENCH_SIZE", "quick")
if SIZE not in SIZES:
    raise ValueError(f"XLOGREG_BENCH_SIZE={SIZE!r}; valid: {', '.join(SIZES)}")
CFG = SIZES[SIZE]

NO_GPU = "skipped: no GPU"


def gpu_backend_or_skip():
    import pytest

    try:
        return backends.get_backend("cupy")
    except (ImportError, backends.BackendUnavailableError) as err:
        pytest.skip(f"{NO_GPU} ({err})")


def timed(backend, fn):
    """``fn`` followed by a device synchronize, so GPU work is inside the timing."""
    def run():
        out = fn()
        backend.synchronize()
        return out

    return run


def rounds_for(seconds_per_call: float) -> int:
    """Few rounds for slow calls (Python loops), more for fast ones."""
    return 1 if seconds_per_call > 1 else 3 if seconds_per_call > 0.1 else 10


def label(benchmark, subject, impl, **info):
    """Tag a row so the report can place it: subject, implementation, parameters."""
    benchmark.extra_info.update(subject=subject, impl=impl, size=SIZE, **info)


def classification_data(m, n, n_classes=2, dtype=np.float32, seed=0):
    """Standardized ``make_classification`` data: (X_train, X_test, y_train, y_test)."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=m, n_features=n, n_informative=n // 2,
                               n_classes=n_classes, random_state=seed)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    cut = int(0.8 * m)
    return X[:cut].astype(dtype), X[cut:].astype(dtype), y[:cut], y[cut:]


def objective(X, y, coef, intercept, C=1.0):
    """Mean log-loss plus ||coef||^2 / (2 C m), in float64 with SciPy."""
    z = X.astype(np.float64) @ np.asarray(coef, np.float64).ravel() + float(np.ravel(intercept)[0])
    loss = -np.where(y == 1, special.log_expit(z), special.log_expit(-z)).mean()
    return float(loss + np.sum(np.asarray(coef, np.float64) ** 2) / (2 * C * len(y)))
