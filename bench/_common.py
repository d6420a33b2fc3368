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


def text_like_csr(m, n, nnz_per_row=50, seed=0, exponent=1.1):
    """A bag-of-words matrix as ``TfidfVectorizer`` writes it, and labels that depend on
    it: ``(X, y)``, X an ``m x n`` float64 CSR with about ``nnz_per_row`` non-zeros a row.

    Each row is a document of words drawn from a Zipf law (word ``j`` with probability
    proportional to ``1 / (j + 1) ** exponent``), so a few columns are in most rows and
    most are rare, as in text; a word drawn twice is one non-zero of count 2. The
    document length is Poisson, its mean set so that the expected number of distinct
    words is ``nnz_per_row``. Values are TfidfVectorizer's defaults: count times the
    smoothed idf ``ln((1 + m) / (1 + df)) + 1``, rows scaled to unit L2 norm. The labels
    are Bernoulli of ``expit`` of a sparse true weight vector's score (one column in
    ten informative), scaled to unit spread and centred at its median: the classes are
    balanced and overlap (not separable; the Bayes accuracy is about 0.85).
    Deterministic by ``seed``; vectorized throughout (no loop over rows)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    p /= p.sum()
    # the mean length L whose expected distinct words, sum_j 1 - (1 - p_j)^L, is
    # nnz_per_row: bisection, as that sum grows with L
    lo, hi = float(nnz_per_row), float(nnz_per_row) * 64
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.sum(-np.expm1(mid * np.log1p(-p))) < nnz_per_row:
            lo = mid
        else:
            hi = mid
    lengths = np.maximum(rng.poisson(lo, m), 1)
    rows = np.repeat(np.arange(m, dtype=np.int32), lengths)
    # inverse CDF of the Zipf law; the clip guards the last bin against rounding
    cols = np.minimum(np.searchsorted(np.cumsum(p), rng.random(rows.size)), n - 1)
    # COO to CSR sums the duplicates: a word's count in its document
    X = sp.coo_matrix((np.ones(rows.size), (rows, cols.astype(np.int32))),
                      shape=(m, n)).tocsr()
    X.sum_duplicates()
    X.sort_indices()
    df = np.bincount(X.indices, minlength=n)
    idf = np.log((1.0 + m) / (1.0 + df)) + 1.0
    X.data *= idf[X.indices]
    norms = np.sqrt(np.add.reduceat(X.data ** 2, X.indptr[:-1]))  # no empty row: length >= 1
    X.data /= np.repeat(norms, np.diff(X.indptr))
    true_w = np.where(rng.random(n) < 0.1, rng.standard_normal(n), 0.0)
    z = X @ true_w
    z = (z - np.median(z)) / z.std()
    y = (rng.random(m) < special.expit(3.0 * z)).astype(np.int64)
    return X, y
