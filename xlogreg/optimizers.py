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

``lbfgs`` is the quasi-Newton alternative on the same gradient: the two-loop
recursion runs on the device, and each iteration reads back a few scalars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .models import fast_loss_and_gradient

__all__ = ["GDResult", "LearningRate", "SCHEDULES", "gradient_descent", "lbfgs", "run_epoch"]

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


def _predict_index(Z, xp):
    if Z.shape[1] == 1:
        return xp.astype(Z[:, 0] >= 0, xp.int64)
    return xp.argmax(Z, axis=1)


def run_epoch(backend, X, Y, W, b, *, order, batch, etas, mean_w, alpha, fit_intercept,
              sample_weight=None):
    """One epoch of steps on ``batch`` rows each; returns ``(W, b, loss_sum)``.

    Step ``s`` reads rows ``order[s*batch:(s+1)*batch]`` (rows in their order when
    ``order`` is None) and moves by ``etas[s]``. The backend's compiled epoch runs it
    when it has one; a full batch is one fused gradient, which beats a serial epoch.
    """
    m = X.shape[0] if order is None else order.shape[0]
    if batch < m:
        compiled = backend.train_epoch(
            X, Y, W, b, rows=order, batch=batch, etas=etas, mean_w=mean_w, alpha=alpha,
            fit_intercept=fit_intercept, sample_weight=sample_weight,
        )
        if compiled is not None:
            return compiled
    xp = backend.xp
    if order is not None:
        # one shuffled copy per epoch, so each step reads a contiguous slice
        X, Y = xp.take(X, order, axis=0), xp.take(Y, order, axis=0)
        if sample_weight is not None:
            sample_weight = xp.take(sample_weight, order, axis=0)
    total = 0.0
    for step, start in enumerate(range(0, m, batch)):
        stop = min(start + batch, m)
        part = slice(start, stop) if stop - start < m else slice(None)
        loss, dW, db = fast_loss_and_gradient(
            backend, X[part, ...], Y[part, ...], W, b, 1.0 / ((stop - start) * mean_w),
            alpha, None if sample_weight is None else sample_weight[part],
        )
        total = total + loss
        W = W - etas[step] * dW
        if fit_intercept:
            b = b - etas[step] * db
    return W, b, total


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
    diverge_above=math.inf,
    verbose=False,
):
    """Train ``(W, b)`` on device arrays ``X (m, n)``, ``Y (m, k)``; returns a GDResult.

    ``rows`` (integer indices) restricts training to those rows without copying them
    out first (the early-stopping split).

    Stops when, for ``n_iter_no_change`` epochs in a row, the epoch loss has not gone
    below the best by ``tol`` (or, with ``validation=(Xv, yv_index, sv)``, the
    validation accuracy has not gone above the best by ``tol``); ``adaptive`` first
    divides the rate by 5. With validation the best-scoring parameters are returned.
    A loss that turns NaN or infinite, or exceeds ``diverge_above``, raises
    ``FloatingPointError`` naming the learning rate.
    """
    xp = backend.xp
    if rows is not None and (batch_size is None or batch_size >= rows.shape[0]):
        # full batch reads the subset every step: one contiguous copy pays for itself
        X, Y = xp.take(X, rows, axis=0), xp.take(Y, rows, axis=0)
        if sample_weight is not None:
            sample_weight = xp.take(sample_weight, rows, axis=0)
        rows = None
    m = X.shape[0] if rows is None else rows.shape[0]
    bs = m if batch_size is None else min(batch_size, m)
    steps = math.ceil(m / bs)
    sync_every = max(1, math.ceil(SYNC_STEPS / steps))
    sw_all = sample_weight
    if sample_weight is not None and rows is not None:
        sample_weight = xp.take(sample_weight, rows, axis=0)
    mean_w = 1.0 if sample_weight is None else float(xp.mean(sample_weight))
    total_w = m * mean_w
    result = GDResult(W, b, t0)
    best_loss, best_score, best = math.inf, -math.inf, None
    stall, pending = 0, []

    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_epochs, unit="epoch", leave=False)
    try:
        for epoch in range(max_epochs):
            order = rows
            if shuffle and bs < m:
                perm = backend.permutation(rng, m)
                order = perm if rows is None else xp.take(rows, perm, axis=0)
            # sum_i s_i L_i plus the penalty at the start of the epoch, times S
            total = (0.5 * alpha * total_w) * xp.sum(W * W)
            W, b, loss = run_epoch(
                backend, X, Y, W, b, order=order, batch=bs,
                etas=schedule.steps(result.t, steps), mean_w=mean_w, alpha=alpha,
                fit_intercept=fit_intercept, sample_weight=sw_all,
            )
            total = total + loss
            result.t += steps
            score = None
            if validation is not None:
                Xv, yv, sv = validation
                hit = xp.astype(_predict_index(xp.matmul(Xv, W) + b, xp) == yv, X.dtype)
                score = xp.mean(hit) if sv is None else xp.sum(hit * sv) / xp.sum(sv)
            pending.append((total / total_w, score, W, b))
            if len(pending) < sync_every and epoch + 1 < max_epochs:
                continue
            losses = backend.to_numpy(xp.stack([p[0] for p in pending]))
            scores = None
            if validation is not None:
                scores = backend.to_numpy(xp.stack([p[1] for p in pending]))
            for i, (_, _, W_i, b_i) in enumerate(pending):
                loss_i = float(losses[i])
                result.n_epochs += 1
                if not loss_i <= diverge_above:  # NaN fails this too
                    raise FloatingPointError(
                        f"gradient descent diverged at epoch {result.n_epochs}: the loss "
                        f"became {loss_i:.4g}. learning_rate={schedule.eta0:g} is too large "
                        "for this data; use a smaller learning_rate (e.g. "
                        f"{schedule.eta0 / 10:g}) or standardize the features"
                    )
                result.loss_curve.append(loss_i)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_i:.6g}")
                if scores is not None:
                    score_i = float(scores[i])
                    result.validation_scores.append(score_i)
                    improved = score_i > best_score + (tol or 0.0)
                    if score_i > best_score:
                        best_score, best = score_i, (W_i, b_i)
                else:
                    improved = loss_i < best_loss - (tol or 0.0)
                    best_loss = min(best_loss, loss_i)
                if tol is None or result.converged:
                    continue  # epochs run past the stop still count, and are reported
                stall = 0 if improved else stall + 1
                if stall >= n_iter_no_change:
                    if schedule.plateau():
                        stall = 0
                    else:
                        result.converged = True
            pending.clear()
            if result.converged:
                break
    finally:
        if bar is not None:
            bar.close()
    result.W, result.b = (W, b) if best is None else best
    return result


@dataclass
class LBFGSResult:
    W: object
    b: object
    n_iter: int = 0
    n_evals: int = 0
    converged: bool = False
    loss_curve: list = field(default_factory=list)


def lbfgs(backend, X, Y, W, b, *, alpha, sample_weight=None, fit_intercept=True,
          max_iter=100, tol=1e-4, memory=10, verbose=False):
    """Minimize the penalized objective ``J`` with L-BFGS; returns an LBFGSResult.

    The parameters, the ``memory`` last steps and the two-loop recursion stay on the
    device in float64; each iteration brings back a few scalars (the objective, the
    largest gradient entry, the directional derivative and the curvature ``s.y``). The line search backtracks (Armijo, quadratic interpolation)
    from a step of 1; ``J`` is strictly convex, so ``s.y > 0`` holds without Wolfe's
    curvature test. Stops, as scikit-learn's ``lbfgs``, when ``max|grad J| <= tol``
    or when an iteration lowers ``J`` by less than ``64 * eps`` relative.
    """
    xp = backend.xp
    n, k = W.shape
    dtype = X.dtype
    S = X.shape[0] if sample_weight is None else float(xp.sum(sample_weight))
    mask = 1.0 if fit_intercept else xp.concat(
        [xp.ones(n * k, dtype=xp.float64), xp.zeros(k, dtype=xp.float64)])

    def fg(theta):
        Wc = xp.astype(xp.reshape(theta[: n * k], (n, k)), dtype)
        bc = xp.astype(theta[n * k:], dtype)
        loss, dW, db = fast_loss_and_gradient(backend, X, Y, Wc, bc, 1.0 / S, 0.0,
                                              sample_weight)
        w = theta[: n * k]
        g = xp.concat([xp.reshape(xp.astype(dW, xp.float64), (-1,)) + alpha * w,
                       xp.astype(db, xp.float64)]) * mask
        return float(loss) / S + 0.5 * alpha * float(xp.sum(w * w)), g

    theta = xp.concat([xp.reshape(xp.astype(W, xp.float64), (-1,)), xp.astype(b, xp.float64)])
    f, g = fg(theta)
    result = LBFGSResult(W, b, n_evals=1)
    hist = []  # (s, y, 1 / s.y), newest last
    eps = 64 * 2.220446049250313e-16
    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, unit="iter", leave=False)
    try:
        while result.n_iter < max_iter:
            if float(xp.max(xp.abs(g))) <= tol:
                result.converged = True
                break
            q, coefs = g, []
            for s, y, rho in reversed(hist):
                a = rho * xp.sum(s * q)
                q = q - a * y
                coefs.append(a)
            if hist:
                s, y, rho = hist[-1]
                q = q / (rho * xp.sum(y * y))  # H0 = (s.y / y.y) I
            for (s, y, rho), a in zip(hist, reversed(coefs)):
                q = q + (a - rho * xp.sum(y * q)) * s
            d = -q
            gtd = float(xp.sum(g * d))
            if not gtd < 0:  # not a descent direction: start the memory afresh
                hist.clear()
                d, gtd = -g, -float(xp.sum(g * g))
            step = 1.0 if hist else min(1.0, 1.0 / float(xp.sum(xp.abs(g))))
            while True:
                f_new, g_new = fg(theta + step * d)
                result.n_evals += 1
                if f_new <= f + 1e-4 * step * gtd or step < 1e-20:
                    break
                # minimum of the quadratic through f, the slope gtd and f_new
                fit = -gtd * step * step / (2.0 * (f_new - f - gtd * step))
                step = min(max(fit, 0.1 * step), 0.5 * step)
            if not f_new <= f:
                # no step lowers J in this precision: as far as it can go
                result.converged = True
                break
            s_vec, y_vec = step * d, g_new - g
            sy = float(xp.sum(s_vec * y_vec))
            if sy > 1e-12 * float(xp.sum(y_vec * y_vec)) ** 0.5 * step:
                hist.append((s_vec, y_vec, 1.0 / sy))
                if len(hist) > memory:
                    hist.pop(0)
            theta = theta + s_vec
            f_old, f, g = f, f_new, g_new
            result.n_iter += 1
            result.loss_curve.append(f)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{f:.8g}")
            if f_old - f <= eps * max(abs(f_old), abs(f), 1.0):
                result.converged = True
                break
    finally:
        if bar is not None:
            bar.close()
    result.W = xp.astype(xp.reshape(theta[: n * k], (n, k)), dtype)
    result.b = xp.astype(theta[n * k:], dtype)
    return result
