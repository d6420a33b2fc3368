"""``LogisticRegression``: the scikit-learn estimator over the one training loop."""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from array_api_compat import array_namespace
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from . import backends

from . import _dask
from .losses import log_sigmoid, logsumexp, sigmoid, softmax
from .models import encode_targets
from .optimizers import SCHEDULES, LearningRate, _predict_index, gradient_descent, lbfgs

__all__ = ["LogisticRegression"]

_FLOATS = [np.float64, np.float32]
_PREDICT = object()  # marks a call with no y at all, as opposed to y=None


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression trained by gradient descent on NumPy or CuPy.

    Two classes give logistic regression (sigmoid); more give multinomial logistic
    regression (softmax). One training loop serves every batch size:
    ``batch_size=None`` is batch gradient descent, ``1`` stochastic, ``k`` mini-batch;
    ``solver="lbfgs"`` minimizes the same objective with a quasi-Newton method.

    Parameters
    ----------
    backend : {"auto", "numpy", "cpu", "cupy", "cuda", "gpu", "array_api_strict"}, \
            default="auto"
        Where the arithmetic runs. ``"auto"``: CuPy arrays stay on their GPU; other
        input goes to the backend named by the ``XLOGREG_BACKEND`` environment
        variable if set, else the GPU when CuPy sees one, else NumPy.
    solver : {"gd", "lbfgs"}, default="gd"
        ``"gd"``: gradient descent with ``batch_size``, ``learning_rate`` and its
        schedule. ``"lbfgs"``: L-BFGS on the full-batch gradient, on the same device,
        to the optimum of the penalized objective (scikit-learn's ``solver="lbfgs"``):
        ``max_epochs`` bounds its iterations and it stops when the largest entry of
        the gradient is below ``tol``; the step-size parameters do not apply, and
        ``batch_size``, ``early_stopping`` and ``partial_fit`` are errors with it.
    batch_size : int or None, default=None
        Examples per gradient step; ``None`` (or at least the number of samples)
        uses all of them.
    learning_rate : float, default=0.1
        The step size ``alpha`` of the slides (``eta0`` of the schedules).
    lr_schedule : {"constant", "invscaling", "adaptive"}, default="constant"
        ``invscaling``: ``learning_rate / (t + 1) ** power_t`` at update ``t``.
        ``adaptive``: divide by 5 after ``n_iter_no_change`` epochs without progress.
    power_t : float, default=0.5
        Exponent of ``invscaling``.
    max_epochs : int, default=1000
        Passes over the training data.
    tol : float or None, default=1e-4
        Stop when the epoch loss (or, with ``early_stopping``, the validation
        accuracy) fails to improve by ``tol`` for ``n_iter_no_change`` epochs in a
        row. ``None`` runs all ``max_epochs``.
    n_iter_no_change : int, default=5
        Epochs without progress before stopping or cutting the rate.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop on its accuracy, and keep
        the parameters that scored best on it.
    validation_fraction : float, default=0.1
        Share of the training data held out for ``early_stopping``.
    C : float or None, default=1.0
        Inverse L2 strength with scikit-learn's meaning: the minimizer is that of
        ``C * sum_i s_i L_i + ||coef||^2 / 2``; the intercept is not penalized.
        ``None``: no penalty.
    fit_intercept : bool, default=True
        Learn the intercept ``b``.
    shuffle : bool, default=True
        Reshuffle the rows each epoch (mini-batch and stochastic only).
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffles and the validation split.
    verbose : bool or int, default=False
        Show a progress bar with the loss.

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
        "solver": [StrOptions({"gd", "lbfgs"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions(set(SCHEDULES))],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "C": [Interval(Real, 0, None, closed="neither"), None],
        "fit_intercept": ["boolean"],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        backend="auto",
        solver="gd",
        batch_size=None,
        learning_rate=0.1,
        lr_schedule="constant",
        power_t=0.5,
        max_epochs=1000,
        tol=1e-4,
        n_iter_no_change=5,
        early_stopping=False,
        validation_fraction=0.1,
        C=1.0,
        fit_intercept=True,
        shuffle=True,
        random_state=None,
        verbose=False,
    ):
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
        self.C = C
        self.fit_intercept = fit_intercept
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ training
    def fit(self, X, y, sample_weight=None):
        """Train from zero on ``(X, y)``; returns ``self``."""
        self._validate_params()
        if self.solver == "lbfgs" and (self.batch_size is not None or self.early_stopping):
            raise ValueError(
                "solver='lbfgs' uses every sample at each iteration and has no "
                "early stopping; leave batch_size=None and early_stopping=False, or "
                "use solver='gd'"
            )
        backend, X, y, sample_weight = self._check_input(X, y, sample_weight, reset=True)
        classes, y_index = _unique_inverse(y)
        if classes.shape[0] < 2:
            raise ValueError(
                "LogisticRegression needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {_first(classes)!r}"
            )
        for attr in ("coef_", "intercept_", "t_", "_eta"):
            self.__dict__.pop(attr, None)
        self.classes_ = classes
        try:
            self._train(backend, X, y_index, sample_weight, self.max_epochs, self.tol,
                        self.early_stopping)
        except BaseException:
            del self.classes_  # a fit that failed leaves no model behind, not half of one
            raise
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the current state.

        ``classes`` (every label that will ever be seen) is required on the first
        call; later calls may repeat it.
        """
        first = not hasattr(self, "classes_")
        if first:
            self._validate_params()
        if self.solver != "gd":
            raise ValueError(
                f"partial_fit runs one epoch of gradient descent; it needs solver='gd', "
                f"not solver={self.solver!r}"
            )
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
        backend, X, y, sample_weight = self._check_input(X, y, sample_weight, reset=first)
        if classes is not None:
            given, _ = _unique_inverse(_like(classes, y))
            if not first and not _array_equal(given, self.classes_):
                raise ValueError(
                    f"classes={given!r} is not the same as on the first call to "
                    f"partial_fit: {self.classes_!r}"
                )
            if first:
                if given.shape[0] < 2:
                    raise ValueError(f"classes must hold at least 2 labels, got {given!r}")
                self.classes_ = given
        y_index = _encode(y, _like(self.classes_, y))
        self._train(backend, X, y_index, sample_weight, 1, None, False)
        return self

    def _train(self, backend, X, y_index, sample_weight, max_epochs, tol, early_stopping):
        xp = backend.xp
        n_classes = int(self.classes_.shape[0])
        k = 1 if n_classes == 2 else n_classes
        if _dask.is_dask_array(X):
            if early_stopping:
                raise ValueError(
                    "early_stopping is not available for Dask arrays: hold out a "
                    "validation set yourself (dask_ml.model_selection.train_test_split) "
                    "and score on it"
                )
            out_kind = "numpy"  # the parameters live on the client
            Y = _dask.targets(y_index, n_classes, X.dtype)
        else:
            out_kind = backends.input_kind(X)
            X = _on(backend, X)
            y_index = _on(backend, y_index, xp.int64)
            if sample_weight is not None:
                sample_weight = _on(backend, sample_weight, X.dtype)
            Y = encode_targets(y_index, n_classes, X.dtype, xp)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rng = backend.default_rng(seed)

        validation = rows = None
        if early_stopping:
            m = X.shape[0]
            n_val = int(math.floor(self.validation_fraction * m))
            if n_val < 1 or n_val >= m:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} of {m} samples "
                    "leaves no validation or no training samples"
                )
            perm = backend.permutation(rng, m)
            val, rows = perm[:n_val], perm[n_val:]
            sv = None if sample_weight is None else xp.take(sample_weight, val, axis=0)
            validation = (xp.take(X, val, axis=0), xp.take(y_index, val, axis=0), sv)

        if hasattr(self, "coef_"):
            W = xp.asarray(_on(backend, self.coef_, X.dtype).T, copy=True)
            b = _on(backend, self.intercept_, X.dtype)
        else:
            W = xp.zeros((X.shape[1], k), dtype=X.dtype)
            b = xp.zeros((k,), dtype=X.dtype)
        if rows is None:
            total_w = X.shape[0] if sample_weight is None else float(xp.sum(sample_weight))
        else:
            total_w = (rows.shape[0] if sample_weight is None
                       else float(xp.sum(xp.take(sample_weight, rows, axis=0))))
        alpha = 0.0 if self.C is None else 1.0 / (self.C * total_w)
        schedule = LearningRate(self.lr_schedule, self.learning_rate, self.power_t,
                                getattr(self, "_eta", None))

        if self.solver == "lbfgs":
            self._lbfgs(backend, X, Y, W, b, sample_weight, alpha, max_epochs, tol, out_kind)
            return
        result = gradient_descent(
            backend, X, Y, W, b,
            schedule=schedule, alpha=alpha, sample_weight=sample_weight, rows=rows,
            batch_size=self.batch_size, max_epochs=max_epochs, tol=tol,
            n_iter_no_change=self.n_iter_no_change, shuffle=self.shuffle, rng=rng,
            fit_intercept=self.fit_intercept, t0=getattr(self, "t_", 0),
            validation=validation, verbose=self.verbose,
            # a logistic loss stays finite while the weights blow up; far above the
            # loss of the uniform prediction, log(n_classes), means divergence
            diverge_above=100 * math.log(n_classes),
        )
        self._set_params(backend, result.W, result.b, out_kind)
        self.t_, self._eta = result.t, schedule.eta
        self.learning_rate_ = schedule(max(result.t - 1, 0))
        self.n_iter_ = result.n_epochs
        self.loss_curve_ = result.loss_curve
        self.validation_scores_ = result.validation_scores if early_stopping else None
        if tol is not None and not result.converged:
            warnings.warn(
                f"LogisticRegression stopped at max_epochs={max_epochs} before the loss "
                f"improved by less than tol={tol} for {self.n_iter_no_change} epochs; "
                "increase max_epochs or learning_rate",
                ConvergenceWarning,
            )

    def _lbfgs(self, backend, X, Y, W, b, sample_weight, alpha, max_iter, tol, out_kind):
        result = lbfgs(backend, X, Y, W, b, alpha=alpha, sample_weight=sample_weight,
                       fit_intercept=self.fit_intercept, max_iter=max_iter,
                       tol=0.0 if tol is None else tol, verbose=self.verbose)
        self._set_params(backend, result.W, result.b, out_kind)
        self.t_ = result.n_iter
        self._eta = self.learning_rate_ = None
        self.n_iter_ = result.n_iter
        self.loss_curve_ = result.loss_curve
        self.validation_scores_ = None
        if not result.converged:
            warnings.warn(
                f"LogisticRegression(solver='lbfgs') stopped at max_epochs={max_iter} "
                f"iterations before the gradient fell below tol={tol}; increase "
                "max_epochs or scale the data",
                ConvergenceWarning,
            )

    def _set_params(self, backend, W, b, out_kind):
        coef, intercept = W.T, b
        if out_kind == "numpy":
            coef = np.ascontiguousarray(backend.to_numpy(coef))
            intercept = backend.to_numpy(intercept)
        self.coef_, self.intercept_ = coef, intercept
        self.backend_ = backend.name

    # ---------------------------------------------------------------- prediction
    def _raw(self, X):
        """Scores ``X @ coef_.T + intercept_`` on the backend, and X's kind."""
        check_is_fitted(self)
        backend, X, _, _ = self._check_input(X, reset=False)
        kind = backends.input_kind(X)
        X = _on(backend, X)
        W = _on(backend, self.coef_)
        Z = backend.xp.matmul(X, W.T) + _on(backend, self.intercept_)
        return backend, Z, kind

    @staticmethod
    def _out(backend, a, kind):
        return backend.to_numpy(a) if kind == "numpy" else a

    def decision_function(self, X):
        """Raw scores: shape ``(m,)`` for two classes, ``(m, n_classes)`` for more."""
        if _dask.is_dask_array(X):
            return _dask.predict_lazy(self, "decision_function", X)
        backend, Z, kind = self._raw(X)
        return self._out(backend, Z[:, 0] if Z.shape[1] == 1 else Z, kind)

    def predict_proba(self, X):
        """Class probabilities, shape ``(m, n_classes)``."""
        if _dask.is_dask_array(X):
            return _dask.predict_lazy(self, "predict_proba", X)
        backend, Z, kind = self._raw(X)
        xp = backend.xp
        if Z.shape[1] == 1:
            P = xp.concat([sigmoid(-Z, xp), sigmoid(Z, xp)], axis=1)
        else:
            P = softmax(Z, axis=1, xp=xp)
        return self._out(backend, P, kind)

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities, finite even for huge scores."""
        if _dask.is_dask_array(X):
            return _dask.predict_lazy(self, "predict_log_proba", X)
        backend, Z, kind = self._raw(X)
        xp = backend.xp
        if Z.shape[1] == 1:
            L = xp.concat([log_sigmoid(-Z, xp), log_sigmoid(Z, xp)], axis=1)
        else:
            L = Z - logsumexp(Z, axis=1, keepdims=True, xp=xp)
        return self._out(backend, L, kind)

    def predict(self, X):
        """Class labels: the class with the largest score (``sigmoid(z) >= 0.5``)."""
        if _dask.is_dask_array(X):
            return _dask.predict_lazy(self, "predict", X)
        backend, Z, kind = self._raw(X)
        index = _predict_index(Z, backend.xp)
        if kind == "numpy":
            return np.asarray(backends.to_numpy(self.classes_))[backend.to_numpy(index)]
        return backend.xp.take(_on(backend, self.classes_), index, axis=0)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy, weighted by ``sample_weight``, in the namespace of ``X``."""
        if _dask.any_dask(X, y, sample_weight):
            check_is_fitted(self)
            return _dask.score(self, X, y, sample_weight)
        pred = self.predict(X)
        if backends.input_kind(pred) == "numpy":
            return super().score(X, y, sample_weight)
        xp = array_namespace(pred)
        hit = xp.astype(pred == xp.reshape(y, (-1,)), xp.float64)
        if sample_weight is None:
            return float(xp.mean(hit))
        return float(xp.sum(hit * sample_weight) / xp.sum(sample_weight))

    # ---------------------------------------------------------------- validation
    def _check_input(self, X, y=_PREDICT, sample_weight=None, *, reset):
        """Validate before any work; returns the backend and the checked arrays."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        if y is _PREDICT:
            y = None
        if _dask.any_dask(X, y, sample_weight):
            return _dask.check_input(self, X, y, sample_weight, reset=reset,
                                     fitting=y is not None)
        backend = backends.resolve_backend(self.backend, X, y, sample_weight)
        if backends.input_kind(X) != "numpy":
            return (backend, *self._check_device_input(X, y, sample_weight, reset))
        if y is None:
            return backend, validate_data(self, X, dtype=_FLOATS, reset=reset), None, None
        X, y = validate_data(self, X, y, dtype=_FLOATS, reset=reset)
        check_classification_targets(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=X.dtype, ensure_non_negative=True
            )
        return backend, X, y, sample_weight

    def _check_device_input(self, X, y, sample_weight, reset):
        """The checks ``validate_data`` makes, done in the array's own namespace."""
        xp = array_namespace(X)
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D X of shape (n_samples, n_features), got shape {X.shape}"
            )
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X is empty: shape {X.shape}")
        if not xp.isdtype(X.dtype, ("real floating", "integral", "bool")):
            raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.dtype not in (xp.float32, xp.float64):  # as validate_data: ints -> float64
            X = xp.astype(X, xp.float64)
        if not bool(xp.all(xp.isfinite(X))):
            raise ValueError("Input X contains NaN or infinity.")
        _check_feature_names(self, X, reset=reset)
        _check_n_features(self, X, reset=reset)
        if y is None:
            return X, None, None
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected; it is "
                "raveled.", DataConversionWarning, stacklevel=3,
            )
            y = xp.reshape(y, (-1,))
        if y.ndim != 1:
            raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{X.shape[0]}, {y.shape[0]}]"
            )
        if xp.isdtype(y.dtype, "real floating") and not bool(
            xp.all(xp.isfinite(y)) and xp.all(y == xp.round(y))
        ):
            raise ValueError("Unknown label type: continuous (or NaN) values in y")
        if sample_weight is not None:
            sample_weight = xp.astype(sample_weight, X.dtype)
            if sample_weight.shape != (X.shape[0],):
                raise ValueError(
                    f"sample_weight.shape == {sample_weight.shape}, expected {(X.shape[0],)}!"
                )
            if not bool(xp.all(xp.isfinite(sample_weight)) and xp.all(sample_weight >= 0)):
                raise ValueError("sample_weight must be finite and non-negative")
            if not bool(xp.any(sample_weight > 0)):
                raise ValueError("Sample weights must contain at least one non-zero number.")
        return X, y, sample_weight


def _on(backend, a, dtype=None):
    """``a`` on ``backend`` (small arrays from another device go through the host)."""
    if not backend.owns(a):
        a = backends.to_numpy(a)
    return backend.asarray(a, dtype=dtype) if dtype is not None else backend.asarray(a)


def _like(values, ref):
    """``values`` in the namespace of ``ref`` (host when ``ref`` is on the host or
    a Dask array)."""
    if _dask.is_dask_array(ref) or backends.input_kind(ref) == "numpy":
        return backends.to_numpy(values)
    return _on(backends.get_backend(backends.input_kind(ref)), values)


def _unique_inverse(y):
    if _dask.is_dask_array(y):
        return _dask.unique_inverse(y)
    if backends.input_kind(y) == "numpy":
        return np.unique(np.asarray(y), return_inverse=True)
    xp = array_namespace(y)
    values, inverse = xp.unique_inverse(y)
    return values, xp.reshape(inverse, (-1,))


def _encode(y, classes):
    """Indices of ``y`` in the sorted ``classes``; error for labels not in it."""
    if _dask.is_dask_array(y):
        return _dask.encode(y, classes)
    if backends.input_kind(y) == "numpy":
        y = np.asarray(y)
        index = np.clip(np.searchsorted(classes, y), 0, classes.shape[0] - 1)
        unknown = classes[index] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not in classes: {np.unique(y[unknown])!r}; "
                f"classes are {classes!r}"
            )
        return index
    xp = array_namespace(y)
    index = xp.clip(xp.searchsorted(classes, y), 0, classes.shape[0] - 1)
    if not bool(xp.all(xp.take(classes, index, axis=0) == y)):
        raise ValueError("y contains labels not in classes")
    return index


def _array_equal(a, b):
    return bool(np.array_equal(backends.to_numpy(a), backends.to_numpy(b)))


def _first(classes):
    return backends.to_numpy(classes)[0].item() if classes.shape[0] else None
