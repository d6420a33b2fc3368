"""Vectorized logistic regression trained by gradient descent on NumPy or CuPy."""

from .estimator import LogisticRegression
from .streaming import fit_out_of_core

__all__ = ["LogisticRegression", "__version__", "fit_out_of_core"]
__version__ = "0.1.0"
