"""The one-pass data scan (``_numba.data_scale``, ``NumpyBackend.data_scale`` on large
X) and the finiteness check (``NumpyBackend.all_finite``), held to float64 NumPy."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from xlogreg.backends import _numpy as numpy_backend
from xlogreg.backends._numpy import NumpyBackend

kernels = pytest.importorskip("xlogreg.backends._numba", reason="the scan needs numba")

KEYS = ("max_row", "mean_row", "mean", "var", "sq")


def reference(X, s=None):
    """``xlogreg.optimizers.data_scale``'s definitions, in float64 with einsum."""
    X = X.astype(np.float64)
    m = X.shape[0]
    s = np.ones(m) if s is None else s.astype(np.float64)
    total = s.sum()
    norms = np.einsum("ij,ij->i", X, X) + 1.0
    mean = np.einsum("i,ij->j", s, X) / total
    sq = np.einsum("i,ij,ij->j", s, X, X) / total
    return {"max_row": np.max(s * norms) * m / total, "mean_row": norms @ s / total,
            "mean": mean, "var": np.maximum(sq - mean * mean, 0.0), "sq": sq}


@pytest.fixture
def always(monkeypatch):
    """The backend's compiled scan at every size."""
    monkeypatch.setattr(numpy_backend, "FUSED_MIN_SIZE", 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("m", [1, 3, 4, 5, 1_031, 20_000])  # groups of 4 rows, and less
def test_scan_equals_float64_reference(dtype, weighted, m, rng):
    X = (2.0 * rng.standard_normal((m, 13)) + rng.uniform(-3, 3, 13)).astype(dtype)
    s = rng.uniform(0.0, 3.0, m).astype(dtype) if weighted else None
    if weighted and m > 3:
        s[::3] = 0.0  # rows of weight 0 count nowhere
    got = kernels.data_scale(X, s)
    ref = reference(X, s)
    for key in KEYS:
        # float64 sums of float32 values: exact products, rounding of the sums only
        # (var = sq - mean^2: rounding relative to sq)
        size = np.max(np.abs(ref["sq" if key == "var" else key]))
        assert_allclose(got[key], ref[key], rtol=1e-12, atol=1e-12 * size, err_msg=key)
    rows = kernels.data_scale(X, s, columns=False)
    assert set(rows) == {"max_row", "mean_row"}
    assert rows["max_row"] == got["max_row"] and rows["mean_row"] == got["mean_row"]


@pytest.mark.parametrize("weighted", [False, True])
def test_backend_uses_the_scan_on_large_x(weighted, rng, monkeypatch):
    """At FUSED_MIN_SIZE the backend's data_scale is the scan (same figures as the
    reference), below it the einsum code; a row subset or a non-contiguous X keeps
    the code it had."""
    X = rng.standard_normal(((1 << 20) // 16 + 1, 16)).astype(np.float32)
    s = rng.uniform(0.5, 2.0, X.shape[0]).astype(np.float32) if weighted else None
    calls = []
    real = kernels.data_scale
    monkeypatch.setattr(kernels, "data_scale", lambda *a: calls.append(1) or real(*a))
    be = NumpyBackend()
    got = be.data_scale(X, s)
    assert calls == [1]
    ref = reference(X, s)
    for key in KEYS:
        assert_allclose(got[key], ref[key], rtol=1e-10, err_msg=key)
    assert be.data_scale(X[:100], None if s is None else s[:100]) is not None
    assert be.data_scale(np.asfortranarray(X), s) is not None
    assert be.data_scale(X, s, rows=np.arange(10)) is None
    assert calls == [1]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("weight", [1.0, 0.0])
def test_non_finite_x_gives_non_finite_entries(dtype, bad, weight, rng, always):
    """A NaN or inf anywhere (in a row of weight 0 too, in the last, short group of
    rows too) shows in the result, so that the caller raises; the scan does not drop
    it (``max`` would, for a NaN) nor fall back to slower code."""
    for row in (0, 17, 21):
        X = rng.standard_normal((22, 5)).astype(dtype)
        s = np.ones(22, dtype)
        s[row] = weight
        X[row, 3] = bad
        for columns in (True, False):
            got = NumpyBackend().data_scale(X, s, columns=columns)
            assert got is not None
            assert not np.isfinite(got["max_row"]) and not np.isfinite(got["mean_row"])
            if columns:
                assert not np.isfinite(got["sq"][3])
                assert np.isfinite(got["sq"][[0, 1, 2, 4]]).all()


def test_huge_finite_values(rng, always):
    """float32 values near its largest (3e38): their squares overflow float32 (the
    einsum code's dtype) but not the scan's float64 sums. float64 values whose
    squares overflow float64 give inf, as the float64 reference does."""
    X = rng.uniform(-1, 1, (50, 4)).astype(np.float32)
    X[7, 2] = 3e38
    got = NumpyBackend().data_scale(X)
    ref = reference(X)
    for key in KEYS:
        assert np.all(np.isfinite(got[key])), key
        assert_allclose(got[key], ref[key], rtol=1e-12, err_msg=key)
    X64 = X.astype(np.float64)
    X64[7, 2] = 1e200
    with np.errstate(over="ignore"):
        assert not np.isfinite(NumpyBackend().data_scale(X64)["max_row"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_finite(dtype, rng, always):
    be = NumpyBackend()
    X = rng.standard_normal((1_001, 7)).astype(dtype)
    assert be.all_finite(X)
    big = np.full((3, 3), np.finfo(dtype).max, dtype)
    assert be.all_finite(big) and be.all_finite(-big)  # sums would overflow: no matter
    for bad in (np.nan, np.inf, -np.inf):
        for where in (0, 3_500, X.size - 1):  # first, middle, last
            Y = X.copy()
            Y.flat[where] = bad
            assert not be.all_finite(Y)
    assert be.all_finite(np.empty((0, 3), dtype))
    assert be.all_finite(np.arange(10))  # integers
    assert not be.all_finite(np.asfortranarray(Y))  # NumPy's isfinite for the rest


def test_all_finite_sparse(rng):
    from scipy import sparse

    X = sparse.random(50, 40, density=0.1, format="csr", random_state=0)
    be = NumpyBackend()
    assert be.all_finite(X)
    X.data[3] = np.nan
    assert not be.all_finite(X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("labels", ["0/1", "bool", "-1/1 float", "int32 with gaps"])
def test_class_sums_equal_float64_reference(dtype, weighted, labels, rng):
    """With labels the scan also sums each label's rows (``class_sums``, one row per
    label in ``lo .. lo + K - 1``, zeros for labels absent from the range) and their
    weights; its other figures stay the reference's."""
    m = 1_031
    X = (2.0 * rng.standard_normal((m, 13)) + rng.uniform(-3, 3, 13)).astype(dtype)
    s = rng.uniform(0.0, 3.0, m).astype(dtype) if weighted else None
    y = {"0/1": rng.integers(0, 2, m), "bool": rng.random(m) < 0.3,
         "-1/1 float": rng.choice([-1.0, 1.0], m),
         "int32 with gaps": rng.choice(np.array([-3, 0, 4], np.int32), m)}[labels]
    from xlogreg._data import _scan_labels

    found = _scan_labels(y, 13)
    lo, K = found[1:]
    assert (lo, K) == {"0/1": (0, 2), "bool": (0, 2), "-1/1 float": (-1, 3),
                       "int32 with gaps": (-3, 8)}[labels]
    got = kernels.data_scale(X, s, labels=found)
    ref = reference(X, s)
    for key in KEYS:
        size = np.max(np.abs(ref["sq" if key == "var" else key]))
        assert_allclose(got[key], ref[key], rtol=1e-12, atol=1e-12 * size, err_msg=key)
    w = np.ones(m) if s is None else s.astype(np.float64)
    values = y.astype(np.float64)
    for c in range(K):
        mine = values == lo + c
        assert_allclose(got["class_sums"][c], (w * mine) @ X.astype(np.float64),
                        rtol=1e-12, atol=1e-12 * np.abs(X).sum())
        assert_allclose(got["class_weights"][c], w[mine].sum(), rtol=1e-12)


def test_no_class_sums_for_labels_of_a_wide_range_or_an_odd_dtype(rng):
    assert _labels_or_none(np.array([0, 300])) is None  # 301 sums a chunk: too many
    assert _labels_or_none(np.array([-2 ** 60, 0])) is None
    assert _labels_or_none(np.array([120, -120], np.int32)) is not None
    assert _labels_or_none(np.array([1, 2]), n=1 << 16) is None  # 2 x n too large
    for dtype in (np.float16, np.longdouble, ">i4", ">f8", np.int8, np.uint64):
        assert _labels_or_none(np.array([0, 1], dtype)) is None, dtype  # (Numba's types)
    # a bool view of bytes other than 0 and 1: their truth, never their byte
    y = np.array([0, 2, 1, 0, 7], np.uint8).view(bool)
    found = _labels_or_none(y)
    assert found[1:] == (0, 2) and list(found[0]) == [0, 1, 1, 0, 1]
    X = rng.standard_normal((5, 3))
    assert_allclose(kernels.data_scale(X, labels=found)["class_weights"], [2, 3])


def _labels_or_none(y, n=10):
    from xlogreg._data import _scan_labels

    return _scan_labels(y, n)


def _first_gradient(X, y, classes, s=None):
    """The data term's gradient at zero weights in float64, from its definition:
    ``X~^T diag(s) (P - Y) / sum(s)`` with every probability 1/2 (softmax: 1/k)."""
    k = len(classes)
    Y = (y[:, None] == np.asarray(classes)[None, :]).astype(np.float64)
    Y = Y[:, 1:] if k == 2 else Y
    P = np.full_like(Y, 0.5 if k == 2 else 1.0 / k)
    w = np.ones(len(y)) if s is None else s
    dZ = (P - Y) * w[:, None] / w.sum()
    return X.astype(np.float64).T @ dZ, dZ.sum(axis=0)


@pytest.fixture
def scanned(monkeypatch):
    """Small X through the large-X path: the input check's scan, the fused kernels;
    counts the fused gradient's calls (``calls``)."""
    from xlogreg import _data

    monkeypatch.setattr(_data, "PARALLEL_CHECK_SIZE", 0)
    monkeypatch.setattr(numpy_backend, "FUSED_MIN_SIZE", 0)
    calls = []
    real = NumpyBackend.fused_gradient
    monkeypatch.setattr(NumpyBackend, "fused_gradient",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    return calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("labels, folded", [
    ((0, 1), True), ((-1.0, 1.0), True), ((True, False), True), ((3, 5, 9), True),
    ((0, 1, 2, 3), True),
    # labels the scan does not sum (their dtypes): the first gradient from a pass
    (np.array([-128, 127], np.int8), False), (np.array([0, 1], np.float16), False),
    (np.array([2, 1], ">i4"), False)])
def test_a_fit_takes_its_first_gradient_from_the_scan(dtype, labels, folded, rng, scanned):
    """A fresh fit starts at zero, where the gradient is a combination of each class's
    row sums: the input check's scan computes them, and the first step reads no
    more of X. One epoch of plain gradient descent (step 0.1) then lands at -0.1 x
    the float64 gradient from its definition, and makes no fused pass."""
    from xlogreg import LogisticRegression

    m = 2_000
    X = (rng.standard_normal((m, 6)) * [1, 2, 3, 1, 1, 5] + [0, 1, -2, 0, 3, 0]).astype(dtype)
    y = np.asarray(labels)[rng.integers(0, len(labels), m)]
    est = LogisticRegression(backend="numpy", learning_rate=0.1, max_epochs=1, tol=None)
    est.fit(X, y)
    assert scanned == ([] if folded else [1])  # no pass over X for the one step
    gW, gb = _first_gradient(X, y, est.classes_)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert_allclose(est.coef_, -0.1 * gW.T, rtol=rtol, atol=rtol * np.abs(gW).max())
    assert_allclose(est.intercept_, -0.1 * gb, rtol=rtol, atol=rtol * np.abs(gb).max())


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("solver", ["gd", "lbfgs"])
def test_the_scans_first_gradient_saves_a_pass_and_changes_nothing(k, solver, rng,
                                                                   scanned, monkeypatch):
    """gd's line search and L-BFGS start from the scan's gradient: one fused pass
    fewer, and the same fit as from the kernel's gradient, to 1e-9 (the two round
    differently). In float32 a difference in the last bit of the start can move a
    tight fit's stop by many epochs: the float32 start is held to its definition
    above."""
    import warnings

    from xlogreg import LogisticRegression, estimator

    m = 3_000
    X = rng.standard_normal((m, 5)) * [1, 4, 1, 2, 1] + [0, 2, 0, -1, 0]
    y = np.argmax(X[:, :k] + rng.standard_normal((m, k)), axis=1)
    # gd for a fixed number of epochs: where a tol stops it depends on the last bits
    tol, epochs = (None, 40) if solver == "gd" else (1e-8, 500)
    fit = lambda: LogisticRegression(backend="numpy", solver=solver, tol=tol,  # noqa
                                     max_epochs=epochs).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (gd short of its optimum after 40 epochs)
        folded = fit()
        passes = len(scanned)
        monkeypatch.setattr(estimator, "gradient_at_zero", lambda scan, k: None)
        del scanned[:]
        plain = fit()
    assert passes == len(scanned) - 1
    size = np.abs(plain.coef_).max()
    assert_allclose(folded.coef_, plain.coef_, rtol=1e-9, atol=1e-9 * size)
    assert_allclose(folded.intercept_, plain.intercept_, rtol=1e-9, atol=1e-9 * size)


def test_only_a_fresh_unweighted_fit_starts_from_the_scan(rng, scanned):
    """Weights (sample or class) change the gradient at zero, and a warm start is not
    at zero: those fits take the first gradient from a pass over X, and get the
    right one."""
    from xlogreg import LogisticRegression

    m = 2_000
    X = rng.standard_normal((m, 4)) + [0, 1, 0, 2]
    y = (X[:, 0] + rng.standard_normal(m) > 0.8).astype(int)
    s = rng.uniform(0.5, 2.0, m)
    one = dict(backend="numpy", learning_rate=0.1, max_epochs=1, tol=None)
    for kwargs, fit_args, weights in (
            ({"class_weight": "balanced"}, {}, m / (2 * np.bincount(y))[y]),
            ({}, {"sample_weight": s}, s)):
        del scanned[:]
        est = LogisticRegression(**one, **kwargs).fit(X, y, **fit_args)
        assert scanned == [1]
        gW, gb = _first_gradient(X, y, est.classes_, weights)
        assert_allclose(est.coef_, -0.1 * gW.T, rtol=1e-12)
        # (balanced weights: a gradient of 0 for the intercept, to rounding)
        assert_allclose(est.intercept_, -0.1 * gb, rtol=1e-12, atol=1e-15)
    est = LogisticRegression(**one, warm_start=True).fit(X, y)
    start = est.coef_.copy()
    del scanned[:]
    est.fit(X, y)
    assert scanned == [1]  # from where the first fit ended, not from zero
    assert not np.allclose(est.coef_, 2 * start)  # (what a second zero start gives)
