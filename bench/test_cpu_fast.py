"""The CPU fast path against the hardware floor and scikit-learn, side by side.

Each row that has a target records ``versus`` (the row of its group it is measured
against) and ``target`` (the largest ratio allowed); the report prints the ratio and
whether the target is met. Fits also record the peak memory they allocated beyond X.

Every peer (scikit-learn, and the BLAS call ``X @ W``) runs at its fastest thread count
on this machine (the ``peer_threads`` fixture: 1 thread or every core, tried untimed)
and records it as ``threads``. Every timed call of the gradient rows follows a pause
of ``peer_threads.pause`` seconds (pytest-benchmark's ``setup``): OpenBLAS's threads
spin for some tens of milliseconds after a call, and on two cores a Numba kernel
started in that window runs up to 2x slower.
"""

import gc
import math
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from _common import CFG, SIZE, classification_data, label, objective
from xlogreg.backends import _numpy as numpy_backend
from xlogreg import LogisticRegression
from xlogreg.models import encode_targets, loss_and_gradient

GRADIENT_M = {"smoke": 20_000, "quick": 1_000_000, "full": 2_000_000}[SIZE]
OPTIMUM_M = {"smoke": 5_000, "quick": 50_000, "full": 200_000}[SIZE]
OVERHEAD_M = {"smoke": 20_000, "quick": 1_000_000, "full": 4_000_000}[SIZE]
GRADIENT_ROUNDS = 15  # interleaved with the partner row's call, a pause before each
C = 1.0


def _kernels_or_skip():
    if numpy_backend.numba_kernels() is None:
        pytest.skip("the fast path needs numba: pip install \"xlogreg[fast]\"")


# ------------------------------------------------------------ fused gradient
@pytest.fixture(scope="module")
def big_X():
    return np.random.default_rng(0).standard_normal((GRADIENT_M, 100), dtype=np.float32)


@pytest.mark.parametrize("kind", ["binary", "multinomial"])
@pytest.mark.parametrize("impl", ["X @ W (one read of X)", "numpy (two passes)", "fused (numba)"])
def test_fused_gradient(benchmark, big_X, kind, impl, peer_threads):
    """Each round is preceded, untimed, by one call of the row it is compared with (the
    kernel before ``X @ W``, ``X @ W`` before the kernel) and a pause: the two rows'
    calls alternate, and neither starts while the other's threads still spin. The BLAS
    row runs at its best thread count; the kernel on Numba's threads (every core)."""
    X = big_X
    m = X.shape[0]
    n_classes = 2 if kind == "binary" else CFG["classes"]
    rng = np.random.default_rng(1)
    Y = encode_targets(rng.integers(0, n_classes, m), n_classes, np.float32)
    W = (0.01 * rng.standard_normal((100, Y.shape[1]))).astype(np.float32)
    b = np.zeros(Y.shape[1], np.float32)
    if kind == "binary":  # the matrix-vector product, BLAS's fastest read of X
        w = np.ascontiguousarray(W[:, 0])
        blas = lambda: X @ w  # noqa: E731
    else:
        blas = lambda: X @ W  # noqa: E731
    blas_limit, blas_times = _blas_threads(kind, blas, peer_threads)
    fused = None
    if numpy_backend.numba_kernels() is not None:
        fused = lambda: numpy_backend.numba_kernels().gradient(X, Y, W, b, 1 / m, 0.0)  # noqa: E731
    benchmark.group = f"gradient {kind} {m}x100 float32"
    info, limit, partner = {}, None, None
    if impl.startswith("fused"):
        _kernels_or_skip()
        fn, partner = fused, blas
        info = dict(versus="X @ W (one read of X)", target=1.25)
    elif impl.startswith("numpy"):
        fn = lambda: loss_and_gradient(X, Y, W, b, 1 / m, 0.0)  # noqa: E731
    else:
        fn, partner, limit = blas, fused, blas_limit
        info = peer_threads.info(blas_limit, blas_times)

    def setup():  # untimed: the partner's call, then the pause
        if partner is not None:
            with peer_threads.limited(peer_threads.cores if partner is fused else blas_limit):
                partner()
        peer_threads.pause_setup()

    label(benchmark, "cpu", impl, kind=kind, m=m, **info)
    with peer_threads.limited(limit):
        benchmark.pedantic(fn, setup=setup, rounds=GRADIENT_ROUNDS, iterations=1,
                           warmup_rounds=2)


BLAS_THREADS = {}  # (kind, m) -> the BLAS row's thread count and its untimed trials


def _blas_threads(kind, blas, peer_threads):
    """The best thread count of ``X @ W``, found once per kind (both rows use it)."""
    key = (kind, GRADIENT_M)
    if key not in BLAS_THREADS:
        BLAS_THREADS[key] = peer_threads.best(blas, runs=5)
    return BLAS_THREADS[key]


# ------------------------------------------------------- time to the optimum
def _problem():
    """The issue's data as it comes (not standardized): 80% for training, the rest
    for the test accuracy."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=OPTIMUM_M, n_features=100, n_informative=50,
                               random_state=0)
    cut = int(0.8 * OPTIMUM_M)
    return X[:cut], y[:cut], X[cut:], y[cut:]


OPT = {}


def _optimum():
    """The penalized objective's minimum, from two solvers run to tight tolerances."""
    if not OPT:
        from sklearn.linear_model import LogisticRegression as Sk

        X64, y, X_test, y_test = _problem()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = Sk(C=C, tol=1e-12, max_iter=20_000).fit(X64, y)
            b = LogisticRegression(backend="numpy", solver="lbfgs", tol=1e-12,
                                   max_epochs=20_000).fit(X64, y)
        OPT.update(X64=X64, y=y, X32=X64.astype(np.float32), X_test=X_test, y_test=y_test,
                   J=min(objective(X64, y, m.coef_, m.intercept_) for m in (a, b)))
    return OPT


def _make(impl, tol):
    from sklearn.linear_model import LogisticRegression as Sk

    if impl == "xlogreg lbfgs (numpy)":
        return LogisticRegression(backend="numpy", solver="lbfgs", C=C, tol=tol,
                                  max_epochs=10_000)
    solver = impl.split()[1]
    return Sk(solver=solver, C=C, tol=tol, max_iter=10_000)


@pytest.mark.parametrize("impl", ["sklearn lbfgs", "sklearn newton-cholesky",
                                  "xlogreg lbfgs (numpy)"])
def test_time_to_optimum(benchmark, impl, peer_threads):
    """Each solver at the loosest ``tol`` that still ends within 1e-6 (relative) of the
    optimum, float32 input for all; that tol is found first, untimed (scikit-learn on
    one thread: its iterates do not depend on it), then scikit-learn's thread count."""
    if impl.startswith("xlogreg"):
        _kernels_or_skip()
    opt = _optimum()
    X, y = opt["X32"], opt["y"]

    def gap(model):
        return (objective(opt["X64"], y, model.coef_, model.intercept_) - opt["J"]) / opt["J"]

    peer = not impl.startswith("xlogreg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for tol in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10):
            start = time.perf_counter()
            with peer_threads.limited(1 if peer else None):
                model = _make(impl, tol).fit(X, y)
            last = time.perf_counter() - start
            if gap(model) <= 1e-6:
                break
        benchmark.group = f"time to the optimum (1e-6 relative), {X.shape[0]}x100 float32"
        limit = None
        if peer:
            limit, times = peer_threads.best(lambda: _make(impl, tol).fit(X, y),
                                             known={1: last})
            info = peer_threads.info(limit, times)
        else:
            info = dict(versus=["sklearn lbfgs", "sklearn newton-cholesky"], target=0.25)
        label(benchmark, "cpu", impl, tol=tol, **info)
        del caught[:]  # only what the timed fits say: e.g. newton-cholesky falling back
        with peer_threads.limited(limit):
            model = benchmark.pedantic(lambda: _make(impl, tol).fit(X, y),
                                       setup=peer_threads.pause_setup, rounds=3, iterations=1)
    fallback = sorted({str(w.message).split("\n")[0] for w in caught
                       if "converge" not in str(w.message)
                       and not issubclass(w.category, (DeprecationWarning, FutureWarning))})
    if fallback:
        benchmark.extra_info["warning"] = "; ".join(fallback)[:200]
    z = opt["X_test"] @ np.ravel(model.coef_) + np.ravel(model.intercept_)[0]
    benchmark.extra_info.update(loss=objective(opt["X64"], y, model.coef_, model.intercept_),
                                gap=gap(model), epochs=int(np.max(model.n_iter_)),
                                accuracy=float(np.mean((z >= 0) == opt["y_test"])))


# ----------------------------------------------------- mini-batch epoch, batch 64
def _peak(fit, nbytes):
    gc.collect()
    tracemalloc.start()
    try:
        fit()
        return tracemalloc.get_traced_memory()[1] / nbytes
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("impl", ["SGDClassifier (optimal)", "SGDClassifier (constant 0.01)",
                                  "numpy batch 1", "numpy batch 64", "numpy batch 64, plain",
                                  "numpy full batch", "numpy lbfgs"])
def test_epoch_and_memory(benchmark, impl, monkeypatch, peer_threads):
    """One epoch of each (lbfgs: to tol=1e-4); every row records its loss after that
    epoch and the peak memory it allocated, in multiples of X. SGDClassifier runs at
    its best thread count; batch 1 (xlogreg's default step) is its own match."""
    from sklearn.linear_model import SGDClassifier

    X_tr, X_te, y_tr, y_te = classification_data(*CFG["train"])
    m = X_tr.shape[0]
    if impl.startswith("SGD"):
        schedule = dict(learning_rate="constant", eta0=0.01) if "constant" in impl else {}
        make = lambda: SGDClassifier(loss="log_loss", alpha=1 / (C * m), max_iter=1,  # noqa: E731
                                     tol=None, random_state=0, **schedule)
    else:
        _kernels_or_skip()
        if impl.endswith("plain"):
            monkeypatch.setattr(numpy_backend, "numba_kernels", lambda: None)
        params = dict(batch_size=64, learning_rate=0.1) if "64" in impl else \
            dict(batch_size=1) if "batch 1" in impl else \
            dict(solver="lbfgs", tol=1e-4) if "lbfgs" in impl else dict(learning_rate=1.0)
        make = lambda: LogisticRegression(backend="numpy", C=C, max_epochs=1,  # noqa: E731
                                          tol=None, random_state=0, **params) \
            if "lbfgs" not in impl else LogisticRegression(backend="numpy", C=C, **params)
    benchmark.group = f"one epoch, {m}x100 float32"
    targets = {"numpy batch 64": 0.5, "numpy batch 1": 1.0}
    info = dict(versus="SGDClassifier (optimal)", target=targets[impl]) \
        if impl in targets else {}
    batch = 64 if "64" in impl else 1 if "batch 1" in impl or impl.startswith("SGD") else None
    limit = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if impl.startswith("SGD"):
            limit, times = peer_threads.best(lambda: make().fit(X_tr, y_tr))
            info.update(peer_threads.info(limit, times))
        label(benchmark, "cpu", impl, batch_size=batch, **info)
        with peer_threads.limited(limit):
            model = benchmark.pedantic(lambda: make().fit(X_tr, y_tr), rounds=3,
                                       iterations=1, warmup_rounds=1,
                                       setup=peer_threads.pause_setup)
        peak = _peak(lambda: make().fit(X_tr, y_tr), X_tr.nbytes)
    coef = np.asarray(model.coef_, np.float64).ravel()
    intercept = float(np.ravel(model.intercept_)[0])
    loss = objective(X_tr, y_tr, coef, intercept, C)
    accuracy = float(np.mean(((X_te @ coef + intercept) >= 0) == y_te))
    benchmark.extra_info.update(loss=float(loss), accuracy=accuracy, peak_x=round(peak, 3),
                                epochs=int(np.max(model.n_iter_)) if "lbfgs" in impl else 1)
    assert math.isfinite(loss)


# ------------------------------------------------------------------ fit overhead
@pytest.fixture(scope="module")
def overhead_data():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((OVERHEAD_M, 100), dtype=np.float32)
    return X, rng.integers(0, 2, OVERHEAD_M)


def _input_handling(X, y):
    """What ``fit`` does before its first epoch, as ``LogisticRegression.fit`` and
    ``_train`` do it: validate the parameters, pick the data kind, check X and y
    (dtype, finiteness), find and encode the classes, move the arrays to the backend,
    build the targets, and measure the data's scale (``learning_rate="auto"``'s
    step and L-BFGS's preconditioner need it; the check's scan where it made one)."""
    from xlogreg._data import data_for

    est = LogisticRegression(backend="numpy", solver="gd", max_epochs=1, tol=None)
    est._validate_params()
    data = data_for(est.backend, X, y, None)
    X, y, sample_weight = data.check(est, X, y, None, reset=True)
    classes, y_index = data.classes(y)
    out = data.prepare(X, y_index, sample_weight, int(classes.shape[0]))
    scanned, scan = getattr(data, "scan", (None, None))
    if scanned is not out[0]:
        scan = data.backend.data_scale(out[0])
    return out, scan


SCAN = "its scan (the finiteness check, the data's scale, the first gradient's sums)"
FIT_EPOCH = "fit, one full-batch epoch"


@pytest.mark.parametrize("impl", ["X @ w (one read of X)", "fit's input handling", SCAN,
                                  "fused gradient (one epoch's work)", FIT_EPOCH])
def test_fit_overhead(benchmark, overhead_data, impl, peer_threads):
    """Everything ``fit`` does besides its epochs, against one read of X by BLAS (its
    best thread count): a whole one-epoch fit (gd, full batch, ``learning_rate=0.1``,
    ``tol=None``) less one call of the fused gradient, the epoch's work (the
    report's ``less``). The input check's scan is also the first epoch's pass (its
    class sums give the gradient at zero, where a fit starts), so the fit's steps
    before training (``_input_handling``, timed directly, and its scan) include
    that epoch's read of X."""
    X, y = overhead_data
    m = X.shape[0]
    w = np.full(100, 0.01, np.float32)
    limit, info = None, {}
    if impl.startswith("X @ w"):
        fn = lambda: X @ w  # noqa: E731
        limit, times = peer_threads.best(fn, runs=5)
        info = peer_threads.info(limit, times)
    elif impl.startswith("fit's"):
        fn = lambda: _input_handling(X, y)  # noqa: E731
        info = dict(versus="X @ w (one read of X)")
    elif impl == SCAN:
        _kernels_or_skip()
        from xlogreg._data import _scan_labels

        fn = lambda: numpy_backend.numba_kernels().data_scale(  # noqa: E731
            X, labels=_scan_labels(y, X.shape[1]))
        info = dict(versus="X @ w (one read of X)")
    elif impl.startswith("fused"):
        _kernels_or_skip()
        Y = encode_targets(y, 2, np.float32)
        W, b = w[:, None].copy(), np.zeros(1, np.float32)
        fn = lambda: numpy_backend.numba_kernels().gradient(X, Y, W, b, 1 / m, 0.0)  # noqa: E731
    else:
        fn = lambda: LogisticRegression(backend="numpy", solver="gd", max_epochs=1,  # noqa: E731
                                        tol=None, learning_rate=0.1).fit(X, y)
        info = dict(versus="X @ w (one read of X)", less="fused gradient (one epoch's work)",
                    target=1.0)
    benchmark.group = f"fit overhead, {m}x100 float32"
    label(benchmark, "cpu", impl, m=m, **info)
    with peer_threads.limited(limit):
        benchmark.pedantic(fn, setup=peer_threads.pause_setup, rounds=GRADIENT_ROUNDS,
                           iterations=1, warmup_rounds=1)


SMALL_FITS = {  # impl -> (library, parameters); "one iteration": the fixed cost
    "sklearn LogisticRegression().fit": ("sklearn", {}),
    "xlogreg LogisticRegression().fit": ("xlogreg", {}),
    "xlogreg LogisticRegression(solver='newton').fit": ("xlogreg", {"solver": "newton"}),
    "sklearn, one iteration": ("sklearn", {"max_iter": 1}),
    "xlogreg, one iteration": ("xlogreg", {"max_epochs": 1}),
    "xlogreg newton, one iteration": ("xlogreg", {"solver": "newton", "max_epochs": 1}),
}


@pytest.mark.parametrize("impl", list(SMALL_FITS))
def test_small_fit(benchmark, impl, peer_threads):
    """A small fit on standardized breast cancer (569 x 30), in-process and warm
    (after untimed fits: imports, first calls). Two groups: the defaults to the end
    (xlogreg's default ``gd`` and its ``newton`` against scikit-learn's ``lbfgs``), and
    the fixed cost, a fit stopped after one iteration (``max_iter=1``,
    ``max_epochs=1``): validation, set-up, one step and the fitted attributes."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression as Sk
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    library, params = SMALL_FITS[impl]
    one = "one iteration" in impl
    peer = ("sklearn, one iteration" if one else "sklearn LogisticRegression().fit")
    make = (lambda: Sk(**params)) if library == "sklearn" else \
        (lambda: LogisticRegression(**params))
    limit, info = None, dict(versus=peer, target=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if library == "sklearn":
            limit, times = peer_threads.best(lambda: make().fit(X, y), runs=5)
            info = peer_threads.info(limit, times)
        what = "fixed cost (one iteration)" if one else "to the end, defaults"
        benchmark.group = (f"small fit: breast cancer {X.shape[0]}x{X.shape[1]} "
                           f"standardized, warm, {what}")
        label(benchmark, "cpu", impl, m=X.shape[0], n=X.shape[1], **info)
        with peer_threads.limited(limit):
            model = benchmark.pedantic(lambda: make().fit(X, y), setup=peer_threads.pause_setup,
                                       rounds=25, iterations=1, warmup_rounds=2)
    benchmark.extra_info.update(epochs=int(np.max(model.n_iter_)),
                                accuracy=float(model.score(X, y)))
