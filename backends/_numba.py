"""Compiled CPU kernels (Numba): the fast path of the NumPy backend.

The plain ``xp`` code reads ``X`` twice per gradient (``X @ W`` then ``X.T @ dZ``) and
calls a dozen NumPy functions per mini-batch step. These kernels read each row of
``X`` once, while it is still in cache: a block of ``BLOCK`` rows is scored, the loss
and ``dZ`` are computed, and the block's share of ``X.T @ dZ`` is added, in one pass,
on every core. The mini-batch kernel runs a whole epoch in compiled code, reading
the rows of each batch through the permutation instead of copying ``X``.

The element-wise part (``exp``, ``log1p``) is written out as polynomials so that the
compiler can vectorize it: Numba's calls to the C library's ``exp`` are scalar, and
at one ``exp`` and one ``log1p`` per row they cost more than reading the row. Both are
accurate to two units in the last place of a float64; the loss and gradient are
summed in float64 whatever the dtype of ``X``.

The reference these kernels are held to is ``xlogreg.models.loss_and_gradient``.

A diverging fit must reach the training loop as a NaN or infinite loss, which it
detects: the kernels never raise on arithmetic (``error_model="numpy"``: a division by
zero gives inf or NaN, as in NumPy), and ``fastmath`` leaves out ``nnan``/``ninf``,
under which LLVM may assume no NaN or inf ever occurs and fold such results away.

Numba compiles the kernels on first use (seconds) and caches them on disk. Where it
cannot write a cache (a read-only install and no writable home: containers, shared
clusters), they are compiled without one, in every new process. A compile is
announced once per process (without a cache: why, and the way out) on the
``xlogreg`` logger, at WARNING level so that it shows without any logging set up
(Python's last-resort handler prints it to stderr). A log record, not a
``warnings.warn``: a note about a pause must not become an exception in programs and
test suites that turn warnings into errors (``-W error``), and applications route or
silence it with ``logging.getLogger("xlogreg")`` like the rest of their logs.
"""

from __future__ import annotations

import logging
import math
import os

import numba
import numpy as np
from numba import njit, prange
from numba.core import event

__all__ = ["BLOCK", "epoch", "gradient"]

BLOCK = 256  # rows per block: 100 KB of float32 at 100 features, well inside L2
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
_FLOOR = -708.0  # exp(-708) is still a normal float64; anything below is 0 to the loss
_EXP_COEF = tuple(1.0 / math.factorial(i) for i in range(14))  # |r| <= ln2/2: < 1e-17
_ATANH_COEF = tuple(1.0 / (2 * i + 1) for i in range(17))  # u^2 <= 1/9: < 1e-17

# OMP_NUM_THREADS caps BLAS and OpenMP; Numba ignores it, so it is applied here.
# Dask's workers set it to 1: their parallelism is their task threads.
THREAD_CAP = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)

_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}  # fastmath=True less nnan, ninf
_JIT = dict(nogil=True, error_model="numpy", fastmath=_FAST)
# no reassociation where the order of operations carries the precision
_JIT_EXACT = dict(nogil=True, error_model="numpy", fastmath={"contract", "nsz"})

_log = logging.getLogger("xlogreg")
# the modules whose compiles are announced: this one and the sparse kernels
KERNEL_MODULES = {__name__, __name__ + "_sparse"}
_COMPILE_SECONDS = 10  # measured: 8-13 s per kernel and dtype on 2 cores, empty cache
_uncached = []  # the kernels Numba found no cache directory for


def _jit(**options):
    """``njit`` with Numba's disk cache, or without it where Numba has nowhere to write
    one: it then raises ``RuntimeError: cannot cache function ...: no locator
    available`` when the function is defined."""
    def decorate(func):
        try:
            return njit(cache=True, **options)(func)
        except RuntimeError:
            _uncached.append(func.__name__)
            return njit(**options)(func)
    return decorate


class _AnnounceCompile(event.Listener):
    """Says once per process that the kernels are being compiled. Numba sends
    ``numba:compile`` only when it compiles, not when it loads from its cache."""

    said = False

    def on_start(self, ev):
        if self.said or ev.data["dispatcher"].py_func.__module__ not in KERNEL_MODULES:
            return
        type(self).said = True
        if _uncached:
            _log.warning(
                "xlogreg: compiling the CPU kernels (about %d s). Numba cannot cache them "
                "here (no writable __pycache__ beside %s and no writable user cache "
                "directory), so every new process compiles them again; set "
                "NUMBA_CACHE_DIR to a writable directory to compile them once",
                _COMPILE_SECONDS, os.path.dirname(__file__))
        else:
            _log.warning("xlogreg: compiling the CPU kernels once (about %d s; cached "
                         "afterwards)", _COMPILE_SECONDS)

    def on_end(self, ev):
        pass


event.register("numba:compile", _AnnounceCompile())


@_jit(**_JIT_EXACT)
def _exp_nonpositive(t, bits):
    """``t[i] = exp(t[i])`` for ``t[i] <= 0``, in a form the compiler vectorizes."""
    for i in range(t.shape[0]):
        a = max(t[i], _FLOOR)
        nf = math.floor(a * _INV_LN2 + 0.5)
        r = (a - nf * _LN2_HI) - nf * _LN2_LO
        p = _EXP_COEF[13]
        for c in range(12, -1, -1):
            p = p * r + _EXP_COEF[c]
        t[i] = p
        bits[i] = (np.int64(nf) + 1023) << 52  # 2**nf as float64 bits
    scale = bits.view(np.float64)
    for i in range(t.shape[0]):
        t[i] *= scale[i]


@_jit(**_JIT_EXACT)
def _log1p_unit(e):
    """``log(1 + e)`` for ``0 <= e <= 1``: ``2 atanh(e / (2 + e))`` as a series."""
    u = e / (2.0 + e)
    u2 = u * u
    s = _ATANH_COEF[16]
    for c in range(15, -1, -1):
        s = s * u2 + _ATANH_COEF[c]
    return 2.0 * u * s


@_jit(inline="always", **_JIT)
def _row(idx, i):
    return idx[i] if idx.shape[0] else i


@_jit(**_JIT)
def _scores(X, idx, lo, nb, Wt, b, z):
    """``z[i*k + c] = X[row lo+i] . Wt[c] + b[c]``."""
    k, n = Wt.shape
    if k > 1 and idx.shape[0] == 0:  # BLAS's small GEMM beats the loops for k > 1
        zk = np.dot(X[lo:lo + nb], Wt.T)
        for i in range(nb):
            for c in range(k):
                z[i * k + c] = zk[i, c] + b[c]
        return
    for i in range(nb):
        row = X[_row(idx, lo + i)]
        for c in range(k):
            wc = Wt[c]
            t = wc[0] * 0
            for j in range(n):
                t += row[j] * wc[j]
            z[i * k + c] = t + b[c]


@_jit(**_JIT)
def _accumulate(X, idx, lo, nb, d, Gblk):
    """``Gblk[c] += sum_i d[i*k + c] X[row lo+i]``."""
    k, n = Gblk.shape
    if k > 1 and idx.shape[0] == 0:
        Gblk += np.dot(d[: nb * k].reshape(nb, k).T, X[lo:lo + nb])
        return
    for i in range(nb):
        row = X[_row(idx, lo + i)]
        for c in range(k):
            dc = d[i * k + c]
            gc = Gblk[c]
            for j in range(n):
                gc[j] += dc * row[j]


@_jit(**_JIT)
def _binary_block(X, y, sw, idx, lo, hi, Wt, b, z, e, bits, d, Gblk, g):
    """Rows ``lo:hi`` (through ``idx`` when it is not empty) of a binary problem.

    Adds the block's ``X.T @ (s * dz)`` to ``g[:n]`` and ``sum(s * dz)`` to ``g[n]``;
    returns ``sum(s * loss)``. ``z, e`` (float64), ``bits`` and ``d`` (X's dtype) are
    scratch of at least ``hi - lo``.
    """
    n = X.shape[1]
    nb = hi - lo
    ys = e[nb:2 * nb]  # the targets and weights of the block, gathered once
    ss = e[2 * nb:3 * nb]
    _scores(X, idx, lo, nb, Wt, b, z)
    for i in range(nb):
        r = _row(idx, lo + i)
        e[i] = -abs(z[i])
        ys[i] = y[r]
        ss[i] = sw[r] if sw.shape[0] else 1.0
    _exp_nonpositive(e[:nb], bits[:nb])
    l1p = e[3 * nb:4 * nb]
    for i in range(nb):  # a loop of its own, so that it is vectorized
        l1p[i] = _log1p_unit(e[i])
    loss = 0.0
    gb = 0.0
    for i in range(nb):
        zi, ei, yi = z[i], e[i], ys[i]
        inv = 1.0 / (1.0 + ei)
        p = inv if zi >= 0 else ei * inv
        li = (l1p[i] + max(zi, 0.0) - yi * zi) * ss[i]
        di = (p - yi) * ss[i]
        loss += li
        gb += di
        d[i] = di
    Gblk[:] = 0
    _accumulate(X, idx, lo, nb, d, Gblk)
    for j in range(n):
        g[j] += Gblk[0, j]
    g[n] += gb
    return loss


@_jit(**_JIT)
def _multinomial_block(X, Y, sw, idx, lo, hi, Wt, b, z, e, bits, d, Gblk, G):
    """Rows ``lo:hi`` of a softmax problem with ``k`` classes, ``Wt`` of shape (k, n).

    Adds the block's ``(s * dZ).T @ X`` to ``G[:, :n]`` and ``sum(s * dZ)`` to
    ``G[:, n]``; returns ``sum(s * loss)``. Scratch as for ``_binary_block`` but
    ``k`` times larger.
    """
    k, n = Wt.shape
    nb = hi - lo
    _scores(X, idx, lo, nb, Wt, b, z)
    for i in range(nb):
        top = -np.inf
        for c in range(k):
            top = max(top, z[i * k + c])
        for c in range(k):
            e[i * k + c] = z[i * k + c] - top
    _exp_nonpositive(e[: nb * k], bits[: nb * k])
    loss = 0.0
    for i in range(nb):
        r = _row(idx, lo + i)
        total = 0.0
        top = -np.inf
        for c in range(k):
            total += e[i * k + c]
            top = max(top, z[i * k + c])
        s = sw[r] if sw.shape[0] else 1.0
        li = math.log(total) + top
        for c in range(k):
            yc = Y[r, c]
            li -= yc * z[i * k + c]
            dc = (e[i * k + c] / total - yc) * s
            d[i * k + c] = dc
            G[c, n] += dc
        loss += li * s
    Gblk[:] = 0
    _accumulate(X, idx, lo, nb, d, Gblk)
    for c in range(k):
        for j in range(n):
            G[c, j] += Gblk[c, j]
    return loss


@_jit(**_JIT)
def _block(X, Y, sw, idx, lo, hi, Wt, b, z, e, bits, d, Gblk, G):
    if Wt.shape[0] == 1:
        return _binary_block(X, Y[:, 0], sw, idx, lo, hi, Wt, b, z, e, bits, d, Gblk, G[0])
    return _multinomial_block(X, Y, sw, idx, lo, hi, Wt, b, z, e, bits, d, Gblk, G)


@_jit(parallel=True, **_JIT)
def _gradient(X, Y, sw, Wt, b, out):
    """One pass over all rows, split into ``out.shape[0]`` contiguous chunks run in
    parallel; chunk ``c`` writes its ``[G (k, n+1) | loss]`` into ``out[c]``."""
    m = X.shape[0]
    k, n = Wt.shape
    chunks = out.shape[0]
    per = (m + chunks - 1) // chunks
    no_idx = np.empty(0, np.int64)
    for c in prange(chunks):
        z = np.empty(BLOCK * k)
        e = np.empty(BLOCK * max(k, 4))
        bits = np.empty(BLOCK * k, np.int64)
        d = np.empty(BLOCK * k, X.dtype)
        Gblk = np.empty((k, n), X.dtype)
        G = np.zeros((k, n + 1))
        loss = 0.0
        for lo in range(c * per, min(m, (c + 1) * per), BLOCK):
            hi = min(lo + BLOCK, (c + 1) * per, m)
            loss += _block(X, Y, sw, no_idx, lo, hi, Wt, b, z, e, bits, d, Gblk, G)
        out[c, : k * (n + 1)] = G.ravel()
        out[c, k * (n + 1)] = loss


@_jit(inline="always", **_JIT)
def _soft_threshold(v, t):
    """``sign(v) max(|v| - t, 0)`` for ``t >= 0``: 0 where the L1 penalty wins."""
    return math.copysign(max(abs(v) - t, 0.0), v)  # no branch: one that 0s half the
    # weights is one the processor cannot predict


@_jit(**_JIT)
def _epoch(X, Y, sw, idx, batch, etas, mean_w, alpha, l1, fit_intercept, Wt, b):
    """Mini-batch gradient descent over one epoch, updating ``Wt`` and ``b`` in place.

    Step ``s`` uses positions ``s*batch:(s+1)*batch`` of ``idx`` (or of the rows when
    ``idx`` is empty) and the step size ``etas[s]``. Returns ``sum_i s_i L_i`` over
    the batches, each taken at the parameters of its step.

    A step is scikit-learn's SGD step (``_plain_sgd`` in ``_sgd_fast.pyx.tp``): the
    gradient ``dW`` of the batch's data term at the current ``W``, then ``W <-
    max(0, 1 - eta alpha) W - eta dW``. The shrink is clamped at 0: with ``eta alpha
    > 2`` the unclamped factor flips and grows ``W`` on every step. With ``l1 > 0``
    the step ends with the L1 penalty's proximal step, ``W <- soft(W, eta l1)``.
    """
    m = idx.shape[0] if idx.shape[0] else X.shape[0]
    k, n = Wt.shape
    size = BLOCK * k
    z = np.empty(size)
    e = np.empty(BLOCK * max(k, 4))
    bits = np.empty(size, np.int64)
    d = np.empty(size, X.dtype)
    Gblk = np.empty((k, n), X.dtype)
    G = np.empty((k, n + 1))
    total = 0.0
    for s in range(etas.shape[0]):
        start = s * batch
        stop = min(start + batch, m)
        G[:] = 0.0
        for lo in range(start, stop, BLOCK):
            total += _block(X, Y, sw, idx, lo, min(lo + BLOCK, stop), Wt, b, z, e, bits, d,
                            Gblk, G)
        eta = etas[s]
        scale = 1.0 / ((stop - start) * mean_w)
        shrink = max(0.0, 1.0 - eta * alpha)
        for c in range(k):
            for j in range(n):
                Wt[c, j] = shrink * Wt[c, j] - eta * (scale * G[c, j])
            if fit_intercept:
                b[c] -= eta * (scale * G[c, n])
        if l1 > 0:  # a loop of its own: with l1 = 0 the update above stays as it was
            t = eta * l1
            for c in range(k):
                for j in range(n):
                    Wt[c, j] = _soft_threshold(Wt[c, j], t)
    return total


def _none(dtype):
    return np.empty(0, dtype)


def gradient(X, Y, W, b, scale, alpha, sample_weight=None):
    """``(loss, dW, db)`` as ``xlogreg.models.loss_and_gradient`` returns them, in one
    pass over ``X``; the loss is a float64 0-d array."""
    k = W.shape[1]
    n = X.shape[1]
    if 0 < THREAD_CAP < numba.get_num_threads():
        numba.set_num_threads(THREAD_CAP)  # for the calling thread, which keeps it
    chunks = max(1, min(4 * numba.get_num_threads(), -(-X.shape[0] // BLOCK)))
    out = np.empty((chunks, k * (n + 1) + 1))
    sw = _none(X.dtype) if sample_weight is None else sample_weight
    _gradient(X, Y, sw, np.ascontiguousarray(W.T), b, out)
    total = out.sum(axis=0)
    G = total[:-1].reshape(k, n + 1) * scale
    dW = G[:, :n].T
    if alpha:
        dW = dW + alpha * W
    return np.asarray(total[-1]), dW.astype(X.dtype), G[:, n].astype(X.dtype)


def epoch(X, Y, W, b, *, rows, batch, etas, mean_w, alpha, fit_intercept, sample_weight=None,
          l1=0.0):
    """One mini-batch epoch in compiled code; returns ``(W, b, loss_sum)`` with new
    arrays for ``W`` and ``b`` (the inputs are left as they were)."""
    Wt = np.array(W.T, order="C")
    b = np.array(b)
    sw = _none(X.dtype) if sample_weight is None else sample_weight
    idx = np.empty(0, np.int64) if rows is None else rows.astype(np.int64, copy=False)
    loss = _epoch(X, Y, sw, idx, batch, np.asarray(etas, np.float64), float(mean_w),
                  float(alpha), float(l1), fit_intercept, Wt, b)
    return Wt.T, b, np.asarray(loss)
