"""What the training data says about itself, for the estimator's fit.

``Problem`` measures the data's scale (one pass over ``X``, on demand), derives the
automatic mini-batch step, checks the end of a fit (far from the optimum? below no
constant model?) and names the cause of a divergence. ``validation_split`` holds out
the early-stopping rows.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .optimizers import LineSearch, data_scale

__all__ = ["Problem", "validation_split"]


def validation_split(backend, rng, X, y_index, sample_weight, fraction):
    """Hold out ``fraction`` of the rows with positive weight (rows of zero weight
    would make the validation score 0/0, scikit-learn's #17229); the rest trains."""
    xp = backend.xp
    m = X.shape[0]
    if sample_weight is None:
        candidates = backend.permutation(rng, m)
    else:
        positive = np.flatnonzero(backend.to_numpy(sample_weight) > 0)
        candidates = backend.asarray(positive[backend.to_numpy(
            backend.permutation(rng, positive.shape[0]))])
    n_val = int(math.floor(fraction * candidates.shape[0]))
    if n_val < 1 or n_val >= m:
        raise ValueError(
            f"validation_fraction={fraction} of the {candidates.shape[0]} samples with "
            "positive weight leaves no validation or no training samples")
    val = candidates[:n_val]
    keep = np.ones(m, dtype=bool)
    keep[backend.to_numpy(val)] = False
    rows = backend.asarray(np.flatnonzero(keep))
    sv = None if sample_weight is None else xp.take(sample_weight, val, axis=0)
    return (backend.take_rows(X, val), xp.take(y_index, val, axis=0), sv), rows


class Problem:
    """What the training data says about itself: its scale (one pass, on demand),
    the automatic mini-batch step, the exact objective, the baseline a model must
    beat, and the cause of a divergence."""

    def __init__(self, backend, X, Y, sample_weight, rows, alpha, fit_intercept, k, est,
                 l1=0.0):
        self.backend, self.X, self.Y, self.sw, self.rows = backend, X, Y, sample_weight, rows
        self.alpha, self.fit_intercept, self.k, self.est = alpha, fit_intercept, k, est
        self.l1 = l1
        self.c = 0.25 if k == 1 else 0.5
        self._scale = None

    def _train_rows(self):
        backend = self.backend
        xp = backend.xp
        if self.rows is None:
            return self.X, self.Y, self.sw
        sw = None if self.sw is None else xp.take(self.sw, self.rows, axis=0)
        return (backend.take_rows(self.X, self.rows), xp.take(self.Y, self.rows, axis=0),
                sw)

    def scale(self, columns=True):
        """``data_scale`` of the training rows, measured once (the row statistics
        alone when ``columns`` is False: all the mini-batch step needs)."""
        if self._scale is None or (columns and "mean" not in self._scale):
            scale = data_scale(self.backend, self.X, self.sw, self.rows, columns)
            if not all(np.isfinite(v).all() for v in scale.values()):
                raise ValueError(
                    "X holds values so large that their squares overflow float64; "
                    "gradient descent cannot work with them: rescale X, e.g. with "
                    "sklearn.preprocessing.StandardScaler")
            self._scale = scale
        return self._scale

    def auto_step(self, batch):
        """``1 / L``, with ``L`` the curvature of a batch in which one row is the
        largest there is and the rest are average: at ``batch=1`` scikit-learn's SAG
        step (no single example can overshoot), towards the full batch the mean."""
        scale = self.scale(columns=False)
        one = 1.0 if self.fit_intercept else 0.0
        top, mean = scale["max_row"] - 1.0 + one, scale["mean_row"] - 1.0 + one
        batch = max(1, batch)
        return 1.0 / (self.c * (top / batch + mean * (1.0 - 1.0 / batch)) + self.alpha)

    def check_optimal(self, W, b, converged, search=None):
        """The objective at the end of a fit, with a ``ConvergenceWarning`` when a fit
        that stopped as converged is still far from the optimum (gradient descent
        creeping along a badly scaled valley looks like a plateau)."""
        if search is None:  # ``search``: the full batch's own, which knows the end
            X, Y, sw = self._train_rows()
            search = LineSearch(self.backend, X, Y, sw, self.alpha, self.fit_intercept,
                                self.scale(), self.l1)
        J, gap = search.optimality(W, b)
        if converged and gap > 0.1:
            warnings.warn(
                "LogisticRegression stopped improving, but the full gradient says the "
                f"objective {J:.6g} can still drop by about {100 * gap:.0f}%: gradient "
                "descent is creeping, most likely along badly scaled features. "
                "Standardize them (sklearn.preprocessing.StandardScaler), use "
                "batch_size=None with learning_rate='auto', or solver='lbfgs'",
                ConvergenceWarning, stacklevel=4)
        return J

    def baseline(self):
        """The objective of the best constant model: the class frequencies with an
        intercept, the uniform prediction without one. The optimum is never above it."""
        _, Y, sw = self._train_rows()
        xp = self.backend.xp
        if not self.fit_intercept:
            return math.log(2 if self.k == 1 else self.k)
        weighted = Y if sw is None else Y * xp.reshape(sw, (-1, 1))
        totals = np.asarray(self.backend.to_numpy(xp.sum(weighted, axis=0)), np.float64)
        S = float(Y.shape[0]) if sw is None else float(xp.sum(sw))
        p = totals / S
        if self.k == 1:
            p = np.concatenate([1.0 - p, p])
        p = p[p > 0]
        return float(-np.sum(p * np.log(p)))

    def warn_if_not_learned(self, final, tol):
        base = self.baseline()
        # at a strong penalty the optimum is the constant model: equal is not worse
        if final > base + (tol or 0.0) * abs(base):
            warnings.warn(
                f"LogisticRegression's training objective ({final:.6g}) is not below that "
                f"of predicting the class frequencies alone ({base:.6g}): the model has "
                "not learned from the features. "
                "Use learning_rate='auto', standardize the features, raise max_epochs, "
                "or use solver='lbfgs'",
                ConvergenceWarning, stacklevel=4)

    def explain(self, err, eta, full):
        """The divergence error: where, the measured cause, and remedies that work."""
        scale = data_scale(self.backend, self.X, self.sw, self.rows)
        sq = np.asarray(scale["sq"])
        if full:  # the curvature is at most c * trace(X^T X / S): a safe full step
            safe = 1.0 / (self.c * (float(np.sum(sq)) + self.fit_intercept) + self.alpha)
        else:
            safe = 1.0 / (self.c * scale["max_row"] + self.alpha)
        causes = []
        if not math.isfinite(scale["max_row"]):
            causes.append("X holds values so large that their squares overflow float64")
        if eta * self.alpha > 1.0:
            causes.append(f"C={self.est.C:g} is so small that the penalty alone moves the "
                          f"weights by learning_rate / (C * n_samples) = {eta * self.alpha:.3g} "
                          "times themselves per step (more than 1)")
        if self.sw is not None:
            w = self.backend.to_numpy(self.sw)
            spread = float(np.max(w) / np.mean(w))
            if spread > 10:
                causes.append(f"sample_weight reaches {spread:.3g} times its mean, which "
                              "multiplies the step on those rows")
        if np.isfinite(sq).all() and float(np.max(sq)) > 100:
            j = int(np.argmax(sq))
            causes.append(f"the features are not standardized (column {j} has a mean "
                          f"square of {sq[j]:.3g})")
        cause = "; ".join(causes) or "the step is too large for this data"
        return (f"gradient descent diverged: {err}. learning_rate={eta:g} is too large "
                f"for this data (a stable step is about {safe:.3g}) because {cause}. Use "
                "learning_rate='auto' (the default: a step derived from the data), "
                "standardize the features (sklearn.preprocessing.StandardScaler), or "
                "use solver='lbfgs'")
