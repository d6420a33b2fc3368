"""Numerically stable link and loss functions, written once against the array API.

Everything works on the raw score ``z = X @ w + b`` (rows layout: one example per
row), as scikit-learn's ``_loss`` module does: the per-sample binary loss is
``softplus(z) - y*z``, never ``log(sigmoid(z))``, and only ``exp(-|z|)`` is ever
evaluated, so ``|z|`` in the thousands neither overflows nor takes ``log(0)``.

Each function takes an optional ``xp`` (the array namespace); by default it is
found from the input with array-api-compat.
"""

from __future__ import annotations

from array_api_compat import array_namespace

__all__ = [
    "binary_loss",
    "binary_loss_and_dz",
    "log_sigmoid",
    "logsumexp",
    "multinomial_loss",
    "multinomial_loss_and_dz",
    "sigmoid",
    "softmax",
    "softplus",
]


def _ns(xp, *arrays):
    return array_namespace(*arrays) if xp is None else xp


def softplus(z, xp=None):
    """``log(1 + exp(z))`` without overflow."""
    xp = _ns(xp, z)
    return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))


def sigmoid(z, xp=None):
    """``1 / (1 + exp(-z))`` evaluated through ``exp(-|z|)``."""
    xp = _ns(xp, z)
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0, e) / (1.0 + e)


def log_sigmoid(z, xp=None):
    """``log(sigmoid(z)) = -softplus(-z)``, finite for any finite ``z``."""
    return -softplus(-z, xp)


def logsumexp(z, axis=-1, keepdims=False, xp=None):
    """``log(sum(exp(z)))`` along ``axis``, shifted by the maximum."""
    xp = _ns(xp, z)
    top = xp.max(z, axis=axis, keepdims=True)
    out = top + xp.log(xp.sum(xp.exp(z - top), axis=axis, keepdims=True))
    return out if keepdims else xp.squeeze(out, axis=axis)


def softmax(z, axis=-1, xp=None):
    """Row-wise softmax, shifted by the maximum."""
    xp = _ns(xp, z)
    e = xp.exp(z - xp.max(z, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def binary_loss(z, y, xp=None):
    """Per-sample log-loss ``-y log(a) - (1-y) log(1-a)`` with ``a = sigmoid(z)``."""
    return softplus(z, xp) - y * z


def binary_loss_and_dz(z, y, xp=None):
    """Per-sample binary loss and ``dz = sigmoid(z) - y``, sharing one ``exp``."""
    xp = _ns(xp, z)
    e = xp.exp(-xp.abs(z))
    loss = xp.maximum(z, 0.0) + xp.log1p(e) - y * z
    dz = xp.where(z >= 0, 1.0, e) / (1.0 + e) - y
    return loss, dz


def multinomial_loss(z, y, xp=None):
    """Per-sample cross-entropy ``logsumexp(z) - <y, z>`` for one-hot rows ``y``."""
    xp = _ns(xp, z)
    return logsumexp(z, axis=1, xp=xp) - xp.sum(y * z, axis=1)


def row_max(z, xp):
    """The max of each row of a 2-D ``z``, as a column: ``(m, 1)``; column by column
    up to 16 classes (see ``multinomial_loss_and_dz``), beyond that one reduction
    (the loop's calls then cost more: 268 against 75 us at 64 x 100)."""
    if z.shape[1] > 16:
        return xp.max(z, axis=1, keepdims=True)
    top = z[:, :1]
    for c in range(1, z.shape[1]):
        top = xp.maximum(top, z[:, c:c + 1])
    return top


def multinomial_loss_and_dz(z, y, xp=None):
    """Per-sample cross-entropy (shape ``(m,)``) and ``dz = softmax(z) - y``."""
    xp = _ns(xp, z)
    # sums along a row as products with ones, the row max column by column (a few
    # classes): NumPy's reductions along a short last axis pay per row (on 1797 x 10,
    # 88 us a sum against 9, 93 us the max against 28; the whole 487 us against 217)
    ones = xp.ones((z.shape[1], 1), dtype=z.dtype)
    top = row_max(z, xp)
    e = xp.exp(z - top)
    total = e @ ones
    loss = (top + xp.log(total) - (y * z) @ ones)[:, 0]
    return loss, e / total - y
