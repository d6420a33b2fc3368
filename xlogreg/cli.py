"""Command line: ``xlogreg demo``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import backends

__all__ = ["main"]

DEMO_RUNS = (  # (name, batch_size, learning_rate)
    ("batch GD", None, 0.1),
    ("mini-batch GD", 64, 0.1),
    ("stochastic GD", 1, 0.01),
)


def demo(backend_name: str = "auto", max_epochs: int = 1000, seed: int = 0, out=None):
    """Train on scikit-learn's breast-cancer data with the three forms of GD."""
    out = sys.stdout if out is None else out
    from sklearn.datasets import load_breast_cancer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from .estimator import LogisticRegression

    backend = backends.get_backend(backend_name)
    info = backend.device_info()
    where = info.get("gpu") or info.get("cpu", "")
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=seed,
                                              stratify=y)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    print(f"breast cancer: {X_tr.shape[0]} train / {X_te.shape[0]} test rows, "
          f"{X.shape[1]} features; backend {backend.name} ({where})\n", file=out)
    header = f"{'method':<15}{'batch':>7}{'lr':>7}{'epochs':>8}{'loss':>10}{'test acc':>10}{'time':>10}"
    print(header, file=out)
    print("-" * len(header), file=out)
    rows = []
    for name, batch_size, lr in DEMO_RUNS:
        clf = LogisticRegression(backend=backend.name, batch_size=batch_size, learning_rate=lr,
                                 max_epochs=max_epochs, random_state=seed)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(X_tr, y_tr)
        backend.synchronize()
        seconds = time.perf_counter() - start
        acc = clf.score(X_te, y_te)
        note = " (max_epochs reached)" if caught else ""
        print(f"{name:<15}{batch_size or len(y_tr):>7}{lr:>7g}{clf.n_iter_:>8}"
              f"{clf.loss_curve_[-1]:>10.5f}{acc:>10.4f}{seconds:>9.3f}s{note}", file=out)
        rows.append({"method": name, "batch_size": batch_size, "epochs": clf.n_iter_,
                     "loss": clf.loss_curve_[-1], "accuracy": acc, "seconds": seconds})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xlogreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train on the built-in breast-cancer data with batch, "
                                    "mini-batch and stochastic gradient descent")
    p.add_argument("--backend", default="auto", choices=backends.BACKEND_NAMES,
                   help="where to run (default: auto = GPU if CuPy sees one, else NumPy)")
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        demo(args.backend, args.max_epochs, args.seed)
    except (ImportError, backends.BackendUnavailableError) as err:
        parser.exit(2, f"xlogreg: error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
