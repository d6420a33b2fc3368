"""The slides' non-vectorized logistic regression: explicit Python loops.

Written as in the lecture, one example and one feature at a time with ``math.exp``,
for tiny inputs: the tests hold the vectorized code equal to it, and the benchmark
suite times it against the vectorized step. Rows layout: ``X[i][j]`` is feature
``j`` of example ``i`` (the slides' ``x_j^(i)``); ``w[j][c]`` is the weight of
feature ``j`` for output ``c``.
"""

from __future__ import annotations

import math

__all__ = ["loop_dot", "loop_gradient", "loop_matvec"]


def loop_dot(u, v):
    """``sum_i u[i] * v[i]`` with a for-loop, the slides' first example."""
    total = 0.0
    for i in range(len(u)):
        total += u[i] * v[i]
    return total


def loop_matvec(A, v):
    """``u = A v`` with the double for-loop."""
    u = [0.0] * len(A)
    for i in range(len(A)):
        for j in range(len(v)):
            u[i] += A[i][j] * v[j]
    return u


def _log1pexp(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def loop_gradient(X, y, w, b, alpha=0.0, sample_weight=None):
    """Cost ``J`` and gradient ``(dw, db)`` with loops over examples and features.

    Two classes (``len(b) == 1``): ``y[i]`` is 0 or 1 and ``a = sigmoid(z)``. More:
    ``y[i]`` is the class index and ``a = softmax(z)``. In both ``dz = a - y``.
    ``J = sum_i s_i L_i / S + alpha/2 ||w||^2``, ``S = sum_i s_i``. Returns plain
    lists: ``dw[j][c]`` and ``db[c]``.
    """
    m, n, k = len(X), len(w), len(b)
    s = [1.0] * m if sample_weight is None else [float(v) for v in sample_weight]
    total_w = sum(s)
    J = 0.0
    dw = [[0.0] * k for _ in range(n)]
    db = [0.0] * k
    for i in range(m):
        z = [b[c] for c in range(k)]
        for c in range(k):
            for j in range(n):
                z[c] += w[j][c] * X[i][j]
        if k == 1:
            target = [float(y[i])]
            a = [1.0 / (1.0 + math.exp(-z[0])) if z[0] >= 0 else
                 math.exp(z[0]) / (1.0 + math.exp(z[0]))]
            J += s[i] * (_log1pexp(z[0]) - target[0] * z[0])
        else:
            target = [1.0 if c == int(y[i]) else 0.0 for c in range(k)]
            top = max(z)
            exps = [math.exp(zc - top) for zc in z]
            norm = sum(exps)
            a = [e / norm for e in exps]
            J += s[i] * (top + math.log(norm) - z[int(y[i])])
        for c in range(k):
            dz = s[i] * (a[c] - target[c])
            for j in range(n):
                dw[j][c] += X[i][j] * dz
            db[c] += dz
    penalty = 0.0
    for j in range(n):
        for c in range(k):
            dw[j][c] = dw[j][c] / total_w + alpha * w[j][c]
            penalty += w[j][c] * w[j][c]
    db = [v / total_w for v in db]
    return J / total_w + 0.5 * alpha * penalty, dw, db
