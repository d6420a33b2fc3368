"""Out-of-core training on one machine: stream row chunks from disk into
``partial_fit``.

>>> import numpy as np, tempfile, os
>>> from xlogreg import LogisticRegression, fit_out_of_core
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 5)).astype(np.float32)
>>> y = (X[:, 0] > 0).astype(np.int64)
>>> path = os.path.join(tempfile.mkdtemp(), "X.npy")
>>> np.save(path, X)
>>> clf = LogisticRegression(batch_size=64, random_state=0)
>>> clf = fit_out_of_core(clf, path, y, epochs=3, chunk_rows=500, progress=False)
>>> len(clf.loss_curve_), bool(clf.score(X, y) > 0.95)
(3, True)
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from sklearn.utils import check_random_state

from ._dask import require

__all__ = ["fit_out_of_core", "open_array"]

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .estimator import LogisticRegression

# a path to a .npy file or Zarr store, or an array-like read by row slices
ArraySource = Union[str, os.PathLike, Any]

CHUNK_BYTES = 32 << 20  # rows read at once: large enough for sequential disk reads


def _sparse(X):
    from . import backends

    return backends.is_sparse(X)


def open_array(source, name="X"):
    """``source`` as an array-like read by slices without loading it: a path to a
    ``.npy`` file (memory-mapped) or a Zarr array, or any object with ``shape``,
    ``dtype`` and row slicing (``np.memmap``, ``zarr.Array``, ``h5py.Dataset``, a
    SciPy sparse matrix: CSR is sliced as it is, other formats are converted to CSR
    once)."""
    if _sparse(source):
        return source if source.format == "csr" else source.tocsr()
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.endswith(".npy"):
            return np.load(path, mmap_mode="r")
        if os.path.isdir(path) or path.endswith(".zarr"):
            zarr = require("zarr", f"reading {name} from a Zarr store")
            return zarr.open_array(path, mode="r")
        raise ValueError(f"{name}={path!r}: expected a .npy file or a Zarr store")
    if not all(hasattr(source, a) for a in ("shape", "dtype", "__getitem__")):
        raise TypeError(
            f"{name} must be a path, an array or an array-like with shape, dtype and "
            f"slicing; got {type(source).__name__}"
        )
    return source


def _chunk_rows(X, batch_size):
    # a sparse row costs its non-zeros (value and column index), not its width
    width = X.nnz / X.shape[0] * (X.dtype.itemsize + 4) if _sparse(X) else \
        X.shape[1] * X.dtype.itemsize
    rows = max(1, int(CHUNK_BYTES // max(1, width)))
    if batch_size:
        rows = max(batch_size, rows - rows % batch_size)  # no short batch inside
    stored = getattr(X, "chunks", None)  # Zarr: whole stored chunks per read
    if isinstance(stored, tuple) and stored and isinstance(stored[0], int):
        rows = max(stored[0], rows - rows % stored[0])
    return min(rows, X.shape[0])


def fit_out_of_core(estimator: LogisticRegression, X: ArraySource, y: ArraySource, *,
                    classes: ArrayLike | None = None,
                    sample_weight: ArraySource | None = None, epochs: int = 1,
                    chunk_rows: int | None = None, check_input: bool = True,
                    progress: bool = True) -> LogisticRegression:
    """Train ``estimator`` on data too large for memory; returns the estimator.

    Each epoch reads the rows in chunks of ``chunk_rows`` (about 32 MiB by default,
    aligned to Zarr's chunks), in a random chunk order when ``estimator.shuffle``,
    and passes each chunk to ``estimator.partial_fit``: one pass of its
    ``batch_size`` steps over that chunk, shuffled within it. At most one chunk is in
    memory. Training continues from the estimator's state, as ``partial_fit`` does.

    With ``check_input`` (the default) one pass over the data first checks every
    chunk (NaN/inf, labels, weights) and collects ``classes`` when not given, so bad
    data is found before any training; turn it off to skip that read when the data
    is known to be clean and ``classes`` is given.

    Afterwards ``loss_curve_`` holds the mean training loss of each epoch and
    ``n_iter_`` the number of epochs. An exception (bad data found, an interrupt)
    leaves the estimator exactly as it was before the call.
    """
    from .estimator import restored_on_error

    with restored_on_error(estimator):
        return _fit_out_of_core(estimator, X, y, classes=classes,
                                sample_weight=sample_weight, epochs=epochs,
                                chunk_rows=chunk_rows, check_input=check_input,
                                progress=progress)


def _fit_out_of_core(estimator, X, y, *, classes, sample_weight, epochs, chunk_rows,
                     check_input, progress):
    X = open_array(X, "X")
    y = open_array(y, "y")
    sample_weight = None if sample_weight is None else open_array(sample_weight,
                                                                  "sample_weight")
    if len(X.shape) != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"Expected a non-empty 2-D X, got shape {X.shape}")
    m = X.shape[0]
    for name, a in (("y", y), ("sample_weight", sample_weight)):
        if a is not None and tuple(a.shape) != (m,):
            raise ValueError(f"{name} has shape {tuple(a.shape)}, expected ({m},) "
                             f"to match X's {m} rows")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    rows = chunk_rows or _chunk_rows(X, estimator.batch_size)
    if not (isinstance(rows, int) and rows >= 1):
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    starts = list(range(0, m, rows))

    def read(a, start):
        if a is None:
            return None
        return a[start:start + rows] if _sparse(a) else np.asarray(a[start:start + rows])

    if check_input:
        found = _check(X, y, sample_weight, starts, read, progress)
        if classes is None:
            classes = found
        else:
            unknown = np.setdiff1d(found, np.asarray(classes))
            if unknown.shape[0]:
                raise ValueError(f"y contains labels not in classes: {unknown!r}; "
                                 f"classes are {np.asarray(classes)!r}")
    if classes is None and not hasattr(estimator, "classes_"):
        raise ValueError("classes must be given when check_input=False on an "
                         "unfitted estimator (it is what the check pass collects)")

    rng = check_random_state(estimator.random_state)
    curve = []
    bar = _bar(progress, epochs * m, "train")
    try:
        for epoch in range(epochs):
            order = rng.permutation(len(starts)) if estimator.shuffle else range(len(starts))
            total = 0.0
            if bar is not None:
                bar.set_description(f"epoch {epoch + 1}/{epochs}")
            for j in order:
                Xc = read(X, starts[j])
                estimator.partial_fit(Xc, read(y, starts[j]), classes=classes,
                                      sample_weight=read(sample_weight, starts[j]))
                total += estimator.loss_curve_[-1] * Xc.shape[0]
                if bar is not None:
                    bar.update(Xc.shape[0])
                    bar.set_postfix(loss=f"{estimator.loss_curve_[-1]:.5g}")
            curve.append(total / m)
    finally:
        if bar is not None:
            bar.close()
    estimator.loss_curve_ = curve
    estimator.n_iter_ = epochs
    return estimator


def _bar(progress, total, desc):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="rows", unit_scale=True, desc=desc, leave=False)


def _check(X, y, sample_weight, starts, read, progress):
    """One pass: every chunk finite, labels discrete, weights valid; the labels."""
    labels = []
    bar = _bar(progress, X.shape[0], "check")
    try:
        for start in starts:
            Xc = read(X, start)
            if Xc.dtype.kind not in "fiub":
                raise ValueError(f"X must hold real numbers, got dtype {Xc.dtype}")
            values = Xc.data if _sparse(Xc) else Xc
            # the sum is finite when every entry is: O(1) memory; rows only if not
            if Xc.dtype.kind == "f" and not math.isfinite(float(np.sum(values, dtype=np.float64))):
                if _sparse(Xc):  # the row holding the first bad stored value
                    first = int(np.flatnonzero(~np.isfinite(Xc.data))[0])
                    bad = np.searchsorted(Xc.indptr, [first], side="right") - 1
                else:
                    bad = np.flatnonzero(~np.isfinite(Xc).all(axis=1))
                if bad.shape[0]:
                    raise ValueError(
                        f"Input X contains NaN or infinity (row {start + int(bad[0])}).")
            yc = read(y, start)
            if yc.dtype.kind == "f" and not np.all(np.isfinite(yc) & (yc == np.round(yc))):
                raise ValueError("Unknown label type: continuous (or NaN) values in y")
            labels.append(np.unique(yc))
            sc = read(sample_weight, start)
            if sc is not None and not np.all(np.isfinite(sc) & (sc >= 0)):
                raise ValueError("sample_weight must be finite and non-negative")
            if bar is not None:
                bar.update(Xc.shape[0])
    finally:
        if bar is not None:
            bar.close()
    return np.unique(np.concatenate(labels))
