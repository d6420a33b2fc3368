"""Kinds of input data, behind one interface.

The estimator never asks what kind of array it was given: ``data_for`` picks the
object that knows (``InMemory`` for NumPy, CuPy and array-api-strict arrays, held in
this process; ``xlogreg._dask.DaskData`` for Dask arrays, held by a cluster), and
``fit`` reads: validate, find the classes, train on ``data.trainer``, assign. Each
kind checks its input (the checks of scikit-learn's ``validate_data``, done in the
array's own namespace), finds and encodes the labels, moves arrays to the backend,
and predicts.
"""

from __future__ import annotations

import warnings

import numpy as np
from array_api_compat import array_namespace, is_dask_array
from sklearn import config_context, get_config
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (_check_feature_names, _check_n_features,
                                      _check_sample_weight, validate_data)

from . import backends
from .losses import log_sigmoid, logsumexp, sigmoid, softmax
from .models import encode_targets, predict_index

__all__ = ["InMemory", "data_for", "finish"]

FLOATS = [np.float64, np.float32]


def data_for(backend_name, *arrays):
    """The data kind of ``arrays`` (X, y, sample_weight; None entries skipped)."""
    if any(is_dask_array(a) for a in arrays if a is not None):
        from ._dask import DaskData

        return DaskData(backend_name, *arrays)
    return InMemory(backends.resolve_backend(backend_name, *arrays))


def finish(method, Z, xp):
    """The output of ``method`` from the raw scores ``Z`` (``predict``: indices)."""
    binary = Z.shape[1] == 1
    if method == "decision_function":
        return Z[:, 0] if binary else Z
    if method == "predict_proba":
        if binary:
            return xp.concat([sigmoid(-Z, xp), sigmoid(Z, xp)], axis=1)
        return softmax(Z, axis=1, xp=xp)
    if method == "predict_log_proba":
        if binary:
            return xp.concat([log_sigmoid(-Z, xp), log_sigmoid(Z, xp)], axis=1)
        return Z - logsumexp(Z, axis=1, keepdims=True, xp=xp)
    return predict_index(Z, xp)


def _on(backend, a, dtype=None):
    """``a`` on ``backend`` (small arrays from another device go through the host; a
    sparse matrix is copied to the device as a sparse matrix)."""
    if backends.is_sparse(a):
        return a if backend.owns(a) else backend.asarray(a)
    if not backend.owns(a):
        a = backends.to_numpy(a)
    return backend.asarray(a, dtype=dtype) if dtype is not None else backend.asarray(a)


def _device_dense(X):
    xp = array_namespace(X)
    if not xp.isdtype(X.dtype, ("real floating", "integral", "bool")):
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    if X.dtype not in (xp.float32, xp.float64):  # as validate_data: ints -> float64
        X = xp.astype(X, xp.float64)
    if not bool(xp.all(xp.isfinite(X))):
        raise ValueError("Input X contains NaN or infinity.")
    return X


def _device_sparse(X):
    """``validate_data``'s checks for a sparse matrix on the GPU: CSR or CSC kept,
    other formats converted to CSR, integers to float64, values finite."""
    if X.format not in ("csr", "csc"):
        X = X.tocsr()
    if X.dtype.kind not in "fiub":
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    if X.dtype.kind != "f" or X.dtype.itemsize not in (4, 8):
        X = X.astype("float64")
    xp = array_namespace(X.data)
    if not bool(xp.all(xp.isfinite(X.data))):
        raise ValueError("Input X contains NaN or infinity.")
    return X


PARALLEL_CHECK_SIZE = 1 << 22


def _finite(X):
    """Whether every entry of ``X`` is finite: its sum is finite when all its entries
    are, and only where it is not is ``X`` looked at entry by entry (huge finite
    values can overflow the sum)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(X))) or bool(np.isfinite(X).all())


def _all_finite(X):
    """Whether every entry of the NumPy array ``X`` is finite, read once in row blocks
    on every core (NumPy's reductions release the GIL), each block by ``_finite``."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(os.cpu_count() or 1, 16))
    step = -(-X.shape[0] // (4 * workers))

    with ThreadPoolExecutor(workers) as pool:
        return all(pool.map(lambda lo: _finite(X[lo:lo + step]), range(0, X.shape[0], step)))


def _plain(X, y, sample_weight, data=None):
    """Whether ``validate_data`` would pass ``(X, y)`` through unchanged and has
    nothing to say of it: float32/float64 NumPy ``X``, 2-D, not empty, finite;
    integer, boolean or whole-number float labels, 1-D, one a row; no weights.
    Anything else (errors and warnings included) takes ``validate_data``'s own path.

    Large ``X`` for fitting is proved finite by the backend's one-pass scan of the
    data's scale (``data_scale``: a square sums to a finite value only if the entry is
    finite), kept as ``data.scan`` for training to reuse: the check and the scan the
    step sizes need are one read of ``X``, not two."""
    if type(X) is not np.ndarray or X.dtype not in FLOATS or X.ndim != 2 \
            or X.shape[0] < 1 or X.shape[1] < 1 or sample_weight is not None:
        return False
    if y is not None and not (type(y) is np.ndarray and y.ndim == 1
                              and y.shape[0] == X.shape[0] and y.dtype.kind in "iubf"):
        return False
    if y is not None and y.dtype.kind == "f":  # labels as floats (-1.0, 1.0): whole
        with np.errstate(invalid="ignore"):   # numbers, or scikit-learn's error
            if not (bool(np.isfinite(y).all()) and bool(np.all(y == np.trunc(y)))):
                return False
    if get_config()["assume_finite"]:
        return True
    if X.size >= PARALLEL_CHECK_SIZE:
        scan = labels = None
        if data is not None and y is not None and data.backend.name == "numpy":
            with np.errstate(over="ignore", invalid="ignore"):  # judged below
                labels = _scan_labels(y, X.shape[1])
                scan = data.backend.data_scale(X, labels=labels)
            if labels is not None and y.dtype.kind in "iub":  # for classes(): found
                data.label_range = (y, labels[1], labels[1] + labels[2] - 1)
        if scan is not None and all(np.isfinite(v).all() for v in scan.values()):
            data.scan = (X, scan)
            return True
        return _all_finite(X)  # and a scan that overflowed float64 is judged here
    return _finite(X)


SCAN_LABELS = (np.intp, np.int32, np.uint8, np.float64, np.float32)


def _scan_labels(y, n):
    """``(y, lo, K)`` for the scan's class sums (``_numba.data_scale``): the
    whole-numbered labels ``y`` in ``lo .. lo + K - 1``, where that range is small
    (the sums are ``K x n`` per chunk of rows: at most 512 KiB); else None, and no
    class sums. Labels of the common dtypes only, in native byte order (Numba has
    no float16 or long double, and each dtype is a compile of its own); booleans as
    bytes of 0 and 1 (a view could hold other bytes)."""
    if y.dtype == bool:
        y = y.astype(np.uint8)
    if not (y.dtype.isnative and y.dtype in SCAN_LABELS):
        return None
    lo, hi = float(y.min()), float(y.max())  # (no wrap-around of small int types)
    if not (-2.0 ** 52 < lo and hi < 2.0 ** 52 and hi - lo < 256
            and (hi - lo + 1) * n <= 1 << 16):
        return None
    return y, int(lo), int(hi - lo) + 1


def _unique_inverse(y, bounds=None):
    """``np.unique(y, return_inverse=True)`` in linear time for integer labels of a
    small range (counted, not sorted: 4,000,000 labels in a few milliseconds instead
    of a sort's 60); other labels are sorted. Labels that fill their range are their
    own indices less the smallest: for ``intp`` labels ``0..k-1`` the inverse is
    ``y`` itself, not a copy, so nothing downstream may write into it. ``bounds``:
    ``y``'s min and max where they are known already."""
    if y.dtype.kind in "iub" and y.ndim == 1 and y.shape[0]:
        lo, hi = bounds or (int(y.min()), int(y.max()))
        if hi - lo < 1 << 20:
            # in intp first where y's type is narrower: int8 labels -128 and 127 would
            # wrap around in int8
            wide = y if y.dtype.itemsize >= np.dtype(np.intp).itemsize else y.astype(np.intp)
            shifted = (wide - lo).astype(np.intp, copy=False) if lo else \
                wide.astype(np.intp, copy=False)
            present = (np.arange(hi - lo + 1) if hi - lo < 2  # the min and max only
                       else np.flatnonzero(np.bincount(shifted, minlength=hi - lo + 1)))
            # unsigned labels may pass intp's largest (2**63 + 5 as uint64)
            values = present.astype(y.dtype) + y.dtype.type(lo) if y.dtype.kind == "u" \
                else (present + lo).astype(y.dtype)
            if present.shape[0] == hi - lo + 1:  # every label in the range: y - lo
                return values, shifted  # (0/1 labels: y itself)
            lookup = np.zeros(hi - lo + 1, np.intp)
            lookup[present] = np.arange(present.shape[0])
            return values, lookup[shifted]
    return np.unique(y, return_inverse=True)


class InMemory:
    """Arrays in this process: NumPy (and lists, pandas) on any backend, or device
    arrays (CuPy, array-api-strict) on their own backend. Fitted attributes and
    outputs live where the input lived."""

    def __init__(self, backend):
        self.backend = self.trainer = backend

    # ------------------------------------------------------------------- checks
    def check(self, est, X, y=None, sample_weight=None, *, reset):
        """``(X, y, sample_weight)`` validated, before any work; ``y=None`` predicts."""
        if backends.is_sparse(X) and self.backend.name == "array_api_strict":
            raise TypeError("array_api_strict has no sparse arrays: pass X.toarray(), or "
                            "use backend='numpy' for sparse X")
        if backends.input_kind(X) != "numpy":
            return self._check_device(est, X, y, sample_weight, reset)
        if _plain(X, y, sample_weight, self):
            # validate_data's checks as they apply to these arrays: a third of a
            # small fit's time (breast cancer: 0.6 ms, its every other step 1 ms)
            if hasattr(est, "feature_names_in_"):  # else an array has none to check
                _check_feature_names(est, X, reset=reset)
            _check_n_features(est, X, reset=reset)
            return X, y, sample_weight
        # CSR and CSC as they are; other sparse formats become CSR (a copy)
        sparse = ["csr", "csc"]
        # large dense X: finiteness is checked here on every core, not by
        # validate_data's one-thread sum (twice the time of X @ w at 4e8 values)
        big = isinstance(X, np.ndarray) and X.size >= PARALLEL_CHECK_SIZE
        with config_context(assume_finite=big):
            if y is None:
                X = validate_data(est, X, dtype=FLOATS, accept_sparse=sparse, reset=reset)
            else:
                X, y = validate_data(est, X, y, dtype=FLOATS, accept_sparse=sparse,
                                     reset=reset)
        if big and not _all_finite(X):
            raise ValueError("Input X contains NaN or infinity.")
        if y is None:
            return X, None, None
        if not (y.ndim == 1 and y.dtype.kind in "iub"):  # integer labels are classes
            check_classification_targets(y)  # a sort of y: only where it can fail
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype,
                                                 ensure_non_negative=True)
        return X, y, sample_weight

    def _check_device(self, est, X, y, sample_weight, reset):
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D X of shape (n_samples, n_features), got shape {X.shape}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X is empty: shape {X.shape}")
        X = _device_sparse(X) if backends.is_sparse(X) else _device_dense(X)
        validate_data(est, X, reset=reset, skip_check_array=True)
        if y is None:
            return X, None, None
        xp = array_namespace(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; it "
                          "is raveled.", DataConversionWarning, stacklevel=4)
            y = xp.reshape(y, (-1,))
        if y.ndim != 1:
            raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} "
                             "instead.")
        if y.shape[0] != X.shape[0]:
            raise ValueError("Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        if xp.isdtype(y.dtype, "real floating") and not bool(
                xp.all(xp.isfinite(y)) and xp.all(y == xp.round(y))):
            raise ValueError("Unknown label type: continuous (or NaN) values in y")
        if sample_weight is not None:
            sample_weight = xp.astype(sample_weight, X.dtype)
            if sample_weight.shape != (X.shape[0],):
                raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected "
                                 f"{(X.shape[0],)}!")
            if not bool(xp.all(xp.isfinite(sample_weight)) and xp.all(sample_weight >= 0)):
                raise ValueError("sample_weight must be finite and non-negative")
            if not bool(xp.any(sample_weight > 0)):
                raise ValueError("Sample weights must contain at least one non-zero number.")
        return X, y, sample_weight

    # ------------------------------------------------------------------- labels
    def classes(self, y):
        """Sorted distinct labels, and each row's index among them."""
        if backends.input_kind(y) == "numpy":
            known = getattr(self, "label_range", (None,))
            return _unique_inverse(np.asarray(y), known[1:] if known[0] is y else None)
        xp = array_namespace(y)
        values, inverse = xp.unique_inverse(y)
        return values, xp.reshape(inverse, (-1,))

    def like_labels(self, values, y):
        """``values`` (e.g. ``classes``) in the namespace of the labels ``y``."""
        if backends.input_kind(y) == "numpy":
            return backends.to_numpy(values)
        return _on(backends.get_backend(backends.input_kind(y)), values)

    def encode(self, y, classes):
        """Indices of ``y`` in the sorted ``classes``; error for labels not in it."""
        classes = self.like_labels(classes, y)
        if backends.input_kind(y) == "numpy":
            y = np.asarray(y)
            index = np.clip(np.searchsorted(classes, y), 0, classes.shape[0] - 1)
            unknown = classes[index] != y
            if np.any(unknown):
                raise ValueError(f"y contains labels not in classes: {np.unique(y[unknown])!r}; "
                                 f"classes are {classes!r}")
            return index
        xp = array_namespace(y)
        index = xp.clip(xp.searchsorted(classes, y), 0, classes.shape[0] - 1)
        if not bool(xp.all(xp.take(classes, index, axis=0) == y)):
            raise ValueError("y contains labels not in classes")
        return index

    # ----------------------------------------------------------------- training
    def prepare(self, X, y_index, sample_weight, n_classes):
        """``(X, Y, y_index, sample_weight)`` on the backend, ``Y`` the targets."""
        be = self.backend
        X = _on(be, X)
        y_index = _on(be, y_index, be.xp.int64)
        if sample_weight is not None:
            sample_weight = _on(be, sample_weight, X.dtype)
        return X, encode_targets(y_index, n_classes, X.dtype, be.xp), y_index, sample_weight

    def params_like(self, X_in, W, b):
        """``(coef_, intercept_)`` from the trained ``(W, b)``, where ``X_in`` lived."""
        coef, intercept = W.T, b
        if backends.input_kind(X_in) == "numpy":
            return (np.ascontiguousarray(self.backend.to_numpy(coef)),
                    self.backend.to_numpy(intercept))
        return coef, intercept

    # --------------------------------------------------------------- prediction
    def predict(self, est, method, X):
        """``method`` (``predict``, ``predict_proba``, ...) of the fitted ``est``."""
        be = self.backend
        X, _, _ = self.check(est, X, reset=False)
        kind = backends.input_kind(X)
        X = _on(be, X)
        Z = X @ _on(be, est.coef_).T + _on(be, est.intercept_)
        out = finish(method, Z, be.xp)
        if method == "predict":
            if kind == "numpy":
                return np.asarray(backends.to_numpy(est.classes_))[be.to_numpy(out)]
            return be.xp.take(_on(be, est.classes_), out, axis=0)
        return be.to_numpy(out) if kind == "numpy" else out

    def score(self, est, X, y, sample_weight=None):
        pred = self.predict(est, "predict", X)
        if backends.input_kind(pred) == "numpy":
            from sklearn.metrics import accuracy_score

            return float(accuracy_score(y, pred, sample_weight=sample_weight))
        xp = array_namespace(pred)
        hit = xp.astype(pred == xp.reshape(y, (-1,)), xp.float64)
        if sample_weight is None:
            return float(xp.mean(hit))
        return float(xp.sum(hit * sample_weight) / xp.sum(sample_weight))
