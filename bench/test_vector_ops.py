"""Slides' vectorization demos: dot product, u = A v, element-wise exp/log/abs.

Rows of one group sit together in the report: the Python loop, NumPy, the GPU.
"""

import math

import numpy as np
import pytest

from _common import CFG, label, rounds_for, timed
from xlogreg.reference import loop_dot, loop_matvec

DTYPES = [np.float64, np.float32]


def _pedantic(benchmark, fn, slow=False):
    if slow:  # Python loops: one warm-up would double a long run for nothing
        return benchmark.pedantic(fn, rounds=rounds_for(1.0 if CFG["vector"] > 1e5 else 0.01),
                                  iterations=1)
    return benchmark.pedantic(fn, rounds=20, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("impl", ["loop over ndarray", "loop over list"])
def test_dot_loop(benchmark, dtype, impl, host_rng):
    n = CFG["vector"]
    u, v = host_rng.random(n).astype(dtype), host_rng.random(n).astype(dtype)
    if impl == "loop over list":
        u, v = u.tolist(), v.tolist()
    benchmark.group = f"dot n={n} {np.dtype(dtype).name}"
    label(benchmark, "dot", impl, n=n, dtype=np.dtype(dtype).name)
    got = _pedantic(benchmark, lambda: loop_dot(u, v), slow=True)
    assert math.isclose(got, float(np.dot(np.asarray(u, np.float64), np.asarray(v, np.float64))),
                        rel_tol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_dot_vectorized(benchmark, backend, dtype, host_rng):
    n = CFG["vector"]
    u_h, v_h = host_rng.random(n).astype(dtype), host_rng.random(n).astype(dtype)
    u, v = backend.asarray(u_h), backend.asarray(v_h)
    benchmark.group = f"dot n={n} {np.dtype(dtype).name}"
    label(benchmark, "dot", backend.name, n=n, dtype=np.dtype(dtype).name)
    got = _pedantic(benchmark, timed(backend, lambda: backend.xp.matmul(u, v)))
    assert math.isclose(float(got), float(np.dot(u_h.astype(np.float64), v_h)), rel_tol=1e-3)


@pytest.mark.parametrize("shape", CFG["matvec"], ids=lambda s: f"{s[0]}x{s[1]}")
def test_matvec_loop(benchmark, shape, host_rng):
    if shape[0] * shape[1] > CFG["loop_matvec_max"]:
        pytest.skip("the double loop takes minutes at this size")
    A, v = host_rng.random(shape), host_rng.random(shape[1])
    A_list, v_list = A.tolist(), v.tolist()
    benchmark.group = f"matvec {shape[0]}x{shape[1]}"
    label(benchmark, "matvec", "loop over list", rows=shape[0], cols=shape[1])
    got = benchmark.pedantic(lambda: loop_matvec(A_list, v_list),
                             rounds=rounds_for(shape[0] * shape[1] / 3e6), iterations=1)
    np.testing.assert_allclose(got, A @ v, rtol=1e-9)


@pytest.mark.parametrize("shape", CFG["matvec"], ids=lambda s: f"{s[0]}x{s[1]}")
def test_matvec_vectorized(benchmark, backend, shape, host_rng):
    A_h, v_h = host_rng.random(shape), host_rng.random(shape[1])
    A, v = backend.asarray(A_h), backend.asarray(v_h)
    benchmark.group = f"matvec {shape[0]}x{shape[1]}"
    label(benchmark, "matvec", backend.name, rows=shape[0], cols=shape[1])
    got = _pedantic(benchmark, timed(backend, lambda: backend.xp.matmul(A, v)))
    np.testing.assert_allclose(backend.to_numpy(got), A_h @ v_h, rtol=1e-9)


ELEMENTWISE = {"exp": (math.exp, "exp"), "log": (math.log, "log"), "abs": (abs, "abs")}


@pytest.mark.parametrize("func", list(ELEMENTWISE))
def test_elementwise_loop(benchmark, func, host_rng):
    n = CFG["vector"]
    v = (host_rng.random(n) + 0.5).tolist()
    scalar = ELEMENTWISE[func][0]

    def loop():
        u = [0.0] * n
        for i in range(n):
            u[i] = scalar(v[i])
        return u

    benchmark.group = f"{func} n={n}"
    label(benchmark, "elementwise", "math loop", func=func, n=n)
    got = _pedantic(benchmark, loop, slow=True)
    assert math.isclose(got[-1], scalar(v[-1]))


@pytest.mark.parametrize("func", list(ELEMENTWISE))
def test_elementwise_vectorized(benchmark, backend, func, host_rng):
    n = CFG["vector"]
    v_h = host_rng.random(n) + 0.5
    v = backend.asarray(v_h)
    fn = getattr(backend.xp, ELEMENTWISE[func][1])
    benchmark.group = f"{func} n={n}"
    label(benchmark, "elementwise", backend.name, func=func, n=n)
    got = _pedantic(benchmark, timed(backend, lambda: fn(v)))
    np.testing.assert_allclose(backend.to_numpy(got), getattr(np, func)(v_h), rtol=1e-12)


def test_host_to_device_transfer(benchmark, backend, host_rng):
    """Copying the vectors of the dot benchmark to the device: its own row."""
    if backend.name == "numpy":
        pytest.skip("host memory: nothing to transfer")
    host = host_rng.random(CFG["vector"])
    benchmark.group = f"transfer n={CFG['vector']} float64"
    label(benchmark, "transfer", "host to device", n=CFG["vector"], bytes=host.nbytes)
    _pedantic(benchmark, timed(backend, lambda: backend.asarray(host)))
