"""Compiled CPU kernels (Numba) for a SciPy CSR ``X``: the sparse fast path of the
NumPy backend.

The kernels read the CSR arrays (``data``, ``indices``, ``indptr``) in place, never
densifying or copying ``X``; they are compiled per dtype of ``data`` (float32,
float64) and of the indices (int32, int64). Scores, loss and gradient are summed in
float64 whatever the dtype of ``X``; ``W`` is read as a float64 copy (``n x k``, a
few MB at most, against ``X``'s hundreds).

The layout differs from the dense kernels' on purpose: ``W`` is ``(n, k)`` here, so
that the ``k`` weights one non-zero meets are side by side, where a dense row wants
``W.T``'s contiguous class rows. Rows go by blocks, as in the dense kernels: the
block's scores (a gather of ``W`` per non-zero), then its ``exp``/``log1p`` in the
dense kernels' vectorized polynomials (per row, ``math.exp`` and ``math.log1p`` cost
a quarter of the pass), then the scatter of its gradient, its rows still in cache.

- ``gradient``: one pass over the non-zeros, rows split into one chunk a thread of
  about equal non-zeros, each chunk with its own float64 accumulator (``n x k``,
  beside its copy of ``W``: see ``_gradient``) that a second parallel loop sums.
- ``epoch``: a serial mini-batch epoch reading each batch's rows through the
  permutation. Its cost is that of the batch's non-zeros, not of ``n``: with the L2
  penalty alone ``W = a V``, so the shrink of every weight is one product on ``a``;
  with an L1 penalty the shrink and the soft threshold of the weights a batch does
  not touch are applied lazily, exactly (see ``_epoch_l1``).

Measured on a 200,000 x 100,000 float64 CSR with 47 non-zeros a row (power-law
column frequencies), binary, 2 AMD EPYC cores: the gradient in 29 ms on one thread,
14 ms on two (SciPy's ``X @ w`` and ``X.T @ dz``: 26 ms, NumPy's per-row work
included: 36 ms); a shuffled batch-64 epoch in 46 ms (SGDClassifier's epoch: 120-140
ms). What it took:
- positions and column indices are cast to ``uint64`` before they index an array:
  Numba otherwise adds a test for negative indices to every access, which doubled
  the time of the loops. A ``uint64`` must never meet a signed integer in
  arithmetic: Numba types the result float64.
- no ``reassoc`` flag (the dense kernels' ``_JIT_EXACT``): with signed indices it let
  LLVM vectorize the gathers with AVX2 gather instructions, 1.4x slower than scalar
  loads here; with unsigned ones it buys nothing measurable, and without it the
  sums keep their order.
- the epoch prefetches the rows ``PREFETCH`` positions ahead in the permutation: a
  shuffled row is a few cache lines nobody predicts, and waiting for them doubled
  the epoch (86 ms against 47 ms in a bare loop; 25 ms in row order).

The reference these kernels are held to is ``xlogreg.models.loss_and_gradient`` on
``X.toarray()``; the error model is the dense kernels' (``_numba.py``), for the same
reasons.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._numba import (_JIT_EXACT, FOLD, THREAD_CAP, _exp_nonpositive, _jit, _log1p_unit,
                     _prefetch, _row, _shrink)

__all__ = ["epoch", "gradient"]

_JIT = _JIT_EXACT  # see above: no reassoc in gather loops
BLOCK = 64  # rows per block: ~40 KB of a row's values and indices at 50 non-zeros a row
PREFETCH = 4  # rows ahead: measured flat from 2 to 16, against 1.8x slower at 0
# FOLD (``_numba``): where ``a`` (or the L1 path's product of shrinks) is folded into
# the weights.
# Each chunk of the gradient owns a float64 ``n x k`` accumulator (beside its copy of
# ``W``), and a chunk of fewer non-zeros than a few times that is not worth its
# zeroing and summing; the chunks' arrays together are held under ACCUMULATOR_BYTES
# or the size of ``X``, the larger (1e6 features x 10 classes is 160 MB a chunk: a
# few chunks, not one for each of 64 cores).
ACCUMULATOR_BYTES = 1 << 28
REDUCE_BLOCK = 4096  # features per task of the accumulators' parallel sum

@_jit(inline="always", **_JIT)
def _prefetch_row(data, indices, indptr, Yflat, k, r):
    """Prefetch row ``r``: its values and indices (a hint a cache line) and its
    targets."""
    lo, hi = np.uint64(indptr[r]), np.uint64(indptr[r + 1])
    for q in range(lo, hi, np.uint64(64 // data.itemsize)):
        _prefetch(data, q)
    for q in range(lo, hi, np.uint64(64 // indices.itemsize)):
        _prefetch(indices, q)
    _prefetch(Yflat, np.uint64(r) * np.uint64(k))


@_jit(**_JIT)
def _block_scores(data, indices, indptr, Yflat, idx, lo, hi, m, W, k, z):
    """``z[(i - lo) k + c] = x_r . W[:, c]`` (``c < k``: ``W`` may hold more columns)
    for the rows ``r`` at positions ``lo:hi`` (through ``idx`` when it is not empty),
    prefetching those ``PREFETCH`` further on when ``idx`` shuffles them (in row order
    the hardware prefetches)."""
    ku = np.uint64(k)
    for i in range(lo, hi):
        if idx.shape[0] and i + PREFETCH < m:
            _prefetch_row(data, indices, indptr, Yflat, k, idx[i + PREFETCH])
        r = _row(idx, i)
        start, stop = np.uint64(indptr[r]), np.uint64(indptr[r + 1])
        if k == 1:
            t = 0.0
            for p in range(start, stop):
                t += data[p] * W[np.uint64(indices[p]), 0]
            z[i - lo] = t
        else:
            q = np.uint64((i - lo) * k)
            for c in range(ku):
                z[q + c] = 0.0
            for p in range(start, stop):
                v = data[p]
                j = np.uint64(indices[p])
                for c in range(ku):
                    z[q + c] += v * W[j, c]


@_jit(**_JIT)
def _block_dz(Y, sw, idx, lo, hi, a, b, z, e, bits, D, row0, gb):
    """From the scores ``z`` of ``_block_scores``: each row's ``s dZ`` into
    ``D[row0 + i - lo]``, their sum added to ``gb``; returns ``sum(s L)``. ``e``
    (float64, ``4 k (hi - lo)``) and ``bits`` (int64, ``k (hi - lo)``) are scratch;
    the scores are those of the weights ``a W`` (plus ``b``)."""
    k = Y.shape[1]
    nb = hi - lo
    loss = 0.0
    if k == 1:
        l1p = e[nb:2 * nb]
        for i in range(nb):
            z[i] = a * z[i] + b[0]
            e[i] = -abs(z[i])
        _exp_nonpositive(e[:nb], bits[:nb])
        for i in range(nb):  # a loop of its own, so that it is vectorized
            l1p[i] = _log1p_unit(e[i])
        g = 0.0
        for i in range(nb):
            r = _row(idx, lo + i)
            s = sw[r] if sw.shape[0] else 1.0
            zi, ei, yi = z[i], e[i], Y[r, 0]
            inv = 1.0 / (1.0 + ei)
            p = inv if zi >= 0 else ei * inv
            loss += (l1p[i] + max(zi, 0.0) - yi * zi) * s
            di = (p - yi) * s
            D[row0 + i, 0] = di
            g += di
        gb[0] += g
        return loss
    for i in range(nb):
        top = -np.inf
        for c in range(k):
            z[i * k + c] = a * z[i * k + c] + b[c]
            top = max(top, z[i * k + c])
        for c in range(k):
            e[i * k + c] = z[i * k + c] - top
    _exp_nonpositive(e[:nb * k], bits[:nb * k])
    for i in range(nb):
        r = _row(idx, lo + i)
        s = sw[r] if sw.shape[0] else 1.0
        total = 0.0
        top = -np.inf
        for c in range(k):
            total += e[i * k + c]
            top = max(top, z[i * k + c])
        li = math.log(total) + top
        for c in range(k):
            yc = Y[r, c]
            li -= yc * z[i * k + c]
            dc = (e[i * k + c] / total - yc) * s
            D[row0 + i, c] = dc
            gb[c] += dc
        loss += li * s
    return loss


@_jit(**_JIT)
def _scatter(data, indices, indptr, Yflat, idx, lo, hi, D, row0, coef, W, col0, prefetch):
    """``W[j, col0:col0 + k] += coef x_rj D[row0 + i - lo]`` over the non-zeros of the
    rows at positions ``lo:hi``: a block's or batch's share of ``X.T @ dZ``, on its
    columns only. ``prefetch`` for a batch too large to be still in cache."""
    k = D.shape[1]
    ku = np.uint64(k)
    c0 = np.uint64(col0)
    for i in range(lo, hi):
        if prefetch and i + PREFETCH < hi:
            _prefetch_row(data, indices, indptr, Yflat, k, _row(idx, i + PREFETCH))
        r = _row(idx, i)
        q = row0 + i - lo
        start, stop = np.uint64(indptr[r]), np.uint64(indptr[r + 1])
        if k == 1:
            d = coef * D[q, 0]
            for p in range(start, stop):
                W[np.uint64(indices[p]), c0] += data[p] * d
        else:
            for p in range(start, stop):
                v = coef * data[p]
                j = np.uint64(indices[p])
                for c in range(ku):
                    W[j, c0 + c] += v * D[q, c]


@_jit(parallel=True, **_JIT)
def _gradient(data, indices, indptr, Y, sw, b, bounds, WG, out):
    """Chunk ``c`` takes rows ``bounds[c]:bounds[c+1]``, reads the weights from
    ``WG[c, :, :k]``, adds its ``X.T @ (s dZ)`` into ``WG[c, :, k:]`` (zeros on entry)
    and writes ``[sum(s dZ) | sum(s L)]`` into ``out[c]``; then the chunks' gradients
    are summed into ``WG[0, :, k:]``. The weights and the gradient of a feature side
    by side: one cache line fetched a non-zero where two arrays take two (1.4x
    faster with 10 classes in a bare loop, their ``8 n k`` bytes each beyond the L2
    cache)."""
    m = indptr.shape[0] - 1
    k = Y.shape[1]
    n = WG.shape[1]
    chunks = bounds.shape[0] - 1
    Yflat = Y.reshape(Y.size)
    no_idx = np.empty(0, np.int64)
    # fewer rows a block as classes grow: the scatter then finds in cache the lines
    # of WG that the block's scores fetched (6 rows of 10 classes: 1.2x faster than 64)
    rows = max(4, BLOCK // k)
    for c in prange(chunks):
        z = np.empty(BLOCK * k)
        e = np.empty(4 * BLOCK * k)
        bits = np.empty(BLOCK * k, np.int64)
        D = np.empty((BLOCK, k))
        gb = np.zeros(k)
        Wc = WG[c]
        loss = 0.0
        for lo in range(bounds[c], bounds[c + 1], rows):
            hi = min(lo + rows, bounds[c + 1])
            _block_scores(data, indices, indptr, Yflat, no_idx, lo, hi, m, Wc, k, z)
            loss += _block_dz(Y, sw, no_idx, lo, hi, 1.0, b, z, e, bits, D, 0, gb)
            _scatter(data, indices, indptr, Yflat, no_idx, lo, hi, D, 0, 1.0, Wc, k, False)
        for q in range(k):
            out[c, q] = gb[q]
        out[c, k] = loss
    if chunks > 1:  # a serial sum would cost as much as the pass on many cores
        for t in prange((n + REDUCE_BLOCK - 1) // REDUCE_BLOCK):
            for c in range(1, chunks):
                for j in range(t * REDUCE_BLOCK, min(n, (t + 1) * REDUCE_BLOCK)):
                    for q in range(k, 2 * k):
                        WG[0, j, q] += WG[c, j, q]


def _chunk_bounds(indptr, chunks):
    """Row boundaries of ``chunks`` runs of about equal non-zeros: with power-law
    row lengths, equal row counts would leave threads idle."""
    m = indptr.shape[0] - 1
    # targets of indptr's dtype: float ones would convert all of indptr on each call
    targets = np.linspace(0, int(indptr[-1]), chunks + 1).astype(indptr.dtype)
    bounds = np.searchsorted(indptr, targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, m
    return np.minimum(np.maximum.accumulate(bounds), m)


def _none(dtype):
    return np.empty(0, dtype)


def gradient(X, Y, W, b, scale, alpha, sample_weight=None):
    """``(loss, dW, db)`` as ``xlogreg.models.loss_and_gradient`` returns them for a
    CSR ``X``, in one parallel pass over its non-zeros; the loss is a float64 0-d
    array, ``dW`` and ``db`` are in ``X``'s dtype."""
    m, n = X.shape
    k = W.shape[1]
    if 0 < THREAD_CAP < numba.get_num_threads():
        numba.set_num_threads(THREAD_CAP)  # for the calling thread, which keeps it
    chunks = max(1, min(numba.get_num_threads(), m,
                        max(ACCUMULATOR_BYTES, X.data.nbytes + X.indices.nbytes)
                        // (16 * n * k + 8),
                        X.nnz // max(4 * n * k, 1)))
    WG = np.zeros((chunks, n, 2 * k))
    WG[:, :, :k] = W
    out = np.empty((chunks, k + 1))
    sw = _none(X.data.dtype) if sample_weight is None else sample_weight
    _gradient(X.data, X.indices, X.indptr, Y, sw, np.ascontiguousarray(b, np.float64),
              _chunk_bounds(X.indptr, chunks), WG, out)
    total = out.sum(axis=0)
    dW = WG[0, :, k:] * scale
    if alpha:
        dW += alpha * W
    dtype = X.data.dtype
    return np.asarray(total[k]), dW.astype(dtype), (total[:k] * scale).astype(dtype)


@_jit(**_JIT)
def _batch_dz(data, indices, indptr, Y, Yflat, sw, idx, start, stop, m, W, a, b, z, e,
              bits, D, gb):
    """The rows at positions ``start:stop``, a block at a time, at the weights
    ``a W``: ``D[i - start] = s dZ`` of each row, ``gb = sum(s dZ)``; returns
    ``sum(s L)``."""
    gb[:] = 0.0
    loss = 0.0
    for lo in range(start, stop, BLOCK):
        hi = min(lo + BLOCK, stop)
        _block_scores(data, indices, indptr, Yflat, idx, lo, hi, m, W, W.shape[1], z)
        loss += _block_dz(Y, sw, idx, lo, hi, a, b, z, e, bits, D, lo - start, gb)
    return loss


@_jit(**_JIT)
def _epoch_l2(data, indices, indptr, Y, sw, idx, batch, etas, mean_w, alpha,
              fit_intercept, V, b):
    """The mini-batch epoch of ``_numba._epoch`` with the weights kept as ``W = a V``
    (``V`` float64, updated in place): the shrink ``max(0, 1 - eta alpha)`` of every
    weight is a product on ``a``, and the step moves ``V`` on the batch's columns
    only, all the batch's scores being taken first. Returns ``(loss_sum, a)``."""
    m = idx.shape[0] if idx.shape[0] else indptr.shape[0] - 1
    k = V.shape[1]
    Yflat = Y.reshape(Y.size)
    D = np.empty((batch, k))
    z = np.empty(BLOCK * k)
    e = np.empty(4 * BLOCK * k)
    bits = np.empty(BLOCK * k, np.int64)
    gb = np.empty(k)
    spill = batch > 4 * BLOCK  # a batch too large for its rows to stay in cache
    a = 1.0
    total = 0.0
    for s in range(etas.shape[0]):
        start = s * batch
        stop = min(start + batch, m)
        total += _batch_dz(data, indices, indptr, Y, Yflat, sw, idx, start, stop, m, V, a,
                           b, z, e, bits, D, gb)
        eta = etas[s]
        scale = 1.0 / ((stop - start) * mean_w)
        a = _shrink(V, a, eta * alpha)
        _scatter(data, indices, indptr, Yflat, idx, start, stop, D, 0, -eta * scale / a, V,
                 0, spill)
        if fit_intercept:
            for c in range(k):
                b[c] -= eta * (scale * gb[c])
    return total, a


@_jit(inline="always", **_JIT)
def _catch_up(W, j, P, Q, u, v):
    """Brings row ``j`` of ``W`` from step ``u`` to step ``v`` of steps that did not
    touch it: ``w <- soft(shrink_r w, t_r)`` for ``r = u+1..v`` is, in one go,
    ``sign(w) max(|w| P_v / P_u - P_v (Q_v - Q_u), 0)`` (see ``_epoch_l1``)."""
    if u == v:
        return
    ratio = P[v] / P[u]
    cut = P[v] * (Q[v] - Q[u])
    for c in range(W.shape[1]):
        w = W[j, c]
        W[j, c] = math.copysign(max(abs(w) * ratio - cut, 0.0), w)


@_jit(**_JIT)
def _epoch_l1(data, indices, indptr, Y, sw, idx, batch, etas, mean_w, alpha, l1,
              fit_intercept, W, b):
    """The mini-batch epoch of ``_numba._epoch`` with ``l1 > 0`` (``W`` float64,
    updated in place), at the cost of the batches' non-zeros: a weight no batch
    touches is brought up to date only when a batch reads it, and at the end.

    A step without gradient is ``w <- soft(g_r w, t_r)`` (shrink ``g_r``, threshold
    ``t_r = eta_r l1``); for ``g_r >= 0`` and ``t_r >= 0`` two of them make
    ``sign(w) max(g_2 g_1 |w| - g_2 t_1 - t_2, 0)``, so with ``P_r = prod g`` and
    ``Q_r = sum t / P`` up to step ``r``, steps ``u+1..v`` make ``sign(w) max(|w|
    P_v / P_u - P_v (Q_v - Q_u), 0)``: exact, in two products (a division, so that
    ``u == v`` gives exactly 1). ``last[j]`` is the step row ``j`` of ``W`` is up to
    date with. Where ``P`` would fall below ``FOLD`` (a shrink of 0 included), the step
    is made on all of ``W`` instead (O(n)) and the products start again at 1. Returns
    ``loss_sum``.

    Measured at 4-5x the time of the L2 epoch (220 ms against 46 on the matrix of the
    module's note; SGDClassifier's elastic net: 270 ms, 2x its L2 epoch): the catch-up
    pass, the listing of the touched rows and the threshold are three more passes
    over the batch, and the step numbers a cache miss more per non-zero. Variants
    measured slower: without branches (a select for ``u == v``, or an accumulator
    for the gradient and one pass for the step's end), the step numbers beside the
    weights in one array.
    """
    m = idx.shape[0] if idx.shape[0] else indptr.shape[0] - 1
    n, k = W.shape
    Yflat = Y.reshape(Y.size)
    steps = etas.shape[0]
    P = np.empty(steps + 1)
    Q = np.empty(steps + 1)
    P[0], Q[0] = 1.0, 0.0
    last = np.zeros(n, np.int64)
    mark = np.full(n, -1, np.int64)  # the step that last listed row j in ``touched``
    touched = np.empty(n, np.int64)
    D = np.empty((batch, k))
    z = np.empty(BLOCK * k)
    e = np.empty(4 * BLOCK * k)
    bits = np.empty(BLOCK * k, np.int64)
    gb = np.empty(k)
    total = 0.0
    for s in range(steps):
        start = s * batch
        stop = min(start + batch, m)
        for i in range(start, stop):  # the weights the batch reads, up to date
            if idx.shape[0] and i + PREFETCH < m:
                _prefetch_row(data, indices, indptr, Yflat, k, idx[i + PREFETCH])
            r = _row(idx, i)
            for p in range(np.uint64(indptr[r]), np.uint64(indptr[r + 1])):
                j = np.uint64(indices[p])
                if last[j] != s:
                    _catch_up(W, j, P, Q, last[j], s)
                    last[j] = s
        total += _batch_dz(data, indices, indptr, Y, Yflat, sw, idx, start, stop, m, W, 1.0,
                           b, z, e, bits, D, gb)
        eta = etas[s]
        scale = 1.0 / ((stop - start) * mean_w)
        shrink = max(0.0, 1.0 - eta * alpha)
        t = eta * l1
        dense = P[s] * shrink < FOLD
        nt = 0
        if dense:
            for j in range(n):
                _catch_up(W, j, P, Q, last[j], s)
                last[j] = s + 1
            if shrink == 0.0:
                W[:] = 0.0
            else:
                W *= shrink
            P[s + 1], Q[s + 1] = 1.0, 0.0
        else:
            P[s + 1] = P[s] * shrink
            Q[s + 1] = Q[s] + t / P[s + 1]
            for i in range(start, stop):
                r = _row(idx, i)
                for p in range(np.uint64(indptr[r]), np.uint64(indptr[r + 1])):
                    j = np.uint64(indices[p])
                    if mark[j] != s:
                        mark[j] = s
                        touched[nt] = j
                        nt += 1
                        last[j] = s + 1
                        for c in range(k):
                            W[j, c] *= shrink
        _scatter(data, indices, indptr, Yflat, idx, start, stop, D, 0, -eta * scale, W, 0,
                 False)
        if dense:
            for j in range(n):
                for c in range(k):
                    w = W[j, c]
                    W[j, c] = math.copysign(max(abs(w) - t, 0.0), w)
        else:
            for q in range(nt):
                j = touched[q]
                for c in range(k):
                    w = W[j, c]
                    W[j, c] = math.copysign(max(abs(w) - t, 0.0), w)
        if fit_intercept:
            for c in range(k):
                b[c] -= eta * (scale * gb[c])
    for j in range(n):
        _catch_up(W, j, P, Q, last[j], steps)
    return total


def epoch(X, Y, W, b, *, rows, batch, etas, mean_w, alpha, fit_intercept, sample_weight=None,
          l1=0.0):
    """One mini-batch epoch over a CSR ``X`` in compiled code; returns ``(W, b,
    loss_sum)`` as ``_numba.epoch`` does, with new arrays for ``W`` and ``b``."""
    V = np.array(W, np.float64, order="C")
    b64 = np.array(b, np.float64)
    sw = _none(X.data.dtype) if sample_weight is None else sample_weight
    idx = np.empty(0, np.int64) if rows is None else rows.astype(np.int64, copy=False)
    etas = np.asarray(etas, np.float64)
    args = (X.data, X.indices, X.indptr, Y, sw, idx, int(batch), etas, float(mean_w),
            float(alpha))
    if l1 > 0:
        loss = _epoch_l1(*args, float(l1), bool(fit_intercept), V, b64)
    else:
        loss, a = _epoch_l2(*args, bool(fit_intercept), V, b64)
        V *= a
    return V.astype(W.dtype), b64.astype(b.dtype), np.asarray(loss)
