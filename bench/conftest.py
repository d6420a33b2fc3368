"""Benchmark fixtures, and the machine description stored in every result file."""

import contextlib
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from xlogreg import backends
from _common import SIZE, gpu_backend_or_skip


def pytest_benchmark_update_machine_info(config, machine_info):
    info = backends.get_backend("numpy").device_info()
    machine_info["xlogreg"] = {"bench_size": SIZE, **info}
    try:
        machine_info["xlogreg"]["gpu"] = backends.get_backend("cupy").device_info()
    except (ImportError, backends.BackendUnavailableError) as err:
        machine_info["xlogreg"]["gpu"] = {"skipped": f"no GPU: {err}"}


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """NumPy, and CuPy where a GPU is present (else the row says 'skipped: no GPU')."""
    if request.param == "cupy":
        return gpu_backend_or_skip()
    return backends.get_backend("numpy")


@pytest.fixture(scope="session")
def host_rng():
    return np.random.default_rng(0)


class PeerThreads:
    """Each CPU peer (scikit-learn, PyTorch, a BLAS call) at its fastest thread count
    on this machine: ``best(fit)`` runs ``fit`` untimed on 1 thread and on every core
    and returns the faster count, which ``limited(n)`` then applies to the timed runs.

    The limit covers the BLAS and OpenMP pools that threadpoolctl sees (OpenBLAS, the
    OpenMP runtimes of scikit-learn and PyTorch), PyTorch's own intra-op pool
    (``torch.set_num_threads``) and Numba's (``numba.set_num_threads``), where they
    are imported. Before every untimed trial
    there is a pause of ``pause`` seconds: OpenBLAS's threads (and OpenMP's) keep
    spinning for some tens of milliseconds after a call, and on a 2-core machine a
    call started in that window runs up to 2x slower (the README's finding). The
    benchmarks pass ``pause_setup`` as pytest-benchmark's ``setup`` for the same reason.
    """

    cores = os.cpu_count() or 1
    # seconds: measured, 10 ms is not enough for OpenBLAS's spin, 50 ms is (smoke: CI
    # checks that the benchmarks run, not their times)
    pause = 0.0 if SIZE == "smoke" else 0.1

    @contextlib.contextmanager
    def limited(self, n):
        """BLAS, OpenMP, PyTorch and Numba at ``n`` threads inside the block (``None``:
        as they are)."""
        from threadpoolctl import threadpool_limits

        pools = []  # (set, the count before) of the libraries with their own setting
        for name, get, put in (("torch", "get_num_threads", "set_num_threads"),
                               ("numba", "get_num_threads", "set_num_threads")):
            module = sys.modules.get(name)
            if module is not None and n:
                pools.append((getattr(module, put), getattr(module, get)()))
        with threadpool_limits(limits=n):
            for put, _ in pools:
                put(n)
            try:
                yield
            finally:
                for put, before in pools:
                    put(before)

    def pause_setup(self):
        """pytest-benchmark ``setup``: wait out the thread pools' spin, untimed."""
        time.sleep(self.pause)

    def best(self, fit, known=None, repeat_below=1.0, runs=1 if SIZE == "smoke" else 3,
             give_up=1.5):
        """``(threads, {threads: seconds})``: 1 or every core, whichever runs ``fit``
        faster, untimed; ``runs`` calls each (the fastest counts) where a call takes
        under ``repeat_below`` seconds, one where it takes longer. ``known`` holds
        times already measured, e.g. ``{1: seconds}`` from a search run on one
        thread. A trial still running after ``give_up`` times the faster count's time
        is stopped (``run_capped``): it has lost (on a busy 2-core machine a small
        problem on two OpenMP threads can take 30x longer, minutes for one fit), and
        its entry is ``-seconds``, the time it had run, negated."""
        times = dict(known or {})
        counts = [1] if self.cores == 1 else [1, self.cores]
        for n in counts:
            if n in times:
                continue
            with self.limited(n):
                spent = []
                while not spent or (len(spent) < runs and spent[0] < repeat_below):
                    done = [t for t in times.values() if t > 0]
                    cap = give_up * min(done) + 0.05 if done else None
                    time.sleep(self.pause)
                    seconds, stopped = self.run_capped(fit, cap)
                    if stopped:
                        spent = [-seconds]
                        break
                    spent.append(seconds)
            times[n] = min(spent)
        return min((n for n in times if times[n] > 0), key=times.get), times

    @staticmethod
    def run_capped(fit, seconds):
        """``(elapsed, stopped)``: ``fit()``, interrupted (``SIGALRM``) once it has run
        ``seconds`` (``None``: no limit). The interruption lands at the next Python
        bytecode: within an iteration for solvers driven from Python (L-BFGS, Newton),
        at the end for one long compiled call. Only in the main thread, where
        signals are delivered; elsewhere it runs to the end."""
        start = time.perf_counter()
        if seconds is None or threading.current_thread() is not threading.main_thread() \
                or not hasattr(signal, "setitimer"):
            fit()
            return time.perf_counter() - start, False
        state = {"running": True}

        def stop(signum, frame):
            if state["running"]:
                raise _Stopped

        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
        try:
            fit()
            state["running"] = False
            return time.perf_counter() - start, False
        except _Stopped:
            return time.perf_counter() - start, True
        finally:
            state["running"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    @staticmethod
    def info(threads, times):
        """What a peer row records: ``threads`` and the untimed trials' seconds
        (negative: stopped after that long, slower than the other)."""
        return dict(threads=threads, untimed_s={str(k): round(t, 5) for k, t in times.items()})


class _Stopped(Exception):
    """``PeerThreads.run_capped``'s interruption."""


@pytest.fixture(scope="session")
def peer_threads():
    """The ``PeerThreads`` helper: a peer's best thread count, and the limit."""
    return PeerThreads()
