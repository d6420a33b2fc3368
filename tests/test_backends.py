import subprocess
import sys
import types

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from xlogreg import backends
from xlogreg.backends import _cupy


def test_aliases_resolve_to_canonical_names():
    assert backends.canonical_name("cpu") == "numpy"
    assert backends.canonical_name("numpy") == "numpy"
    for alias in ("cupy", "cuda", "gpu"):
        assert backends.canonical_name(alias) == "cupy"
    assert backends.get_backend("cpu") is backends.get_backend("numpy")


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'tpu'.*auto.*cuda.*numpy"):
        backends.get_backend("tpu")


def test_auto_follows_environment_variable(monkeypatch):
    monkeypatch.setenv(backends.ENV_VAR, "cpu")
    assert backends.get_backend("auto").name == "numpy"
    monkeypatch.setenv(backends.ENV_VAR, "array_api_strict")
    assert backends.get_backend("auto").name == "array_api_strict"
    monkeypatch.setenv(backends.ENV_VAR, "tpu")
    with pytest.raises(ValueError, match="XLOGREG_BACKEND.*unknown backend 'tpu'"):
        backends.get_backend("auto")


def test_auto_without_gpu_is_numpy(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    expected = "cupy" if "cupy" in backends.available_backends() else "numpy"
    assert backends.get_backend("auto").name == expected


def test_cupy_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(ImportError, match=r'pip install "xlogreg\[cuda\]"'):
        _cupy.CupyBackend()


def test_cupy_without_device_is_a_different_error(monkeypatch):
    class CUDARuntimeError(RuntimeError):
        pass

    def no_device():
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(backends.BackendUnavailableError,
                       match="no usable CUDA device or driver.*cudaErrorNoDevice"):
        _cupy.CupyBackend()


def test_cupy_broken_install_is_reported_as_such(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("CuPy failed to load libnvrtc.so.12")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(backends.BackendUnavailableError, match="cannot load CUDA.*libnvrtc"):
        _cupy.CupyBackend()


@pytest.mark.parametrize("module", ["xlogreg.backends", "xlogreg"])
def test_import_does_not_import_cupy(module):
    code = (
        f"import sys, {module}; "
        "bad = [m for m in ('cupy', 'torch', 'jax', 'numba', 'sklearn') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backends_never_imports_the_rest_of_xlogreg():
    # the layer is a leaf: importing and using it loads no other xlogreg module
    code = (
        "import sys; from xlogreg import backends; b = backends.get_backend('numpy'); "
        "b.device_info(); "
        "rest = [m for m in sys.modules if m.startswith('xlogreg') "
        "and m != 'xlogreg' and not m.startswith('xlogreg.backends')]; "
        "assert not rest, rest"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_round_trip_keeps_values_and_dtype(backend):
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    dev = backend.asarray(host)
    assert backend.owns(dev)
    back = backend.to_numpy(dev)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    assert_array_equal(back, host)
    assert_array_equal(backends.to_numpy(dev), host)
    backend.synchronize()


def test_seeded_permutation(backend):
    a = backend.to_numpy(backend.permutation(backend.default_rng(7), 50))
    b = backend.to_numpy(backend.permutation(backend.default_rng(7), 50))
    c = backend.to_numpy(backend.permutation(backend.default_rng(8), 50))
    assert_array_equal(np.sort(a), np.arange(50))
    assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_device_info_names_the_device(backend):
    info = backend.device_info()
    assert info["backend"] == backend.name
    key = "gpu" if backend.name == "cupy" else "cpu"
    assert isinstance(info[key], str) and info[key]


def test_input_kind_and_resolution(backend):
    x = backend.asarray(np.ones((2, 2)))
    assert backends.input_kind(x) == backend.name
    assert backends.input_kind([[1.0]]) == "numpy"
    assert backends.resolve_backend("auto", x) is backend
    # host data goes wherever it is asked to
    assert backends.resolve_backend(backend.name, np.ones(2)) is backend


def test_device_array_with_other_backend_says_what_to_do():
    strict = backends.get_backend("array_api_strict")
    x = strict.asarray(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"X is a array_api_strict array but backend='numpy'"):
        backends.resolve_backend("numpy", x)


def test_mixing_namespaces_is_an_error():
    strict = backends.get_backend("array_api_strict")
    with pytest.raises(TypeError, match=r"mix array libraries \(X is array_api_strict, y is numpy\)"):
        backends.resolve_backend("auto", strict.asarray(np.ones((2, 2))), np.ones(2))


def test_unsupported_array_library_is_named():
    class Foreign:
        def __array_namespace__(self, api_version=None):
            return types.SimpleNamespace()

    with pytest.raises(TypeError, match="unsupported array type"):
        backends.input_kind(Foreign())


def test_strict_round_trip_values(backend):
    xp = backend.xp
    x = backend.asarray(np.linspace(-1, 1, 5))
    assert_allclose(backend.to_numpy(xp.exp(x)), np.exp(np.linspace(-1, 1, 5)))


def test_backends_doctests():
    # backends/ is not a pytest doctest path (it would be imported a second time as a
    # top-level package); its examples run here under their installed name
    import doctest

    result = doctest.testmod(backends, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_take_rows_on_every_backend(backend):
    host = np.arange(12.0).reshape(4, 3)
    rows = backend.asarray(np.array([3, 0, 0]))
    got = backend.to_numpy(backend.take_rows(backend.asarray(host), rows))
    assert_array_equal(got, host[[3, 0, 0]])


def test_sparse_inputs_go_to_the_backend_of_their_library(backend):
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.csr_matrix(np.eye(3))
    assert backends.is_sparse(X) and backends.input_kind(X) == "numpy"
    if backend.name == "cupy":  # a device copy, CSR, that take_rows can index
        dev = backend.asarray(X)
        assert backends.is_sparse(dev) and backends.input_kind(dev) == "cupy"
        assert backend.owns(dev)
        got = backend.take_rows(dev, backend.asarray(np.array([2, 0])))
        assert_array_equal(got.get().toarray(), np.eye(3)[[2, 0]])
    elif backend.name == "array_api_strict":
        with pytest.raises(TypeError, match="no sparse arrays"):
            backend.asarray(X)
    else:
        assert backend.asarray(X) is X and backend.owns(X)


@pytest.mark.gpu
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("subset", [False, True])
def test_cupy_sparse_data_scale_equals_numpy(cupy_backend, weighted, subset):
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    X = sparse.random(80, 12, density=0.3, format="csr", random_state=1, dtype=np.float32)
    s = rng.uniform(0.2, 2.0, 80) if weighted else None
    rows = rng.permutation(80)[:50] if subset else None
    ref = backends.get_backend("numpy").data_scale(X, s, rows, True)
    got = cupy_backend.data_scale(cupy_backend.asarray(X),
                                  None if s is None else cupy_backend.asarray(s),
                                  None if rows is None else cupy_backend.asarray(rows), True)
    assert set(got) == set(ref)
    for key in ref:
        assert_allclose(np.asarray(got[key]), ref[key], rtol=1e-10, err_msg=key)  # host


# ------------------------------------------------- linear algebra and memory hooks
@pytest.mark.parametrize("n", [30, 64, 65, 200])  # SciPy's potrf up to 64, NumPy's above
def test_numpy_cholesky_and_cho_solve_equal_solve(n):
    rng = np.random.default_rng(0)
    B = rng.standard_normal((n, n))
    A = B @ B.T + 0.1 * np.eye(n)  # positive definite
    g = rng.standard_normal(n)
    be = backends.get_backend("numpy")
    L = be.cholesky(A)
    assert np.all(np.triu(L, 1) == 0)  # lower triangular, nothing left above
    assert_allclose(L @ L.T, A, rtol=1e-12, atol=1e-12 * n)
    assert_allclose(be.cho_solve(L, g), np.linalg.solve(A, g), rtol=1e-9)


@pytest.mark.parametrize("n", [3, 100])
def test_numpy_cholesky_refuses_what_is_not_positive_definite(n):
    be = backends.get_backend("numpy")
    indefinite = np.diag(np.r_[2.0, -1.0, np.ones(n - 2)])
    singular = np.eye(n)
    singular[:2, :2] = 1.0
    nan = np.eye(n)
    nan[n - 1, 0] = nan[0, n - 1] = np.nan  # off the diagonal: NaN reaches the factor
    assert be.cholesky(indefinite) is None
    assert be.cholesky(singular) is None
    assert be.cholesky(np.full((n, n), np.nan)) is None
    assert be.cholesky(nan) is None


def test_newton_direction_uses_the_backend_cholesky(monkeypatch):
    """``xlogreg.optimizers`` takes the backend's own factorization and solves where
    there are some and the array API's otherwise: both give the same direction, and
    a singular matrix gets a ridge, not an error."""
    from xlogreg import optimizers

    rng = np.random.default_rng(1)
    B = rng.standard_normal((8, 8))
    H, g = B @ B.T + np.eye(8), rng.standard_normal(8)
    be = backends.get_backend("numpy")
    calls = []
    real_factor, real_solve = type(be).cholesky, type(be).cho_solve
    monkeypatch.setattr(type(be), "cholesky", lambda self, A: calls.append("f") or real_factor(self, A))
    monkeypatch.setattr(type(be), "cho_solve", lambda self, L, b: calls.append("s") or real_solve(self, L, b))
    x = optimizers.cho_solve(be, optimizers.cho_factor(be, H), g)
    assert calls == ["f", "s"]
    assert_allclose(x, np.linalg.solve(H, g), rtol=1e-10)
    monkeypatch.delattr(type(be), "cholesky")
    monkeypatch.delattr(type(be), "cho_solve")
    assert_allclose(optimizers.cho_solve(be, optimizers.cho_factor(be, H), g), x, rtol=1e-10)
    u = np.ones(8) / np.sqrt(8)
    singular = (np.eye(8) - np.outer(u, u)) @ H @ (np.eye(8) - np.outer(u, u))  # flat along u
    L = optimizers.cho_factor(be, singular)
    assert L is not None and np.isfinite(L).all()
    r = g - (g @ u) * u  # a right-hand side the singular matrix can reach
    assert_allclose(singular @ optimizers.cho_solve(be, L, r), r, rtol=1e-6, atol=1e-6)
    assert optimizers.cho_factor(be, np.full((3, 3), np.nan)) is None


def test_base_backend_leaves_the_hooks_out():
    """Callers test for the hooks with hasattr: the base class must not claim them."""
    assert not hasattr(backends.Backend, "cho_solve")
    assert not hasattr(backends.Backend, "cholesky")
    assert not hasattr(backends.Backend, "free_memory")


def test_numpy_free_memory(monkeypatch, tmp_path):
    from xlogreg.backends import _numpy

    free = backends.get_backend("numpy").free_memory()
    assert isinstance(free, int) and free > 0
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:   100 kB\n"
                       "MemAvailable:    8000000 kB\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(
        meminfo if path == "/proc/meminfo" else path, *a, **k))
    assert _numpy.host_free_memory() == 8_000_000 * 1024


def test_numpy_free_memory_without_proc(monkeypatch):
    """No /proc/meminfo (macOS): free pages times the page size."""
    import os

    from xlogreg.backends import _numpy

    def no_proc(path, *a, **k):
        raise FileNotFoundError(path)

    monkeypatch.setattr("builtins.open", no_proc)
    assert _numpy.host_free_memory() == os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.gpu
def test_cupy_cholesky_cho_solve_and_free_memory(cupy_backend):
    cupy = cupy_backend._cupy
    rng = np.random.default_rng(0)
    B = rng.standard_normal((20, 20))
    A, g = B @ B.T + np.eye(20), rng.standard_normal(20)
    x = cupy_backend.cho_solve(cupy_backend.cholesky(cupy.asarray(A)), cupy.asarray(g))
    assert_allclose(cupy.asnumpy(x), np.linalg.solve(A, g), rtol=1e-8)
    assert cupy_backend.cholesky(cupy.asarray(np.diag([1.0, -1.0]))) is None
    assert cupy_backend.free_memory() > 0
