"""Convergence curves: the objective minus its optimum against time, one per solver.

A curve is sampled the way benchopt samples solvers that have no callback: the solver
is refit from scratch with a budget of 1, 2, 4, ... epochs (iterations for lbfgs and
newton-cholesky) and no stopping tolerance (``tol=None`` for xlogreg, ``tol=0`` for
scikit-learn), so it runs its whole budget. A point is the wall time of that complete
``fit`` (input checks included, as a user pays them; the median of 3 fits when one
takes under 0.2 s) and the penalized objective its coefficients reach, computed
afterwards, untimed, in float64. With the same ``random_state`` the fit with budget
``2k`` repeats the ``k`` epochs of the fit before it, so a stochastic solver's points
lie on one trajectory. Each solver is fitted once with budget 1 before its curve, so
compiling and importing stay out of it. A curve costs about twice its longest fit;
that fit is the benchmark's own timed call (its row in the report) and the last point.

Everyone fits the float32 data of ``test_training.py`` (standardized
``make_classification``) with the same objective (C=1; SGDClassifier's
``alpha = 1 / (C m)``), each with its default step size. The optimum is the lower
objective of scikit-learn's and xlogreg's lbfgs run to ``tol=1e-12`` on the float64
copy of those data. scikit-learn's
liblinear is left out: it penalizes the intercept, a different objective. Solver
warnings (a fallback, a failed line search) are recorded with the row. The
scikit-learn curves run at each solver's fastest thread count on this machine
(``peer_threads``: 1 thread or every core, tried untimed on the longest budget) and
record it as ``threads``.
"""

import statistics
import time
import warnings

import numpy as np
import pytest

from _common import CFG, SIZE, classification_data, label, objective
from xlogreg import LogisticRegression

C = 1.0
DATA = {}

# the longest budget of each curve (epochs, or iterations) at the full and quick sizes:
# the quasi-Newton solvers reach the optimum before it, the stochastic ones a plateau
# or the time of the slowest (without a tolerance, converged Newton and L-BFGS fits
# spin in their line searches: 8 to 16 newton-cholesky iterations took 14x longer)
XLOGREG = {"lbfgs": 32, 1: 4, 64: 32, 1024: 32, None: 64}
PEERS = {"sklearn LogisticRegression lbfgs": 32,
         "sklearn LogisticRegression newton-cholesky": 8,
         "sklearn LogisticRegression sag": 16,
         "sklearn SGDClassifier (default: optimal)": 16,
         "sklearn SGDClassifier (constant 0.01)": 16}


def _budgets(longest):
    longest = min(longest, 2) if SIZE == "smoke" else longest
    return [2 ** i for i in range(longest.bit_length())]


def _data():
    """Training and test rows, and the optimum of the training objective."""
    if not DATA:
        from sklearn.linear_model import LogisticRegression as Sk

        X_tr, X_te, y_tr, y_te = classification_data(*CFG["train"])
        X64 = X_tr.astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits = [Sk(C=C, tol=1e-12, max_iter=20_000).fit(X64, y_tr),
                    LogisticRegression(backend="numpy", solver="lbfgs", C=C, tol=1e-12,
                                       max_epochs=20_000).fit(X64, y_tr)]
        DATA.update(X_tr=X_tr, X_te=X_te, y_tr=y_tr, y_te=y_te,
                    optimum=min(objective(X_tr, y_tr, f.coef_, f.intercept_, C) for f in fits))
    return DATA


def _host(a):
    return a if isinstance(a, np.ndarray) else a.get()  # CuPy: to the host for scoring


def _curve(benchmark, make, longest, fit_args, synchronize=lambda: None):
    """Sample the curve of ``make(budget)`` and record it in the row's extra_info."""
    d = _data()
    budgets = _budgets(longest)
    caught = []

    def fit(budget):
        start = time.perf_counter()
        model = make(budget).fit(*fit_args)
        synchronize()
        return time.perf_counter() - start, model

    def value(model):
        return objective(d["X_tr"], d["y_tr"], _host(model.coef_), _host(model.intercept_), C)

    points = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(1)  # warm-up: compilation, imports, first-touch of the data
        for budget in budgets[:-1]:
            seconds, model = fit(budget)
            if seconds < 0.2:
                seconds = statistics.median([seconds, fit(budget)[0], fit(budget)[0]])
            points.append([seconds, value(model)])
        last = []

        def longest_fit():
            seconds, model = fit(budgets[-1])
            last.append(seconds)
            return model

        short = not points or points[-1][0] < 0.1  # the last fit about doubles the one before
        model = benchmark.pedantic(longest_fit, rounds=3 if short else 1, iterations=1)
    points.append([statistics.median(last), value(model)])
    coef, intercept = _host(model.coef_).ravel(), float(_host(model.intercept_).ravel()[0])
    loss = value(model)
    benchmark.extra_info.update(
        curve=points, optimum=d["optimum"], epochs=budgets[-1], loss=loss,
        gap=(loss - d["optimum"]) / d["optimum"],
        accuracy=float(np.mean(((d["X_te"] @ coef + intercept) >= 0) == d["y_te"])))
    budget_out = ("max_iter", "max_epochs", "did not converge", "ITERATIONS REACHED LIMIT")
    messages = sorted({str(w.message).split("\n")[0] for w in caught
                       if not issubclass(w.category, (DeprecationWarning, FutureWarning))
                       and not any(text in str(w.message) for text in budget_out)})
    if messages:  # a budget running out is the point; anything else is recorded
        benchmark.extra_info["warning"] = "; ".join(messages)[:200]


def _group(benchmark):
    X = _data()["X_tr"]
    benchmark.group = f"convergence {X.shape[0]}x{X.shape[1]} float32"


@pytest.mark.parametrize("solver", list(XLOGREG),
                         ids=lambda s: s if isinstance(s, str) else f"batch{s or 'full'}")
def test_xlogreg_curve(benchmark, backend, solver):
    d = _data()
    X, y = backend.asarray(d["X_tr"]), backend.asarray(d["y_tr"])  # on the device, untimed
    if solver == "lbfgs":
        impl = f"xlogreg {backend.name} lbfgs"

        def make(budget):
            return LogisticRegression(backend=backend.name, solver="lbfgs", C=C, tol=None,
                                      max_epochs=budget)
    else:  # the default step, as a user gets it
        step = LogisticRegression().learning_rate
        step = "auto step" if step == "auto" else f"lr {step:g}"
        impl = f"xlogreg {backend.name} GD {f'batch {solver}' if solver else 'full batch'} ({step})"

        def make(budget):
            return LogisticRegression(backend=backend.name, batch_size=solver, C=C, tol=None,
                                      max_epochs=budget, random_state=0)
    _group(benchmark)
    label(benchmark, "curve", impl, batch_size=solver if solver != "lbfgs" else None)
    _curve(benchmark, make, XLOGREG[solver], (X, y), backend.synchronize)


@pytest.mark.parametrize("impl", list(PEERS))
def test_peer_curve(benchmark, impl, peer_threads):
    from sklearn.linear_model import LogisticRegression as Sk
    from sklearn.linear_model import SGDClassifier

    d = _data()
    m = d["X_tr"].shape[0]
    if "SGDClassifier" in impl:
        schedule = dict(learning_rate="constant", eta0=0.01) if "constant" in impl else {}

        def make(budget):
            return SGDClassifier(loss="log_loss", alpha=1.0 / (C * m), tol=None,
                                 max_iter=budget, random_state=0, **schedule)
    else:
        solver = impl.split()[-1]

        def make(budget):
            return Sk(solver=solver, C=C, tol=0, max_iter=budget, random_state=0)
    _group(benchmark)
    longest = _budgets(PEERS[impl])[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        limit, times = peer_threads.best(lambda: make(longest).fit(d["X_tr"], d["y_tr"]))
    label(benchmark, "curve", impl, **peer_threads.info(limit, times))
    with peer_threads.limited(limit):
        _curve(benchmark, make, PEERS[impl], (d["X_tr"], d["y_tr"]))
