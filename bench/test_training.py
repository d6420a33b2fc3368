"""Training: per-epoch time by batch size and full fits, with peers and the quality reached.

Every row records the penalized objective it reached (the same objective for all,
scikit-learn's with C=1 divided by C*m) and its test accuracy, so a speed is never
quoted without the quality bought with it. The CPU peers (scikit-learn, PyTorch) run
at their fastest thread count on this machine (``peer_threads``: 1 thread or every
core, tried untimed) and record it as ``threads``.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from _common import CFG, classification_data, label, objective
from xlogreg import LogisticRegression

C = 1.0
DATA = {}


def _data():
    if "d" not in DATA:
        DATA["d"] = classification_data(*CFG["train"])
    return DATA["d"]


def _record(benchmark, model, X_tr, y_tr, X_te, y_te, epochs):
    coef, intercept = model.coef_, model.intercept_
    if not isinstance(coef, np.ndarray):  # CuPy: to the host for scoring
        coef, intercept = coef.get(), intercept.get()
    accuracy = float(np.mean(((X_te @ coef.ravel() + intercept[0]) >= 0) == y_te))
    benchmark.extra_info.update(loss=objective(X_tr, y_tr, coef, intercept),
                                accuracy=accuracy, epochs=epochs)


def _run(benchmark, fit, rounds=2, peer_threads=None, trial=None):
    """Time ``fit``; a peer (``peer_threads`` given) at its best thread count, found
    untimed with ``trial`` (default: ``fit`` itself) and recorded in the row."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if peer_threads is None:
            return benchmark.pedantic(fit, rounds=rounds, iterations=1, warmup_rounds=1)
        limit, times = peer_threads.best(trial or fit)
        benchmark.extra_info.update(peer_threads.info(limit, times))
        with peer_threads.limited(limit):
            return benchmark.pedantic(fit, rounds=rounds, iterations=1, warmup_rounds=1,
                                      setup=peer_threads.pause_setup)


@pytest.mark.parametrize("batch_size", CFG["batches"], ids=lambda b: f"batch{b or 'full'}")
@pytest.mark.parametrize("transfer", ["excluded", "included"])
def test_xlogreg_epochs(benchmark, backend, batch_size, transfer):
    """Fixed epochs (tol=None): the per-epoch time of each batch size."""
    if transfer == "included" and backend.name == "numpy":
        pytest.skip("host memory: nothing to transfer")
    X_tr, X_te, y_tr, y_te = _data()
    epochs = 1 if batch_size == 1 else CFG["epochs"]
    X_in, y_in = X_tr, y_tr
    if transfer == "excluded":  # data already on the device
        X_in, y_in = backend.asarray(X_tr), backend.asarray(y_tr)
    m = X_tr.shape[0]
    benchmark.group = f"epoch {m}x{X_tr.shape[1]} batch {batch_size or 'full'}"
    impl = backend.name if transfer == "excluded" else f"{backend.name} + transfer"
    label(benchmark, "epoch", impl, batch_size=batch_size or m, m=m, n=X_tr.shape[1])

    def fit():
        model = LogisticRegression(backend=backend.name, batch_size=batch_size, C=C,
                                   max_epochs=epochs, tol=None, random_state=0)
        model.fit(X_in, y_in)
        backend.synchronize()
        return model

    _record(benchmark, _run(benchmark, fit, rounds=1 if batch_size == 1 else 2),
            X_tr, y_tr, X_te, y_te, epochs)


@pytest.mark.parametrize("batch_size", [64, 1024, None], ids=lambda b: f"batch{b or 'full'}")
def test_xlogreg_full_fit(benchmark, backend, batch_size):
    """To convergence with the defaults (tol=1e-4, n_iter_no_change=5)."""
    X_tr, X_te, y_tr, y_te = _data()
    X_in, y_in = backend.asarray(X_tr), backend.asarray(y_tr)
    benchmark.group = f"full fit {X_tr.shape[0]}x{X_tr.shape[1]}"
    label(benchmark, "fit", f"xlogreg {backend.name} batch {batch_size or 'full'}",
          batch_size=batch_size or X_tr.shape[0])

    def fit():
        model = LogisticRegression(backend=backend.name, batch_size=batch_size, C=C,
                                   max_epochs=200, random_state=0).fit(X_in, y_in)
        backend.synchronize()
        return model

    model = _run(benchmark, fit, rounds=1)
    _record(benchmark, model, X_tr, y_tr, X_te, y_te, model.n_iter_)


def test_sklearn_logistic_regression(benchmark, peer_threads):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    X_tr, X_te, y_tr, y_te = _data()
    benchmark.group = f"full fit {X_tr.shape[0]}x{X_tr.shape[1]}"
    label(benchmark, "fit", "sklearn LogisticRegression (lbfgs)")
    model = _run(benchmark, lambda: SkLogisticRegression(C=C).fit(X_tr, y_tr), rounds=3,
                 peer_threads=peer_threads)
    _record(benchmark, model, X_tr, y_tr, X_te, y_te, int(model.n_iter_[0]))


@pytest.mark.parametrize("kind", ["epoch", "fit"])
def test_sklearn_sgd_classifier(benchmark, kind, peer_threads):
    """SGDClassifier with the same penalty (alpha = 1 / (C m)): per sample, in Cython."""
    from sklearn.linear_model import SGDClassifier

    X_tr, X_te, y_tr, y_te = _data()
    m = X_tr.shape[0]
    epochs = CFG["epochs"] if kind == "epoch" else 200
    params = dict(loss="log_loss", alpha=1.0 / (C * m), random_state=0, max_iter=epochs)
    if kind == "epoch":
        params["tol"] = None
        benchmark.group = f"epoch {m}x{X_tr.shape[1]} batch 1"
        label(benchmark, "epoch", "sklearn SGDClassifier", batch_size=1, m=m, n=X_tr.shape[1])
    else:
        benchmark.group = f"full fit {m}x{X_tr.shape[1]}"
        label(benchmark, "fit", "sklearn SGDClassifier")
    model = _run(benchmark, lambda: SGDClassifier(**params).fit(X_tr, y_tr),
                 peer_threads=peer_threads)
    _record(benchmark, model, X_tr, y_tr, X_te, y_te, int(model.n_iter_))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_minibatch(benchmark, device, peer_threads):
    """PyTorch peer (when installed): mini-batch 64 SGD on the same objective. On the
    CPU at its best thread count, tried on one epoch."""
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("skipped: no GPU")
    X_tr, X_te, y_tr, y_te = _data()
    m, n = X_tr.shape
    X = torch.as_tensor(X_tr, device=device)
    y = torch.as_tensor(y_tr, dtype=X.dtype, device=device)
    epochs = CFG["epochs"]
    benchmark.group = f"epoch {m}x{n} batch 64"
    label(benchmark, "epoch", f"torch {device}", batch_size=64, m=m, n=n)

    def fit(epochs=epochs):
        gen = torch.Generator(device=device).manual_seed(0)
        w = torch.zeros(n, device=device, requires_grad=True)
        b = torch.zeros(1, device=device, requires_grad=True)
        opt = torch.optim.SGD([w, b], lr=0.1)
        for _ in range(epochs):
            perm = torch.randperm(m, device=device, generator=gen)
            for start in range(0, m, 64):
                idx = perm[start:start + 64]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(X[idx] @ w + b, y[idx])
                loss = loss + (w @ w) / (2 * C * m)
                opt.zero_grad()
                loss.backward()
                opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return w.detach().cpu().numpy(), b.detach().cpu().numpy()

    if device == "cpu":
        w, b = _run(benchmark, fit, rounds=1, peer_threads=peer_threads,
                    trial=lambda: fit(epochs=1))
    else:
        w, b = _run(benchmark, fit, rounds=1)

    class Fitted:
        coef_, intercept_ = w[None, :], b

    _record(benchmark, Fitted, X_tr, y_tr, X_te, y_te, epochs)


def test_training_data_transfer(benchmark, backend):
    """Copying the training data to the device: the difference between the two epoch rows."""
    if backend.name == "numpy":
        pytest.skip("host memory: nothing to transfer")
    X_tr = _data()[0]
    benchmark.group = f"transfer {X_tr.shape[0]}x{X_tr.shape[1]} float32"
    label(benchmark, "transfer", "host to device", bytes=X_tr.nbytes)
    benchmark.pedantic(lambda: (backend.asarray(X_tr), backend.synchronize()), rounds=10,
                       iterations=1, warmup_rounds=2)
