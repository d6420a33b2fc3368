"""Command line: ``xlogreg demo`` and ``xlogreg bench`` (also ``python -m xlogreg``).

``xlogreg demo`` trains on scikit-learn's breast-cancer data with batch, mini-batch
and stochastic gradient descent, then times the slides' headline live: a Python
for-loop against the vectorized code (and the GPU where CuPy sees one), for a dot
product and for one gradient step. ``xlogreg bench`` runs the benchmark suite in the
``bench/`` folder of a clone and renders its report.

A user's mistake (an unknown backend, CuPy missing, a result file that is not one, no
``bench/`` folder, the benchmark extras missing) ends with one line on stderr and exit
status 2, before anything is created or run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from . import __version__, backends

__all__ = ["main"]

DESCRIPTION = (
    "Vectorized logistic regression trained by gradient descent, on the CPU (NumPy) "
    "or an NVIDIA GPU (CuPy). 'demo' trains on a built-in data set and times a Python "
    "for-loop against the vectorized code; 'bench' runs the benchmark suite of a clone."
)
EPILOG = """\
examples:
  xlogreg demo                  train three ways, then time loop vs vectorized vs GPU
  xlogreg demo --backend cuda   train on the GPU (pip install "xlogreg[cuda]")
  xlogreg bench --quick         the benchmark suite at moderate sizes (in a clone)
  xlogreg bench --render bench/results/*/full.json --out report/
  xlogreg bench --compare a.json b.json --out comparison.md
"""

DEMO_RUNS = (  # (name, batch_size, learning_rate)
    ("batch GD", None, 0.1),
    ("mini-batch GD", 64, 0.1),
    ("stochastic GD", 1, 0.01),
)

SPEED_DOT_N = 1_000_000  # the slides' dot product: two vectors of a million elements
SPEED_LOOP_N = 100_000  # the Python loop is timed on this many of them, then scaled
SPEED_REPEATS = 5
CUDA_HINT = 'pip install "xlogreg[cuda]"'
BENCH_HINT = 'pip install "xlogreg[bench]"'

# what bench/ imports: without these it cannot run at all
BENCH_REQUIRED = {"pytest": "pytest", "pytest_benchmark": "pytest-benchmark"}
# without these some rows or the plots are skipped (bench/ uses pytest.importorskip)
BENCH_OPTIONAL = {"matplotlib": "matplotlib (plots)", "dask": "dask (Dask rows)",
                  "distributed": "distributed (Dask cluster rows)", "zarr": "zarr (Zarr rows)",
                  "dask_ml": "dask-ml (its peer rows)"}


class UsageError(Exception):
    """A mistake of the user's: reported as one line on stderr, exit status 2."""


# ---------------------------------------------------------------------------- demo


def demo(backend_name: str = "auto", max_epochs: int = 1000, seed: int = 0, out=None,
         speed: bool = True) -> list[dict]:
    """Train on scikit-learn's breast-cancer data with the three forms of GD, then
    (with ``speed``) time a Python loop against the vectorized code, see `speed_table`."""
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
        # batch 1 is the only row here with enough steps per epoch for a compiled
        # kernel; warm it so the table times training, not the compile
        LogisticRegression(backend=backend.name, batch_size=1, max_epochs=1,
                           learning_rate=0.01, tol=None).fit(X_tr, y_tr)
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
    if speed:
        print(file=out)
        speed_table(X_tr, y_tr, seed=seed, out=out)
    return rows


def _median_seconds(fn, backend, repeats: int = SPEED_REPEATS, min_time: float = 2e-3) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` timings, after one untimed
    warm-up call. Each call ends with ``backend.synchronize()``, so GPU work is inside
    the timing; calls faster than ``min_time`` run several times per timing."""
    def call():
        fn()
        backend.synchronize()

    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    number = max(1, min(10_000, int(min_time / max(first, 1e-9))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            call()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def _max_rel_diff(a, b) -> float:
    """``max |a - b| / max |b|`` over all entries: agreement to rounding is ~1e-15."""
    import numpy as np

    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(np.float64).tiny))


def _gpu_or_note():
    """The CuPy backend, or ``None`` and the line that says why the GPU is not measured."""
    try:
        return backends.get_backend("cupy"), None
    except ImportError:
        return None, f"GPU: not measured (CuPy is not installed: {CUDA_HINT})"
    except backends.BackendUnavailableError as err:
        return None, f"GPU: not measured (no CUDA device: {_one_line(err)})"


def speed_table(X, y, seed: int = 0, out=None, repeats: int = SPEED_REPEATS) -> list[dict]:
    """Time the slides' headline now: a Python for-loop vs the vectorized code (NumPy,
    and CuPy where it sees a device), float64, medians of ``repeats`` timings.

    Two rows: the dot product of two ``SPEED_DOT_N``-element vectors (the loop,
    ``xlogreg.reference.loop_dot``, runs on the first ``SPEED_LOOP_N`` elements and its
    time is scaled to the full length) and one logistic-regression gradient step on
    ``X, y`` (``reference.loop_gradient``'s nested loops over examples and features vs
    ``models.loss_and_gradient``). Each row also holds the loop's and the vectorized
    results on the same input, which agree to rounding.
    """
    import numpy as np

    from .models import loss_and_gradient
    from .reference import loop_dot, loop_gradient

    out = sys.stdout if out is None else out
    cpu = backends.get_backend("numpy")
    gpu, gpu_note = _gpu_or_note()
    rng = np.random.default_rng(seed)
    rows = []

    # the dot product: the slides' first example
    u, v = rng.random(SPEED_DOT_N), rng.random(SPEED_DOT_N)
    u_loop, v_loop = u[:SPEED_LOOP_N], v[:SPEED_LOOP_N]  # ndarrays, as on the slide
    row = {"what": f"dot of two {SPEED_DOT_N:,}-element vectors", "short": "dot",
           "scaled": True,
           "loop_value": loop_dot(u_loop, v_loop),
           "loop": _median_seconds(lambda: loop_dot(u_loop, v_loop), cpu, repeats)
           * (SPEED_DOT_N / SPEED_LOOP_N)}
    for key, be in (("numpy", cpu), ("gpu", gpu)):
        if be is None:
            continue
        a, b = be.asarray(u), be.asarray(v)
        row[key] = _median_seconds(lambda: be.xp.matmul(a, b), be, repeats)
        row[f"{key}_value"] = float(be.xp.matmul(be.asarray(u_loop), be.asarray(v_loop)))
    rows.append(row)

    # one gradient step: loops over examples and features vs the vectorized step
    m, n = X.shape
    W, b0 = rng.normal(scale=0.1, size=(n, 1)), np.array([0.1])
    lists = (np.asarray(X, np.float64).tolist(), np.asarray(y).tolist(), W.tolist(), b0.tolist())

    def loop_step():
        J, dw, db = loop_gradient(*lists)
        return [J, *np.ravel(dw), *db]

    row = {"what": f"one gradient step, {m} x {n} (the data above)", "short": "step",
           "scaled": False,
           "loop_value": loop_step(), "loop": _median_seconds(loop_step, cpu, repeats)}
    for key, be in (("numpy", cpu), ("gpu", gpu)):
        if be is None:
            continue
        arrays = [be.asarray(np.asarray(a, np.float64)) for a in
                  (X, np.reshape(y, (-1, 1)), W, b0)]
        row[key] = _median_seconds(
            lambda: loss_and_gradient(*arrays, 1.0 / m, 0.0, xp=be.xp), be, repeats)
        loss, dW, db = (be.to_numpy(t) for t in
                        loss_and_gradient(*arrays, 1.0 / m, 0.0, xp=be.xp))
        row[f"{key}_value"] = [float(loss) / m, *np.ravel(dW), *np.ravel(db)]
    rows.append(row)

    _print_speed_table(rows, gpu is not None, repeats, out)
    if gpu_note:
        print(gpu_note, file=out)
    return rows


def _fmt_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_ratio(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


def _print_speed_table(rows, with_gpu: bool, repeats: int, out) -> None:
    print(f"Python loop vs vectorized, timed now (float64, median of {repeats}):", file=out)
    cols = [("Python loop", 14), ("NumPy", 11), ("speed-up", 10)]
    if with_gpu:
        cols += [("CuPy (GPU)", 12), ("GPU vs NumPy", 14)]
    width = max(len(r["what"]) for r in rows) + 2
    header = "what".ljust(width) + "".join(name.rjust(w) for name, w in cols)
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        cells = [_fmt_seconds(r["loop"]) + (" *" if r["scaled"] else "  "),
                 _fmt_seconds(r["numpy"]), _fmt_ratio(r["loop"] / r["numpy"])]
        if with_gpu:
            cells += [_fmt_seconds(r["gpu"]), _fmt_ratio(r["numpy"] / r["gpu"])]
        print(r["what"].ljust(width) + "".join(c.rjust(w) for c, (_, w) in zip(cells, cols)),
              file=out)
    print(f"* the loop ran on the first {SPEED_LOOP_N:,} elements; its time is scaled "
          f"x{SPEED_DOT_N // SPEED_LOOP_N}", file=out)
    agree = ", ".join(
        f"{r['short']} {name} {_max_rel_diff(r['loop_value'], r[key]):.0e}"
        for r in rows for key, name in (("numpy_value", "NumPy"), ("gpu_value", "CuPy"))
        if key in r)
    print(f"loop and vectorized results agree (max relative difference): {agree}", file=out)


# --------------------------------------------------------------------------- bench


def _bench_candidates() -> list[Path]:
    """Where a clone's ``bench/`` may be: beside this package (a source checkout or an
    editable install), or in the current folder."""
    return [Path(__file__).resolve().parents[1] / "bench", Path.cwd() / "bench"]


def _bench_dir() -> Path:
    for candidate in _bench_candidates():
        if (candidate / "conftest.py").is_file() and (candidate / "_common.py").is_file():
            return candidate
    raise UsageError(
        "no bench/ folder here: the benchmark suite ships with the source, not the "
        "installed package; run xlogreg bench in a clone "
        "(git clone https://github.com/xlogreg/xlogreg) or an unpacked sdist")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _check_bench_extras() -> None:
    """Fail when the suite cannot run; name what is missing when some rows will skip."""
    missing = [pip for module, pip in BENCH_REQUIRED.items() if not _installed(module)]
    if missing:
        raise UsageError(f"the benchmark suite needs {' and '.join(missing)}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not installed: {BENCH_HINT}")
    skipped = [what for module, what in BENCH_OPTIONAL.items() if not _installed(module)]
    if skipped:
        print(f"xlogreg bench: not installed, skipped: {', '.join(skipped)}; {BENCH_HINT} "
              "runs every row", file=sys.stderr)


def _machine_tag() -> str:
    try:
        name = backends.get_backend("cupy").device_info()["gpu"]
    except (ImportError, backends.BackendUnavailableError):
        name = "cpu-" + str(backends.get_backend("numpy").device_info()["cpu"])
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def default_results_dir(bench_dir: Path, size: str) -> Path:
    """``bench/results/<machine>`` for the full run (the committed report);
    ``bench/results/<size>/<machine>`` for quick and smoke runs (gitignored)."""
    results = bench_dir / "results"
    return results / _machine_tag() if size == "full" else results / size / _machine_tag()


def bench(size: str, out: Path | None, extra_args=()) -> int:
    """Run the benchmark suite at ``size``, save its JSON, render the report.

    Checks first, creating nothing: that a ``bench/`` folder is here and that its
    requirements are installed (``UsageError`` otherwise)."""
    bench_dir = _bench_dir()
    _check_bench_extras()
    from .report import render

    out = Path(out) if out else default_results_dir(bench_dir, size)
    out.mkdir(parents=True, exist_ok=True)
    result = out / f"{size}.json"
    env = {**os.environ, "XLOGREG_BENCH_SIZE": size}
    cmd = [sys.executable, "-m", "pytest", str(bench_dir), "-p", "no:cacheprovider",
           "-o", "addopts=", "-rs", f"--benchmark-json={result}", "--benchmark-columns=median,min,rounds",
           "--benchmark-sort=name", *extra_args]
    print("running:", " ".join(cmd), flush=True)
    code = subprocess.call(cmd, env=env)
    if code not in (0, 5) or not result.exists():
        what = "failed" if code not in (0, 5) else "wrote no results"
        print(f"xlogreg bench: the benchmark run {what} (pytest exit {code})", file=sys.stderr)
        return code or 1
    report = render([result], out)
    print(f"results: {result}\nreport:  {report}")
    return 0


def check_result_file(path) -> None:
    """``UsageError`` unless ``path`` is a readable pytest-benchmark JSON result file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read it ({err.strerror or err})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not a JSON file ({err})") from None
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    ok = isinstance(benchmarks, list) and all(
        isinstance(b, dict) and "name" in b and isinstance(b.get("stats"), dict)
        and all(isinstance(b["stats"].get(k), (int, float)) for k in ("median", "min", "rounds"))
        and isinstance(b.get("extra_info", {}), dict)
        for b in benchmarks)
    if not ok or not isinstance(data.get("machine_info", {}), dict):
        raise UsageError(f"{path}: not a pytest-benchmark result file (expected the JSON "
                         "written by --benchmark-json, with 'benchmarks' and their 'stats')")


# ---------------------------------------------------------------------------- main


def _one_line(err) -> str:
    return " ".join(str(err).split())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlogreg", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    help_demo = ("train on the built-in breast-cancer data with batch, mini-batch and "
                 "stochastic gradient descent, then time a Python loop against the "
                 "vectorized code")
    p = sub.add_parser("demo", help=help_demo, description=help_demo[0].upper() + help_demo[1:] + ".")
    p.add_argument("--backend", default="auto", choices=backends.BACKEND_NAMES,
                   help="where to train (default: auto = $XLOGREG_BACKEND if set, else the "
                        "GPU if CuPy sees one, else NumPy)")
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-speed", dest="speed", action="store_false",
                   help="skip the loop-vs-vectorized timings (about a second)")
    help_bench = ("run the benchmark suite of a clone and render its report; or render / "
                  "compare existing result files")
    b = sub.add_parser("bench", help=help_bench, description=help_bench[0].upper() + help_bench[1:]
                       + ". Running needs the bench/ folder of a clone and "
                       + BENCH_HINT + ".")
    size = b.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick",
                      help="moderate sizes, a couple of minutes")
    size.add_argument("--smoke", dest="size", action="store_const", const="smoke",
                      help="tiny sizes, seconds: checks every benchmark runs")
    size.add_argument("--render", nargs="+", metavar="JSON",
                      help="render a report from existing pytest-benchmark JSON files")
    size.add_argument("--compare", nargs=2, metavar=("A_JSON", "B_JSON"),
                      help="compare two result files side by side (Markdown)")
    b.add_argument("--out", type=Path,
                   help="output folder (file for --compare); default bench/results/<machine> "
                        "for the full run, bench/results/quick/<machine> and "
                        "bench/results/smoke/<machine> for --quick and --smoke")
    b.add_argument("pytest_args", nargs="*", help="extra arguments for pytest, after --")
    return parser


def _run(args) -> int:
    if args.command == "bench":
        if args.render or args.compare:
            for path in args.render or args.compare:
                check_result_file(path)
            from .report import compare, render

            if args.render:
                print(render(args.render, args.out or Path(args.render[0]).parent))
            else:
                print(compare(*args.compare, args.out or Path("comparison.md")))
            return 0
        return bench(args.size or "full", args.out, args.pytest_args)
    try:  # an unknown $XLOGREG_BACKEND, CuPy missing, no device: before any work
        backends.get_backend(args.backend)
    except (ValueError, ImportError, backends.BackendUnavailableError) as err:
        raise UsageError(err) from None
    demo(args.backend, args.max_epochs, args.seed, speed=args.speed)
    return 0


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except UsageError as err:
        parser.exit(2, f"xlogreg: error: {_one_line(err)}\n")


if __name__ == "__main__":
    sys.exit(main())
