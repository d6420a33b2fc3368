"""Wide, short binary data (more features than rows), side by side: xlogreg's
``newton`` and ``lbfgs`` against scikit-learn's ``lbfgs`` and ``newton-cg`` at 1 and 2
BLAS threads. Each fit runs at the loosest tol of ``TOLS`` that ends within 1e-6
(relative) of the optimum (found first, untimed); 7 interleaved rounds, medians. Data
as benchopt's simulated sets: Gaussian ``X``, labels ``sign(X beta)``. Not a
pytest-benchmark module: run it as

    python bench/wide_short.py       # about 3 minutes on 2 cores
"""

import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression as Sk
from threadpoolctl import threadpool_limits

from xlogreg import LogisticRegression

TOLS = [10.0 ** -e for e in range(2, 13)]
GAP = 1e-6
ROUNDS = 7


def make(seed, m, n):
    rng = np.random.RandomState(seed)
    beta = rng.randn(n)
    X = rng.randn(m, n)
    return X, np.sign(X @ beta)


def objective(X, y, coef, intercept, C):
    """scikit-learn's ``C sum_i log(1 + exp(-y_i z_i)) + ||coef||^2 / 2``, labels -1/1."""
    z = y * (X @ np.ravel(coef) + float(np.ravel(intercept)[0]))
    return C * np.sum(np.logaddexp(0, -z)) + 0.5 * np.sum(np.ravel(coef) ** 2)


def runner(lib, solver, C, fit_intercept, threads):
    def run(X, y, tol):
        if lib == "xlogreg":
            return LogisticRegression(backend="numpy", solver=solver, C=C, tol=tol,
                                      fit_intercept=fit_intercept, max_epochs=10_000).fit(X, y)
        with threadpool_limits(threads):
            return Sk(solver=solver, C=C, tol=tol, fit_intercept=fit_intercept,
                      max_iter=10_000).fit(X, y)
    return run


def main():
    warnings.simplefilter("ignore")
    cases = [("200 x 500, C=1, no intercept", make(42, 200, 500), 1.0, False),
             ("200 x 500, C=100, no intercept", make(42, 200, 500), 100.0, False),
             ("500 x 5,000, C=1", make(1, 500, 5000), 1.0, True),
             ("60 x 100,000, C=1", make(2, 60, 100_000), 1.0, True)]
    peers = [("xlogreg", "newton", None), ("xlogreg", "lbfgs", None),
             ("sklearn", "lbfgs", 1), ("sklearn", "lbfgs", 2),
             ("sklearn", "newton-cg", 1), ("sklearn", "newton-cg", 2)]
    print("median time to within 1e-6 of the optimum; the tol that gets there, iterations, gap")
    for name, (X, y), C, fit_intercept in cases:
        best = [LogisticRegression(backend="numpy", solver="lbfgs", C=C, tol=1e-12,
                                   fit_intercept=fit_intercept, max_epochs=10_000).fit(X, y),
                Sk(solver="lbfgs", C=C, tol=1e-14, fit_intercept=fit_intercept,
                   max_iter=100_000).fit(X, y)]
        optimum = min(objective(X, y, m.coef_, m.intercept_, C) for m in best)
        rows = {}
        print(f"== {name}")
        for lib, solver, threads in peers:
            run = runner(lib, solver, C, fit_intercept, threads)
            try:
                for tol in TOLS:
                    model = run(X, y, tol)
                    gap = (objective(X, y, model.coef_, model.intercept_, C) - optimum) / optimum
                    if gap <= GAP:
                        break
            except MemoryError as exc:  # newton's Hessian, refused before any work
                print(f"  {lib} {solver}: refused ({str(exc)[:60]}...)")
                continue
            label = f"{lib} {solver}"
            if threads is not None:
                label += f" ({threads} thread{'s' * (threads > 1)})"
            rows[label] = (run, tol, gap, int(np.max(model.n_iter_)), [])
        for _ in range(ROUNDS):  # interleaved: every peer once a round
            for run, tol, _, _, times in rows.values():
                time.sleep(0.05)
                start = time.perf_counter()
                run(X, y, tol)
                times.append(time.perf_counter() - start)
        for label, (_, tol, gap, iters, times) in rows.items():
            print(f"  {label:28s} {np.median(times) * 1e3:9.2f} ms  tol={tol:g} "
                  f"iterations={iters} gap={gap:.1e}")


if __name__ == "__main__":
    main()
