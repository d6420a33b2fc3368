"""Time to the optimum by solver (issue 14): xlogreg's best solver against scikit-learn's.

For each data set every solver is run at the loosest ``tol`` that still ends within
1e-6 (relative) of the optimum of the penalized objective
``mean L_i + ||coef||^2 / (2 C m)`` (scikit-learn's ``C sum L_i + ||coef||^2 / 2``
divided by ``C m``: the same minimizer); that tol is found first, untimed, among 1e-2,
1e-3, ... 1e-12 (from 1e-4, or from the tol the solver needed on the data's other
dtype where it ran on it: looser while it gets there, tighter while not). The optimum is the lowest
objective reached by xlogreg's ``newton`` and scikit-learn's ``newton-cholesky`` and
``lbfgs`` at ``tol=1e-12`` on the float64 data, computed once per data set, untimed.

- xlogreg: ``lbfgs``, ``newton`` and ``gd`` (full batch, its default "auto" step), on
  the default threads (Numba's and BLAS's: every core), as a user runs them, after an
  untimed warm-up fit (kernels compiled or loaded from Numba's cache, imports done).
  Rows whose fit takes under ``DIAGNOSE_BELOW_S`` also record in ``untimed_s`` one fit
  with every pool on one thread: what the default thread count costs.
- scikit-learn: ``newton-cholesky``, ``lbfgs``, ``newton-cg``, ``sag``, ``saga``, and
  for two classes ``liblinear`` with ``intercept_scaling=100`` (liblinear penalizes the
  intercept as a feature of that value: a penalty of ``b^2 / 20,000`` in the sum form,
  negligible except on the smallest sets, where its row may fall short of 1e-6 and is
  then not counted). liblinear is left out for more classes: it fits one-vs-rest, a
  different objective. Each runs at its fastest thread count (``PeerThreads``: 1
  thread or every core, tried untimed, a trial stopped once it has lost); its tol
  search runs on one thread (the iterates do not depend on the thread count).

A scikit-learn solver whose search fit (one thread) runs longer than ``1.5 x cores``
times the fastest scikit-learn solver's time to the optimum found so far on that data
set cannot be the fastest, even with perfect scaling over the cores: that fit is
stopped (sag, saga, liblinear: their iterations capped at what that time allows) and
the row skipped with the reason (solvers run fastest first, so this saves
the large sets minutes of sag and saga). A search that has not reached the optimum
after its time budget stops; its row is timed at its last tol and says so. Slow fits
are timed in fewer rounds (one above 3 s).

Every xlogreg row states the target (``versus`` the scikit-learn rows that reached the
optimum, ``target``) and ``best_of="xlogreg"``: the report keeps, of each data set,
the fastest xlogreg row that reached the optimum and measures it against the fastest
scikit-learn row. Targets: at most 0.5x on breast cancer and digits (as loaded, and
standardized), 0.25x on the large synthetic sets.

The large sets are ``make_classification``-like, generated fast in float32 (the
float64 rows fit the same values, upcast, so one optimum serves both): half the
features informative, a random mix (uniform in [-1, 1], scaled to unit variance) of
as many standard normal latent factors; the rest standard normal noise; labels drawn
from a multinomial logit of the latent factors (Gumbel-max), 1% of them redrawn.

The full run takes most of an hour on a 2-core machine; ``XLOGREG_SOLVERS_SETS`` (data
set names, comma-separated) runs a part of it, e.g. one process per shape::

    XLOGREG_BENCH_SIZE=full XLOGREG_SOLVERS_SETS="tall float32 C=1,tall float64 C=1" \
        python -m pytest bench/test_solvers.py --benchmark-json tall.json
"""

import math
import os
import time
import warnings

import numpy as np
import pytest
from scipy import special

from _common import SIZE, label
from xlogreg import LogisticRegression
from xlogreg.backends import _numpy as numpy_backend

GAP = 1e-6  # "at the optimum": within this of it, relative
TOLS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10, 1e-12)
START = 2  # the search starts at 1e-4, in the middle: Newton's answers are looser,
# L-BFGS's and gradient descent's tighter
SMALL_TARGET, LARGE_TARGET = 0.5, 0.25
# rows x features x classes of the large sets; smoke and quick scale them down a lot
LARGE = {
    "smoke": dict(tall=(4_000, 20, 2), wide=(400, 100, 2), multinomial=(2_000, 20, 3)),
    "quick": dict(tall=(200_000, 20, 2), wide=(4_000, 400, 2), multinomial=(40_000, 50, 10)),
    "full": dict(tall=(2_000_000, 20, 2), wide=(20_000, 2_000, 2),
                 multinomial=(200_000, 50, 10)),
}[SIZE]
# seconds one row's tol search may take before it stops trying tighter tols
SEARCH_BUDGET_S = {"smoke": 1, "quick": 20, "full": 30}[SIZE]
# xlogreg's rows are timed on the default threads; those faster than this also record
# (untimed_s) one fit on one thread, to show what the thread count costs
DIAGNOSE_BELOW_S = 0.0 if SIZE == "smoke" else 2.0
# the caps on one fit: iterations (epochs for sag, saga)
MAX_ITER = {"newton-cholesky": 100, "newton": 100, "sag": 1_000, "saga": 1_000}
OPTIMUM_LBFGS_ITER = 500  # the optimum's lbfgs: newton's fits are the precise ones
PRUNE = 1.5  # x cores x the fastest peer so far: a slower search fit cannot win
PRUNE_MIN_S = 0.5  # ... and rows faster than this are timed all the same: cheap

SK_SOLVERS = ["newton-cholesky", "lbfgs", "newton-cg", "liblinear", "sag", "saga"]
COMPILED = ("sag", "saga", "liblinear")  # a fit is one compiled call
XL_SOLVERS = ["lbfgs", "newton", "gd"]
INTERCEPT_SCALING = 100.0


def _datasets():
    """``(id, source, C, dtype, target)``; ``source`` names the data (one optimum per
    source and C)."""
    out = [(f"{name} {scaling}", (name, scaling), 1.0, "float64", SMALL_TARGET)
           for name in ("breast cancer", "digits") for scaling in ("raw", "standardized")]
    for shape, C in (("tall", 1.0), ("wide", 1.0), ("wide", 0.01), ("multinomial", 1.0)):
        for dtype in ("float32", "float64"):
            out.append((f"{shape} {dtype} C={C:g}", (shape, None), C, dtype, LARGE_TARGET))
    return out


# smoke (CI): one small set and three large-set shapes at tiny sizes, seconds in all
SMOKE = ("breast cancer standardized", "tall float32 C=1", "wide float64 C=0.01",
         "multinomial float64 C=1")
DATASETS = {d[0]: d for d in _datasets() if SIZE != "smoke" or d[0] in SMOKE}
# XLOGREG_SOLVERS_SETS="tall float32 C=1,tall float64 C=1": only these data sets (the
# full run in parts, one process each: see the module's docstring)
if os.environ.get("XLOGREG_SOLVERS_SETS"):
    _only = [name.strip() for name in os.environ["XLOGREG_SOLVERS_SETS"].split(",")]
    DATASETS = {k: v for k, v in DATASETS.items() if k in _only}


def _impls(dataset):
    binary = dataset.split()[0] in ("breast", "tall", "wide")
    sk = [f"sklearn {s}" for s in SK_SOLVERS if binary or s != "liblinear"]
    return sk + [f"xlogreg {s}" for s in XL_SOLVERS]


CASES = [(d, impl) for d in DATASETS for impl in _impls(d)]  # the peers of a set first


def synthetic(m, n, n_classes, seed=0):
    """``(X, y)``: X float32 ``m x n``, y in ``0 .. n_classes - 1``; see the module's
    docstring."""
    rng = np.random.default_rng(seed)
    n_inf = max(2, n // 2)
    latent = rng.standard_normal((m, n_inf), dtype=np.float32)
    mix = ((2 * rng.random((n_inf, n_inf)) - 1) * math.sqrt(3 / n_inf)).astype(np.float32)
    X = np.empty((m, n), np.float32)
    X[:, :n_inf] = latent @ mix
    X[:, n_inf:] = rng.standard_normal((m, n - n_inf), dtype=np.float32)
    weights = (2.0 / math.sqrt(n_inf)) * rng.standard_normal((n_inf, n_classes))
    scores = (latent @ weights.astype(np.float32)).astype(np.float64)
    scores -= np.log(-np.log(rng.random(scores.shape)))  # Gumbel-max: a softmax draw
    y = np.argmax(scores, axis=1)
    flip = rng.random(m) < 0.01
    y[flip] = rng.integers(0, n_classes, int(flip.sum()))
    return X, y


def _load(source):
    """``(X float64, y)`` of a source."""
    name, scaling = source
    if name in LARGE:
        X, y = synthetic(*LARGE[name])
        return X.astype(np.float64), y
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = (load_breast_cancer if name == "breast cancer" else load_digits)(return_X_y=True)
    if scaling == "standardized":
        X = StandardScaler().fit_transform(X)
    return X.astype(np.float64), y


def objective(X64, y, coef, intercept, C):
    """Mean log-loss (binary or multinomial) plus ``||coef||^2 / (2 C m)``, float64."""
    coef = np.asarray(coef, np.float64)
    b = np.asarray(intercept, np.float64).ravel()
    if coef.shape[0] == 1:
        z = X64 @ coef[0] + b[0]
        loss = -np.where(y == 1, special.log_expit(z), special.log_expit(-z)).mean()
    else:
        Z = X64 @ coef.T + b
        loss = (special.logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]).mean()
    return float(loss + np.sum(coef ** 2) / (2 * C * len(y)))


def _make(impl, tol, C, max_iter=None):
    from sklearn.linear_model import LogisticRegression as Sk

    family, solver = impl.split()
    cap = max_iter or MAX_ITER.get(solver, 10_000)
    if family == "xlogreg":
        return LogisticRegression(backend="numpy", solver=solver, C=C, tol=tol, max_epochs=cap)
    extra = dict(intercept_scaling=INTERCEPT_SCALING) if solver == "liblinear" else \
        dict(random_state=0) if solver in ("sag", "saga") else {}
    return Sk(solver=solver, C=C, tol=tol, max_iter=cap, **extra)


DATA = {}     # the data set being run: id, X (its dtype), X64, y, J
OPTIMA = {}   # (source, C) -> (J, {solver: objective})
REACHED = {}  # (data set, impl) -> whether the row got within GAP
BEST = {}     # (data set, family) -> (seconds, impl): the fastest row that got there


def _optimum(source, C, X64, y):
    key = (source, C)
    if key not in OPTIMA:
        from sklearn.linear_model import LogisticRegression as Sk

        makers = {
            "xlogreg newton": lambda: LogisticRegression(backend="numpy", solver="newton", C=C,
                                                         tol=1e-12, max_epochs=200),
            "sklearn newton-cholesky": lambda: Sk(solver="newton-cholesky", C=C, tol=1e-12,
                                                  max_iter=200),
            "sklearn lbfgs": lambda: Sk(solver="lbfgs", C=C, tol=1e-12,
                                        max_iter=OPTIMUM_LBFGS_ITER),
        }
        values = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, make in makers.items():
                try:
                    model = make().fit(X64, y)
                except (MemoryError, ValueError, FloatingPointError) as err:
                    values[name] = repr(err)[:100]
                    continue
                values[name] = objective(X64, y, model.coef_, model.intercept_, C)
        OPTIMA[key] = (min(v for v in values.values() if isinstance(v, float)), values)
    return OPTIMA[key]


def _data(dataset):
    if DATA.get("id") != dataset:
        _, source, C, dtype, _ = DATASETS[dataset]
        DATA.clear()  # one data set in memory at a time
        X64, y = _load(source)
        J, by = _optimum(source, C, X64, y)
        DATA.update(id=dataset, X=X64.astype(dtype, copy=False), X64=X64, y=y, J=J,
                    optimum_by=by)
    return DATA


def _kernels_or_skip():
    if numpy_backend.numba_kernels() is None:
        pytest.skip("the fast path needs numba: pip install \"xlogreg[fast]\"")


def _rounds(seconds):
    """Many rounds for fast fits, fewer for slow ones (the full run's time)."""
    if SIZE == "smoke":
        return 2
    return 15 if seconds < 0.05 else 5 if seconds < 0.5 else 3 if seconds < 2 else 1


def _search(fit, reached, start, budget, stop_after=None):
    """The loosest tol of ``TOLS`` at which ``fit(tol)`` ends within the goal, from
    ``TOLS[start]`` (a hint: the tol the same solver needed on the data's other dtype):
    looser while it gets there, tighter while it does not. Returns ``(tol, model, last
    fit's seconds, seconds spent, why it stopped short or None)``; a fit that runs over
    ``stop_after`` seconds is stopped (``None`` model)."""
    spent, found, i, step, why = 0.0, None, start, None, None
    while 0 <= i < len(TOLS):
        start_time = time.perf_counter()
        model, stopped = fit(TOLS[i], stop_after)
        last = time.perf_counter() - start_time
        spent += last
        if stopped:
            return TOLS[i], None, last, spent, "stopped"
        ok = reached(model)
        if ok:
            found = (TOLS[i], model, last)
        if step is None:
            step = -1 if ok else 1
        if (step == -1 and not ok) or (step == 1 and ok):
            break
        if spent > budget:
            why = "budget"
            break
        i += step
    if found is None:  # never got there: the last (tightest) fit tried
        return TOLS[i if i < len(TOLS) else -1], model, last, spent, why or "tols"
    return (*found, spent, None)


TOL_HINT = {}  # (source, C, impl) -> the tol found on the first dtype


@pytest.mark.parametrize("dataset,impl", CASES, ids=[f"{d}-{i}" for d, i in CASES])
def test_time_to_optimum(benchmark, dataset, impl, peer_threads):
    _, source, C, dtype, target = DATASETS[dataset]
    xlogreg = impl.startswith("xlogreg")
    if xlogreg:
        _kernels_or_skip()
    d = _data(dataset)
    X, X64, y = d["X"], d["X64"], d["y"]
    m, n = X.shape
    classes = int(np.max(y)) + 1
    family = impl.split()[0]
    best = BEST.get((dataset, family))

    def gap(model):
        return (objective(X64, y, model.coef_, model.intercept_, C) - d["J"]) / d["J"]

    max_iter = None

    solver = impl.split()[1]

    def fit(tol, stop_after=None):
        """One fit, stopped after ``stop_after`` seconds: ``(model, stopped)``; the
        peers on one thread (their iterates do not depend on it). sag, saga and
        liblinear run as one compiled call, which the interruption only reaches at its
        end: their iterations are capped instead, at what ``stop_after`` allows at the
        pace of one iteration (a fit that uses them all counts as stopped)."""
        out, cap = [], max_iter
        with peer_threads.limited(None if xlogreg else 1):
            if stop_after and not xlogreg and solver in COMPILED:
                probes = []  # one iteration and three: their difference is two, less
                for k in (1, 3):  # the fixed cost of a fit (checks, set-up)
                    start = time.perf_counter()
                    _make(impl, tol, C, max_iter=k).fit(X, y)
                    probes.append(time.perf_counter() - start)
                per_iteration = (probes[1] - probes[0]) / 2
                if per_iteration <= 0:
                    per_iteration = probes[1] / 3
                cap = max(1, min(MAX_ITER.get(solver, 10_000),
                                 int(stop_after / max(per_iteration, 1e-9))))
            _, stopped = peer_threads.run_capped(
                lambda: out.append(_make(impl, tol, C, cap).fit(X, y)), stop_after)
        if not stopped and cap and not xlogreg and cap < MAX_ITER.get(solver, 10_000):
            stopped = int(np.max(out[0].n_iter_)) >= cap
        return (None if stopped else out[0]), stopped

    cap = None  # a peer's search fit over this cannot win: stopped, the row skipped
    if best and not xlogreg:
        cap = max(PRUNE * peer_threads.cores * best[0], PRUNE_MIN_S)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if xlogreg:  # warm-up, untimed: imports, kernels compiled or loaded from cache
            # (on enough rows for the compiled kernels, not more: Newton's Hessian of
            # the wide set takes seconds an iteration)
            rows = min(m, max(4_096, 2 * getattr(numpy_backend, "FUSED_MIN_SIZE", 1 << 20) // n + 1))
            _make(impl, None, C, max_iter=2).fit(X[:rows], y[:rows])
            if impl == "xlogreg gd":  # a cap on one fit: a third of the search budget
                start = time.perf_counter()
                _make(impl, None, C, max_iter=2).fit(X, y)
                per_epoch = (time.perf_counter() - start) / 2
                max_iter = int(min(10_000, max(100, SEARCH_BUDGET_S / 3 / max(per_epoch, 1e-9))))
        hint = TOLS.index(TOL_HINT.get((source, C, impl), TOLS[START]))
        tol, model, last, spent, short = _search(fit, lambda model: gap(model) <= GAP, hint,
                                                 SEARCH_BUDGET_S, cap)
        if short == "stopped":
            pytest.skip(f"{impl} on {dataset}: a fit at tol={tol:g} on one thread was "
                        f"stopped after {last:.3g} s, over {cap / best[0]:.3g}x the "
                        f"{best[0]:.3g} s of {best[1]} to the optimum: it cannot be the "
                        "fastest")
        reached = short is None
        REACHED[dataset, impl] = reached
        if reached:
            TOL_HINT.setdefault((source, C, impl), tol)
        benchmark.group = (f"solvers: time to the optimum (1e-6 relative), {dataset}, "
                           f"{m}x{n}{f' {classes} classes' if classes > 2 else ''} {dtype}")
        info = dict(tol=tol, m=m, n=n, classes=classes, C=C, dtype=dtype, reached=reached,
                    search_s=round(spent, 3), optimum=d["J"],
                    optimum_by={k: v for k, v in d["optimum_by"].items()})
        if xlogreg:
            # timed on Numba's and BLAS's default threads, as a user runs it; for the
            # record, how long one fit takes on one thread (untimed, stopped once lost)
            limit, threads = None, _numba_threads()
            times = {threads: last}
            if last < DIAGNOSE_BELOW_S:
                _, times = peer_threads.best(lambda: _make(impl, tol, C, max_iter).fit(X, y),
                                             known=times)
            peers = [p for p in _impls(dataset) if p.startswith("sklearn")]
            got_there = [p for p in peers if REACHED.get((dataset, p))]
            info.update(threads=threads, best_of="xlogreg", target=target,
                        untimed_s={str(k): round(t, 5) for k, t in times.items()},
                        versus=got_there or [p for p in peers if (dataset, p) in REACHED])
            if not got_there:
                info["versus_note"] = "no scikit-learn solver reached the optimum"
            if max_iter:
                info["max_epochs"] = max_iter
            seconds = last
        else:
            limit, times = peer_threads.best(lambda: _make(impl, tol, C).fit(X, y),
                                             known={1: last})
            threads = limit
            info.update(peer_threads.info(threads, times))
            seconds = times[threads]
        if impl.endswith("liblinear"):
            info["intercept_scaling"] = INTERCEPT_SCALING
        if not reached:
            why = {"budget": f"after {spent:.0f} s of search (budget {SEARCH_BUDGET_S} s)",
                   "tols": "at the tightest tol"}[short]
            info["note"] = (f"not within {GAP:g} of the optimum: gap {gap(model):.1e} at tol "
                            f"{tol:g}, {int(np.max(model.n_iter_))} iterations, {why}")
        elif best is None or seconds < best[0]:
            BEST[dataset, family] = (seconds, impl)
        label(benchmark, "solvers", impl, dataset=dataset, **info)
        del caught[:]  # only what the timed fits say
        with peer_threads.limited(limit):
            model = benchmark.pedantic(lambda: _make(impl, tol, C, max_iter).fit(X, y),
                                       setup=peer_threads.pause_setup,
                                       rounds=_rounds(seconds), iterations=1)
    said = sorted({str(w.message).split("\n")[0] for w in caught
                   if not issubclass(w.category, (DeprecationWarning, FutureWarning))})
    if said:
        benchmark.extra_info["warning"] = "; ".join(said)[:200]
    loss = objective(X64, y, model.coef_, model.intercept_, C)
    benchmark.extra_info.update(loss=loss, gap=(loss - d["J"]) / d["J"],
                                epochs=int(np.max(model.n_iter_)))
    assert math.isfinite(loss)


def _numba_threads():
    import numba

    return numba.get_num_threads()
