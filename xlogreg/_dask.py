"""Training on Dask arrays: the data stays on the workers, the parameters move.

``DaskBackend`` is what the one training loop (and ``lbfgs``) runs on when ``X`` is
a Dask array. Its parameters are NumPy arrays on the client; two hooks do the
distributed work, each chunk on the worker that holds it, with the chunk's own
backend (the fused Numba kernel for NumPy chunks, CuPy for CuPy chunks):

* ``fused_gradient``: every chunk's ``(loss, X.T @ dZ, sum dZ)``, summed on the
  client in float64. One map-reduce per full-batch step or L-BFGS evaluation; only
  the parameter vector and the partial sums cross the network.
* ``train_epoch``: a mini-batch epoch that visits the chunks one after another and
  hands on the parameters and the rows left over at the end of a chunk (fewer than
  ``batch_size``), so the batches are those of an in-memory epoch over the same
  order. The alternative, all chunks in parallel from the same parameters and the
  results averaged, is faster per epoch (every worker busy), but in the
  measurements (``bench/test_dask.py``) it reached the higher loss: each mode at
  the step size that suits it, in turn ends 1.6 times closer to the optimum.

Shuffling draws a random order of the chunks and a random order within each chunk:
a global permutation would move every row across the network each epoch.

Dask is imported only when a Dask array is met, so it stays an optional extra.
"""

from __future__ import annotations

import importlib
import math
import warnings
from dataclasses import dataclass

import numpy as np
from array_api_compat import array_namespace, is_dask_array
import array_api_compat.numpy as np_xp
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.validation import validate_data

from . import backends

from .models import encode_targets, fast_loss_and_gradient
from .optimizers import run_epoch

__all__ = ["DaskBackend", "DaskData", "INSTALL_HINT", "is_dask_array", "require"]

INSTALL_HINT = 'pip install "xlogreg[dask]"'
_WORKER_LOST = ("KilledWorker", "FutureCancelledError")  # distributed's names for it


def require(module: str, purpose: str):
    """Import ``module`` (``dask.array``, ``distributed``, ``zarr``), or an
    ``ImportError`` that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        raise ImportError(
            f"{purpose} needs {top}, which is not installed: {INSTALL_HINT}"
        ) from err


def any_dask(*arrays) -> bool:
    return any(is_dask_array(a) for a in arrays if a is not None)


@dataclass(frozen=True)
class ChunkOrder:
    """A shuffled epoch over chunked rows: the seed of a random chunk order and of
    a random order within each chunk. ``shape`` is that of a row permutation."""

    seed: int
    shape: tuple


class DaskBackend(backends.Backend):
    """Runs the training loop over a Dask array; ``chunk`` is the chunks' backend."""

    xp = np_xp
    # newton's Hessian-vector products are plain array code, which would build a
    # graph a step: every Newton step here takes its Hessian from ``hessian_sums``
    hessian_products = False

    def __init__(self, chunk: backends.Backend):
        self.chunk = chunk
        self.name = f"dask[{chunk.name}]"
        self._groups = {}

    def asarray(self, x, dtype=None):
        if is_dask_array(x):
            return x if dtype is None else x.astype(dtype)
        return np.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        return np.asarray(x.compute() if is_dask_array(x) else x)

    def owns(self, x) -> bool:
        return is_dask_array(x) or isinstance(x, (np.ndarray, np.generic))

    def default_rng(self, seed):
        return np.random.default_rng(seed)

    def permutation(self, rng, n):
        return ChunkOrder(int(rng.integers(2**62)), (n,))

    def device_info(self) -> dict:
        return {"backend": self.name, **self.chunk.device_info()}

    def data_scale(self, X, sample_weight=None, rows=None, columns=True):
        """``xlogreg.optimizers.data_scale`` as one task per worker, like the
        gradient: each sums its chunks with the chunk's backend, the client adds up."""
        dask = require("dask", "fitting on Dask arrays")
        parts = [dask.delayed(_chunks_scale, pure=True)(group)
                 for group in self._by_worker(X, X, sample_weight)]
        s1, s2, top, norm_sum, total = _merge(_compute(dask, parts))
        mean = s1 / total
        return {"mean": mean, "var": np.maximum(s2 / total - mean * mean, 0.0),
                "sq": s2 / total, "max_row": top * X.shape[0] / total,
                "mean_row": norm_sum / total}

    def fused_gradient(self, X, Y, W, b, scale, alpha, sample_weight=None):
        dask = require("dask", "fitting on Dask arrays")
        parts = [dask.delayed(_chunks_gradient, pure=True)(group, W, b)
                 for group in self._by_worker(X, Y, sample_weight)]
        parts = _compute(dask, parts)
        loss = np.asarray(math.fsum(p[0] for p in parts))
        dW = np.sum([p[1] for p in parts], axis=0) * scale
        if alpha:
            dW = dW + alpha * W
        db = np.sum([p[2] for p in parts], axis=0) * scale
        return loss, dW.astype(W.dtype), db.astype(W.dtype)

    def hessian_sums(self, X, Y, W, b, sample_weight, fit_intercept, curvature=True):
        """``xlogreg.optimizers.hessian_sums`` as one task per worker."""
        dask = require("dask", "fitting on Dask arrays")
        parts = [dask.delayed(_chunks_hessian, pure=True)(group, W, b, fit_intercept,
                                                          curvature)
                 for group in self._by_worker(X, Y, sample_weight)]
        parts = _compute(dask, parts)
        return (math.fsum(p[0] for p in parts), np.sum([p[1] for p in parts], axis=0),
                np.sum([p[2] for p in parts], axis=0) if curvature else None)

    def _by_worker(self, X, Y, sample_weight):
        """The chunks grouped by the worker that holds them: one task per worker and
        step, not one per chunk, since each task costs the scheduler milliseconds.
        Where a worker is lost the groups go stale, which costs a transfer, never a
        wrong sum. Without a distributed client, one group per chunk."""
        key = (X.name, Y.name, None if sample_weight is None else sample_weight.name)
        if key not in self._groups:
            blocks = _blocks(X, Y, sample_weight)
            try:
                from distributed import default_client

                held = default_client().who_has(X)
                where = [tuple(held.get(xb.key, ()))[:1] for xb, _, _ in blocks]
            except (ImportError, ValueError):  # no distributed, or no client
                where = [()] * len(blocks)
            groups = {}
            for i, (place, block) in enumerate(zip(where, blocks)):
                groups.setdefault(place or i, []).append(block)  # not held yet: alone
            self._groups[key] = list(groups.values())
        return self._groups[key]

    def train_epoch(self, X, Y, W, b, *, rows, batch, etas, mean_w, alpha, fit_intercept,
                    sample_weight=None, l1=0.0):
        dask = require("dask", "fitting on Dask arrays")
        blocks = _blocks(X, Y, sample_weight)
        sizes = X.chunks[0]
        visit, seeds = list(range(len(blocks))), [None] * len(blocks)
        if rows is not None:
            rng = np.random.default_rng(rows.seed)
            visit = [int(j) for j in rng.permutation(len(blocks))]
            seeds = [int(s) for s in rng.integers(2**62, size=len(blocks))]
        state = (W, b, None, 0.0)
        seen = done = 0
        for i, j in enumerate(visit):
            seen += sizes[j]
            last = i == len(visit) - 1
            steps = -(-seen // batch) if last else seen // batch
            state = dask.delayed(_chunk_epoch, pure=True)(
                *blocks[j], state, seeds[j], list(etas[done:steps]), batch, mean_w, alpha,
                fit_intercept, l1)
            done = steps
        W, b, _, loss = _compute(dask, [state])[0]
        return W, b, np.asarray(loss)


def _blocks(X, Y, sample_weight):
    xs = X.to_delayed().ravel()
    ys = Y.to_delayed().ravel()
    ss = [None] * len(xs) if sample_weight is None else sample_weight.to_delayed().ravel()
    return list(zip(xs, ys, ss))


def _compute(dask, parts):
    """``dask.compute`` on the active scheduler, with a lost worker named as such."""
    try:
        return dask.compute(*parts)
    except Exception as err:
        if type(err).__name__ not in _WORKER_LOST:
            raise
        raise RuntimeError(
            f"a Dask worker was lost during fit and its data could not be recomputed "
            f"({type(err).__name__}: {err}); the model was not updated. Build X from a "
            "source Dask can reload (dask.array.from_zarr, from_array, ...) rather than "
            "scattered data, or raise distributed.scheduler.allowed-failures"
        ) from err


def _on_chunk(block, *params):
    backend = backends.get_backend(backends.input_kind(block))
    return backend, [backend.asarray(p, dtype=block.dtype) for p in params]


def _chunks_scale(blocks):
    """Unscaled ``(sum s x, sum s x^2, max s (|x|^2 + 1), sum s (|x|^2 + 1), sum s)``
    of some chunks, in float64 on the host."""
    parts = []
    for X, _, sw in blocks:
        backend = backends.get_backend(backends.input_kind(X))
        xp = backend.xp
        X = xp.astype(X, xp.float64)
        sq = X * X
        norms = xp.sum(sq, axis=1) + 1.0
        w = xp.ones(X.shape[0], dtype=xp.float64) if sw is None else xp.astype(sw, xp.float64)
        part = (xp.matmul(w, X), xp.matmul(w, sq), xp.max(norms * w), xp.sum(norms * w),
                xp.sum(w))
        parts.append([np.asarray(backend.to_numpy(v), np.float64) for v in part])
    return _merge(parts)


def _merge(parts):
    """Adds up the workers' ``_chunks_scale``; the third entry is a maximum."""
    total = [sum(p[i] for p in parts) for i in range(5)]
    total[2] = max(float(p[2]) for p in parts)
    return [np.asarray(total[0]), np.asarray(total[1]), float(total[2]), float(total[3]),
            float(total[4])]


def _chunks_gradient(blocks, W, b):
    """Unscaled ``(sum s L, X.T @ (s dZ), sum s dZ)`` of some chunks, on the host in
    float64."""
    loss, dW, db = 0.0, 0.0, 0.0
    for X, Y, sw in blocks:
        backend, (Wc, bc) = _on_chunk(X, W, b)
        part = fast_loss_and_gradient(backend, X, Y, Wc, bc, 1.0, 0.0, sw)
        loss += float(part[0])
        dW = dW + backend.to_numpy(part[1]).astype(np.float64)
        db = db + backend.to_numpy(part[2]).astype(np.float64)
    return loss, dW, db


def _chunks_hessian(blocks, W, b, fit_intercept, curvature=True):
    """``hessian_sums`` of some chunks, added up on the host in float64."""
    from .optimizers import hessian_sums

    loss, G, H = 0.0, 0.0, 0.0
    for X, Y, sw in blocks:
        backend, (Wc, bc) = _on_chunk(X, W, b)
        part = hessian_sums(backend, X, Y, Wc, bc, sw, fit_intercept, curvature)
        loss += part[0]
        G = G + backend.to_numpy(part[1])
        H = None if not curvature else H + backend.to_numpy(part[2])
    return loss, G, H


def _chunk_epoch(X, Y, sw, state, seed, etas, batch, mean_w, alpha, fit_intercept, l1=0.0):
    """The steps of an epoch that fall in this chunk; returns the state to hand on.

    ``state`` is ``(W, b, carry, loss_sum)`` with ``carry`` the rows left over by
    earlier chunks, which go first. ``len(etas) * batch`` rows are stepped over
    (all of them at the last chunk, whose final batch may be short); the rest is
    the carry for the next chunk.
    """
    W, b, carry, total = state
    backend, (W, b) = _on_chunk(X, W, b)
    xp = backend.xp
    if seed is not None:
        perm = backend.permutation(backend.default_rng(seed), X.shape[0])
        X, Y = xp.take(X, perm, axis=0), xp.take(Y, perm, axis=0)
        sw = None if sw is None else xp.take(sw, perm, axis=0)
    if carry is not None:
        cX, cY, cs = (None if c is None else backend.asarray(c) for c in carry)
        X, Y = xp.concat([cX, X]), xp.concat([cY, Y])
        sw = None if sw is None else xp.concat([cs, sw])
    used = min(len(etas) * batch, X.shape[0])
    if used:
        W, b, loss = run_epoch(
            backend, X[:used, ...], Y[:used, ...], W, b, order=None, batch=batch,
            etas=etas, mean_w=mean_w, alpha=alpha, fit_intercept=fit_intercept,
            sample_weight=None if sw is None else sw[:used], l1=l1)
        total += float(loss)
    carry = None
    if used < X.shape[0]:  # small: fewer than batch rows, moved by value
        carry = tuple(None if a is None else backend.to_numpy(a[used:, ...]).copy()
                      for a in (X, Y, sw))
    return backend.to_numpy(W), backend.to_numpy(b), carry, total


# --------------------------------------------------------------------- input checks
def check_input(est, X, y, sample_weight, *, reset, fitting):
    """``est._check_input`` for Dask arrays: the checks of ``validate_data``.

    Shapes and dtypes are checked at once. When ``fitting``, X, y and the weights are
    persisted on the workers (the one time they are read from their source) and
    checked for NaN/inf, label type and weight sign in one pass, before any training.
    """
    da = require("dask.array", "fitting on Dask arrays")
    dask = require("dask", "fitting on Dask arrays")
    if not is_dask_array(X):
        raise TypeError(
            f"y or sample_weight is a Dask array but X is {type(X).__name__}; pass X "
            "as a Dask array too (dask.array.from_array(X))"
        )
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D X of shape (n_samples, n_features), got shape {X.shape}"
        )
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            "X has chunks of unknown size; call X.compute_chunk_sizes() first"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {X.shape}")
    if X.dtype.kind not in "fiub":
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    if backends.is_sparse(X._meta):
        raise TypeError(
            "Dask arrays with sparse chunks are not supported: pass the sparse matrix "
            "itself (scipy.sparse, e.g. X.compute() as CSR) for in-memory training, or "
            "dense chunks")
    chunk = backends.resolve_backend(est.backend, X._meta)
    if chunk.name not in ("numpy", "cupy"):
        raise ValueError(
            f"Dask arrays train on NumPy or CuPy chunks; backend={est.backend!r} is not "
            "one of them (use 'auto', 'cpu' or 'cuda')"
        )
    if X.dtype not in (np.float32, np.float64):  # as validate_data: ints -> float64
        X = X.astype(np.float64)
    if not chunk.owns(X._meta):  # host chunks, GPU asked for: each chunk moves once
        X = X.map_blocks(_to_backend, chunk.name, dtype=X.dtype,
                         meta=chunk.asarray(np.empty((0, 0), X.dtype)))
    if X.numblocks[1] > 1:  # the kernels want whole rows
        X = X.rechunk({1: -1})
    validate_data(est, X, reset=reset, skip_check_array=True)
    if not fitting:
        return DaskBackend(chunk), X, None, None
    y = _rows_like(da, X, y, "y")
    if sample_weight is not None:
        sample_weight = _rows_like(da, X, sample_weight, "sample_weight").astype(X.dtype)
    X, y, sample_weight = dask.persist(X, y, sample_weight)
    checks = {"X": da.isfinite(X).all()}
    if y.dtype.kind == "f":
        checks["y"] = (da.isfinite(y) & (y == da.round(y))).all()
    if sample_weight is not None:
        checks["sample_weight"] = (da.isfinite(sample_weight) & (sample_weight >= 0)).all()
        checks["positive"] = (sample_weight > 0).any()
    ok = dict(zip(checks, dask.compute(*checks.values())))
    if not ok["X"]:
        raise ValueError("Input X contains NaN or infinity.")
    if not ok.get("y", True):
        raise ValueError("Unknown label type: continuous (or NaN) values in y")
    if not ok.get("sample_weight", True):
        raise ValueError("sample_weight must be finite and non-negative")
    if not ok.get("positive", True):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return DaskBackend(chunk), X, y, sample_weight


def _rows_like(da, X, a, name):
    """``a`` as a 1-D Dask array chunked as X's rows."""
    if not is_dask_array(a):
        a = np.asarray(backends.to_numpy(a))
        if a.ndim == 1 and a.shape[0] == X.shape[0]:
            a = da.from_array(a, chunks=(X.chunks[0],))
    if a.ndim == 2 and a.shape[1] == 1:
        warnings.warn(f"A column-vector {name} was passed when a 1d array was expected; "
                      "it is raveled.", DataConversionWarning, stacklevel=4)
        a = a.reshape((-1,))
    if a.ndim != 1 or a.shape[0] != X.shape[0]:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: X has "
            f"{X.shape[0]} rows, {name} has shape {a.shape}"
        )
    if any(math.isnan(c) for c in a.chunks[0]):
        raise ValueError(f"{name} has chunks of unknown size; call .compute_chunk_sizes()")
    return a.rechunk((X.chunks[0],)) if a.chunks[0] != X.chunks[0] else a


def _to_backend(block, name):
    return backends.get_backend(name).asarray(block)


# -------------------------------------------------------------------- labels, targets
def unique_inverse(y):
    """Sorted labels (NumPy, on the client) and each row's index among them (lazy)."""
    da = require("dask.array", "fitting on Dask arrays")
    classes = backends.to_numpy(da.unique(y).compute())
    return classes, y.map_blocks(_index_of, classes, dtype=np.int64)


def encode(y, classes):
    """Indices of ``y`` in ``classes`` (lazy); error for a label not among them."""
    da = require("dask.array", "fitting on Dask arrays")
    classes = backends.to_numpy(classes)
    unknown = da.unique(y[~da.isin(y, classes)]).compute()
    if unknown.shape[0]:
        raise ValueError(f"y contains labels not in classes: {backends.to_numpy(unknown)!r}; "
                         f"classes are {classes!r}")
    return y.map_blocks(_index_of, classes, dtype=np.int64)


def targets(y_index, n_classes, dtype):
    """The targets of ``encode_targets``, chunk by chunk, persisted with the data."""
    k = 1 if n_classes == 2 else n_classes
    Y = y_index.map_blocks(_targets_block, n_classes, dtype, dtype=dtype,
                           chunks=(y_index.chunks[0], (k,)), new_axis=1)
    return Y.persist()


def _index_of(block, classes):
    xp = array_namespace(block)
    return xp.astype(xp.searchsorted(xp.asarray(classes), block), xp.int64)


def _targets_block(y_index, n_classes, dtype):
    return encode_targets(y_index, n_classes, dtype)


# ------------------------------------------------------------------------- prediction
def predict_lazy(est, method, X):
    """``getattr(est, method)(X)`` as a lazy Dask array: each chunk, when computed,
    runs the in-memory method on the worker that holds it."""
    _, X, _, _ = check_input(est, X, None, None, reset=False, fitting=False)
    k = est.classes_.shape[0]
    one_column = method == "predict" or (method == "decision_function" and k == 2)
    dtype = est.classes_.dtype if method == "predict" else X.dtype
    meta_xp = array_namespace(X._meta)
    if one_column:
        return X.map_blocks(_call, est, method, dtype=dtype, drop_axis=1,
                            meta=meta_xp.empty((0,), dtype=dtype))
    return X.map_blocks(_call, est, method, dtype=dtype, chunks=(X.chunks[0], (k,)),
                        meta=meta_xp.empty((0, 0), dtype=dtype))


def _call(block, est, method):
    return getattr(est, method)(block)


def score(est, X, y, sample_weight=None):
    """Mean accuracy over Dask arrays, reduced on the workers."""
    da = require("dask.array", "scoring on Dask arrays")
    pred = predict_lazy(est, "predict", X)
    y = _rows_like(da, pred, y, "y")
    hit = (pred == y).astype(np.float64)
    if sample_weight is None:
        return float(hit.mean().compute())
    sw = _rows_like(da, pred, sample_weight, "sample_weight")
    return float(((hit * sw).sum() / sw.sum()).compute())


class DaskData:
    """Dask arrays as a data kind (see ``xlogreg._data``): checked and trained where
    their chunks live, predicted lazily; the fitted attributes are NumPy arrays on
    the client."""

    def __init__(self, backend_name, *arrays):
        self.backend_name = backend_name
        self.trainer = None

    def check(self, est, X, y=None, sample_weight=None, *, reset):
        fitting = y is not None
        if fitting and est.early_stopping:
            raise ValueError(
                "early_stopping is not available for Dask arrays: hold out a validation "
                "set yourself (dask_ml.model_selection.train_test_split) and score on it")
        self.trainer, X, y, sample_weight = check_input(est, X, y, sample_weight,
                                                        reset=reset, fitting=fitting)
        return X, y, sample_weight

    def classes(self, y):
        return unique_inverse(y)

    def like_labels(self, values, y):
        return backends.to_numpy(values)

    def encode(self, y, classes):
        return encode(y, classes)

    def prepare(self, X, y_index, sample_weight, n_classes):
        return X, targets(y_index, n_classes, X.dtype), y_index, sample_weight

    def params_like(self, X_in, W, b):
        return np.ascontiguousarray(np.asarray(W).T), np.asarray(b)

    def predict(self, est, method, X):
        return predict_lazy(est, method, X)

    def score(self, est, X, y, sample_weight=None):
        return score(est, X, y, sample_weight)
