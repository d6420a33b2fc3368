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
