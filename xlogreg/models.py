"""The linear model: raw scores, targets, the penalized objective and its gradient.

Rows layout (one example per row, as scikit-learn): ``X`` is ``(m, n)``, the
weights ``W`` are ``(n, k)`` and the intercept ``b`` is ``(k,)``, with ``k = 1`` for
two classes (sigmoid) and ``k = n_classes`` for more (softmax). The slides' columns
layout is the transpose: their ``w.T @ X`` is our ``X @ W``; ``dZ = A - Y`` is the
same in both.

The objective, with sample weights ``s`` (all ones by default) and ``S = sum(s)``::

    J(W, b) = sum_i s_i L(z_i, y_i) / S  +  alpha / 2 * ||W||^2,  alpha = 1 / (C S)

which has the same minimizer as scikit-learn's ``C * sum_i s_i L_i + ||W||^2 / 2``
(the intercept is not penalized).
"""

from __future__ import annotations

from array_api_compat import array_namespace

from .losses import binary_loss_and_dz, multinomial_loss_and_dz

__all__ = ["encode_targets", "fast_loss_and_gradient", "loss_and_gradient", "objective",
           "predict_index", "raw_score"]


def raw_score(X, W, b, xp=None):
    """``Z = X @ W + b``: broadcasting adds ``b`` to every row. The operator, not
    ``xp.matmul``, so that sparse ``X`` (SciPy, CuPy) works too."""
    return X @ W + b


def encode_targets(y_index, n_classes, dtype, xp=None):
    """Class indices ``(m,)`` -> targets: ``(m, 1)`` of 0/1 for two classes, one-hot
    ``(m, n_classes)`` for more. The indices must be ``0 .. n_classes - 1``: with
    two classes they are cast, not compared."""
    xp = array_namespace(y_index) if xp is None else xp
    column = xp.reshape(y_index, (-1, 1))
    if n_classes == 2:  # indices 0 and 1 are their own targets: one cast, no compare
        return xp.astype(column, dtype)
    classes = xp.reshape(xp.arange(n_classes, dtype=y_index.dtype), (1, -1))
    return xp.astype(column == classes, dtype)


def loss_and_gradient(X, Y, W, b, scale, alpha, sample_weight=None, xp=None):
    """Data loss and gradient of one batch, vectorized: the slides' step.

    Returns ``(loss, dW, db)`` with ``loss = sum_i s_i L_i`` (a 0-d array, left on the
    device, unscaled so that a loop can add batches up as they come), ``dW = scale * X.T @ (s * dZ) + alpha * W`` and
    ``db = scale * sum_i s_i dZ_i``. With ``scale = 1 / S`` over all rows this is the
    gradient of the data term of ``J``; a mini-batch of ``nb`` rows uses
    ``scale = 1 / (nb * mean(s))`` so that its gradient is unbiased.
    """
    xp = array_namespace(W) if xp is None else xp
    Z = X @ W + b  # operators: X may be a sparse matrix, which xp.matmul refuses
    if W.shape[1] == 1:
        loss, dZ = binary_loss_and_dz(Z, Y, xp)
        loss = xp.reshape(loss, (-1,))
    else:
        loss, dZ = multinomial_loss_and_dz(Z, Y, xp)
    if sample_weight is not None:
        loss = loss * sample_weight
        dZ = dZ * xp.reshape(sample_weight, (-1, 1))
    dW = (X.T @ dZ) * scale
    if alpha:
        dW = dW + alpha * W
    if W.shape[1] == 1:
        db = xp.sum(dZ, axis=0)
    else:  # a few columns' sums as a product: NumPy's axis-0 sum of them pays per row
        db = xp.ones((dZ.shape[0],), dtype=dZ.dtype) @ dZ  # (1797 x 10: 44 against 5 us)
    return xp.sum(loss), dW, db * scale


def fast_loss_and_gradient(backend, X, Y, W, b, scale, alpha, sample_weight=None):
    """``loss_and_gradient`` from the backend's fused kernel (one pass over ``X``)
    where it has one for these arrays, else from the vectorized code above."""
    out = backend.fused_gradient(X, Y, W, b, scale, alpha, sample_weight)
    if out is None:
        out = loss_and_gradient(X, Y, W, b, scale, alpha, sample_weight, backend.xp)
    return out


def objective(X, Y, W, b, alpha, sample_weight=None, xp=None):
    """Penalized objective ``J`` and its exact gradient ``(J, dW, db)`` on all rows."""
    xp = array_namespace(W) if xp is None else xp
    total = X.shape[0] if sample_weight is None else xp.sum(sample_weight)
    loss, dW, db = loss_and_gradient(X, Y, W, b, 1.0 / total, alpha, sample_weight, xp)
    return loss / total + 0.5 * alpha * xp.sum(W * W), dW, db


def predict_index(Z, xp):
    """Index of the predicted class; a score of exactly 0 goes to the first class, as
    in scikit-learn (``sigmoid(z) > 0.5``)."""
    if Z.shape[1] == 1:
        return xp.astype(Z[:, 0] > 0, xp.int64)
    return xp.argmax(Z, axis=1)
