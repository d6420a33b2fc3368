"""benchopt solver for xlogreg, for benchopt's ``benchmark_logreg_l2``.

The benchmark minimizes ``sum_i log(1 + exp(-y_i x_i.w)) + lmbd / 2 ||w||^2``
with labels in {-1, 1} and no intercept. xlogreg minimizes scikit-learn's
``C * sum_i L_i + ||w||^2 / 2``: the same objective times ``C = 1 / lmbd``, so
the same minimizer. ``fit_intercept=False``; the labels are passed as they come
(``classes_ == [-1, 1]``, so ``coef_`` is the weight vector of the +1 class).

Curves are sampled by iterations (benchopt's ``"iteration"`` strategy): each
point is a fresh fit from zero with ``max_epochs=n_iter`` and ``tol=None``, so
``lbfgs``/``newton`` run exactly ``n_iter`` iterations (or stop at an exact
optimum) and ``gd`` exactly ``n_iter`` full-batch steps, with the automatic
step (``learning_rate="auto"``: the line search in standardized coordinates).

Copy or link this file into the ``solvers/`` folder of a clone of the
benchmark (``bench/benchopt/run.sh`` links it), or pass its path to
``benchopt run -s``. Named ``xlogreg_solver.py``, not ``xlogreg.py``, so that it
never shadows the package; see ``bench/benchopt/README.md``.
"""

import warnings

import numpy as np
from benchopt import BaseSolver


def _estimator(solver, lmbd, backend):
    from xlogreg import LogisticRegression

    return LogisticRegression(
        solver=solver, C=1.0 / lmbd, penalty="l2", fit_intercept=False,
        learning_rate="auto", batch_size=None, tol=None, backend=backend,
    )


class Solver(BaseSolver):
    name = "xlogreg"

    # xlogreg is installed from its source tree (``pip install -e ".[fast]"``);
    # it is not a registry package, so benchopt has nothing to install.
    requirements = []

    parameters = {
        "solver": ["lbfgs", "newton", "gd"],
        # "numpy": the Numba CPU kernels; "cupy": the GPU (the data are moved
        # there once, in set_objective, outside the timed run).
        "backend": ["numpy"],
    }
    parameter_template = "{solver},{backend}"

    sampling_strategy = "iteration"
    support_sparse = True

    def skip(self, X, y, lmbd):
        # A solver value the installed xlogreg does not know (``"newton"``
        # before it lands) is refused by the parameter validation at fit.
        from sklearn.utils._param_validation import InvalidParameterError

        Xs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
        ys = np.array([-1.0, 1.0, 1.0, -1.0])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = _estimator(self.solver, 1.0, self.backend)
                est.set_params(max_epochs=1).fit(Xs, ys)
        except InvalidParameterError as exc:
            return True, f"this xlogreg has no solver={self.solver!r}: {exc}"
        except ImportError as exc:
            return True, f"backend {self.backend!r} unavailable: {exc}"
        return False, None

    def set_objective(self, X, y, lmbd):
        self.lmbd = lmbd
        if self.backend == "cupy":
            import cupy
            from scipy import sparse

            if sparse.issparse(X):
                import cupyx.scipy.sparse as cusparse

                X = cusparse.csr_matrix(X.tocsr())
            else:
                X = cupy.asarray(X)
            y = cupy.asarray(y)
        elif not hasattr(X, "tocsr"):
            X = np.ascontiguousarray(X, dtype=np.float64)
        self.X, self.y = X, y
        self.clf = _estimator(self.solver, lmbd, self.backend)
        self.coef = np.zeros(X.shape[1])

    def warm_up(self):
        # Numba compiles its kernels on the first call; benchopt does not time
        # warm_up.
        self.run_once(2)

    def run(self, n_iter):
        if n_iter == 0:
            self.coef = np.zeros(self.X.shape[1])
            return
        self.clf.set_params(max_epochs=n_iter)
        with warnings.catch_warnings():
            # max_epochs reached is the point of the iteration strategy.
            warnings.simplefilter("ignore")
            self.clf.fit(self.X, self.y)
        self.coef = self.clf.coef_

    def get_result(self):
        coef = self.coef
        if not isinstance(coef, np.ndarray):  # CuPy, back to the host once
            coef = coef.get()
        return dict(beta=np.asarray(coef, dtype=np.float64).ravel())
