"""``LogisticRegression``: the scikit-learn estimator over the one training loop."""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from . import backends
from ._data import data_for
from ._problem import Problem, validation_split
from .optimizers import (SCHEDULES, Diverged, LearningRate, LineSearch, gradient_at_zero,
                         gradient_descent, lbfgs, newton)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike  # NumPy, CuPy, Dask and array-API arrays too

__all__ = ["LogisticRegression", "restored_on_error"]


@contextlib.contextmanager
def restored_on_error(est):
    """An exception inside, ``KeyboardInterrupt`` included, restores every attribute
    of ``est`` as it was on entry: the previous model intact, or no fitted attribute
    at all (so ``check_is_fitted`` tells the truth)."""
    before = dict(vars(est))
    try:
        yield est
    except BaseException:
        vars(est).clear()
        vars(est).update(before)
        raise


def _fails_whole(method):
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        with restored_on_error(self):
            return method(self, *args, **kwargs)

    return guarded


_CHECKED: set = set()  # (class, (type, value) of each parameter) that passed the check


@functools.cache
def _param_names(cls):
    return tuple(cls._get_param_names())


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression trained by gradient descent on NumPy or CuPy.

    Two classes give logistic regression (sigmoid); more give multinomial logistic
    regression (softmax). One training loop serves every batch size:
    ``batch_size=None`` is batch gradient descent, ``1`` stochastic, ``k`` mini-batch;
    ``solver="lbfgs"`` and ``solver="newton"`` minimize the same objective with a
    quasi-Newton and Newton's method.

    Parameters
    ----------
    backend : {"auto", "numpy", "cpu", "cupy", "cuda", "gpu", "array_api_strict"}, \
            default="auto"
        Where the arithmetic runs. ``"auto"``: CuPy arrays stay on their GPU; other
        input goes to the backend named by the ``XLOGREG_BACKEND`` environment
        variable if set, else the GPU when CuPy sees one, else NumPy.
    solver : {"gd", "lbfgs", "newton"}, default="gd"
        ``"gd"``: gradient descent with ``batch_size``, ``learning_rate`` and its
        schedule. ``"lbfgs"``: L-BFGS on the full-batch gradient, on the same device,
        to the optimum of the penalized objective (scikit-learn's ``solver="lbfgs"``):
        ``max_epochs`` bounds its iterations and it stops when the largest entry of
        the gradient is below ``tol``; the step-size parameters do not apply, and
        ``batch_size``, ``early_stopping`` and ``partial_fit`` are errors with it.
        ``"newton"``: Newton's method with the exact Hessian (one pass over ``X``
        per iteration, accumulated in float64, solved by Cholesky on the device),
        with ``lbfgs``'s stopping rule and restrictions: few iterations whatever the
        scaling of the features, at ``O(n_samples (n_features n_classes)^2)`` per
        iteration and ``(n_features n_classes)^2`` floats of memory (refused with
        a ``MemoryError`` naming ``lbfgs`` where that would not fit). Where a
        Hessian costs many gradients (softmax, a hundred parameters and more), the
        steps between two Hessians solve the Newton system by conjugate gradients on
        Hessian-vector products, preconditioned by the last Hessian's factor, and
        the softmax Hessian at the starting point (weights 0) is a Kronecker product
        from one binary-sized pass. The choice for small and ill-conditioned
        problems (scikit-learn's ``newton-cholesky`` and ``newton-cg``).
    batch_size : int or None, default=None
        Examples per gradient step; ``None`` (or at least the number of samples)
        uses all of them.
    learning_rate : "auto" or float, default="auto"
        The step size ``alpha`` of the slides (``eta0`` of the schedules). ``"auto"``
        derives it from the data, so that gradient descent descends whatever the
        units of the features, at the cost of one pass over ``X`` (column means,
        spreads and the largest row norm). Full batch: gradient descent in
        standardized coordinates (features centred and scaled, as ``StandardScaler``
        would, without copying ``X``) with a backtracking line search: one pass over
        ``X`` per accepted step plus one per rejected trial (about 2 passes per epoch
        on the reference data sets); ``lr_schedule`` does not apply. Mini-batch:
        ``1 / L`` with ``L`` the curvature of a batch whose one row is the largest and
        the rest average (at ``batch_size=1`` scikit-learn's SAG step), then
        ``lr_schedule``. A float keeps the textbook step ``W -= learning_rate * dW``.
    lr_schedule : {"constant", "invscaling", "adaptive"}, default="constant"
        ``invscaling``: ``learning_rate / (t + 1) ** power_t`` at update ``t``.
        ``adaptive``: divide by 5 after ``n_iter_no_change`` epochs without progress.
    power_t : float, default=0.5
        Exponent of ``invscaling``.
    max_epochs : int, default=1000
        Passes over the training data.
    tol : float or None, default=1e-4
        Stop when the epoch loss fails to go below the best by ``tol`` times the best
        (relative, so that imbalanced data, whose optimum can be near 1e-3, trains to
        the end) for ``n_iter_no_change`` epochs in a row; with ``early_stopping``,
        when the validation accuracy fails to rise by ``tol``. ``None`` runs all
        ``max_epochs``. A fit that ends far from the optimum (its full gradient
        still promises a large decrease), below no constant model, or at
        ``max_epochs`` warns with ``ConvergenceWarning``; an epoch loss well above
        the start, or one that stays well above its best, raises
        ``FloatingPointError`` naming the measured cause.
    n_iter_no_change : int, default=5
        Epochs without progress before stopping or cutting the rate.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop on its accuracy, and keep
        the parameters that scored best on it.
    validation_fraction : float, default=0.1
        Share of the training data held out for ``early_stopping``.
    penalty : {"l2", "l1", "elasticnet"} or None, default="l2"
        The penalty, with scikit-learn's objective: the minimizer is that of
        ``C * sum_i s_i L_i + (1 - r) / 2 ||coef||^2 + r ||coef||_1`` with ``r = 0``
        for ``"l2"``, ``1`` for ``"l1"`` and ``l1_ratio`` for ``"elasticnet"``; the
        intercept is not penalized. ``None``: no penalty. Gradient descent handles
        the L1 part with a proximal (soft-thresholding) step after every update, at
        every batch size and on every backend, so ``coef_`` holds exact zeros where
        the optimum has them (mini-batches: where the last steps left them, which
        noise can differ from the optimum's). ``solver="lbfgs"`` needs a
        differentiable objective: an L1 part is an error with it.
    l1_ratio : float in [0, 1] or None, default=None
        The L1 share ``r`` of ``penalty="elasticnet"`` (required there; ignored, with
        a warning, by the other penalties).
    C : float or None, default=1.0
        Inverse penalty strength, as in scikit-learn (see ``penalty``). ``None`` or
        ``np.inf``: no penalty.
    class_weight : dict, "balanced" or None, default=None
        Weights multiplying ``sample_weight`` by class, with scikit-learn's meaning:
        a dict ``{label: weight}`` (labels left out weigh 1), or ``"balanced"``,
        ``n_samples / (n_classes * np.bincount(y))`` with the counts weighted by
        ``sample_weight``. ``partial_fit`` computes ``"balanced"`` from the labels of
        each call, over the ``classes`` of the first (scikit-learn's rule: it needs
        ``classes``, and a class absent from a call weighs nothing there); for
        weights that hold across calls, compute them once
        (``sklearn.utils.class_weight.compute_class_weight`` on a large sample of
        ``y``) and pass the dict.
    fit_intercept : bool, default=True
        Learn the intercept ``b``.
    shuffle : bool, default=True
        Reshuffle the rows each epoch (mini-batch and stochastic only).
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffles and the validation split.
    warm_start : bool, default=False
        ``fit`` starts from the current ``coef_`` and ``intercept_`` (after a small
        change of ``C``, say, it has little left to do) instead of from zero. The
        data must have the classes and features of the fitted model; the step-size
        schedule starts afresh.
    verbose : bool or int, default=False
        ``1``: a progress bar over epochs (loss and step; no total, since training
        may stop early) and a closing line. ``2``: a text line per epoch on stderr
        (epoch, loss, step, time), as scikit-learn's SGD prints them.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names (a pandas DataFrame).
    n_iter_ : int
        Epochs run by the last ``fit`` (1 for ``partial_fit``); iterations for
        ``lbfgs``.
    t_ : int
        Gradient steps taken over the model's life.
    loss_curve_ : list of float
        Penalized training loss per epoch: for batch gradient descent the objective
        before each step, otherwise the mean of the mini-batch losses met in the epoch;
        for ``lbfgs`` the objective after each iteration.
    validation_scores_ : list of float or None
        Validation accuracy per epoch with ``early_stopping``.
    learning_rate_ : float or None
        The step size of the last update (lower than ``learning_rate`` after
        ``invscaling`` or ``adaptive`` cuts); None for ``lbfgs``.
    backend_ : str
        The backend the last fit ran on.

    Notes
    -----
    Sparse ``X``: SciPy CSR and CSC matrices and arrays (other formats are converted
    to CSR once, which copies the non-zeros), and CuPy's ``cupyx.scipy.sparse``
    matrices on the GPU, where they stay. Nothing densifies ``X``: a full-batch
    gradient is one pass over the non-zeros (CSR on the CPU: a compiled parallel
    kernel; otherwise ``X @ W`` and ``X.T @ dZ``), and mini-batch epochs on CSR read
    each batch's rows through the permutation, updating only the weights of the
    batch's columns (without L1). Mini-batch training on CSC converts it to CSR once.
    Dask arrays with sparse chunks are refused.

    Fitted attributes live where the data of ``fit`` lived: NumPy arrays for host
    input (NumPy, lists, pandas) on any backend, CuPy arrays for CuPy input. Move
    them with ``backends.to_numpy(est.coef_)`` or ``cupy.asarray(est.coef_)``;
    prediction accepts either, moving the (small) parameters to the data.
    Outputs are in the namespace of the input: NumPy in, NumPy out; CuPy in, CuPy
    out, with no host round trip.

    Dask arrays (NumPy or CuPy chunks) train where their chunks live: full-batch steps
    and L-BFGS as one map-reduce over the chunks per step, mini-batches streamed
    through the chunks in turn; the fitted attributes are NumPy arrays on the client
    and prediction returns lazy Dask arrays. ``early_stopping`` is not available
    there. See ``xlogreg._dask``; for data on disk, ``xlogreg.fit_out_of_core``.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from xlogreg import LogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = LogisticRegression(backend="numpy", batch_size=64, random_state=0)
    >>> clf = clf.fit(X, y)
    >>> clf.coef_.shape
    (1, 30)
    >>> bool(clf.score(X, y) > 0.97)
    True
    """

    _parameter_constraints: dict = {
        "backend": [StrOptions(set(backends.BACKEND_NAMES))],
        "solver": [StrOptions({"gd", "lbfgs", "newton"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "learning_rate": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions(set(SCHEDULES))],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "penalty": [StrOptions({"l2", "l1", "elasticnet"}), None],
        "l1_ratio": [Interval(Real, 0, 1, closed="both"), None],
        "C": [Interval(Real, 0, None, closed="right"), None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "warm_start": ["boolean"],
        "fit_intercept": ["boolean"],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def _validate_params(self):
        """scikit-learn's check of the parameters, remembered for values already
        checked: it reads the signature (``inspect``) on every call, half a
        millisecond, a third of a small fit."""
        names = _param_names(type(self))
        values = (type(self),) + tuple((type(v), v) for v in map(self.__getattribute__, names))
        try:
            if values in _CHECKED:
                return
        except TypeError:  # a dict of class weights: not hashable, checked each time
            values = None
        super()._validate_params()
        if values is not None and len(_CHECKED) < 1024:
            _CHECKED.add(values)

    def __init__(
        self,
        *,
        backend: str = "auto",
        solver: str = "gd",
        batch_size: int | None = None,
        learning_rate: float | str = "auto",
        lr_schedule: str = "constant",
        power_t: float = 0.5,
        max_epochs: int = 1000,
        tol: float | None = 1e-4,
        n_iter_no_change: int = 5,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        penalty: str | None = "l2",
        l1_ratio: float | None = None,
        C: float | None = 1.0,
        class_weight: dict | str | None = None,
        fit_intercept: bool = True,
        shuffle: bool = True,
        random_state=None,
        warm_start: bool = False,
        verbose: bool | int = False,
    ) -> None:
        self.backend = backend
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.power_t = power_t
        self.max_epochs = max_epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.C = C
        self.class_weight = class_weight
        self.fit_intercept = fit_intercept
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # ------------------------------------------------------------------ training
    @_fails_whole
    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None) -> LogisticRegression:
        """Train from zero on ``(X, y)``; returns ``self``.

        An exception (bad input, divergence, ``KeyboardInterrupt``, a lost Dask
        worker) leaves the estimator exactly as it was before the call.
        """
        self._validate_params()
        self._check_penalty()
        if self.solver != "gd" and (self.batch_size is not None or self.early_stopping):
            raise ValueError(
                f"solver={self.solver!r} uses every sample at each iteration and has no "
                "early stopping; leave batch_size=None and early_stopping=False, or "
                "use solver='gd'"
            )
        _require_y(self, y)
        data = data_for(self.backend, X, y, sample_weight)
        X_in = X
        warm = self.warm_start and hasattr(self, "coef_")
        n_before = getattr(self, "n_features_in_", None)
        X, y, sample_weight = data.check(self, X, y, sample_weight, reset=True)
        classes, y_index = data.classes(y)
        _check_classes(classes, "the data")
        init = None
        if warm:
            if X.shape[1] != n_before or not _array_equal(classes, self.classes_):
                raise ValueError(
                    f"warm_start=True continues the fitted model, which has "
                    f"{n_before} features and classes {backends.to_numpy(self.classes_)!r}; "
                    f"this data has {X.shape[1]} features and classes "
                    f"{backends.to_numpy(classes)!r}. Fit with warm_start=False to start "
                    "from zero")
            init = (self.coef_, self.intercept_, 0, None)
        state = self._train(data, X, y_index, sample_weight, classes, X_in, init=init,
                            max_epochs=self.max_epochs, tol=self.tol,
                            early_stopping=self.early_stopping)
        self._assign(state)
        return self

    @available_if(lambda est: est.solver == "gd")
    @_fails_whole
    def partial_fit(self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None,
                    sample_weight: ArrayLike | None = None) -> LogisticRegression:
        """One epoch of gradient descent over ``(X, y)``, continuing from the current
        state; only with ``solver="gd"``.

        ``classes`` (every label that will ever be seen) is required on the first
        call; later calls may repeat it. ``early_stopping`` does not apply to
        incremental training and is an error here.
        """
        first = not hasattr(self, "classes_")
        if first:
            self._validate_params()
            self._check_penalty()
        if self.early_stopping:
            raise ValueError(
                "partial_fit trains one epoch on the data it is given and cannot hold out "
                "a validation set: set early_stopping=False, and score a held-out set "
                "between calls yourself"
            )
        if first and classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit" +
                (" (class_weight='balanced' weighs each call's labels over them)"
                 if self.class_weight == "balanced" else ""))
        _require_y(self, y)
        data = data_for(self.backend, X, y, sample_weight)
        X_in = X
        X, y, sample_weight = data.check(self, X, y, sample_weight, reset=first)
        known = None if first else self.classes_
        if classes is not None:
            given = data.like_labels(np.unique(_finite_labels(classes)), y)
            _check_classes(given, "classes")
            if known is not None and not _array_equal(given, known):
                raise ValueError(f"classes={given!r} is not the same as on the first call "
                                 f"to partial_fit: {known!r}")
            known = given
        y_index = data.encode(y, known)
        init = None if first else (self.coef_, self.intercept_, self.t_, self._eta)
        state = self._train(data, X, y_index, sample_weight, known, X_in, init=init,
                            max_epochs=1, tol=None, early_stopping=False)
        self._assign(state)
        return self

    def _train(self, data, X, y_index, sample_weight, classes, X_in, *, init, max_epochs,
               tol, early_stopping):
        """Train into local state; returns the fitted attributes as a dict."""
        backend = data.trainer
        xp = backend.xp
        n_classes = int(classes.shape[0])
        k = 1 if n_classes == 2 else n_classes
        X, Y, y_index, sample_weight = data.prepare(X, y_index, sample_weight, n_classes)
        sample_weight = _weigh_classes(self.class_weight, backend, Y, sample_weight, classes)
        full = self.solver != "gd" or self.batch_size is None or \
            self.batch_size >= X.shape[0]
        if not full and backends.is_sparse(X) and X.format != "csr":
            X = X.tocsr()  # batches are rows: one copy of the non-zeros, once
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rng = backend.default_rng(seed) if self.solver == "gd" else None  # (shuffles)
        validation = rows = None
        if early_stopping:
            validation, rows = validation_split(backend, rng, X, y_index, sample_weight,
                                                 self.validation_fraction)
            if self.batch_size is None or self.batch_size >= rows.shape[0]:
                X, Y = backend.take_rows(X, rows), xp.take(Y, rows, axis=0)
                if sample_weight is not None:
                    sample_weight = xp.take(sample_weight, rows, axis=0)
                rows = None
        sw = sample_weight if rows is None or sample_weight is None else \
            xp.take(sample_weight, rows, axis=0)
        S = (X.shape[0] if rows is None else rows.shape[0]) if sw is None \
            else float(xp.sum(sw))
        alpha, l1 = self._strengths(S)
        if init is None:
            W = xp.zeros((X.shape[1], k), dtype=X.dtype)
            b = xp.zeros((k,), dtype=X.dtype)
            t0, eta = 0, None
        else:
            coef, intercept, t0, eta = init
            W = xp.asarray(backend.asarray(backends.to_numpy(coef), dtype=X.dtype).T, copy=True)
            b = backend.asarray(backends.to_numpy(intercept), dtype=X.dtype)
        problem = Problem(backend, X, Y, sw if rows is None else sample_weight, rows, alpha,
                          self.fit_intercept, k, self, l1)
        scanned, scan = getattr(data, "scan", (None, None))
        first = None
        if scanned is X and rows is None and sw is None:
            problem._scale = scan  # the input check's read of X measured it already
            if init is None:  # ... and the gradient where the fit starts
                first = gradient_at_zero(scan, n_classes)
        state = {"classes_": classes, "backend_": backend.name, "validation_scores_": None}
        with np.errstate(all="ignore"):  # overflow is judged on the loss, not warned
            if self.solver != "gd":
                common = dict(alpha=alpha, sample_weight=sample_weight,
                              fit_intercept=self.fit_intercept, max_iter=max_epochs,
                              tol=0.0 if tol is None else tol, verbose=self.verbose)
                if self.solver == "newton":
                    _check_hessian_fits(backend, X.shape[1] + self.fit_intercept, k)
                    result = newton(backend, X, Y, W, b, **common)
                else:
                    metric = LineSearch(backend, X, Y, sample_weight, alpha,
                                        self.fit_intercept, problem.scale())
                    result = lbfgs(backend, X, Y, W, b, precondition=metric, first=first,
                                   **common)
                self._warn_lbfgs(result, max_epochs, tol, X.dtype)
                W, b = result.W, result.b
                state.update(n_iter_=result.n_iter, t_=result.n_iter,
                             loss_curve_=result.loss_curve, learning_rate_=None, _eta=None)
                final = result.loss_curve[-1] if result.loss_curve else None
            else:
                batch = self.batch_size
                full = batch is None or batch >= X.shape[0] if rows is None else \
                    batch >= rows.shape[0]
                auto = self.learning_rate == "auto"
                line_search = None
                if auto and full:
                    line_search = LineSearch(backend, X, Y, sample_weight, alpha,
                                             self.fit_intercept, problem.scale(), l1)
                eta0 = problem.auto_step(batch) if auto and not full else \
                    (1.0 if auto else self.learning_rate)
                if init is not None and auto and not full and init[3] is not None:
                    eta0 = min(eta0, init[3])  # partial_fit: the most careful step so far
                schedule = LearningRate(self.lr_schedule, eta0, self.power_t,
                                        None if auto else eta)
                # where a fresh model starts: an epoch well above it is divergence
                start = math.log(n_classes)
                try:
                    result = gradient_descent(
                        backend, X, Y, W, b,
                        schedule=schedule, alpha=alpha, sample_weight=sample_weight,
                        rows=rows, batch_size=batch, max_epochs=max_epochs, tol=tol,
                        n_iter_no_change=self.n_iter_no_change, shuffle=self.shuffle,
                        rng=rng, fit_intercept=self.fit_intercept, t0=t0,
                        validation=validation, start_loss=start, line_search=line_search,
                        verbose=self.verbose, l1=l1, first=first,
                    )
                except Diverged as err:
                    raise FloatingPointError(problem.explain(err, schedule.eta0, full)) from None
                W, b = result.W, result.b
                state.update(
                    n_iter_=result.n_epochs, t_=result.t, loss_curve_=result.loss_curve,
                    _eta=eta0 if auto else schedule.eta,
                    learning_rate_=line_search.eta if line_search is not None
                    else schedule(max(result.t - 1, 0)),
                    validation_scores_=result.validation_scores if early_stopping else None)
                final = None
                if tol is not None and not early_stopping:  # else validation decides
                    final = problem.check_optimal(W, b, result.converged, line_search)
                    if not result.converged:
                        warnings.warn(
                            f"LogisticRegression stopped at max_epochs={max_epochs} before "
                            f"the loss improved by less than tol={tol} (relative) for "
                            f"{self.n_iter_no_change} epochs; increase max_epochs, "
                            "standardize the features, or use solver='lbfgs'",
                            ConvergenceWarning, stacklevel=3)
            if final is not None:
                problem.warn_if_not_learned(final, tol)
        state["coef_"], state["intercept_"] = data.params_like(X_in, W, b)
        return state

    def _l1_share(self):
        return {"l2": 0.0, "l1": 1.0}.get(self.penalty, self.l1_ratio or 0.0)

    def _check_penalty(self):
        if self.penalty == "elasticnet" and self.l1_ratio is None:
            raise ValueError("penalty='elasticnet' needs l1_ratio, the L1 share of the "
                             "penalty in [0, 1]; e.g. l1_ratio=0.5")
        if self.penalty != "elasticnet" and self.l1_ratio is not None:
            warnings.warn(f"l1_ratio is only used with penalty='elasticnet'; it is ignored "
                          f"with penalty={self.penalty!r}", UserWarning, stacklevel=3)
        if self.solver != "gd" and self.penalty is not None and self._l1_share() > 0:
            raise ValueError(
                f"solver={self.solver!r} needs a differentiable objective and cannot minimize "
                f"penalty={self.penalty!r} (its L1 part); use solver='gd', whose "
                "proximal steps handle it, or penalty='l2'")

    def _strengths(self, S):
        """``(alpha, l1)``: the L2 and L1 strengths of ``J``, whose penalty is
        ``alpha / 2 ||W||^2 + l1 ||W||_1``; scikit-learn's ``C`` scaled by the total
        weight ``S``, as the data term is a weighted mean."""
        if self.penalty is None or self.C is None or math.isinf(self.C):
            return 0.0, 0.0
        total, share = 1.0 / (self.C * S), self._l1_share()
        return total * (1.0 - share), total * share

    def _warn_lbfgs(self, result, max_iter, tol, dtype):
        # float32 coefficients stop the objective's decrease once the gradient is a
        # few of float32's units of its start: a tol below that cannot be reached,
        # and the model is as good as float32 makes it, not "far from the optimum"
        if result.line_search_failed and str(dtype) == "float32" \
                and result.grad_end <= 1e-4 * result.grad_start:
            warnings.warn(
                f"LogisticRegression(solver={self.solver!r}): after {result.n_iter} "
                "iterations the objective stopped decreasing at float32's resolution "
                f"with max|gradient| = {result.grad_end:.2g} (from "
                f"{result.grad_start:.2g}), above tol={tol}. The coefficients are "
                "float32, like X: pass float64 X for a tighter fit, or use a tol of "
                f"about {result.grad_end:.0e}",
                ConvergenceWarning, stacklevel=4)
        elif result.line_search_failed:
            warnings.warn(
                f"LogisticRegression(solver={self.solver!r}): the line search could not lower the "
                f"objective after {result.n_iter} iterations although the gradient is "
                f"not below tol={tol}; the model may be far from the optimum. Standardize "
                "the features (sklearn.preprocessing.StandardScaler) or lower C",
                ConvergenceWarning, stacklevel=4)
        elif not result.converged:
            warnings.warn(
                f"LogisticRegression(solver={self.solver!r}) stopped at max_epochs={max_iter} "
                f"iterations before the gradient fell below tol={tol}; increase "
                "max_epochs or scale the data",
                ConvergenceWarning, stacklevel=4)

    def _assign(self, state):
        for name in _FITTED:
            self.__dict__.pop(name, None)
        self.__dict__.update(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ---------------------------------------------------------------- prediction
    def _predict(self, method, X):
        check_is_fitted(self)
        return data_for(self.backend, X).predict(self, method, X)

    def decision_function(self, X: ArrayLike) -> Any:
        """Raw scores: shape ``(m,)`` for two classes, ``(m, n_classes)`` for more."""
        return self._predict("decision_function", X)

    def predict_proba(self, X: ArrayLike) -> Any:
        """Class probabilities, shape ``(m, n_classes)``."""
        return self._predict("predict_proba", X)

    def predict_log_proba(self, X: ArrayLike) -> Any:
        """Logarithm of the class probabilities, finite even for huge scores."""
        return self._predict("predict_log_proba", X)

    def predict(self, X: ArrayLike) -> Any:
        """Class labels: the class with the largest score (``sigmoid(z) > 0.5``; a
        score of exactly 0 predicts ``classes_[0]``, as scikit-learn)."""
        return self._predict("predict", X)

    def score(self, X: ArrayLike, y: ArrayLike,
              sample_weight: ArrayLike | None = None) -> float:
        """Mean accuracy, weighted by ``sample_weight``."""
        check_is_fitted(self)
        return data_for(self.backend, X, y, sample_weight).score(self, X, y, sample_weight)


_FITTED = ("classes_", "coef_", "intercept_", "n_iter_", "t_", "loss_curve_",
           "validation_scores_", "learning_rate_", "backend_", "_eta")


def _weigh_classes(class_weight, backend, Y, sample_weight, classes):
    """``sample_weight`` times each row's class weight (scikit-learn's
    ``class_weight``), computed on the backend from the targets ``Y``."""
    if class_weight is None:
        return sample_weight
    xp = backend.xp
    n_classes = int(classes.shape[0])
    if class_weight == "balanced":
        weighted = Y if sample_weight is None else Y * xp.reshape(sample_weight, (-1, 1))
        counts = np.asarray(backend.to_numpy(xp.sum(weighted, axis=0)), np.float64)
        total = float(Y.shape[0]) if sample_weight is None else \
            float(backend.to_numpy(xp.sum(sample_weight)))
        if n_classes == 2:
            counts = np.array([total - counts[0], counts[0]])
        # a class absent from these rows (a partial_fit chunk) weighs nothing here
        with np.errstate(divide="ignore"):
            weights = np.where(counts > 0, total / (n_classes * counts), 1.0)
    else:
        from sklearn.utils.class_weight import compute_class_weight

        host = np.asarray(backends.to_numpy(classes))
        weights = np.asarray(compute_class_weight(class_weight, classes=host, y=host),
                             np.float64)
        if not np.all(np.isfinite(weights) & (weights >= 0)):
            raise ValueError(f"class_weight must be finite and non-negative, got "
                             f"{class_weight!r}")
    if n_classes == 2:  # Y is the 0/1 column of the second class
        rows = float(weights[0]) + float(weights[1] - weights[0]) * Y[:, 0]
    else:
        rows = Y @ backend.asarray(weights, dtype=Y.dtype)
    return rows if sample_weight is None else rows * sample_weight


class HessianTooLarge(MemoryError, ValueError):
    """``solver="newton"`` refused: its Hessian would not fit in memory. A
    ``MemoryError`` (what it is) and a ``ValueError`` (a bad parameter for this
    data), so that either ``except`` catches it."""


def _check_hessian_fits(backend, p, k):
    """``solver="newton"`` holds a ``(k p, k p)`` float64 Hessian and its Cholesky
    factor: refuse, before any work, where they would take over half the memory."""
    need = 2 * 8 * (k * p) ** 2
    if need <= 1 << 20:  # fits wherever Python runs: no query (/proc/meminfo: 25-90 us)
        return
    free = backend.free_memory() if hasattr(backend, "free_memory") else _host_free()
    if free is not None and need > free / 2:
        raise HessianTooLarge(
            f"solver='newton' needs its {k * p} x {k * p} Hessian and Cholesky factor "
            f"({need / 2**30:.3g} GiB) for {p} parameters x {k} classes, more than half "
            f"the free memory ({free / 2**30:.3g} GiB); use solver='lbfgs', which needs "
            "a few gradients' worth")


def _host_free():
    try:  # Linux and macOS
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _require_y(est, y):
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target "
                         "y is None")


def _check_classes(classes, where):
    if classes.shape[0] < 2:
        first = backends.to_numpy(classes)[0].item() if classes.shape[0] else None
        raise ValueError(
            f"LogisticRegression needs samples of at least 2 classes in {where}, but "
            f"{where} contains only one class: {first!r}")


def _finite_labels(classes):
    values = np.asarray(backends.to_numpy(classes) if not isinstance(classes, list)
                        else classes)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise ValueError(f"classes contains NaN or infinity: {values!r}; every class "
                         "must be a finite label")
    return values


def _array_equal(a, b):
    return bool(np.array_equal(backends.to_numpy(a), backends.to_numpy(b)))
