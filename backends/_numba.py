"""Compiled CPU kernels (Numba): the fast path of the NumPy backend.

The plain ``xp`` code reads ``X`` twice per gradient (``X @ W`` then ``X.T @ dZ``) and
calls a dozen NumPy functions per mini-batch step. These kernels read each row of
``X`` once, while it is still in cache: a block of ``BLOCK`` rows is scored, the loss
and ``dZ`` are computed, and the block's share of ``X.T @ dZ`` is added, in one pass,
on every core (with classes: in register tiles of 4 rows x 2 classes, see
``_scores_tile``). The mini-batch kernel runs a whole epoch in compiled code, reading
the rows of each batch through the permutation instead of copying ``X``; batch 1 has
its own (``_epoch1``: scikit-learn's SGD step with the weights kept as ``a V``).
``data_scale`` and ``all_finite`` read ``X`` once, in parallel, for the statistics of
``xlogreg.optimizers.data_scale`` and the input check.

The element-wise part (``exp``, ``log1p``) is written out as polynomials so that the
compiler can vectorize it: Numba's calls to the C library's ``exp`` are scalar, and
at one ``exp`` and one ``log1p`` per row they cost more than reading the row. Both are
accurate to two units in the last place of a float64 (the softmax's exponentials, k
a row, are in X's dtype: float32 ones to 3 units of a float32, as its scores are);
the loss and gradient are summed in float64 whatever the dtype of ``X``.

The reference these kernels are held to is ``xlogreg.models.loss_and_gradient``.

A diverging fit must reach the training loop as a NaN or infinite loss, which it
detects: the kernels never raise on arithmetic (``error_model="numpy"``: a division by
zero gives inf or NaN, as in NumPy), and ``fastmath`` leaves out ``nnan``/``ninf``,
under which LLVM may assume no NaN or inf ever occurs and fold such results away.
Reassociation alone still lets it cancel ``x - x`` to 0 and reorder a careful
``a + (b - c)``: code that looks for a NaN, or whose order of operations carries its
accuracy, is compiled with ``_JIT_EXACT`` (and LLVM, inlining it, keeps that).

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
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils, event
from numba.extending import intrinsic, overload

__all__ = ["BLOCK", "all_finite", "data_scale", "epoch", "gradient", "gradient_suits",
           "hessian"]

BLOCK = 256  # rows per block: 100 KB of float32 at 100 features, well inside L2
# rows per block with classes: the block's rows (50 KB of float32 at 100 features) and
# its scores, exponentials and dZ (class-major, 3 x 5 KB at 10 classes) stay in L1/L2
# between the scores and the accumulation; 64 to 256 measured within 5%
BLOCK_K = 128
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
_FLOOR = -708.0  # exp(-708) is still a normal float64; anything below is 0 to the loss
_EXP_COEF = tuple(1.0 / math.factorial(i) for i in range(14))  # |r| <= ln2/2: < 1e-17
_ATANH_COEF = tuple(1.0 / (2 * i + 1) for i in range(17))  # u^2 <= 1/9: < 1e-17
# Folding the scale ``a`` of weights kept as ``W = a V`` into ``V`` below this: far
# from float64's underflow, while a fold (O(n)) stays rare: a shrink of 1 - 1e-4 a
# step takes 200,000 steps to get there.
FOLD = 1e-9
PREFETCH = 8  # rows ahead, read through a permutation: a row of X is ~7 cache lines
_SQRT2 = math.sqrt(2.0)
_LN2 = math.log(2.0)
_TWO52 = 2.0 ** 52
# x + 1.5 2^52 rounds x to an integer held in the low bits of the sum: round() and
# 2^n without a float <-> int64 conversion, which AVX2 has no vector instruction for
_SHIFT64 = 1.5 * 2.0 ** 52
_SHIFT32 = 1.5 * 2.0 ** 23
_LN2_HI32 = 0.693359375  # 9 significant bits: n * _LN2_HI32 is exact in float32
_LN2_LO32 = math.log(2.0) - _LN2_HI32
_FLOOR32 = -87.0  # exp(-87) = 1.6e-38 is still a normal float32

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


@intrinsic
def _to_bits(typingctx, x):
    """The bits of a float as an int64 (a float32's sign-extended from 32): a register
    move, no conversion."""
    if x not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        if sig.args[0] == types.float32:
            return builder.sext(builder.bitcast(args[0], ir.IntType(32)), ir.IntType(64))
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def _from_bits(typingctx, like, bits):
    """The float of ``like``'s type whose bits are the low bits of the int64 ``bits``."""
    if like not in (types.float32, types.float64) or bits != types.int64:
        return None

    def codegen(context, builder, sig, args):
        if sig.return_type == types.float32:
            return builder.bitcast(builder.trunc(args[1], ir.IntType(32)), ir.FloatType())
        return builder.bitcast(args[1], ir.DoubleType())

    return like(like, bits), codegen


# ``llvm.prefetch`` is named after its pointer type: ``p0`` since LLVM 17 (opaque
# pointers only), ``p0i8`` before. Only the former is tested; on an older LLVM the
# prefetch is left out (a slower epoch, the same results).
_PREFETCH_INTRINSIC = "llvm.prefetch.p0" if llvm_binding.llvm_version_info[0] >= 17 else None


@intrinsic
def _prefetch(typingctx, arr, i):
    """A hint to bring the cache line of ``arr[i]`` (1-d, C order, ``i`` in range)
    into the cache; no load, no fault, no result."""
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        if _PREFETCH_INTRINSIC is None:
            return context.get_dummy_value()
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH_INTRINSIC)
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen



def _exp_le0(x):
    """``exp(x)`` for ``x <= 0`` in ``x``'s precision, in a form the compiler
    vectorizes (``x`` below the float's range gives about 0, nothing smaller)."""
    raise NotImplementedError  # compiled code only: the overload below


@overload(_exp_le0, jit_options=_JIT_EXACT)
def _exp_le0_impl(x):
    # Estrin's scheme: the polynomial's chain of dependent multiply-adds is 4 long,
    # not 13 (Horner's), so that several elements are in flight (1.0 against 1.2 ns
    # an element on one core). float64: 2 units in the last place; float32 (eight to
    # a vector, 0.4 ns): 3 units of a float32, as accurate as its scores.
    if x == types.float64:
        c = _EXP_COEF

        def impl(x):
            a = max(x, _FLOOR)
            kd = a * _INV_LN2 + _SHIFT64  # round(a / ln2) in the low bits
            nf = kd - _SHIFT64
            r = (a - nf * _LN2_HI) - nf * _LN2_LO
            r2 = r * r
            r4 = r2 * r2
            q0 = (c[0] + c[1] * r) + (c[2] + c[3] * r) * r2
            q1 = (c[4] + c[5] * r) + (c[6] + c[7] * r) * r2
            q2 = (c[8] + c[9] * r) + (c[10] + c[11] * r) * r2
            q3 = c[12] + c[13] * r
            p = (q0 + q1 * r4) + (q2 + q3 * r4) * (r4 * r4)
            return p * _from_bits(x, (_to_bits(kd) + 1023) << 52)  # times 2**nf

        return impl
    if x == types.float32:
        f = np.float32
        c0, c1, c2, c3, c4, c5, c6, c7 = (f(v) for v in _EXP_COEF[:8])  # |r|^8/8! < 3e-9
        floor, inv, shift = f(_FLOOR32), f(_INV_LN2), f(_SHIFT32)
        hi, lo = f(_LN2_HI32), f(_LN2_LO32)

        def impl(x):
            a = max(x, floor)
            kd = a * inv + shift
            nf = kd - shift
            r = (a - nf * hi) - nf * lo
            r2 = r * r
            p = ((c0 + c1 * r) + (c2 + c3 * r) * r2) + ((c4 + c5 * r) + (c6 + c7 * r) * r2) * (r2 * r2)
            return p * _from_bits(x, (_to_bits(kd) + 127) << 23)

        return impl
    return None


@_jit(**_JIT_EXACT)
def _log_positive(x):
    """``log(x)`` for a normal positive float64, vectorizable: ``x = 2^e m`` with ``m``
    in ``[sqrt(1/2), sqrt(2))`` and ``log m = 2 atanh((m - 1) / (m + 1))`` as a series
    (``u^2 < 0.03``: 10 terms for 1e-17)."""
    v = _to_bits(x)
    e = _from_bits(x, (v >> 52) | 0x4330000000000000) - (_TWO52 + 1023.0)  # 2^52 + e
    m = _from_bits(x, (v & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    u = (m - 1.0) / (m + 1.0)
    u2 = u * u
    s = _ATANH_COEF[9]
    for c in range(8, -1, -1):
        s = s * u2 + _ATANH_COEF[c]
    return e * _LN2 + 2.0 * u * s


@_jit(**_JIT_EXACT)
def _log1p_positive(r):
    """``log(1 + r)`` for ``r >= 0``, to a few units in the last place however small
    ``r`` is: ``log(u) r / (u - 1)`` with ``u = 1 + r`` rounded undoes the rounding
    of ``u`` (Goldberg, "What every computer scientist should know...", thm. 4)."""
    u = 1.0 + r
    return r if u == 1.0 else _log_positive(u) * (r / (u - 1.0))


@_jit(inline="always", **_JIT)
def _row(idx, i):
    return idx[i] if idx.shape[0] else i


# Below 32 features LLVM leaves the loop over a row's features scalar (its vector
# loop takes 8 x 4 of them at a time), and a row's score is then one chain of
# dependent multiply-adds, 4 cycles each on Zen 3. There the binary kernels take 4
# rows at a time: 4 independent chains, and one read and write of each entry of
# ``g`` per 4 rows. Wider rows keep the one-row loops, which are vectorized (and
# faster for float64 rows read from memory: 4 rows of 800 bytes at a time were 1.6x
# slower, likely the prefetchers' streams). Measured with ``_binary_rows``, 2,000,000
# x 20 float32 on 2 threads: 30 against 23 ms a gradient (X @ w: 10 ms).
TILE_BELOW = 32


@_jit(inline="always", **_JIT)
def _four_rows(X, idx, at):
    return (X[_row(idx, at)], X[_row(idx, at + 1)], X[_row(idx, at + 2)],
            X[_row(idx, at + 3)])


@_jit(**_JIT)
def _scores(X, idx, lo, nb, w, b0, z):
    """``z[i] = X[row lo+i] . w + b0``: the binary problem's scores."""
    n = w.shape[0]
    zero = w[0] * np.float32(0)  # X's dtype: float32 * int would be float64
    i = 0
    if n < TILE_BELOW:
        while i + 4 <= nb:
            r0, r1, r2, r3 = _four_rows(X, idx, lo + i)
            t0 = t1 = t2 = t3 = zero
            for j in range(n):
                a = w[j]
                t0 += r0[j] * a
                t1 += r1[j] * a
                t2 += r2[j] * a
                t3 += r3[j] * a
            z[i] = t0 + b0
            z[i + 1] = t1 + b0
            z[i + 2] = t2 + b0
            z[i + 3] = t3 + b0
            i += 4
    for i in range(i, nb):
        row = X[_row(idx, lo + i)]
        t = zero
        for j in range(n):
            t += row[j] * w[j]
        z[i] = t + b0


@_jit(**_JIT)
def _accumulate(X, idx, lo, nb, d, g):
    """``g += sum_i d[i] X[row lo+i]``."""
    n = g.shape[0]
    i = 0
    if n < TILE_BELOW:
        while i + 4 <= nb:
            r0, r1, r2, r3 = _four_rows(X, idx, lo + i)
            d0, d1, d2, d3 = d[i], d[i + 1], d[i + 2], d[i + 3]
            for j in range(n):
                g[j] += d0 * r0[j] + d1 * r1[j] + d2 * r2[j] + d3 * r3[j]
            i += 4
    for i in range(i, nb):
        row = X[_row(idx, lo + i)]
        di = d[i]
        for j in range(n):
            g[j] += di * row[j]


# With k classes the gradient is 2k multiply-adds per element of X: k for the scores,
# k for dZ.T @ X. The two kernels below take 4 rows x 2 classes at a time, so that 6
# vector loads feed 8 independent multiply-adds (AVX2 has 16 registers: 8 sums, 2
# weight and 4 row vectors, and 2 to spare), and each row read from memory serves every
# class while it is in L1. Measured on one core of the AMD EPYC (Zen 3, 2 FMA units of
# 8 float32: 16 a cycle, 44-47 GFMA/s in OpenBLAS's sgemm on this machine), with X in
# cache, float32, 100 features, 10 classes: 0.44 ns per element of X for each of the
# two (10 FMA, about 50% of the peak: each tile of 800 FMA pays the 8 sums' horizontal
# adds, the scalar tail of 100 = 12 x 8 + 4 features and the stores); OpenBLAS's small
# GEMMs took 0.65 (scores) and 1.28 (accumulation), the scalar row loops 1.1.
# The accumulators are X's dtype: BLAS's float32 GEMM sums in float32 too.
#
# The whole softmax gradient against one ``X @ W`` (the 1.25x target), per
# element of X on one core of this machine, float32, 10 classes:
# - FMA floor: 20 FMA at 16 a cycle (46 GFMA/s): 0.43 ns; 2,000,000 x 100 on 2 cores:
#   43 ms. Memory floor: 800 MB at ~27 GB/s (X @ w on 2 threads): 30 ms.
# - OpenBLAS's X @ W, N = 10: 0.77 ns one thread, ~84 ms two (25% of the FMA peak: a
#   GEMM that narrow is packing-bound). 1.25x of it is ~1.0 ns an element a core.
# - this kernel: tiles 0.44 + 0.45 ns, softmax ~0.3 (exponentials 0.04, the strided
#   reads of Y 0.12, the rest a few vectorized passes over the block), ~1.3 ns in all
#   in cache, 1.5 from memory: 155 ms against X @ W's 93 (2 threads), 1.67x, at load
#   0.9 (1.8-2.0x under load 3-7), against 2.46x before (OpenBLAS's small GEMMs per
#   block). Neither floor binds; the
#   tiles' overhead (horizontal sums, the tail of 100 = 96 + 4 features, the loop's
#   latency chains) does, and Numba gives no way to write around it (no intrinsics).
@_jit(**_JIT)
def _scores_tile(X, idx, lo, nb, Wt, b, z):
    """``z[c*nb + i] = X[row lo+i] . Wt[c] + b[c]`` (class-major)."""
    k, n = Wt.shape
    zero = Wt[0, 0] * np.float32(0)  # X's dtype: float32 * int would be float64
    for i in range(0, nb, 4):
        q = min(4, nb - i)
        r0 = X[_row(idx, lo + i)]
        r1 = X[_row(idx, lo + i + min(1, q - 1))]  # a last tile of fewer rows repeats
        r2 = X[_row(idx, lo + i + min(2, q - 1))]  # its last row, and stores it once
        r3 = X[_row(idx, lo + i + min(3, q - 1))]
        for c in range(0, k, 2):
            c1 = min(c + 1, k - 1)  # an odd k: the last pair is one class, twice
            w0 = Wt[c]
            w1 = Wt[c1]
            t00 = t01 = t10 = t11 = t20 = t21 = t30 = t31 = zero
            for j in range(n):
                a0 = w0[j]
                a1 = w1[j]
                x0, x1, x2, x3 = r0[j], r1[j], r2[j], r3[j]
                t00 += x0 * a0
                t01 += x0 * a1
                t10 += x1 * a0
                t11 += x1 * a1
                t20 += x2 * a0
                t21 += x2 * a1
                t30 += x3 * a0
                t31 += x3 * a1
            p0 = c * nb + i
            p1 = c1 * nb + i
            z[p0] = t00 + b[c]
            z[p1] = t01 + b[c1]
            if q == 4:
                z[p0 + 1] = t10 + b[c]
                z[p0 + 2] = t20 + b[c]
                z[p0 + 3] = t30 + b[c]
                z[p1 + 1] = t11 + b[c1]
                z[p1 + 2] = t21 + b[c1]
                z[p1 + 3] = t31 + b[c1]
            else:
                if q > 1:
                    z[p0 + 1] = t10 + b[c]
                    z[p1 + 1] = t11 + b[c1]
                if q > 2:
                    z[p0 + 2] = t20 + b[c]
                    z[p1 + 2] = t21 + b[c1]


@_jit(**_JIT)
def _accumulate_tile(X, idx, lo, nb, d, Gblk):
    """``Gblk[c] += sum_i d[c*nb + i] X[row lo+i]`` (``d`` class-major)."""
    k, n = Gblk.shape
    zero = d[0] * np.float32(0)
    for i in range(0, nb, 4):
        q = min(4, nb - i)
        r0 = X[_row(idx, lo + i)]
        r1 = X[_row(idx, lo + i + min(1, q - 1))]  # rows past the block: weight 0
        r2 = X[_row(idx, lo + i + min(2, q - 1))]
        r3 = X[_row(idx, lo + i + min(3, q - 1))]
        for c in range(0, k, 2):
            two = c + 1 < k
            c1 = c + 1 if two else c
            d0 = d[c * nb: (c + 1) * nb]
            d1 = d[c1 * nb: (c1 + 1) * nb]
            d00 = d0[i]
            d10 = d0[i + 1] if q > 1 else zero
            d20 = d0[i + 2] if q > 2 else zero
            d30 = d0[i + 3] if q > 3 else zero
            d01 = d1[i] if two else zero
            d11 = d1[i + 1] if two and q > 1 else zero
            d21 = d1[i + 2] if two and q > 2 else zero
            d31 = d1[i + 3] if two and q > 3 else zero
            g0 = Gblk[c]
            g1 = Gblk[c1]
            for j in range(n):
                x0, x1, x2, x3 = r0[j], r1[j], r2[j], r3[j]
                g0[j] += d00 * x0 + d10 * x1 + d20 * x2 + d30 * x3
                g1[j] += d01 * x0 + d11 * x1 + d21 * x2 + d31 * x3


@_jit(inline="always", **_JIT_EXACT)
def _binary_row(z, y, s):
    """``(s * loss, s (p - y), s p (1 - p))`` of one row, in float64: the loss is
    ``log1p(e) + (max(z, 0) - y z)`` with ``e = exp(-|z|)``, whose second term is exact
    for a 0/1 label (0 for a well-fitted row); ``p`` is ``1 / (1 + e)`` or ``e / (1 +
    e)``, never ``1 - 1 / (1 + e)``, and ``p (1 - p) = e / (1 + e)^2`` either way."""
    e = _exp_le0(-abs(z))
    inv = 1.0 / (1.0 + e)
    p = inv if z >= 0 else e * inv
    return (_log1p_unit(e) + (max(z, 0.0) - y * z)) * s, (p - y) * s, e * inv * inv * s


@_jit(**_JIT_EXACT)
def _binary_rows(z, y, s, l, dz, h):
    """``_binary_row`` of each row into ``l``, ``dz`` and, where it is not empty, ``h``
    (float64), from the rows' scores, labels and weights. Compiled without
    reassociation and with no sum, so that it is still vectorized."""
    if h.shape[0]:
        for i in range(z.shape[0]):
            l[i], dz[i], h[i] = _binary_row(np.float64(z[i]), np.float64(y[i]),
                                            np.float64(s[i]))
    else:
        for i in range(z.shape[0]):
            l[i], dz[i], _ = _binary_row(np.float64(z[i]), np.float64(y[i]), np.float64(s[i]))


@_jit(**_JIT)
def _binary_block(X, y, sw, idx, lo, hi, Wt, b, f64, xs, d, Gblk, g):
    """Rows ``lo:hi`` (through ``idx`` when it is not empty) of a binary problem.

    Adds the block's ``X.T @ (s * dz)`` to ``g[:n]`` and ``sum(s * dz)`` to ``g[n]``;
    returns ``sum(s * loss)``. Scratch for up to ``BLOCK`` rows: ``f64`` (float64) of
    ``2 BLOCK``, ``xs`` (X's dtype) of ``4 BLOCK`` with ones in its last quarter, ``d``
    of ``BLOCK``, ``Gblk`` of shape ``(1, n)``.
    """
    n = X.shape[1]
    nb = hi - lo
    z = xs[:nb]
    ls = f64[:nb]
    dz = f64[BLOCK:BLOCK + nb]
    _scores(X, idx, lo, nb, Wt[0], b[0], z)
    # labels and weights: the rows' own where they are contiguous, else gathered once
    if idx.shape[0]:
        ys = xs[BLOCK:BLOCK + nb]
        for i in range(nb):
            ys[i] = y[idx[lo + i]]
    else:
        ys = y[lo:hi]
    if not sw.shape[0]:
        ss = xs[3 * BLOCK:3 * BLOCK + nb]
    elif idx.shape[0]:
        ss = xs[2 * BLOCK:2 * BLOCK + nb]
        for i in range(nb):
            ss[i] = sw[idx[lo + i]]
    else:
        ss = sw[lo:hi]
    _binary_rows(z, ys, ss, ls, dz, f64[:0])
    loss = 0.0
    gb = 0.0
    for i in range(nb):
        loss += ls[i]
        gb += dz[i]
        d[i] = dz[i]
    Gblk[:] = 0
    _accumulate(X, idx, lo, nb, d, Gblk[0])
    for j in range(n):
        g[j] += Gblk[0, j]
    g[n] += gb
    return loss


@_jit(**_JIT_EXACT)
def _softmax_block(Y, sw, idx, lo, nb, z, e, rowf, d):
    """The softmax part of ``_multinomial_block``: from the scores ``z[:nb k]``
    (class-major), ``d = s (p - y)`` (class-major) and the rows' ``s * loss`` in
    ``rowf[:nb]``. Compiled without reassociation: the order of operations below is
    what keeps a well-fitted row's loss and ``p - y`` accurate (and no loop here is a
    reduction, which would need it to be vectorized)."""
    k = Y.shape[1]
    tops = z[nb * k: nb * (k + 1)]
    rest = z[nb * (k + 1): nb * (k + 2)]
    ties = z[nb * (k + 2): nb * (k + 3)]
    q = rest  # s / (1 + rest), once rest is in rest64
    ss = rowf[nb: 2 * nb]
    rest64 = rowf[2 * nb: 3 * nb]
    yz = rowf[3 * nb: 4 * nb]
    # the row maxima: e[c] = max(e[c-1], z[c]) into another array, not "tops[i] =
    # max(tops[i], z)" in place, which LLVM makes a masked store (slow on AMD)
    e[:nb] = z[:nb]
    for c in range(1, k):
        zc = z[c * nb: (c + 1) * nb]
        prev = e[(c - 1) * nb: c * nb]
        ec = e[c * nb: (c + 1) * nb]
        for i in range(nb):
            t = prev[i]
            v = zc[i]
            ec[i] = v if v > t else t
    tops[:] = e[(k - 1) * nb: k * nb]
    rest[:] = 0
    ties[:] = -1  # the classes at the top, less one: each adds exp(0) = 1 to rest
    for c in range(k):
        zc = z[c * nb: (c + 1) * nb]
        ec = e[c * nb: (c + 1) * nb]
        for i in range(nb):
            v = _exp_le0(zc[i] - tops[i])
            ec[i] = v
            top = zc[i] == tops[i]
            rest[i] += 0 if top else v
            ties[i] += 1 if top else 0
    if sw.shape[0]:
        for i in range(nb):
            ss[i] = sw[_row(idx, lo + i)]
    else:
        ss[:] = 1.0
    for i in range(nb):
        r = np.float64(rest[i]) + ties[i]
        rest64[i] = r
        q[i] = ss[i] / (1.0 + r)
    yz[:] = 0.0
    for c in range(k):
        ec = e[c * nb: (c + 1) * nb]
        zc = z[c * nb: (c + 1) * nb]
        dc = d[c * nb: (c + 1) * nb]
        for i in range(nb):
            y = Y[_row(idx, lo + i), c]
            s = ss[i]
            # a top class: p - y = (1 - y) - rest / (1 + rest), not 1 / (1 + rest) - 1
            dc[i] = (s - y * s) - rest64[i] * q[i] if zc[i] == tops[i] else ec[i] * q[i] - y * s
            yz[i] += y * zc[i]
    for i in range(nb):  # top - y.z first: 0 for a well-fitted row, not 1e-13 of noise
        rowf[i] = ss[i] * (_log1p_positive(rest64[i]) + (tops[i] - yz[i]))


@_jit(**_JIT)
def _multinomial_block(X, Y, sw, idx, lo, hi, Wt, b, z, e, rowf, d, Gblk, G):
    """Rows ``lo:hi`` of a softmax problem with ``k`` classes, ``Wt`` of shape (k, n).

    Adds the block's ``(s * dZ).T @ X`` to ``G[:, :n]`` and ``sum(s * dZ)`` to
    ``G[:, n]``; returns ``sum(s * loss)``. Scratch for ``nb = hi - lo`` rows: ``z``
    of ``nb (k + 3)``, ``e`` and ``d`` of ``nb k`` (X's dtype), ``rowf`` of ``4 nb``
    (float64).

    Every per-class array is class-major (``[c*nb + i]``), so that the softmax's steps
    are loops over a block's rows that the compiler vectorizes. The exponentials are
    in X's dtype (8 float32 to a vector). The loss and dZ of a row whose top class
    holds almost all of the probability (a well-fitted row) must not come out of
    ``1 - 1``: with ``rest`` the sum of ``exp(z - top)`` over the other classes, the
    loss is ``log1p(rest) + top - y.z`` and the top class's ``p - y`` is ``(1 - y) -
    rest / (1 + rest)``, each to a few units in the last place.
    """
    k, n = Wt.shape
    nb = hi - lo
    _scores_tile(X, idx, lo, nb, Wt, b, z)
    _softmax_block(Y, sw, idx, lo, nb, z, e, rowf, d)
    loss = 0.0
    for i in range(nb):
        loss += rowf[i]
    for c in range(k):
        dc = d[c * nb: (c + 1) * nb]
        gsum = 0.0
        for i in range(nb):
            gsum += dc[i]
        G[c, n] += gsum
    Gblk[:] = 0
    _accumulate_tile(X, idx, lo, nb, d, Gblk)
    for c in range(k):
        for j in range(n):
            G[c, j] += Gblk[c, j]
    return loss


@_jit(**_JIT)
def _scratch(X, k):
    """The work arrays of ``_block`` for one thread: ``(rows a block, float64, z, e, d,
    Gblk)``, the last four of X's dtype."""
    n = X.shape[1]
    if k == 1:
        xs = np.empty(4 * BLOCK, X.dtype)
        xs[3 * BLOCK:] = 1
        return (BLOCK, np.empty(2 * BLOCK), xs,
                np.empty(1, X.dtype), np.empty(BLOCK, X.dtype), np.empty((1, n), X.dtype))
    return (BLOCK_K, np.empty(4 * BLOCK_K), np.empty(BLOCK_K * (k + 3), X.dtype),
            np.empty(BLOCK_K * k, X.dtype),
            np.empty(BLOCK_K * k, X.dtype), np.empty((k, n), X.dtype))


@_jit(**_JIT)
def _block(X, Y, sw, idx, lo, hi, Wt, b, f64, z, e, d, Gblk, G):
    if Wt.shape[0] == 1:
        return _binary_block(X, Y.reshape(-1), sw, idx, lo, hi, Wt, b, f64, z, d, Gblk, G[0])
    return _multinomial_block(X, Y, sw, idx, lo, hi, Wt, b, z, e, f64, d, Gblk, G)


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
        step, f64, z, e, d, Gblk = _scratch(X, k)
        G = np.zeros((k, n + 1))
        loss = 0.0
        for lo in range(c * per, min(m, (c + 1) * per), step):
            hi = min(lo + step, (c + 1) * per, m)
            loss += _block(X, Y, sw, no_idx, lo, hi, Wt, b, f64, z, e, d, Gblk, G)
        out[c, : k * (n + 1)] = G.ravel()
        out[c, k * (n + 1)] = loss


# Newton's pass over narrow binary data (``solver="newton"``): the Hessian ``X~^T
# diag(h) X~`` in float64, one pass over X on every core. A block of rows is turned
# on its side (``T[j, i]``, float64, a row of ones for the intercept), so that the
# scores, the gradient and the ``p (p + 1) / 2`` sums of the Hessian are each a loop
# over the block's rows, which LLVM vectorizes at any number of features; the Hessian
# takes two of its columns against two at a time (4 sums from 4 loads). Its cost
# grows with ``p^2``: above ``HESSIAN_MAX_P`` BLAS's ``syrk`` on blocks of X (the
# plain code in ``xlogreg.optimizers``) does it faster.
HESSIAN_MAX_P = 40


@_jit(**_JIT)
def _hessian_block(X, y, sw, lo, hi, w, b0, T, D, f64, ones, H, G, curvature):
    """Rows ``lo:hi``: adds ``sum h x~ x~^T`` to the lower triangle of ``H`` (2 x 2
    tiles, the diagonal's upper entries too; only with ``curvature``) and ``sum s dz
    x~`` to ``G``; returns ``sum s loss``. ``ones``: ``BLOCK`` ones of X's dtype, the
    weights where there are none. ``T`` and ``D`` are ``(pp, BLOCK)`` float64 scratch
    (whole: a column slice would not be contiguous, and its loops not vectorized)
    whose rows from ``n`` on hold the ones of the intercept, or zeros."""
    n = X.shape[1]
    pp = T.shape[0]
    nb = hi - lo
    flat = X.reshape(-1)
    for j in range(n):  # strided reads, contiguous writes: 1.6x faster than by rows
        tj = T[j]
        for i in range(nb):
            tj[i] = flat[(lo + i) * n + j]
    z = f64[:nb]
    ls = f64[BLOCK:BLOCK + nb]
    dz = f64[2 * BLOCK:2 * BLOCK + nb]
    h = f64[3 * BLOCK:3 * BLOCK + nb]
    z[:] = b0
    for j in range(n):
        wj = np.float64(w[j])
        tj = T[j]
        for i in range(nb):
            z[i] += wj * tj[i]
    _binary_rows(z, y[lo:hi], sw[lo:hi] if sw.shape[0] else ones[:nb], ls, dz,
                 h if curvature else h[:0])
    loss = 0.0
    for i in range(nb):
        loss += ls[i]
    if not curvature:  # the gradient loop below without D: apart, so that with the
        for j in range(pp):  # Hessian that loop stays one read of T
            tj = T[j]
            t = 0.0
            for i in range(nb):
                t += dz[i] * tj[i]
            G[j] += t
        return loss
    for j in range(pp):
        tj = T[j]
        dj = D[j]
        t = 0.0
        for i in range(nb):
            t += dz[i] * tj[i]
            dj[i] = h[i] * tj[i]
        G[j] += t
    for j in range(0, pp, 2):
        d0 = D[j]
        d1 = D[j + 1]
        for k in range(0, j + 1, 2):
            t0 = T[k]
            t1 = T[k + 1]
            s00 = s01 = s10 = s11 = 0.0
            for i in range(nb):
                s00 += d0[i] * t0[i]
                s01 += d0[i] * t1[i]
                s10 += d1[i] * t0[i]
                s11 += d1[i] * t1[i]
            H[j, k] += s00
            H[j, k + 1] += s01
            H[j + 1, k] += s10
            H[j + 1, k + 1] += s11
    return loss


@_jit(parallel=True, **_JIT)
def _hessian(X, y, sw, w, b0, p, curvature, out):
    """The binary problem's ``[H (pp, pp) lower | G (pp) | loss]`` of each of
    ``out.shape[0]`` contiguous chunks of rows, run in parallel, into ``out[c]``;
    ``pp`` is ``p`` rounded up to even, ``p`` is ``n`` or ``n + 1`` (the intercept).
    Without ``curvature``, ``H`` is left zero (a pass for the loss and gradient alone,
    at their float64 precision)."""
    m, n = X.shape
    pp = p + (p & 1)
    chunks = out.shape[0]
    per = (m + chunks - 1) // chunks
    for c in prange(chunks):
        T = np.zeros((pp, BLOCK))
        D = np.zeros((pp, BLOCK))
        if p > n:
            T[n] = 1.0
        f64 = np.empty(4 * BLOCK)
        ones = np.ones(BLOCK, X.dtype)
        H = np.zeros((pp, pp))
        G = np.zeros(pp)
        loss = 0.0
        for lo in range(c * per, min(m, (c + 1) * per), BLOCK):
            hi = min(lo + BLOCK, (c + 1) * per, m)
            loss += _hessian_block(X, y, sw, lo, hi, w, b0, T, D, f64, ones, H, G,
                                   curvature)
        out[c, :pp * pp] = H.ravel()
        out[c, pp * pp:pp * pp + pp] = G
        out[c, pp * pp + pp] = loss


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
    step, f64, z, e, d, Gblk = _scratch(X, k)
    G = np.empty((k, n + 1))
    total = 0.0
    for s in range(etas.shape[0]):
        start = s * batch
        stop = min(start + batch, m)
        G[:] = 0.0
        for lo in range(start, stop, step):
            total += _block(X, Y, sw, idx, lo, min(lo + step, stop), Wt, b, f64, z, e, d,
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


@_jit(**_JIT_EXACT)
def _step_dz(z, y, s, d):
    """One row's ``s * loss`` (returned) and ``d = s (p - y)`` from its scores ``z``
    (``k`` of them; one for a binary problem, with ``p = sigmoid(z)``). Compiled
    without reassociation: a well-fitted row's loss and ``p - y`` are not taken as
    ``1 - 1``, as in ``_softmax_block``."""
    k = z.shape[0]
    if k == 1:
        zi = z[0]
        e = _exp_le0(-abs(zi))
        q = e / (1.0 + e)  # the probability of the less likely class
        yi = y[0]
        # max(z, 0) - y z: exactly 0 for a label predicted with either sign
        loss = _log1p_positive(e) + ((zi if zi > 0.0 else 0.0) - yi * zi)
        d[0] = s * ((1.0 - yi) - q if zi >= 0.0 else q - yi)
        return s * loss
    top = z[0]
    at = 0
    for c in range(1, k):
        if z[c] > top:
            top = z[c]
            at = c
    rest = 0.0
    for c in range(k):
        e = _exp_le0(z[c] - top)
        d[c] = e
        rest += 0.0 if c == at else e
    yz = 0.0
    for c in range(k):
        yz += y[c] * z[c]
    inv = 1.0 / (1.0 + rest)
    for c in range(k):
        d[c] = s * ((1.0 - y[c]) - rest * inv if c == at else d[c] * inv - y[c])
    return s * (_log1p_positive(rest) + (top - yz))


@_jit(inline="always", **_JIT_EXACT)
def _shrink(V, a, decay):
    """The L2 step on weights kept as ``W = a V``: ``a`` times ``max(0, 1 - decay)``,
    an O(1) update, with ``a`` folded into ``V`` when every weight is wiped out or it
    falls below ``FOLD`` (before ``1 / a`` blows the steps on ``V`` up towards
    overflow); returns the new ``a``."""
    shrink = max(0.0, 1.0 - decay)
    a *= shrink
    if shrink == 0.0:  # O(n), as is the fold below
        V[:] = 0.0
        a = 1.0
    elif a < FOLD:
        V *= a
        a = 1.0
    return a


@_jit(**_JIT)
def _epoch1(X, Y, sw, idx, etas, mean_w, alpha, l1, fit_intercept, V, b):
    """``_epoch`` at batch 1, the weights kept as ``W = a V`` (``V`` float64 of shape
    (k, n), updated in place): scikit-learn's ``wscale``, so that the L2 shrink of
    every weight is one product on ``a`` and a step costs the row's dot products and
    one ``axpy`` a class (and the soft threshold with ``l1 > 0``), not the block
    machinery's ~1 us. Rows read through ``idx`` are prefetched ``PREFETCH`` steps
    ahead: at random rows X comes from memory, not cache. Returns ``(loss_sum, a)``."""
    m = idx.shape[0] if idx.shape[0] else X.shape[0]
    k, n = V.shape
    z = np.empty(k)
    d = np.empty(k)
    y = np.empty(k)
    line = max(1, 64 // X.itemsize)
    a = 1.0
    total = 0.0
    for s in range(etas.shape[0]):
        if idx.shape[0] and s + PREFETCH < m:
            ahead = X[idx[s + PREFETCH]]
            for q in range(0, n, line):
                _prefetch(ahead, q)
        r = _row(idx, s)
        x = X[r]
        for c in range(k):
            vc = V[c]
            t = 0.0
            for j in range(n):
                t += x[j] * vc[j]
            z[c] = a * t + b[c]
            y[c] = Y[r, c]
        total += _step_dz(z, y, sw[r] if sw.shape[0] else 1.0, d)
        eta = etas[s]
        step = eta / mean_w  # the batch of one row: scale = 1 / mean_w
        a = _shrink(V, a, eta * alpha)
        for c in range(k):
            vc = V[c]
            u = -step * d[c] / a
            if l1 > 0:  # soft(a v, eta l1) = a soft(v, eta l1 / a)
                t = eta * l1 / a
                for j in range(n):
                    vc[j] = _soft_threshold(vc[j] + u * x[j], t)
            else:
                for j in range(n):
                    vc[j] += u * x[j]
            if fit_intercept:
                b[c] -= step * d[c]
    return total, a


@_jit(parallel=True, **_JIT)
def _scan(X, sw, y, lo, out):
    """One read of ``X``, in ``out.shape[0]`` chunks of rows run in parallel; chunk
    ``c`` writes into ``out[c]``: ``[sum_{i in class 0} s_i x_i (n) | ... | sum_{i in
    class K-1} s_i x_i (n) | sum_i s_i x_i^2 (n) | max_i s_i (||x_i||^2 + 1) | sum_i
    s_i (||x_i||^2 + 1) | sum_i s_i | sum_{i in class 0} s_i | ... (K)]``, all in
    float64 (the squares of float32 values cannot overflow there). Row ``i`` is in
    class ``y[i] - lo`` (whole-numbered labels); ``y=None`` puts every row in class 0,
    ``K = 1``. The class sums cost about what the one column sum did (each row is
    added to one of them: 105 against 102 ms at 4,000,000 x 100 float32, alternating
    in one process), and give the gradient at zero weights, which is where a fit starts: the
    first pass over ``X`` then does the first step's work too. ``sw=None`` and
    ``y=None`` compile versions without them. One row at a time: a loop the compiler
    vectorizes whole (timed alternately with the four-rows-at-a-time form it
    replaced, away from any BLAS call: 107 against 136 ms at 4,000,000 x 100 float32,
    93 against 157 at 2,000,000 x 100 float64; 32 against 29 at 20 features, where
    neither is vectorized). A NaN or inf in X makes its row's norm, and so the sum of
    norms, NaN or inf (a weight of 0 included: 0 inf is NaN); so do float64 values
    whose squares overflow."""
    m, n = X.shape
    chunks = out.shape[0]
    K = (out.shape[1] - n - 3) // (n + 1)
    per = (m + chunks - 1) // chunks
    for c in prange(chunks):
        s1 = np.zeros((K, n))
        s2 = np.zeros(n)
        counts = np.zeros(K)
        top = 0.0
        total = 0.0
        wsum = 0.0
        for i in range(c * per, min(m, (c + 1) * per)):
            row = X[i]
            w = 1.0 if sw is None else np.float64(sw[i])
            label = 0 if y is None else np.int64(y[i]) - lo
            # a row's view: s1 indexed by label in the loop is not vectorized (2.7x)
            acc = s1[label]
            norm = 0.0
            for j in range(n):
                a = np.float64(row[j])
                q = a * a
                norm += q
                acc[j] += w * a
                s2[j] += w * q
            v = w * (norm + 1.0)
            top = max(top, v)
            total += v
            wsum += w
            counts[label] += w
        out[c, :K * n] = s1.reshape(-1)
        out[c, K * n: K * n + n] = s2
        out[c, K * n + n] = top
        out[c, K * n + n + 1] = total
        out[c, K * n + n + 2] = wsum
        out[c, K * n + n + 3:] = counts


def _chunks(m):
    """Chunks for a parallel pass over ``m`` rows: 4 a thread, for balance."""
    if 0 < THREAD_CAP < numba.get_num_threads():
        numba.set_num_threads(THREAD_CAP)  # for the calling thread, which keeps it
    return max(1, min(4 * numba.get_num_threads(), -(-m // 1024)))


def data_scale(X, sample_weight=None, columns=True, labels=None):
    """``xlogreg.optimizers.data_scale`` of a C-contiguous float ``X`` (all rows) in
    one parallel read: the weighted row norms' max and mean and, with ``columns``,
    the weighted column mean, variance and mean square, summed in float64. Where X
    holds a NaN or inf (or float64 values whose squares overflow), the entries they
    reach are NaN or inf, and ``max_row`` and ``mean_row`` are NaN: the caller says
    so, nothing falls back. ``labels=(y, lo, K)`` (whole-numbered ``y`` in ``lo ..
    lo + K - 1``) adds ``class_sums`` (K, n), the weighted sum of each label's rows,
    and ``class_weights`` (K,), their weights' sums: label ``lo + c`` in row ``c``."""
    m, n = X.shape
    y, lo, K = (None, 0, 1) if labels is None else labels
    out = np.empty((_chunks(m), K * (n + 1) + n + 3))
    _scan(X, sample_weight, y, lo, out)
    sums = out.sum(axis=0)
    s2 = sums[K * n: K * n + n]
    top, total_norm = float(out[:, K * n + n].max()), float(sums[K * n + n + 1])
    total = float(sums[K * n + n + 2])
    if not math.isfinite(total_norm):  # a NaN's row is lost to max(): say so here
        top = total_norm = math.nan
    scale = {"max_row": top * m / total, "mean_row": total_norm / total}
    if columns:
        s1 = sums[:K * n].reshape(K, n)
        mean = s1.sum(axis=0) / total
        sq = s2 / total
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: reported above
            var = np.maximum(sq - mean * mean, 0.0)
        scale.update(mean=mean, var=var, sq=sq)
        if labels is not None:
            scale.update(class_sums=s1, class_weights=sums[K * n + n + 3:])
    return scale


@_jit(**_JIT_EXACT)
def _finite_range(flat, lo, hi, big):
    """Whether ``flat[lo:hi]`` is all finite: ``|x| <= big`` (the dtype's largest) is
    false for inf and NaN; an OR of the comparisons, which vectorizes (0.07 ns a
    float32 on one core, in cache).
    Without fast-math: under it LLVM may assume away the NaN this is looking for
    (it folds ``x - x`` to 0, for one)."""
    part = flat[lo:hi]  # indices from 0 up: flat[i] with i from lo may be negative to
    bad = False         # LLVM, and the wrap-around of negative indices scalarizes the loads
    for i in range(part.shape[0]):
        bad |= not (abs(part[i]) <= big)
    return not bad


@_jit(parallel=True, **_JIT_EXACT)
def _finite(flat, big, chunks):
    """Whether every value of the 1-d ``flat`` is finite, a chunk at a time in
    parallel."""
    m = flat.shape[0]
    per = (m + chunks - 1) // chunks
    ok = np.zeros(chunks, np.bool_)
    for c in prange(chunks):
        ok[c] = _finite_range(flat, c * per, min(m, (c + 1) * per), big)
    return ok.all()


def all_finite(X):
    """Whether every value of the C-contiguous float array ``X`` is finite, in one
    parallel read."""
    flat = X.reshape(-1)
    big = X.dtype.type(np.finfo(X.dtype).max)
    return bool(_finite(flat, big, _chunks(flat.shape[0] // 64)))


def _none(dtype):
    return np.empty(0, dtype)


def gradient_suits(X, k):
    """Whether ``gradient`` beats the two BLAS products of the plain code on ``X`` with
    ``k`` score columns. It splits the rows into blocks, one thread a block: fewer
    rows than a block for each thread leave threads idle (60 x 100,000: 9.5 against
    3.0 ms, float64). A binary block is scored and accumulated while in cache, which
    rows over 8 KiB defeat (256 of them fill 2 MiB), unless ``X`` is so large (64 MiB)
    that reading it once from memory decides: 1,000 x 2,000 float64 took 1.09 against
    0.46 ms, 2,000 x 5,000 6.4 against 7.0 (two cores; with 10 classes the kernel's
    arithmetic wins from 500 x 5,000 up: 2.5 against 4.3 ms)."""
    m, n = X.shape
    threads = numba.get_num_threads()
    threads = min(threads, THREAD_CAP) if THREAD_CAP > 0 else threads
    if k > 1:
        return m >= BLOCK_K * threads
    return m >= BLOCK * threads and (n * X.itemsize <= 8192 or X.nbytes >= 64 << 20)


def gradient(X, Y, W, b, scale, alpha, sample_weight=None):
    """``(loss, dW, db)`` as ``xlogreg.models.loss_and_gradient`` returns them, in one
    pass over ``X``; the loss is a float64 0-d array."""
    k = W.shape[1]
    n = X.shape[1]
    if 0 < THREAD_CAP < numba.get_num_threads():
        numba.set_num_threads(THREAD_CAP)  # for the calling thread, which keeps it
    chunks = max(1, min(4 * numba.get_num_threads(), -(-X.shape[0] // BLOCK)))
    out = np.empty((chunks, k * (n + 1) + 1))
    sw = _none(X.dtype) if sample_weight is None else \
        np.ascontiguousarray(sample_weight, dtype=X.dtype)
    _gradient(X, np.ascontiguousarray(Y), sw, np.ascontiguousarray(W.T), b, out)
    total = out.sum(axis=0)
    G = total[:-1].reshape(k, n + 1) * scale
    dW = G[:, :n].T
    if alpha:
        dW = dW + alpha * W
    return np.asarray(total[-1]), dW.astype(X.dtype), G[:, n].astype(X.dtype)


def hessian(X, Y, W, b, sample_weight=None, fit_intercept=True, curvature=True):
    """``xlogreg.optimizers.hessian_sums`` of a binary problem (``W`` of shape (n,
    1)) in one parallel pass: ``(sum s L, sum s dZ X~ (1, p), sum h X~^T X~ (p,
    p))``, float64, unscaled and unpenalized, ``p = n + fit_intercept``; without
    ``curvature`` the last is None (and the pass about half the time)."""
    m, n = X.shape
    p = n + (1 if fit_intercept else 0)
    pp = p + (p & 1)
    if 0 < THREAD_CAP < numba.get_num_threads():
        numba.set_num_threads(THREAD_CAP)
    chunks = max(1, min(4 * numba.get_num_threads(), -(-m // BLOCK)))
    out = np.empty((chunks, pp * pp + pp + 1))
    sw = _none(X.dtype) if sample_weight is None else \
        np.ascontiguousarray(sample_weight, dtype=X.dtype)
    _hessian(X, np.ascontiguousarray(Y).reshape(-1), sw, np.ascontiguousarray(W[:, 0]),
             float(b[0]), p, bool(curvature), out)
    total = out.sum(axis=0)
    loss, G = float(total[-1]), total[pp * pp:pp * pp + p].reshape(1, p)
    if not curvature:
        return loss, G, None
    L = np.tril(total[:pp * pp].reshape(pp, pp)[:p, :p])
    return loss, G, L + np.tril(L, -1).T


def epoch(X, Y, W, b, *, rows, batch, etas, mean_w, alpha, fit_intercept, sample_weight=None,
          l1=0.0):
    """One mini-batch epoch in compiled code; returns ``(W, b, loss_sum)`` with new
    arrays for ``W`` and ``b`` (the inputs are left as they were)."""
    sw = _none(X.dtype) if sample_weight is None else \
        np.ascontiguousarray(sample_weight, dtype=X.dtype)
    idx = np.empty(0, np.int64) if rows is None else rows.astype(np.int64, copy=False)
    etas = np.asarray(etas, np.float64)
    if batch == 1:  # weights in float64 whatever X's dtype, returned in W's
        V = np.array(W.T, np.float64, order="C")
        b64 = np.array(b, np.float64)
        loss, a = _epoch1(X, np.ascontiguousarray(Y), sw, idx, etas, float(mean_w),
                          float(alpha), float(l1), fit_intercept, V, b64)
        return (a * V.T).astype(W.dtype), b64.astype(b.dtype), np.asarray(loss)
    Wt = np.array(W.T, order="C")
    b = np.array(b)
    loss = _epoch(X, np.ascontiguousarray(Y), sw, idx, batch, etas, float(mean_w),
                  float(alpha), float(l1), fit_intercept, Wt, b)
    return Wt.T, b, np.asarray(loss)
