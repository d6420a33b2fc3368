"""Gradient descent: one loop, parameterized by the batch size.

``batch_size=None`` (or ``>= m``) is batch gradient descent, ``1`` is stochastic
gradient descent, anything between is mini-batch: the slides' three forms are one
loop here, not three.

The loop never copies a value to the host per step: the epoch loss is accumulated
on the device, and the losses of several epochs are brought back together, at least
every ``SYNC_STEPS`` steps. Stopping decisions are therefore made up to a few epochs
late in full-batch training; ``n_iter_`` and ``loss_curve_`` report every epoch run.

Where the backend has compiled kernels (NumPy with Numba), a full-batch gradient is
one fused pass over ``X`` and a mini-batch epoch is one call, reading each batch's
rows through the permutation; elsewhere the same steps run as ``xp`` code on one
shuffled copy of ``X`` per epoch. Either way fitting holds at most one extra copy of
``X``.

``learning_rate="auto"`` (the estimator's default) derives the step from the data
(``data_scale``: one pass over ``X``). A mini-batch step is ``1 / L_max``, with
``L_max`` the largest curvature one example can have (scikit-learn's SAG step). The
full batch runs ``LineSearch``: gradient descent in standardized coordinates (the
features centred and divided by their spread, as ``StandardScaler`` would, without
touching ``X``) with a backtracking line search, so that it descends, and fast,
whatever the units of the features.

Training stops on the objective, relative to its size: ``n_iter_no_change`` epochs
without lowering the best by ``tol * |best|``. An epoch objective well above the
starting one, or one that keeps swinging well above the best instead of settling, is
divergence and raises ``FloatingPointError`` with the measured cause.

``lbfgs`` is the quasi-Newton alternative on the same gradient: the two-loop
recursion runs on the device, and each iteration reads back a few scalars.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

from . import backends
from .losses import binary_loss_and_dz, multinomial_loss_and_dz, row_max, sigmoid, softmax
from .models import fast_loss_and_gradient, predict_index

__all__ = ["GDResult", "LearningRate", "LineSearch", "SCHEDULES", "data_scale",
           "gradient_descent", "hessian_pass", "lbfgs", "newton", "run_epoch",
           "soft_threshold"]

SCHEDULES = ("constant", "invscaling", "adaptive")
SYNC_STEPS = 32


class LearningRate:
    """The step size at update ``t`` (counted from 0 over the model's life).

    ``constant``: ``eta0``. ``invscaling``: ``eta0 / (t + 1) ** power_t``.
    ``adaptive``: ``eta0`` until ``n_iter_no_change`` epochs pass without progress,
    then divided by 5 each time, as scikit-learn's ``SGDClassifier`` does.
    """

    def __init__(self, kind="constant", eta0=0.1, power_t=0.5, eta=None):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown lr_schedule {kind!r}; valid ones are {SCHEDULES}")
        self.kind, self.eta0, self.power_t = kind, eta0, power_t
        self.eta = eta0 if eta is None else eta

    def __call__(self, t: int) -> float:
        if self.kind == "invscaling":
            return self.eta0 / (t + 1) ** self.power_t
        return self.eta

    def steps(self, t: int, count: int) -> list:
        """The step sizes of updates ``t .. t + count - 1``."""
        return [self(t + i) for i in range(count)]

    def plateau(self) -> bool:
        """React to a plateau: ``True`` to keep training (the rate was cut)."""
        if self.kind == "adaptive" and self.eta > 1e-6:
            self.eta /= 5.0
            return True
        return False


@dataclass
class GDResult:
    W: object
    b: object
    t: int
    n_epochs: int = 0
    converged: bool = False
    loss_curve: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)


def soft_threshold(V, t, xp):
    """``sign(V) * max(|V| - t, 0)``: the proximal step of ``t * ||V||_1``, which
    sets to exactly 0 every weight the L1 penalty outweighs."""
    return xp.sign(V) * xp.maximum(xp.abs(V) - t, 0.0)


def run_epoch(backend, X, Y, W, b, *, order, batch, etas, mean_w, alpha, fit_intercept,
              sample_weight=None, l1=0.0, first=None):
    """One epoch of steps on ``batch`` rows each; returns ``(W, b, loss_sum)``.

    Step ``s`` reads rows ``order[s*batch:(s+1)*batch]`` (rows in their order when
    ``order`` is None) and moves by ``etas[s]``: ``W <- soft(max(0, 1 - eta alpha) W -
    eta dW_data, eta l1)``, the L2 shrink clamped at 0 as scikit-learn's SGD does, so
    a strong penalty cannot flip the weights' sign, then the proximal step of the L1
    penalty (``soft_threshold``; none when ``l1`` is 0). The backend's compiled epoch
    runs it when it has one; a full batch is one fused gradient, which beats a serial
    epoch, or none where ``first`` (``gradient_at_zero``, with ``W`` and ``b`` zero)
    holds its sums already.
    """
    m = X.shape[0] if order is None else order.shape[0]
    if batch < m:
        compiled = backend.train_epoch(
            X, Y, W, b, rows=order, batch=batch, etas=etas, mean_w=mean_w, alpha=alpha,
            fit_intercept=fit_intercept, sample_weight=sample_weight, l1=l1,
        )
        if compiled is not None:
            return compiled
    xp = backend.xp
    if order is not None:
        # one shuffled copy per epoch, so each step reads a contiguous slice
        X, Y = backend.take_rows(X, order), xp.take(Y, order, axis=0)
        if sample_weight is not None:
            sample_weight = xp.take(sample_weight, order, axis=0)
    total = 0.0
    for step, start in enumerate(range(0, m, batch)):
        stop = min(start + batch, m)
        part = slice(start, stop) if stop - start < m else slice(None)
        scale = 1.0 / ((stop - start) * mean_w)
        loss, dW, db = _loss_and_gradient(
            backend, X[part, ...], Y[part, ...], W, b, scale, 0.0,
            None if sample_weight is None else sample_weight[part],
            first if stop - start == m else None)
        total = total + loss
        eta = etas[step]
        W = max(0.0, 1.0 - eta * alpha) * W - eta * dW
        if l1:
            W = soft_threshold(W, eta * l1, xp)
        if fit_intercept:
            b = b - eta * db
    return W, b, total


def data_scale(backend, X, sample_weight=None, rows=None, columns=True):
    """The scale of the data, in float64 on the host: ``max_row = max_i s_i
    (||x_i||^2 + 1) / mean(s)``, the largest curvature one example brings (the ``+ 1``
    is the intercept's column of ones), and ``mean_row``, its weighted mean; with
    ``columns``, also the weighted column ``mean``, ``var`` and mean square ``sq``.

    ``rows`` restricts it to those rows. A backend may compute it its own way
    (``backend.data_scale``: BLAS for NumPy, one reduction on the workers for Dask);
    else rows are read a chunk at a time, so the extra memory is a chunk, not a copy
    of ``X``.
    """
    import numpy as np

    own = getattr(backend, "data_scale", None)
    found = None if own is None else own(X, sample_weight, rows, columns)
    if found is not None:
        return found
    xp = backend.xp
    n = X.shape[1]
    m = X.shape[0] if rows is None else rows.shape[0]
    # a 64th of the rows, at least 64 KiB of float64, at a time: little memory, few
    # Python steps
    chunk = max(1, (1 << 16) // (8 * n), m // 64)
    s1 = s2 = 0.0
    total_w, top, norm_sum = 0.0, 0.0, 0.0
    for lo in range(0, m, chunk):
        hi = min(lo + chunk, m)  # array-api-strict refuses a stop past the end
        part = X[lo:hi, ...] if rows is None else xp.take(X, rows[lo:hi], axis=0)
        part = xp.astype(part, xp.float64, copy=False)
        sq = part * part
        norms = xp.sum(sq, axis=1) + 1.0
        if sample_weight is None:
            s1 = s1 + xp.sum(part, axis=0)
            s2 = s2 + xp.sum(sq, axis=0)
            total_w += part.shape[0]
        else:
            w = sample_weight[lo:hi] if rows is None else xp.take(sample_weight, rows[lo:hi])
            w = xp.astype(w, xp.float64)
            s1 = s1 + xp.matmul(w, part)
            s2 = s2 + xp.matmul(w, sq)
            total_w += float(xp.sum(w))
            norms = norms * w
        top = max(top, float(xp.max(norms)))
        norm_sum += float(xp.sum(norms))
    mean = backend.to_numpy(s1) / total_w
    sq = backend.to_numpy(s2) / total_w
    return {"mean": mean, "var": np.maximum(sq - mean * mean, 0.0), "sq": sq,
            "max_row": top * m / total_w, "mean_row": norm_sum / total_w}


def gradient_at_zero(scan, n_classes):
    """The data term's unscaled ``(sum_i s_i L_i, sum_i s_i x_i dZ_i (n, k), sum_i s_i
    dZ_i (k,))`` at ``W = 0, b = 0``, where every fresh fit starts, in float64 on the
    host, from the input check's scan (``class_sums``, ``class_weights``: one row per
    label in a range, the labels present in the order of the classes); None where the
    scan has no class sums. Every score is 0 there: each probability is 1/2 (softmax:
    1/k), so ``dZ = p - y`` depends on the row's class only, and the gradient is the
    class sums' combination; the scan is then the first step's pass over ``X``."""
    import numpy as np

    if scan is None or "class_sums" not in scan:
        return None
    present = scan["class_weights"] > 0
    if int(np.count_nonzero(present)) != n_classes:
        return None
    sums, weights = scan["class_sums"][present], scan["class_weights"][present]
    total, S = sums.sum(axis=0), float(weights.sum())
    if n_classes == 2:  # one column: class 1 against class 0 (no cancellation in total)
        return (S * math.log(2.0), (0.5 * (sums[0] - sums[1]))[:, None],
                np.array([0.5 * (weights[0] - weights[1])]))
    return S * math.log(n_classes), total[:, None] / n_classes - sums.T, \
        S / n_classes - weights


def _loss_and_gradient(backend, X, Y, W, b, scale, alpha, sample_weight, first=None):
    """``fast_loss_and_gradient``; at zero weights, where ``first`` (the sums of
    ``gradient_at_zero``) is given, the same values in the same dtypes without the
    pass (the penalty's gradient is 0 there)."""
    if first is None:
        return fast_loss_and_gradient(backend, X, Y, W, b, scale, alpha, sample_weight)
    loss, dW, db = first
    return (loss, backend.asarray(dW * scale, dtype=X.dtype),
            backend.asarray(db * scale, dtype=X.dtype))


def _vdot(a, b, xp):
    """``sum(a * b)`` for real arrays of any shape, as one call: the line search's
    dot products are many, and small (7 an evaluation; NumPy's ``vdot`` takes 0.7 us
    where two ``reshape`` calls and ``@`` take 3). The array API has no ``vdot``:
    ``@`` of the flattened arrays there."""
    vdot = getattr(xp, "vdot", None)  # NumPy, CuPy, Dask
    if vdot is not None:
        return vdot(a, b)
    return xp.reshape(a, (-1,)) @ xp.reshape(b, (-1,))


class LineSearch:
    """Full-batch gradient descent in standardized coordinates, with a backtracking
    line search: the automatic step of ``batch_size=None``.

    In coordinates where every feature is centred and scaled to its spread, the
    logistic curvature is bounded by ``c = 1/4`` (softmax: ``1/2``) on the diagonal,
    so the direction is the gradient there, ``d = D^-1 g`` mapped back to ``(W, b)``
    (``D = c var + alpha`` for the weights, ``c`` for the centred intercept; without
    an intercept, no centring). With an L1 part (``l1 > 0``) a step is a proximal
    gradient step in the same coordinates: the weights are soft-thresholded by
    ``eta l1 / D``, which is exact there because the metric is diagonal and the
    centred intercept is not penalized.

    A step of size ``eta`` moving by ``delta`` is kept when the smooth part ``f``
    (data term and L2) stays under its quadratic model, ``f(x + delta) <= f(x) +
    g.delta + ||delta||_D^2 / (2 eta)`` (without L1 that is Armijo's test with
    constant 1/2); the next trial is the step that model's curvature suggests. Each
    accepted step costs one fused pass over ``X`` (its gradient is the next step's),
    each rejected trial one more. Steps never raise the objective, so this cannot
    diverge, whatever the units of the features.
    """

    def __init__(self, backend, X, Y, sample_weight, alpha, fit_intercept, scale, l1=0.0):
        import numpy as np

        xp = backend.xp
        self.backend, self.X, self.Y, self.sw = backend, X, Y, sample_weight
        self.alpha, self.fit_intercept, self.l1 = alpha, fit_intercept, l1
        self.S = X.shape[0] if sample_weight is None else float(xp.sum(sample_weight))
        c = 0.25 if Y.shape[1] == 1 else 0.5
        spread = scale["var"] if fit_intercept else scale["sq"]
        D = c * spread + alpha
        D = np.where(D > 0, D, c)  # a column of zeros with no penalty: any scale
        self.D = backend.asarray(D, dtype=xp.float64)[:, None]
        self.inv_D = 1.0 / self.D
        self.mean = backend.asarray(scale["mean"], dtype=xp.float64)
        self.c, self.dtype = c, X.dtype
        self.eta = 1.0
        self.J = self.G = self.at = None  # smooth part and gradient at the point ``at``
        self.first = None  # ``gradient_at_zero``'s sums: the next evaluation's, at zero

    def _eval(self, W, b):
        xp = self.backend.xp
        loss, dW, db = _loss_and_gradient(self.backend, self.X, self.Y, W, b, 1.0 / self.S,
                                          self.alpha, self.sw, self.first)
        self.first = None  # (the first evaluation's only: it is at zero)
        W64 = xp.astype(W, xp.float64, copy=False)
        J = float(loss) / self.S + 0.5 * self.alpha * float(_vdot(W64, W64, xp))
        return J, xp.astype(dW, xp.float64), xp.astype(db, xp.float64)

    def _h(self, W):
        """The L1 part of the objective."""
        xp = self.backend.xp
        return self.l1 * float(xp.sum(xp.abs(xp.astype(W, xp.float64)))) if self.l1 else 0.0

    def direction(self, gW, gb):
        """The descent direction ``D^-1 g`` in (W, b), and its slope ``g . d``."""
        xp = self.backend.xp
        if self.fit_intercept:
            dW = (gW - self.mean[:, None] * gb[None, :]) * self.inv_D
            db = gb / self.c - xp.matmul(self.mean, dW)
        else:
            dW, db = gW * self.inv_D, gb * 0.0
        return dW, db, float(_vdot(gW, dW, xp) + _vdot(gb, db, xp))

    def _reach(self, W, b, gW, gb, eta):
        """Where a step of size ``eta`` from ``(W, b)`` (float64) lands, and the
        quadratic model's two terms ``(g.delta, ||delta||_D^2)``."""
        xp = self.backend.xp
        dW, db, _ = self.direction(gW, gb)
        W_new = W - eta * dW
        if self.l1:
            W_new = soft_threshold(W_new, eta * self.l1 * self.inv_D, xp)
        step_W = W_new - W
        # the centred intercept moves by -eta g_b / c whatever the weights do
        b_new = b - eta * db + xp.matmul(self.mean, -eta * dW - step_W) \
            if self.fit_intercept else b
        norm = float(_vdot(self.D * step_W, step_W, xp))
        if self.fit_intercept:
            centred = (b_new - b) + xp.matmul(self.mean, step_W)
            norm += self.c * float(_vdot(centred, centred, xp))
        return W_new, b_new, float(_vdot(gW, step_W, xp) + _vdot(gb, b_new - b, xp)), norm

    def optimality(self, W, b):
        """``(F, decrease / F)``: the objective at ``(W, b)``, and the decrease a unit
        step promises (its quadratic model), relative to ``F``. Near the optimum it
        is small (below 1e-2 for converged fits, gradient descent's noise included);
        far from it, it is of order 1, whatever the units of the features."""
        xp = self.backend.xp
        if self.at is not None and W is self.at[0] and b is self.at[1]:
            J, (gW, gb) = self.J, self.G  # where the last step landed: known already
        else:
            J, gW, gb = self._eval(W, b)
        W64, b64 = xp.astype(W, xp.float64), xp.astype(b, xp.float64)
        W_new, _, gd, norm = self._reach(W64, b64, gW, gb, 1.0)
        F = J + self._h(W)
        decrease = -(gd + 0.5 * norm + self._h(W_new) - self._h(W))
        return F, decrease / max(abs(F), 1e-300)

    def step(self, W, b):
        """One accepted step from ``(W, b)``: ``(W, b, F before it, stalled)``."""
        xp = self.backend.xp
        if self.J is None:
            self.J, *self.G = self._eval(W, b)
        J, (gW, gb) = self.J, self.G
        F = J + self._h(W)
        W64, b64 = xp.astype(W, xp.float64), xp.astype(b, xp.float64)
        for _ in range(200):
            eta = self.eta
            W_step, b_step, gd, norm = self._reach(W64, b64, gW, gb, eta)
            if not norm > 0:  # a fixed point of the step: the optimum in this precision
                return W, b, F, True
            W_new = xp.astype(W_step, self.dtype)
            b_new = xp.astype(b_step, self.dtype) if self.fit_intercept else b
            J_new, gW_new, gb_new = self._eval(W_new, b_new)
            if J_new <= J + gd + norm / (2.0 * eta):
                break
            if not math.isfinite(J_new) or J_new + self._h(W_new) > F:
                self.eta = eta * 0.5
            else:  # between half and all of the promised decrease: shrink less
                self.eta = eta * 0.7
        else:
            return W, b, F, True  # no step lowers the objective in this precision
        curvature = 2.0 * (J_new - J - gd) / norm
        self.eta = min(1.0 / curvature, 4.0 * eta) if curvature > 0 else 4.0 * eta
        self.J, self.G, self.at = J_new, (gW_new, gb_new), (W_new, b_new)
        return W_new, b_new, F, False


class Diverged(FloatingPointError):
    """Gradient descent diverged; ``epoch`` and ``loss`` say where."""

    def __init__(self, message, epoch, loss):
        super().__init__(message)
        self.epoch, self.loss = epoch, loss


def gradient_descent(
    backend,
    X,
    Y,
    W,
    b,
    *,
    schedule,
    alpha,
    sample_weight=None,
    rows=None,
    batch_size=None,
    max_epochs=1,
    tol=None,
    n_iter_no_change=5,
    shuffle=True,
    rng=None,
    fit_intercept=True,
    t0=0,
    validation=None,
    start_loss=None,
    line_search=None,
    verbose=0,
    l1=0.0,
    first=None,
):
    """Train ``(W, b)`` on device arrays ``X (m, n)``, ``Y (m, k)``; returns a GDResult.

    ``alpha`` and ``l1`` are the strengths of the L2 and L1 parts of the penalty
    (``alpha / 2 ||W||^2 + l1 ||W||_1``). ``first`` (``gradient_at_zero``, with ``W``
    and ``b`` zero) is the first full batch's gradient, or the line search's first
    evaluation. ``rows`` (integer indices) restricts training to those rows without
    copying them out first (the early-stopping split). ``line_search`` (a
    ``LineSearch`` over the same rows) replaces the schedule's fixed step for the
    full batch.

    Stops when, for ``n_iter_no_change`` epochs in a row, the epoch loss has not gone
    below the best by ``tol * |best|`` (or, with ``validation=(Xv, yv_index, sv)``,
    the validation accuracy has not gone above the best by ``tol``); ``adaptive``
    first divides the rate by 5. With validation the best-scoring parameters are
    returned. A loss that turns NaN or infinite, rises well above ``start_loss``, or
    keeps swinging well above the best when training stalls raises ``Diverged``.
    """
    xp = backend.xp
    if rows is not None and (batch_size is None or batch_size >= rows.shape[0]):
        # full batch reads the subset every step: one contiguous copy pays for itself
        X, Y = backend.take_rows(X, rows), xp.take(Y, rows, axis=0)
        if sample_weight is not None:
            sample_weight = xp.take(sample_weight, rows, axis=0)
        rows = None
    m = X.shape[0] if rows is None else rows.shape[0]
    bs = m if batch_size is None else min(batch_size, m)
    if bs < m:
        line_search = None
    elif line_search is not None:
        line_search.first = first
    steps = math.ceil(m / bs)
    # a line search reads J on the host every step anyway; else sync every few steps
    sync_every = 1 if line_search is not None else max(1, math.ceil(SYNC_STEPS / steps))
    sw_all = sample_weight
    if sample_weight is not None and rows is not None:
        sample_weight = xp.take(sample_weight, rows, axis=0)
    mean_w = 1.0 if sample_weight is None else float(xp.mean(sample_weight))
    total_w = m * mean_w
    result = GDResult(W, b, t0)
    best_loss, best_score, best = math.inf, -math.inf, None
    stall, pending, recent = 0, [], []
    top = math.inf if start_loss is None else start_loss + 0.5 * max(abs(start_loss), 1e-3)
    log = _Progress(verbose, max_epochs)
    try:
        for epoch in range(max_epochs):
            stalled = False
            if line_search is not None:
                W, b, total, stalled = line_search.step(W, b)
                total = total * total_w
                eta = line_search.eta
            else:
                order = rows
                if shuffle and bs < m:
                    perm = backend.permutation(rng, m)
                    order = perm if rows is None else xp.take(rows, perm, axis=0)
                # sum_i s_i L_i plus the penalty at the start of the epoch, times S
                total = (0.5 * alpha * total_w) * xp.sum(W * W)
                if l1:
                    total = total + (l1 * total_w) * xp.sum(xp.abs(W))
                etas = schedule.steps(result.t, steps)
                W, b, loss = run_epoch(
                    backend, X, Y, W, b, order=order, batch=bs, etas=etas, mean_w=mean_w,
                    alpha=alpha, fit_intercept=fit_intercept, sample_weight=sw_all, l1=l1,
                    first=first if epoch == 0 else None,
                )
                total = total + loss
                eta = etas[-1]
            result.t += steps
            score = None
            if validation is not None:
                Xv, yv, sv = validation
                hit = xp.astype(predict_index(Xv @ W + b, xp) == yv, X.dtype)
                score = xp.mean(hit) if sv is None else xp.sum(hit * sv) / xp.sum(sv)
            pending.append((total / total_w, score, W, b, eta))
            if len(pending) < sync_every and epoch + 1 < max_epochs and not stalled:
                continue
            losses = [float(v) for v in backend.to_numpy(xp.stack(
                [xp.asarray(p[0], dtype=xp.float64) for p in pending]))]
            scores = None
            if validation is not None:
                scores = backend.to_numpy(xp.stack([p[1] for p in pending]))
            for i, (_, _, W_i, b_i, eta_i) in enumerate(pending):
                loss_i = losses[i]
                result.n_epochs += 1
                if not loss_i <= top:  # NaN fails this too
                    raise Diverged(f"the loss became {loss_i:.4g} at epoch "
                                   f"{result.n_epochs}, above its start {start_loss:.4g}",
                                   result.n_epochs, loss_i)
                result.loss_curve.append(loss_i)
                log.epoch(result.n_epochs, loss_i, eta_i)
                recent = (recent + [loss_i])[-n_iter_no_change:]
                if scores is not None:
                    score_i = float(scores[i])
                    result.validation_scores.append(score_i)
                    improved = score_i > best_score + (tol or 0.0)
                    if score_i > best_score:
                        best_score, best = score_i, (W_i, b_i)
                else:
                    # relative: an absolute tol can exceed all the loss left to gain
                    # (one positive in 10,000 has an optimum near 1e-3)
                    improved = loss_i < best_loss - (tol or 0.0) * abs(best_loss)
                    best_loss = min(best_loss, loss_i)
                if tol is None or result.converged:
                    continue  # epochs run past the stop still count, and are reported
                stall = 0 if improved else stall + 1
                if stall >= n_iter_no_change:
                    _check_settled(recent, best_loss, start_loss, result.n_epochs)
                    if schedule.plateau():
                        stall = 0
                    else:
                        result.converged = True
            pending.clear()
            if result.converged or stalled:
                result.converged = True
                break
    finally:
        log.close(result.converged, result.n_epochs)
    result.W, result.b = (W, b) if best is None else best
    return result


def _check_settled(recent, best, start, epoch):
    """Training stopped improving: at its best (converged), or swinging well above it
    (a step too large to settle, which is divergence, not convergence)."""
    if start is None or not math.isfinite(best):
        return
    # mini-batch noise wiggles around the best and comes back to it; a window that
    # stays far above it has left the optimum's neighbourhood for good
    gap = max(start - best, 0.0)
    if min(recent) > best + 0.25 * gap + 0.05 * abs(best):
        raise Diverged(
            f"the loss keeps swinging between {min(recent):.4g} and {max(recent):.4g} "
            f"(best {best:.4g}, start {start:.4g}) instead of settling, up to epoch {epoch}",
            epoch, max(recent))


class _Progress:
    """``verbose=1``: a bar over epochs that says it may stop early (no total, so no
    misleading time left) and stays on screen; ``verbose>=2``: a text line per epoch,
    as scikit-learn's SGD prints them."""

    def __init__(self, verbose, max_epochs):
        self.verbose, self.bar, self.t0 = int(verbose or 0), None, time.perf_counter()
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(unit="epoch", desc=f"epochs (at most {max_epochs})")

    def epoch(self, n, loss, eta):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.6g}", step=f"{eta:.3g}")
        elif self.verbose >= 2:
            print(f"-- Epoch {n}: loss {loss:.8g}, step {eta:.4g}, "
                  f"{time.perf_counter() - self.t0:.3f} s", file=sys.stderr, flush=True)

    def close(self, converged, count, unit="epochs"):
        if self.bar is not None:
            self.bar.close()
        if self.verbose >= 1:
            state = "converged" if converged else "stopped"
            print(f"{state} after {count} {unit} "
                  f"({time.perf_counter() - self.t0:.3f} s)", file=sys.stderr, flush=True)


@dataclass
class LBFGSResult:
    W: object
    b: object
    n_iter: int = 0
    n_evals: int = 0
    converged: bool = False
    line_search_failed: bool = False
    loss_curve: list = field(default_factory=list)
    grad_start: float = math.nan  # max|grad J| at the first and at the latest check
    grad_end: float = math.nan

    def reached(self, g, tol, xp):
        """Record ``max|g|``; True where it is at most ``tol`` (converged)."""
        self.grad_end = float(xp.max(xp.abs(g)))
        if math.isnan(self.grad_start):
            self.grad_start = self.grad_end
        self.converged = self.converged or self.grad_end <= tol
        return self.grad_end <= tol

    def record(self, f_old, f_new, step, log):
        """Count an accepted iteration; True (converged) when it lowered ``J`` by
        less than ``64 * eps`` relative: as far as float64 goes."""
        self.n_iter += 1
        self.loss_curve.append(f_new)
        log.epoch(self.n_iter, f_new, step)
        if f_old - f_new <= 64 * 2.220446049250313e-16 * max(abs(f_old), abs(f_new), 1.0):
            self.converged = True
        return self.converged


def lbfgs(backend, X, Y, W, b, *, alpha, sample_weight=None, fit_intercept=True,
          max_iter=100, tol=1e-4, memory=10, verbose=False, precondition=None,
          first=None):
    """Minimize the penalized objective ``J`` with L-BFGS; returns an LBFGSResult.

    The parameters, the ``memory`` last steps and the two-loop recursion stay on the
    device in float64; each iteration brings back a few scalars (the objective, the
    largest gradient entry, the directional derivative and the curvature ``s.y``).
    The line search backtracks (Armijo, quadratic interpolation) from a step of 1, or
    on the first iteration from the step that moves the parameters by at most 1 (in
    the metric's norm with ``precondition``), so that no unit of the features is too
    large or too small for it; ``J`` is strictly convex, so ``s.y > 0`` holds without Wolfe's
    curvature test. ``precondition`` (a ``LineSearch``) makes the initial inverse
    Hessian its standardized-coordinates metric instead of a multiple of the
    identity, so that features in units of 1e12 or 1e-12 converge as standardized
    ones do. ``first`` (``gradient_at_zero``, with ``W`` and ``b`` zero) saves the
    first evaluation's pass. Stops, as scikit-learn's ``lbfgs``, when ``max|grad J| <= tol``
    or when an iteration lowers ``J`` by less than ``64 * eps`` relative.
    """
    xp = backend.xp  # dot products of the 1-D float64 vectors: ``a @ b``, one call
    n, k = W.shape
    dtype = X.dtype
    S = X.shape[0] if sample_weight is None else float(xp.sum(sample_weight))
    mask = 1.0 if fit_intercept else xp.concat(
        [xp.ones(n * k, dtype=xp.float64), xp.zeros(k, dtype=xp.float64)])

    def fg(theta, first=None):
        Wc = xp.astype(xp.reshape(theta[: n * k], (n, k)), dtype)
        bc = xp.astype(theta[n * k:], dtype)
        loss, dW, db = _loss_and_gradient(backend, X, Y, Wc, bc, 1.0 / S, 0.0,
                                          sample_weight, first)
        w = theta[: n * k]
        g = xp.concat([xp.reshape(xp.astype(dW, xp.float64), (-1,)) + alpha * w,
                       xp.astype(db, xp.float64)]) * mask
        return float(loss) / S + 0.5 * alpha * float(w @ w), g

    def metric(v):  # P v: identity, or the standardized-coordinates preconditioner
        if precondition is None:
            return v
        dW, db, _ = precondition.direction(xp.reshape(v[: n * k], (n, k)), v[n * k:])
        return xp.concat([xp.reshape(dW, (-1,)), db])

    theta = xp.concat([xp.reshape(xp.astype(W, xp.float64), (-1,)), xp.astype(b, xp.float64)])
    f, g = fg(theta, first)
    result = LBFGSResult(W, b, n_evals=1)
    hist = []  # (s, y, 1 / s.y), newest last
    log = _Progress(verbose, max_iter)
    try:
        while result.n_iter < max_iter:
            if result.reached(g, tol, xp):
                break
            q, coefs = g, []
            for s, y, rho in reversed(hist):
                a = rho * (s @ q)
                q = q - a * y
                coefs.append(a)
            if hist:
                s, y, rho = hist[-1]
                Py = metric(y)
                q = metric(q) / (rho * (y @ Py))  # H0 = (s.y / y.P y) P
            elif precondition is not None:
                q = metric(q)
            for (s, y, rho), a in zip(hist, reversed(coefs)):
                q = q + (a - rho * (y @ q)) * s
            d = -q
            gtd = float(g @ d)
            if not gtd < 0:  # not a descent direction: start the memory afresh
                hist.clear()
                d, gtd = -g, -float(g @ g)
            # the first step moves theta by 1 in norm (SciPy's choice), in the
            # metric's norm where there is one, or less: a unit step along P g on
            # wide data (more features than rows) overshoots its curvature, which
            # grows with n / m, and left a first curvature pair that cost 500 x 5,000
            # 23-37 iterations to 1e-6 against 17-22 (four seeds); later steps take the
            # quasi-Newton step
            if hist:
                step = 1.0
            elif precondition is None:
                step = 1.0 / max(float(g @ g) ** 0.5, 1e-300)
            else:
                step = min(1.0, 1.0 / max(-gtd, 1e-300) ** 0.5)
            for _ in range(100):
                f_new, g_new = fg(theta + step * d)
                result.n_evals += 1
                if f_new <= f + 1e-4 * step * gtd:
                    break
                if math.isfinite(f_new) and f_new > f + gtd * step:
                    # minimum of the quadratic through f, the slope gtd and f_new
                    fit = -gtd * step * step / (2.0 * (f_new - f - gtd * step))
                    step = min(max(fit, 0.1 * step), 0.5 * step)
                else:
                    step *= 0.1
            if not f_new <= f:
                # no step lowers J in this precision: as far as it can go, unless the
                # gradient says the optimum is elsewhere (the caller warns)
                result.line_search_failed = not result.grad_end <= max(tol, 1e-10)
                result.converged = not result.line_search_failed
                break
            s_vec, y_vec = step * d, g_new - g
            sy = float(s_vec @ y_vec)
            if sy > 1e-12 * float(y_vec @ y_vec) ** 0.5 * step:
                hist.append((s_vec, y_vec, 1.0 / sy))
                if len(hist) > memory:
                    hist.pop(0)
            theta = theta + s_vec
            f_old, f, g = f, f_new, g_new
            if result.record(f_old, f, step, log):
                break
    finally:
        log.close(result.converged, result.n_iter, "iterations")
    result.W = xp.astype(xp.reshape(theta[: n * k], (n, k)), dtype)
    result.b = xp.astype(theta[n * k:], dtype)
    return result


def hessian_pass(backend, X, Y, W, b, *, alpha, sample_weight=None, fit_intercept=True,
                 curvature=True, exact=True):
    """The objective ``J``, its gradient and its exact Hessian at ``(W, b)``, from
    one pass over ``X``; returns ``(J, G, H)`` in float64 on the device, with the
    parameters ordered class by class, each class's weights then (with
    ``fit_intercept``) its intercept: ``G`` has ``k * p`` entries and ``H`` is
    ``(k p, k p)``, ``p = n + fit_intercept``. The sums over the rows come from the
    backend's ``hessian_sums`` where it has one for these arrays (Dask: one task per
    worker; NumPy: a compiled pass over narrow binary data, a lean one over small
    binary data), else from ``hessian_sums`` below. Without ``curvature``, ``H`` is
    None: the same ``J`` and ``G``, at the same precision, from a cheaper pass.
    Without ``exact``, ``H`` may be a float32 one (see ``hessian_sums``), from the
    plain code: the hooks' Hessians are exact, and they compute ``J`` and ``G`` alone
    whatever ``exact`` says.
    """
    xp = backend.xp
    n, k = W.shape
    p = n + (1 if fit_intercept else 0)
    S = X.shape[0] if sample_weight is None else float(xp.sum(sample_weight))
    # (without curvature there is no Hessian to be exact or not)
    own = getattr(backend, "hessian_sums", None) if exact or not curvature else None
    out = None if own is None else own(X, Y, W, b, sample_weight, fit_intercept, curvature)
    loss, G, H = out if out is not None else \
        hessian_sums(backend, X, Y, W, b, sample_weight, fit_intercept, curvature, exact)
    W64 = xp.astype(W, xp.float64, copy=False)
    if curvature:
        H = _add_ridge(H / S, alpha, n, p, k, xp)
    else:  # whatever a hook returned: an unscaled sum would pass for a Hessian
        H = None
    G = G / S  # a new array: the penalty goes in in place
    G[:, :n] += alpha * W64.T
    J = loss / S + 0.5 * alpha * float(_vdot(W64, W64, xp))
    return J, xp.reshape(G, (-1,)), H


def hessian_sums(backend, X, Y, W, b, sample_weight=None, fit_intercept=True,
                 curvature=True, exact=True):
    """``(sum s L, sum s dZ X~ (k, p), sum of the Hessian blocks (k p, k p))`` over
    the rows of ``X``, unscaled and unpenalized, in blocks of rows: one pass. For
    softmax the ``(c, c')`` block is ``X~^T diag(s (P_c delta_cc' - P_c P_c')) X~``
    (``X~`` = ``X`` with a column of ones), ``k (k + 1) / 2`` products per block of
    rows; each block is cast to float64 once, so float32 data gets a float64 Hessian.
    Without ``curvature`` the third entry is None and its products are skipped.
    Without ``exact``, a dense binary block's ``R^T R`` is a float32 product (twice
    BLAS's float64 speed, a relative error near ``1e-6``: a sum of squares, no
    cancellation), summed over the blocks in float64: a Hessian that only
    preconditions ``newton``'s conjugate gradients. (Softmax's blocks are differences
    of two such products, which float32 would turn indefinite: they stay float64.)
    """
    xp = backend.xp
    n, k = W.shape
    m = X.shape[0]
    p = n + (1 if fit_intercept else 0)
    W64, b64 = xp.astype(W, xp.float64, copy=False), xp.astype(b, xp.float64, copy=False)
    H = xp.zeros((k * p, k * p), dtype=xp.float64) if curvature else None
    G = xp.zeros((k, p), dtype=xp.float64)
    loss = 0.0
    sparse = backends.is_sparse(X)
    # 32 MiB of float64 a block for the k scaled copies of X~: large blocks for BLAS
    # (a product's cost has a part per block, the update of the (k p)^2 result)
    rows = max(1, (1 << 22) // max(1, p * k))
    for lo in range(0, m, rows):
        hi = min(lo + rows, m)
        Xb = X[lo:hi, ...]
        # no copies of float64 data: small problems run many passes, each a few copies
        if sparse:  # (CuPy's sparse astype has no copy argument)
            Xb = Xb if Xb.dtype == "float64" else Xb.astype("float64")
        else:
            Xb = xp.astype(Xb, xp.float64, copy=False)
        Yb = xp.astype(Y[lo:hi, ...], xp.float64, copy=False)
        s = None if sample_weight is None else \
            xp.astype(sample_weight[lo:hi], xp.float64, copy=False)
        Z = Xb @ W64 + b64
        if k == 1:
            L, dZ = binary_loss_and_dz(Z, Yb, xp)
        else:
            L, dZ = multinomial_loss_and_dz(Z, Yb, xp)
        P = dZ + Yb  # the probabilities, before the weights scale dZ
        L = xp.reshape(L, (-1,))
        if s is not None:
            L, dZ = L * s, dZ * xp.reshape(s, (-1, 1))
        loss += float(xp.sum(L))
        parts = [xp.astype((Xb.T @ dZ).T, xp.float64)]
        if fit_intercept:
            # column sums as a product: NumPy's axis-0 sum of a few columns pays per row
            parts.append(xp.reshape(xp.ones((hi - lo,), dtype=xp.float64) @ dZ, (k, 1)))
        G = G + xp.concat(parts, axis=1)
        if not curvature:
            continue
        if k == 1 and not sparse:
            # X~^T diag(d) X~ as R^T R, R = sqrt(d) X~ (d >= 0): one symmetric
            # product, which BLAS (syrk) does in half the time of a general one
            d = P[:, 0] * (1.0 - P[:, 0])
            r = xp.reshape(xp.sqrt(xp.maximum(d if s is None else d * s, 0.0)), (-1, 1))
            if exact:
                R = xp.concat([Xb * r, r], axis=1) if fit_intercept else Xb * r
                H = _put(H, 0, 0, R.T @ R, xp)
                continue
            # float32, r scaled to at most 1 (tiny weights would underflow)
            top = float(xp.max(r)) or 1.0
            Xh = xp.astype(X[lo:hi, ...], xp.float32, copy=False)
            r = xp.astype(r / top, xp.float32)
            R = xp.concat([Xh * r, r], axis=1) if fit_intercept else Xh * r
            H = _put(H, 0, 0, xp.astype(R.T @ R, xp.float64) * top ** 2, xp)
            continue
        Xt = Xb if sparse or not fit_intercept else xp.concat(
            [Xb, xp.ones((hi - lo, 1), dtype=xp.float64)], axis=1)
        if sparse:
            for c in range(k):
                for c2 in range(c, k):
                    d = P[:, c] * ((1.0 if c == c2 else 0.0) - P[:, c2])
                    if s is not None:
                        d = d * s
                    block = _weighted_gram(Xb, d, fit_intercept, sparse, xp)
                    H = _put(H, c * p, c2 * p, block, xp)
                    if c2 != c:
                        H = _put(H, c2 * p, c * p, block.T, xp)
            continue
        # softmax, dense: sum_i s_i (diag(P_i) - P_i P_i^T) (x) x_i x_i^T as one large
        # product, A^T diag(s) A with A = [P_c x~]_c, subtracted from the block
        # diagonal X~^T diag(s P_c) X~: BLAS at its best, not k (k + 1) / 2 small calls
        root = None if s is None else xp.reshape(xp.sqrt(s), (-1, 1))
        Ps = P if root is None else P * root
        A = xp.reshape(xp.reshape(Ps, (-1, k, 1)) * xp.reshape(Xt, (-1, 1, p)), (-1, k * p))
        H = H - A.T @ A  # symmetric: syrk, half a general product's time
        # the k diagonal blocks X~^T diag(s P_c) X~ side by side, in one product
        diagonal = Xt.T @ (A if root is None else A * root)
        for c in range(k):
            H = _put(H, c * p, c * p, diagonal[:, c * p:(c + 1) * p], xp)
    return loss, G, H if curvature else None


def _weighted_gram(Xb, d, fit_intercept, sparse, xp):
    """``X~^T diag(d) X~`` for one block: ``(p, p)``."""
    if sparse:
        XtDX = (Xb.T @ Xb.multiply(xp.reshape(d, (-1, 1)))).toarray()
        XtDX = xp.asarray(XtDX) if not hasattr(XtDX, "__cuda_array_interface__") else XtDX
    else:
        XtDX = Xb.T @ (Xb * xp.reshape(d, (-1, 1)))
    if not fit_intercept:
        return XtDX
    Xtd = xp.reshape(Xb.T @ d, (-1, 1))
    top = xp.concat([XtDX, Xtd], axis=1)
    bottom = xp.concat([xp.reshape(Xtd, (1, -1)), xp.reshape(xp.sum(d), (1, 1))], axis=1)
    return xp.concat([top, bottom], axis=0)


def _put(H, r, c, block, xp):
    """``H[r:r+p, c:c+p] += block``, in place where ``H`` takes it (array-API arrays
    are not all writable), a float32 ``block`` added in float64."""
    try:
        H[r:r + block.shape[0], c:c + block.shape[1]] += block
        return H
    except (TypeError, ValueError):  # immutable arrays: rebuild (small matrices only)
        import numpy as np

        host = np.array(np.from_dlpack(H), copy=True)
        host[r:r + block.shape[0], c:c + block.shape[1]] += np.from_dlpack(block)
        return xp.asarray(host)


def _diag(v, xp):
    return v[:, None] * xp.eye(v.shape[0], dtype=v.dtype)


def _add_ridge(H, alpha, n, p, k, xp):
    """``H`` plus the penalty's diagonal in ``newton``'s order: ``alpha`` on each
    class's ``n`` weights, 0 on its intercept. In place where ``H`` is a C-contiguous
    NumPy or CuPy array (strided views of its diagonal, one a class: on breast cancer
    building the vector cost more than the rest of the pass's bookkeeping), else
    through a diagonal matrix (a reshape of any other array may be a copy)."""
    N = H.shape[0]
    flags = getattr(H, "flags", None)
    # (CuPy's flags before version 14 have no writeable: its arrays always are)
    if flags is not None and flags.c_contiguous and getattr(flags, "writeable", True):
        flat = xp.reshape(H, (-1,))  # a view
        for c in range(k):
            start = c * p * (N + 1)
            flat[start:start + (n - 1) * (N + 1) + 1:N + 1] += alpha
        return H
    v = xp.concat([xp.full((n,), alpha, dtype=H.dtype),
                   xp.zeros((p - n,), dtype=H.dtype)] * k)
    return H + _diag(v, xp)


def newton(backend, X, Y, W, b, *, alpha, sample_weight=None, fit_intercept=True,
           max_iter=100, tol=1e-4, verbose=False, max_products=None):
    """Minimize the penalized objective ``J`` with Newton's method; returns an
    ``LBFGSResult``.

    Each iteration computes ``J``, its gradient and its exact Hessian in one pass over
    ``X`` (``hessian_pass``), solves ``H d = -g`` by Cholesky on the device, and
    backtracks from the full step (Armijo), usually accepted at once: one more pass.
    The pass at the step foreseen to end the fit leaves the Hessian out.
    The stopping rule is ``lbfgs``'s (``max|grad J| <= tol``, or a decrease below
    ``64 * eps`` relative), so the two are interchangeable. Newton's iterations do not
    depend on the conditioning of ``X`` (unscaled data converges in as many
    iterations as standardized), at a cost of ``O(m (n k)^2)`` per iteration and
    ``(n k)^2`` floats of memory.

    Where a Hessian costs many gradients (softmax, or a hundred parameters and more:
    ``products_per_hessian``), the steps between two Hessians solve the Newton system
    at their own point by conjugate gradients on Hessian-vector products (two
    products with ``X`` each), preconditioned by the Cholesky factor of the last
    Hessian, which makes one to a few products enough. The next Hessian is computed
    when a step takes ``max_products`` products or backtracks (``None``: the cost
    model's number; ``0``: a Hessian at every step, plain Newton). Such a Hessian
    only preconditions: a binary one is computed with float32 products (twice as
    fast), until one needs 3 products (or the whole budget) at its own point or
    float32 overflows; softmax's stay float64 (see ``hessian_sums``).
    """
    xp = backend.xp
    n, k = W.shape
    p = n + (1 if fit_intercept else 0)
    dtype = X.dtype
    if max_products is None:
        max_products = products_per_hessian(backend, X, k, p)

    def unpack(theta):
        T = xp.reshape(theta, (k, p))
        Wc = xp.astype(T[:, :n].T, dtype)
        bc = xp.astype(T[:, n], dtype) if fit_intercept else xp.zeros((k,), dtype=dtype)
        return Wc, bc

    parts = [xp.astype(W, xp.float64).T]
    if fit_intercept:
        parts.append(xp.reshape(xp.astype(b, xp.float64), (k, 1)))
    theta = xp.reshape(xp.concat(parts, axis=1), (-1,))
    # with products, a Hessian only preconditions them, and a binary one from float32
    # products (twice as fast) suffices: at its own point its step meets CG's
    # tolerance with one product. Where it takes 3 (or the whole budget, if less),
    # float32 lost too much (features in the millions at a weak penalty): the
    # Hessians that follow are exact ones.
    exact = max_products == 0

    def everything(theta, curvature=True):
        result.n_evals += 1
        Wc, bc = unpack(theta)
        return hessian_pass(backend, X, Y, Wc, bc, alpha=alpha, sample_weight=sample_weight,
                            fit_intercept=fit_intercept, curvature=curvature, exact=exact)

    # softmax with intercepts: moving every class's intercept by the same amount
    # changes nothing, so H is singular along that direction u and g is orthogonal to
    # it; H + c u u^T is definite there and gives the same step (no u component),
    # without a failed factorization first
    gauge = None
    if k > 1 and fit_intercept:
        gauge = xp.reshape(xp.concat([xp.zeros((k, n), dtype=xp.float64),
                                      xp.ones((k, 1), dtype=xp.float64)], axis=1), (-1,))

    def factorize(H):
        A = H
        if gauge is not None:
            # c: the intercepts' own curvature scale, so the factor stays well
            # conditioned
            A = H + (float(xp.max(xp.abs(H))) / k) * (gauge[:, None] * gauge[None, :])
        return cho_factor(backend, A)

    result = LBFGSResult(W, b)
    log = _Progress(verbose, max_iter)
    try:
        if k > 1 and not bool(xp.any(W != 0)):
            f, g, _ = everything(theta, curvature=False)
            H = _shared_hessian(backend, X, Y, b if fit_intercept else xp.zeros_like(b),
                                alpha=alpha, sample_weight=sample_weight,
                                fit_intercept=fit_intercept, exact=exact)
        else:
            f, g, H = everything(theta)
        factor, refresh = None, True  # refresh: the next point gets its own Hessian
        before = None  # max|g| before the last step, where that was a full Newton step
        while True:
            if result.reached(g, tol, xp):
                break
            if result.n_iter >= max_iter:
                break
            if H is None and (refresh or factor is None):
                # the step foreseen to be the last was not, a step backtracked, or the
                # products ran out: this point's own Hessian
                g, H = everything(theta)[1:]
            used = 0
            if H is not None:
                factor = factorize(H)
                if factor is None and not exact:
                    # float32 overflowed (features near 1e19): this point's exact
                    # Hessian, and exact ones from here on
                    exact = True
                    g, H = everything(theta)[1:]
                    factor = factorize(H)
            if max_products == 0 or factor is None:
                d = None if factor is None else -cho_solve(backend, factor, g)
            else:  # at a new Hessian too, as it may be a float32 one
                product = hessian_product(backend, X, *unpack(theta), alpha=alpha,
                                          sample_weight=sample_weight,
                                          fit_intercept=fit_intercept)
                d, used = _preconditioned_cg(backend, product, factor, g, max_products)
                exact = exact or (H is not None and used >= min(3, max_products))
            gtd = math.nan if d is None else float(_vdot(g, d, xp))
            if not gtd < 0:  # H numerically singular: a gradient step instead
                d, gtd = -g, -float(xp.sum(g * g))
            refresh = max_products == 0 or used >= max_products
            # the full step, usually taken. Plain Newton evaluates it with its Hessian,
            # the next iteration's, so that an accepted step costs one pass over X, not
            # two. With products a Hessian costs many passes: it is computed at the
            # next point, with one more pass, only where the fit goes on there.
            # Where Newton's quadratic convergence (max|g| falling as its square, at the
            # rate of the last step) says this step ends the fit, its Hessian would go
            # unused: that pass leaves it out (half the time on narrow data, most of it
            # on wide or softmax data), and should the fit go on after all, one more
            # pass computes it, so the iterates are those of plain Newton. Over 84 fits
            # (7 data sets, tol 1e-2 to 1e-8, C 0.01 to 100) the margin of 2 left 85
            # Hessians out and computed 17 of them again; a margin of 4, 71 and 7.
            last = before is not None and result.grad_end ** 3 <= tol / 2 * before ** 2
            step = 1.0
            f_new, g_new, H_new = everything(theta + d,
                                             curvature=max_products == 0 and not last)
            if not f_new <= f + 1e-4 * gtd:
                # backtracking, each trial judged by the same float64 pass as the full
                # step (a float32 objective there once accepted a step that raised J);
                # the point reached gets its own Hessian
                H_new, refresh = None, True
                for _ in range(60):
                    step *= 0.5
                    f_new, g_new, _ = everything(theta + step * d, curvature=False)
                    if f_new <= f + 1e-4 * step * gtd:
                        break
            if not f_new <= f:
                result.line_search_failed = not result.grad_end <= max(tol, 1e-10)
                result.converged = not result.line_search_failed
                break
            theta = theta + step * d
            f_old, f = f, f_new
            before = result.grad_end if H_new is not None else None
            if result.record(f_old, f_new, step, log):
                break
            g, H = g_new, H_new
    finally:
        log.close(result.converged, result.n_iter, "iterations")
    result.W, result.b = unpack(theta)
    return result


def _shared_hessian(backend, X, Y, b, *, alpha, sample_weight=None, fit_intercept=True,
                    exact=True):
    """The softmax Hessian where the weights are 0: every row then has the same
    probabilities ``q = softmax(b)``, and the Hessian is a Kronecker product,
    ``(diag(q) - q q^T) (x) X~^T diag(s) X~ / S`` plus the ridge: one binary-sized
    pass (``X~^T diag(s) X~`` is 4 times the binary Hessian at 0, through the
    backend's hook where it has one) instead of ``k (k + 1) / 2`` blocks of it."""
    xp = backend.xp
    n, k = X.shape[1], b.shape[0]
    p = n + (1 if fit_intercept else 0)
    zero_w = xp.zeros((n, 1), dtype=X.dtype)
    zero_b = xp.zeros((1,), dtype=X.dtype)
    # any labels (only the Hessian is kept), Y's kind of array, contiguous (NumPy's
    # compiled hook takes no strided column)
    labels = Y[:, :1] * 0
    gram = 4.0 * hessian_pass(backend, X, labels, zero_w, zero_b, alpha=0.0,
                              sample_weight=sample_weight, fit_intercept=fit_intercept,
                              exact=exact)[2]
    q = softmax(xp.astype(b, xp.float64), xp=xp)
    C = _diag(q, xp) - q[:, None] * q[None, :]
    H = xp.reshape(xp.reshape(C, (k, 1, k, 1)) * xp.reshape(gram, (1, p, 1, p)), (k * p, k * p))
    return _add_ridge(H, alpha, n, p, k, xp)


def products_per_hessian(backend, X, k, p):
    """How many Hessian-vector products ``newton`` may spend on a step before the
    next Hessian: a quarter of a Hessian's cost in products; 0 (a Hessian every step)
    below 2, and where the backend takes no such products (``hessian_products =
    False``: Dask, whose passes over ``X`` go through its own hooks).

    A Hessian pass costs about ``m (k p)^2`` multiply-adds and its factorization
    ``(k p)^3 / 3``; a product, ``4 m n k`` and the calls around it. Measured on two
    cores, a product costs about ``16 m n k`` of the Hessian's multiply-adds: 0.6
    against 26 ms on digits (1797 x 64, 10 classes), 80 against 170 us on breast
    cancer (569 x 30). A step with that many products costs a quarter of a Hessian."""
    if not getattr(backend, "hessian_products", True):
        return 0
    m, n = X.shape
    N = k * p
    ratio = (m * N * N + N ** 3 / 3) / (16 * m * max(1, n) * k)
    budget = int(ratio // 4)
    return budget if budget >= 2 else 0


def hessian_product(backend, X, W, b, *, alpha, sample_weight=None, fit_intercept=True):
    """A function ``v -> H v``: the Hessian of the penalized objective at ``(W, b)``
    times a float64 vector in ``newton``'s order (class by class, each class's weights
    then its intercept), with two products with ``X``. The probabilities at ``(W, b)``
    are computed here, once. The rows' arithmetic is in ``X``'s precision (float32
    halves its memory traffic): a product steers conjugate gradients, and Newton's
    float64 gradient, not the product, decides where the fit ends."""
    xp = backend.xp
    n, k = W.shape
    dtype = X.dtype
    S = X.shape[0] if sample_weight is None else float(xp.sum(sample_weight))
    Z = X @ W + b
    ones = xp.ones((k, 1), dtype=dtype)  # row sums as products: see losses
    if k == 1:
        P = sigmoid(Z, xp)  # no overflow warning on large scores
        D = P * (1.0 - P)
    else:
        E = xp.exp(Z - row_max(Z, xp))
        D = E / (E @ ones)
    Ds = D if sample_weight is None else \
        D * xp.reshape(xp.astype(sample_weight, dtype, copy=False), (-1, 1))
    rows = xp.ones((X.shape[0],), dtype=dtype)

    def product(v):
        V = xp.reshape(v, (k, -1))
        Vw = V[:, :n]
        Zv = X @ xp.astype(Vw.T, dtype)
        if fit_intercept:
            Zv = Zv + xp.astype(V[:, n], dtype)
        # softmax: the row's Hessian diag(P) - P P^T applied to its scores' change
        R = Ds * Zv if k == 1 else Ds * (Zv - (D * Zv) @ ones)
        parts = [xp.astype((X.T @ R).T, xp.float64) / S + alpha * Vw]
        if fit_intercept:
            parts.append(xp.reshape(xp.astype(rows @ R, xp.float64), (k, 1)) / S)
        return xp.reshape(xp.concat(parts, axis=1), (-1,))

    return product


def _preconditioned_cg(backend, product, factor, g, limit):
    """``d`` with ``H d = -g`` to the inexact-Newton tolerance ``min(1/2,
    sqrt(||g||)) ||g||`` (superlinear near the optimum), by conjugate gradients on
    ``product`` (``v -> H v``), preconditioned by ``factor`` (the Cholesky factor of
    an earlier Hessian: where that Hessian is close, one or two products suffice),
    with at most ``limit`` products. Returns ``(d, products used)``; where CG breaks
    down (a direction without positive curvature, NaN), the last factor's own step
    and ``limit``, so that the caller computes a Hessian next."""
    xp = backend.xp
    gnorm = math.sqrt(float(_vdot(g, g, xp)))
    goal = min(0.5, math.sqrt(gnorm)) * gnorm
    r = -g
    direction = cho_solve(backend, factor, r)  # the last Hessian's step
    rz = float(_vdot(r, direction, xp))
    d = None
    used = 0
    while used < limit:
        Hp = product(direction)
        used += 1
        curve = float(_vdot(direction, Hp, xp))
        if not (curve > 0 and rz > 0):
            break
        a = rz / curve
        d = a * direction if d is None else d + a * direction
        r = r - a * Hp
        if math.sqrt(float(_vdot(r, r, xp))) <= goal:
            return d, used
        z = cho_solve(backend, factor, r)
        rz, rz_old = float(_vdot(r, z, xp)), rz
        direction = z + (rz / rz_old) * direction
    if d is None or not bool(xp.all(xp.isfinite(d))):
        return cho_solve(backend, factor, -g), limit
    return d, limit


def cho_factor(backend, H):
    """The lower Cholesky factor of a symmetric positive (semi)definite ``H``, for
    ``cho_solve``; where the factorization fails (softmax's unpenalized intercepts
    leave ``H`` singular along one direction, which the gradient never has a
    component in), a ridge growing from ``1e-12`` of ``H``'s scale makes it
    definite. None where even that fails (``H`` not finite)."""
    xp = backend.xp
    ridge = 0.0
    eye = None
    for _ in range(12):
        A = H if ridge == 0.0 else H + ridge * eye
        L = _cholesky(backend, A)
        if L is not None:
            return L
        if eye is None:  # the first failure: H's scale, read only where it is needed
            eye = xp.eye(H.shape[0], dtype=H.dtype)
            ridge = (float(xp.max(xp.abs(H))) or 1.0) * 1e-12
        else:
            ridge *= 100.0
    return None


def _cholesky(backend, A):
    """The lower Cholesky factor of ``A``, or None where ``A`` is not positive
    definite: the backend's own (``backend.cholesky``) where it has one, else the
    array API's ``linalg``."""
    own = getattr(backend, "cholesky", None)
    if own is not None:
        return own(A)
    xp = backend.xp
    try:
        L = xp.linalg.cholesky(A)
    except Exception as err:  # LinAlgError, under each library's own name
        if "LinAlgError" in type(err).__name__ or "posit" in str(err).lower():
            return None
        raise
    return L if bool(xp.all(xp.isfinite(L))) else None  # CuPy: NaN, not an error


def cho_solve(backend, L, g):
    """``A^-1 g`` from ``A``'s lower Cholesky factor ``L``: the backend's own
    triangular solves (``backend.cho_solve``: LAPACK's) where it has them, else two
    of the array API's general solves."""
    own = getattr(backend, "cho_solve", None)
    if own is not None:
        return own(L, g)
    xp = backend.xp
    y = xp.linalg.solve(L, g[:, None])
    return xp.linalg.solve(L.T, y)[:, 0]
