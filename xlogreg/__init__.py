"""Vectorized logistic regression trained by gradient descent on NumPy or CuPy."""

from .estimator import LogisticRegression

__all__ = ["LogisticRegression", "__version__"]
__version__ = "0.1.0"
