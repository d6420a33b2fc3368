"""Command line: ``xlogreg demo`` and ``xlogreg bench``."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

from . import backends

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
    # untimed: the first run after installing compiles the CPU kernels (cached on disk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        LogisticRegression(backend=backend.name, batch_size=4, max_epochs=1).fit(X_tr, y_tr)
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


def _bench_dir() -> Path:
    for candidate in (Path(__file__).resolve().parents[1] / "bench", Path.cwd() / "bench"):
        if (candidate / "conftest.py").exists():
            return candidate
    raise SystemExit("xlogreg bench: no bench/ folder found; run it from a clone of the "
                     "xlogreg repository")


def _machine_tag() -> str:
    try:
        name = backends.get_backend("cupy").device_info()["gpu"]
    except (ImportError, backends.BackendUnavailableError):
        name = "cpu-" + str(backends.get_backend("numpy").device_info()["cpu"])
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def bench(size: str, out: Path | None, extra_args=()) -> int:
    """Run the benchmark suite at ``size``, save its JSON, render the report."""
    from .report import render

    out = Path(out) if out else Path("bench") / "results" / _machine_tag()
    out.mkdir(parents=True, exist_ok=True)
    result = out / f"{size}.json"
    env = {**os.environ, "XLOGREG_BENCH_SIZE": size}
    cmd = [sys.executable, "-m", "pytest", str(_bench_dir()), "-p", "no:cacheprovider",
           "-o", "addopts=", "-rs", f"--benchmark-json={result}", "--benchmark-columns=median,min,rounds",
           "--benchmark-sort=name", *extra_args]
    print("running:", " ".join(cmd), flush=True)
    code = subprocess.call(cmd, env=env)
    if code not in (0, 5) or not result.exists():
        print(f"xlogreg bench: the benchmark run failed (exit {code})", file=sys.stderr)
        return code or 1
    report = render([result], out)
    print(f"results: {result}\nreport:  {report}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xlogreg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train on the built-in breast-cancer data with batch, "
                                    "mini-batch and stochastic gradient descent")
    p.add_argument("--backend", default="auto", choices=backends.BACKEND_NAMES,
                   help="where to run (default: auto = GPU if CuPy sees one, else NumPy)")
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("bench", help="run the benchmark suite and render its report; or "
                                     "render / compare existing result files")
    size = b.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick",
                      help="moderate sizes, a couple of minutes")
    size.add_argument("--smoke", dest="size", action="store_const", const="smoke",
                      help="tiny sizes, seconds: checks every benchmark runs")
    size.add_argument("--render", nargs="+", metavar="JSON",
                      help="render a report from existing pytest-benchmark JSON files")
    size.add_argument("--compare", nargs=2, metavar=("A_JSON", "B_JSON"),
                      help="compare two result files side by side (Markdown)")
    b.add_argument("--out", type=Path, help="output folder (file for --compare); default "
                   "bench/results/<machine>")
    b.add_argument("pytest_args", nargs="*", help="extra arguments for pytest, after --")
    args = parser.parse_args(argv)
    if args.command == "bench":
        from .report import compare, render

        if args.render:
            print(render(args.render, args.out or Path(args.render[0]).parent))
            return 0
        if args.compare:
            print(compare(*args.compare, args.out or Path("comparison.md")))
            return 0
        return bench(args.size or "full", args.out, args.pytest_args)
    try:
        demo(args.backend, args.max_epochs, args.seed)
    except (ImportError, backends.BackendUnavailableError) as err:
        parser.exit(2, f"xlogreg: error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
