"""Finite-difference gradient check: the slides' nudge, done centrally.

The slides nudge ``a`` by 0.001 in ``J(a, b, c) = 3(a + bc)`` and see ``J`` move by
0.003, so ``dJ/da = 3``. The central difference ``(f(x+h) - f(x-h)) / 2h`` has an
error of order ``h**2`` instead of ``h``, which is what lets analytic gradients be
checked to about 1e-7 in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_gradient", "numerical_gradient"]


def numerical_gradient(f, x, h=1e-6):
    """Central-difference gradient of the scalar function ``f`` at the array ``x``.

    ``x`` is a float64 NumPy array (any shape); ``f`` takes an array of that shape.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat, out = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + h
        up = float(f(x))
        flat[i] = keep - h
        down = float(f(x))
        flat[i] = keep
        out[i] = (up - down) / (2 * h)
    return grad


def check_gradient(f, grad, x, h=1e-6):
    """Largest relative difference between ``grad(x)`` and the numerical gradient.

    Relative to ``max(1, |numerical|)`` element-wise, so tiny components compare
    absolutely.
    """
    numeric = numerical_gradient(f, x, h)
    analytic = np.asarray(grad(np.array(x, dtype=np.float64)), dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradient shape {analytic.shape} != parameter shape {numeric.shape}")
    return float(np.max(np.abs(analytic - numeric) / np.maximum(1.0, np.abs(numeric))))
