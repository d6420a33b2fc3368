"""Compiled CPU kernels (Numba) for a SciPy CSR ``X``: the sparse fast path of the
NumPy backend.

The kernels read the CSR arrays (``data``, ``indices``, ``indptr``) in place, never
densifying or copying ``X``; they are compiled per dtype of ``data`` (float32,
float64) and of the indices (int32, int64). Scores, loss and gradient are summed in
float64 whatever the dtype of ``X``; ``W`` is read as a float64 copy (``n x k``, a
few MB at most, against ``X``'s hundreds).

The layout differs from the dense kernels' on purpose: ``W`` is ``(n, k)`` here, so
that the ``k`` weights one non-zero meets are side by side, where a dense row wants
``W.T``'s contiguous class rows. Per row, the element-wise part is one
``math.exp``/``math.log1p`` (or ``k`` ``exp`` and a ``log``): with tens of non-zeros
a row, the gather of ``W`` and the scatter into the gradient cost more than that, so
the dense kernels' vectorized polynomials would not pay here.

- ``gradient``: one pass over the non-zeros, rows split into one chunk a thread of
  about equal non-zeros, each chunk with its own float64 accumulator (``n x k``) that
  a second parallel loop sums.
- ``epoch``: a serial mini-batch epoch reading each batch's rows through the
  permutation. Its cost is that of the batch's non-zeros, not of ``n``: with the L2
  penalty alone ``W = a V``, so the shrink of every weight is one product on ``a``;
  with an L1 penalty the shrink and the soft threshold of the weights a batch does
  not touch are applied lazily, exactly (see ``_epoch_l1``).

The reference these kernels are held to is ``xlogreg.models.loss_and_gradient`` on
``X.toarray()``; the error model and ``fastmath`` flags are the dense kernels'
(``_numba.py``), for the same reasons.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._numba import _JIT, THREAD_CAP, _jit, _row

__all__ = ["epoch", "gradient"]

# Folding ``a`` (or the L1 path's product of shrinks) into the weights below this: far
# from float64's underflow, while a fold (O(n)) stays rare: a shrink of 1 - 1e-4 a
# step takes 200,000 steps to get there.
FOLD = 1e-9
# Each chunk of the gradient owns a float64 ``n x k`` accumulator, and a chunk of
# fewer non-zeros than a few times that is not worth its zeroing and summing; the
# accumulators together are held under ACCUMULATOR_BYTES (1e6 features x 10 classes
# is 80 MB a chunk: 3 chunks, not one for each of 64 cores).
ACCUMULATOR_BYTES = 1 << 28
REDUCE_BLOCK = 4096  # features per task of the accumulators' parallel sum


@_jit(**_JIT)
def _row_loss_dz(data, indices, lo, hi, y, W, a, b, z, d):
    """Row ``lo:hi`` of the non-zeros: the scores ``a * x.W + b``, written to ``z``
    (scratch of ``k``); returns its loss and writes ``dz`` (unweighted) into ``d``."""
    k = W.shape[1]
    if k == 1:
        t = 0.0
        for p in range(lo, hi):
            t += data[p] * W[indices[p], 0]
        t = a * t + b[0]
        e = math.exp(-abs(t))
        inv = 1.0 / (1.0 + e)
        d[0] = (inv if t >= 0 else e * inv) - y[0]
        return math.log1p(e) + max(t, 0.0) - y[0] * t
    for c in range(k):
        z[c] = 0.0
    for p in range(lo, hi):
        v = data[p]
        wj = W[indices[p]]
        for c in range(k):
            z[c] += v * wj[c]
    top = -np.inf
    for c in range(k):
        z[c] = a * z[c] + b[c]
        top = max(top, z[c])
    total = 0.0
    for c in range(k):
        e = math.exp(z[c] - top)
        d[c] = e
        total += e
    li = math.log(total) + top
    for c in range(k):
        li -= y[c] * z[c]
        d[c] = d[c] / total - y[c]
    return li


@_jit(parallel=True, **_JIT)
def _gradient(data, indices, indptr, Y, sw, W, b, bounds, G, out):
    """Chunk ``c`` takes rows ``bounds[c]:bounds[c+1]``, adds its ``X.T @ (s dZ)``
    into ``G[c]`` (zeros on entry) and writes ``[sum(s dZ) | sum(s L)]`` into
    ``out[c]``; then the chunks' ``G`` are summed into ``G[0]``."""
    n, k = W.shape
    chunks = bounds.shape[0] - 1
    for c in prange(chunks):
        Gc = G[c]
        z = np.empty(k)
        d = np.empty(k)
        gb = np.zeros(k)
        loss = 0.0
        for r in range(bounds[c], bounds[c + 1]):
            lo, hi = indptr[r], indptr[r + 1]
            s = sw[r] if sw.shape[0] else 1.0
            loss += s * _row_loss_dz(data, indices, lo, hi, Y[r], W, 1.0, b, z, d)
            for q in range(k):
                d[q] *= s
                gb[q] += d[q]
            if k == 1:
                d0 = d[0]
                for p in range(lo, hi):
                    Gc[indices[p], 0] += data[p] * d0
            else:
                for p in range(lo, hi):
                    v = data[p]
                    gj = Gc[indices[p]]
                    for q in range(k):
                        gj[q] += v * d[q]
        for q in range(k):
            out[c, q] = gb[q]
        out[c, k] = loss
    if chunks > 1:  # a serial sum would cost as much as the pass on many cores
        for t in prange((n + REDUCE_BLOCK - 1) // REDUCE_BLOCK):
            for c in range(1, chunks):
                for j in range(t * REDUCE_BLOCK, min(n, (t + 1) * REDUCE_BLOCK)):
                    for q in range(k):
                        G[0, j, q] += G[c, j, q]


def _chunk_bounds(indptr, chunks):
    """Row boundaries of ``chunks`` runs of about equal non-zeros: with power-law
    row lengths, equal row counts would leave threads idle."""
    m = indptr.shape[0] - 1
    targets = np.linspace(0, int(indptr[-1]), chunks + 1)
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
                        ACCUMULATOR_BYTES // (8 * n * k + 8),
                        X.nnz // max(4 * n * k, 1)))
    G = np.zeros((chunks, n, k))
    out = np.empty((chunks, k + 1))
    sw = _none(X.data.dtype) if sample_weight is None else sample_weight
    _gradient(X.data, X.indices, X.indptr, Y, sw, np.ascontiguousarray(W, np.float64),
              np.ascontiguousarray(b, np.float64), _chunk_bounds(X.indptr, chunks), G, out)
    total = out.sum(axis=0)
    dW = G[0] * scale
    if alpha:
        dW += alpha * W
    dtype = X.data.dtype
    return np.asarray(total[k]), dW.astype(dtype), (total[:k] * scale).astype(dtype)


@_jit(**_JIT)
def _batch_dz(data, indices, indptr, Y, sw, idx, start, stop, W, a, b, D, z, gb):
    """Rows ``start:stop`` (through ``idx``) at the weights ``a W``: ``D[i - start] =
    s dZ`` of each row, ``gb = sum(s dZ)``; returns ``sum(s L)``."""
    k = W.shape[1]
    gb[:] = 0.0
    loss = 0.0
    for i in range(start, stop):
        r = _row(idx, i)
        s = sw[r] if sw.shape[0] else 1.0
        d = D[i - start]
        loss += s * _row_loss_dz(data, indices, indptr[r], indptr[r + 1], Y[r], W, a, b,
                                 z, d)
        for c in range(k):
            d[c] *= s
            gb[c] += d[c]
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
    D = np.empty((batch, k))
    z = np.empty(k)
    gb = np.empty(k)
    a = 1.0
    total = 0.0
    for s in range(etas.shape[0]):
        start = s * batch
        stop = min(start + batch, m)
        total += _batch_dz(data, indices, indptr, Y, sw, idx, start, stop, V, a, b, D, z,
                           gb)
        eta = etas[s]
        scale = 1.0 / ((stop - start) * mean_w)
        shrink = max(0.0, 1.0 - eta * alpha)
        a *= shrink
        if shrink == 0.0:  # every weight is wiped out (O(n), as is the fold below)
            V[:] = 0.0
            a = 1.0
        elif a < FOLD:  # before 1 / a blows the steps on V up towards overflow
            V *= a
            a = 1.0
        coef = eta * scale / a
        for i in range(start, stop):
            r = _row(idx, i)
            d = D[i - start]
            for p in range(indptr[r], indptr[r + 1]):
                v = coef * data[p]
                vj = V[indices[p]]
                for c in range(k):
                    vj[c] -= v * d[c]
        if fit_intercept:
            for c in range(k):
                b[c] -= eta * (scale * gb[c])
    return total, a


@_jit(**_JIT)
def _catch_up(W, j, P, Q, u, v):
    """Brings row ``j`` of ``W`` from step ``u`` to step ``v`` of steps that did not
    touch it: ``w <- soft(shrink_r w, t_r)`` for ``r = u+1..v`` is, in one go,
    ``sign(w) max(|w| P_v / P_u - P_v (Q_v - Q_u), 0)`` (see ``_epoch_l1``)."""
    if u == v:
        return
    ratio = P[v] / P[u]
    cut = P[v] * (Q[v] - Q[u])
    wj = W[j]
    for c in range(wj.shape[0]):
        w = wj[c]
        mag = abs(w) * ratio - cut
        wj[c] = math.copysign(mag, w) if mag > 0 else 0.0


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
    P_v / P_u - P_v (Q_v - Q_u), 0)``: exact, in two products. ``last[j]`` is the step
    row ``j`` of ``W`` is up to date with. Where ``P`` would fall below ``FOLD``
    (a shrink of 0 included), the step is made on all of ``W`` instead (O(n)) and the
    products start again at 1. Returns ``loss_sum``.
    """
    m = idx.shape[0] if idx.shape[0] else indptr.shape[0] - 1
    n, k = W.shape
    steps = etas.shape[0]
    P = np.empty(steps + 1)
    Q = np.empty(steps + 1)
    P[0], Q[0] = 1.0, 0.0
    last = np.zeros(n, np.int64)
    mark = np.full(n, -1, np.int64)  # the step that last listed row j in ``touched``
    touched = np.empty(n, np.int64)
    D = np.empty((batch, k))
    z = np.empty(k)
    gb = np.empty(k)
    total = 0.0
    for s in range(steps):
        start = s * batch
        stop = min(start + batch, m)
        for i in range(start, stop):  # the weights the batch reads, up to date
            r = _row(idx, i)
            for p in range(indptr[r], indptr[r + 1]):
                j = indices[p]
                if last[j] != s:
                    _catch_up(W, j, P, Q, last[j], s)
                    last[j] = s
        total += _batch_dz(data, indices, indptr, Y, sw, idx, start, stop, W, 1.0, b, D,
                           z, gb)
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
                for p in range(indptr[r], indptr[r + 1]):
                    j = indices[p]
                    if mark[j] != s:
                        mark[j] = s
                        touched[nt] = j
                        nt += 1
                        last[j] = s + 1
                        for c in range(k):
                            W[j, c] *= shrink
        coef = eta * scale
        for i in range(start, stop):
            r = _row(idx, i)
            d = D[i - start]
            for p in range(indptr[r], indptr[r + 1]):
                v = coef * data[p]
                wj = W[indices[p]]
                for c in range(k):
                    wj[c] -= v * d[c]
        if dense:
            for j in range(n):
                for c in range(k):
                    w = W[j, c]
                    mag = abs(w) - t
                    W[j, c] = math.copysign(mag, w) if mag > 0 else 0.0
        else:
            for q in range(nt):
                wj = W[touched[q]]
                for c in range(k):
                    w = wj[c]
                    mag = abs(w) - t
                    wj[c] = math.copysign(mag, w) if mag > 0 else 0.0
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
