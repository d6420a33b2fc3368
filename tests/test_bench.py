"""The benchmark suite runs end to end at tiny sizes, and its report does the right sums."""

import json
import re

import pytest

from xlogreg import backends
from xlogreg.cli import main
from xlogreg.report import compare, render


def test_bench_smoke_runs_every_benchmark_and_renders(tmp_path, capsys):
    assert main(["bench", "--smoke", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "smoke.json").read_text())
    machine = data["machine_info"]["xlogreg"]
    assert machine["bench_size"] == "smoke" and machine["cpu"] and machine["cpu_count"]
    subjects = {b["extra_info"]["subject"] for b in data["benchmarks"]}
    assert {"dot", "matvec", "elementwise", "step", "epoch", "fit", "curve", "cold", "cpu",
            "dask"} <= subjects
    report = (tmp_path / "report.md").read_text()
    for heading in ("Dot product", "u = A v", "Element-wise", "gradient step", "per-epoch",
                    "full fits", "sklearn SGDClassifier", "sklearn LogisticRegression",
                    "Performance targets", "time to the optimum", "peak memory beyond X",
                    "Beyond one machine", "xlogreg lbfgs (dask)", "chunks in turn (shipped)",
                    ".npy memory-mapped", "convergence curves", "xlogreg numpy GD full batch",
                    "Cold first fit", "of which imports",
                    "xlogreg LogisticRegression() takes **"):
        assert heading in report
    # a ratio printed as 0.00x is a lost one ("missed by 50.00x" is fine)
    assert not re.search(r"(?<![\d.])0\.00x", report)
    if "cupy" not in backends.available_backends():
        assert "| cupy | skipped: no GPU |" in report
        assert "no GPU" in report.splitlines()[4]
    for png in ("headline.png", "step_vs_size.png", "epoch_vs_batch.png", "convergence.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in report

    # the new rows carry what the report draws and prints
    rows = {(b["extra_info"]["subject"], b["extra_info"]["impl"]): b["extra_info"]
            for b in data["benchmarks"]}
    curve = next(extra for (subject, impl), extra in rows.items()
                 if impl.startswith("xlogreg numpy GD full batch ("))
    assert len(curve["curve"]) == 2 and curve["epochs"] == 2  # budgets 1 and 2 at smoke
    assert all(t > 0 and j >= curve["optimum"] - 1e-6 for t, j in curve["curve"])
    assert {"sklearn LogisticRegression lbfgs", "sklearn SGDClassifier (default: optimal)",
            "xlogreg numpy lbfgs"} <= {impl for subject, impl in rows if subject == "curve"}
    cold = rows["cold", "xlogreg LogisticRegression()"]
    assert cold["import_s"] > 0 and cold["fit_s"] > 0 and cold["target"] == 1.5
    assert ("cold", "sklearn LogisticRegression()") in rows
    assert rows["step", "numpy"]["fused"] in (True, False)


def _result(path, rows, gpu=None):
    machine = {"python_version": "3.x", "xlogreg": {
        "bench_size": "test", "cpu": "Test CPU", "cpu_count": 2, "numpy": "2",
        "gpu": {"gpu": gpu, "gpu_memory_gib": 80, "cupy": "13"} if gpu else {"skipped": "no"}}}
    benchmarks = [{"name": f"t{i}", "group": group, "extra_info": extra,
                   "stats": {"median": median, "min": median * 0.9, "rounds": 3}}
                  for i, (group, median, extra) in enumerate(rows)]
    path.write_text(json.dumps({"machine_info": machine, "datetime": "now",
                                "benchmarks": benchmarks}))
    return path


def test_report_ratios_crossover_and_comparison(tmp_path):
    def step(impl, m, t):
        return (f"step binary {m}x100", t, {"subject": "step", "impl": impl, "kind": "binary",
                                             "m": m})

    def fit_step(impl, m, t):
        group, t, extra = step(impl, m, t)
        return group, t, {**extra, "fused": True}

    rows = [step("python loop", 1000, 0.5), fit_step("numpy", 1000, 1e-4),
            step("cupy", 1000, 4e-4), fit_step("numpy", 10**6, 0.2), step("cupy", 10**6, 0.01),
            ("epoch 100x10 batch 64", 0.3, {"subject": "epoch", "impl": "numpy", "epochs": 3,
                                            "batch_size": 64, "loss": 0.25, "accuracy": 0.9})]
    gpu = _result(tmp_path / "gpu.json", rows, gpu="Test GPU")
    report = render([gpu], tmp_path / "out").read_text()
    fit_numpy = "NumPy as fit runs it (fused kernel)"
    assert f"python loop 500 ms vs {fit_numpy} 100 us: **5,000x**" in report
    assert f"{fit_numpy} 100 us vs CuPy 400 us: **0.25x** (GPU slower)" in report
    assert f"{fit_numpy} 200 ms vs CuPy 10 ms: **20.0x** (GPU faster)" in report
    assert "| python loop | 500 ms | 450 ms | 3 | 1.00x | 1/5,000x |" in report
    assert "| numpy | 100 ms | 90 ms | 3 |" in report  # per epoch = 0.3 s / 3 epochs
    assert "| 3 | 0.250000 | 0.9000 |" in report
    assert "GPU Test GPU (80 GiB)" in report

    cpu = _result(tmp_path / "cpu.json", [fit_step("numpy", 1000, 2e-4)])
    cpu_report = render([cpu], tmp_path / "cpu").read_text()
    assert "| cupy | skipped: no GPU |" in cpu_report
    table = compare(cpu, gpu, tmp_path / "cmp.md").read_text()
    assert "| step binary 1000x100 | numpy | 200 us | 100 us | 2.00x |" in table
    assert "| step binary 1000000x100 | cupy | not in A | 10 ms | |" in table


def test_bench_cli_render_and_compare(tmp_path, capsys):
    path = _result(tmp_path / "a.json", [("dot n=1 float64", 1.0, {"subject": "dot",
                                                                   "impl": "numpy"})])
    assert main(["bench", "--render", str(path), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").exists()
    assert main(["bench", "--compare", str(path), str(path), "--out",
                 str(tmp_path / "c.md")]) == 0
    assert "| 1.00x |" in (tmp_path / "c.md").read_text()
    with pytest.raises(SystemExit):
        main(["bench", "--quick", "--smoke"])


def test_report_targets_take_the_fastest_peer(tmp_path):
    def row(impl, t, **extra):
        return ("time to optimum", t, {"subject": "cpu", "impl": impl, **extra})

    rows = [row("sklearn lbfgs", 0.3), row("sklearn newton-cholesky", 0.2),
            row("xlogreg lbfgs (numpy)", 0.04, target=0.25, peak_x=0.2,
                versus=["sklearn lbfgs", "sklearn newton-cholesky"]),
            ("grad", 0.03, {"subject": "cpu", "impl": "X @ W"}),
            ("grad", 0.045, {"subject": "cpu", "impl": "fused", "versus": "X @ W",
                             "target": 1.25}),
            # a whole less a part: (0.07 - 0.045) / 0.03
            ("grad", 0.07, {"subject": "cpu", "impl": "fit", "versus": "X @ W",
                            "less": "fused", "target": 1.0})]
    path = _result(tmp_path / "t.json", rows)
    report = render([path], tmp_path / "out").read_text()
    assert ("xlogreg lbfgs (numpy) takes **0.200x** the time of sklearn newton-cholesky "
            "(target at most 0.25x: met)") in report
    assert "fused takes **1.500x** the time of X @ W (target at most 1.25x: missed by 1.20x)" \
        in report
    assert "fit, less fused, takes **0.833x** the time of X @ W (target at most 1x: met)" \
        in report
    # the column is against the fastest peer too, as the target line
    assert "time / sklearn newton-cholesky" in report
    assert "| xlogreg lbfgs (numpy) | 40 ms | 36 ms | 3 | 0.200 | 0.20 |" in report
    assert "cupy" not in report.split("## CPU fast path")[1]  # no GPU twins for CPU rows


def test_report_best_of_ours_against_best_of_theirs_and_threads(tmp_path):
    """Rows sharing ``best_of``: one verdict, the fastest that reached the optimum
    against the fastest peer; peers' thread counts beside their names."""
    group = "solvers: digits"

    def row(impl, t, **extra):
        return (group, t, {"subject": "solvers", "impl": impl, **extra})

    ours = dict(best_of="xlogreg", target=0.5, threads=2,
                versus=["sklearn lbfgs", "sklearn newton-cholesky"])
    rows = [row("sklearn lbfgs", 0.30, threads=1, reached=True),
            row("sklearn newton-cholesky", 0.20, threads=2, reached=True),
            row("xlogreg lbfgs", 0.08, reached=True, **ours),
            row("xlogreg newton", 0.06, reached=True, **ours),
            # fastest, but short of the optimum: not the one measured
            row("xlogreg gd", 0.01, reached=False, **ours),
            ("other", 1.0, {"subject": "solvers", "impl": "a"})]
    path = _result(tmp_path / "b.json", rows)
    from xlogreg.report import load, targets

    assert targets(load(path)[0]) == [(group, "xlogreg newton", "sklearn newton-cholesky",
                                       pytest.approx(0.3), 0.5)]
    report = render([path], tmp_path / "out").read_text()
    assert (f"- {group}: xlogreg newton (2 threads), the fastest of xlogreg's rows takes "
            "**0.300x** the time of sklearn newton-cholesky (2 threads) (target at most "
            "0.5x: met)") in report
    assert report.count(f"- {group}:") == 1
    assert "| sklearn lbfgs (1 thread) | 300 ms |" in report
    assert "peers at their best thread count" in report and "best thread count on" in report
    assert "Time to the optimum by solver" in report

    # none reached: the fastest is measured, and the line says so
    rows = [r for r in rows if r[0] == group]
    rows = [(g, t, {**e, "reached": False} if "best_of" in e else e) for g, t, e in rows]
    lines = render([_result(tmp_path / "c.json", rows)], tmp_path / "c").read_text()
    assert "xlogreg gd (2 threads), the fastest of xlogreg's rows (none of which reached" \
        in lines


def test_report_without_threads_says_nothing_of_them(tmp_path):
    path = _result(tmp_path / "d.json", [("g", 0.1, {"subject": "cpu", "impl": "a"}),
                                         ("g", 0.2, {"subject": "cpu", "impl": "b",
                                                     "versus": "a", "target": 3})])
    report = render([path], tmp_path / "out").read_text()
    assert "## Performance targets (median times, same run)" in report
    assert "thread" not in report


def _tables(report):
    """Every Markdown table of a report: a list of rows, each a list of cells."""
    tables, current = [], None
    for line in report.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        elif not line.startswith("|---"):
            current = None
    return tables


def test_report_ratios_use_the_shown_times_and_no_column_is_empty(tmp_path):
    def epoch(impl, total, epochs, **extra):
        return ("epoch 100x10 batch 1", total, {"subject": "epoch", "impl": impl,
                                                "epochs": epochs, "batch_size": 1,
                                                "loss": 0.5, "accuracy": 0.8, **extra})

    def optimum(impl, t, **extra):
        return ("time to the optimum", t, {"subject": "cpu", "impl": impl, "loss": 0.4,
                                           "gap": 1e-7, **extra})

    rows = [  # the batch-1 rows: SGDClassifier 3 epochs, xlogreg 1
        epoch("sklearn SGDClassifier", 3 * 0.0729, 3), epoch("numpy", 0.108, 1),
        ("dot n=1000000 float64", 0.151, {"subject": "dot", "impl": "loop over ndarray"}),
        ("dot n=1000000 float64", 86.4e-6, {"subject": "dot", "impl": "numpy"}),
        # no accuracy anywhere in this group; the dask-ml row does not report epochs
        optimum("sklearn lbfgs", 1.28, epochs=38), optimum("xlogreg lbfgs", 0.2, epochs=43),
        optimum("dask-ml lbfgs", 6.4, epochs=0)]
    report = render([_result(tmp_path / "r.json", rows)], tmp_path / "out").read_text()
    tables = {t[1][0]: t for t in _tables(report)}  # keyed by their slowest row

    batch1 = tables["numpy"]
    head = batch1[0]
    sgd = next(r for r in batch1 if r[0] == "sklearn SGDClassifier")
    assert head[1] == "per epoch" and sgd[1] == "72.9 ms"
    # 108 ms / 72.9 ms per epoch, not 108 ms / 219 ms for the whole run (0.49x)
    assert sgd[head.index("speed-up vs numpy")] == f"{0.108 / 0.0729:.2f}x" == "1.48x"
    dot = tables["loop over ndarray"]
    loop = dot[1]
    assert loop[dot[0].index("speed-up vs numpy")] == "1/1,748x"
    assert dot[2][dot[0].index("speed-up vs loop over ndarray")] == "1,748x"
    opt = tables["dask-ml lbfgs"]
    assert "test accuracy" not in opt[0]
    assert opt[1][opt[0].index("epochs")] == "n/a"
    assert "0.00x" not in report and "0.01x" not in report
    for table in _tables(report):
        for j, heading in enumerate(table[0]):
            assert any(row[j] for row in table[1:]), f"empty column {heading!r}"


def _figure_rows(tmp_path, gpu=False):
    from xlogreg.report import load

    def row(subject, group, impl, t, **extra):
        return (group, t, {"subject": subject, "impl": impl, **extra})

    def curve(impl, points, **extra):
        return row("curve", "convergence 160000x100 float32", impl, points[-1][0],
                   curve=points, optimum=0.4, epochs=len(points), **extra)

    rows = [row("dot", "dot n=1000000 float64", "loop over ndarray", 0.151, n=10**6),
            row("dot", "dot n=1000000 float64", "numpy", 86.4e-6, n=10**6),
            row("matvec", "matvec 1000x1000", "loop over list", 0.054, rows=1000, cols=1000),
            row("matvec", "matvec 1000x1000", "numpy", 55e-6, rows=1000, cols=1000),
            row("elementwise", "exp n=1000000", "math loop", 0.061, func="exp", n=10**6),
            row("elementwise", "exp n=1000000", "numpy", 805e-6, func="exp", n=10**6),
            *(row("step", f"step binary {m}x100 float32", impl, t, kind="binary", m=m, n=100,
                  **({"fused": True} if impl == "numpy" else {}))
              for m, impl, t in [(1000, "python loop", 0.0129), (1000, "numpy", 20e-6),
                                 (1000, "numpy (two passes)", 34.7e-6),
                                 (10**5, "numpy", 2e-3), (10**5, "numpy (two passes)", 4e-3)]),
            row("epoch", "epoch 160000x100 batch 64", "numpy", 0.075, epochs=3, batch_size=64,
                m=160000),
            row("epoch", "epoch 160000x100 batch full", "numpy", 0.042, epochs=3,
                batch_size=160000, m=160000),
            *(curve(name, [[0.01 * 2 ** i, 0.4 + 0.1 / 2 ** i] for i in range(4)])
              for name in ("xlogreg numpy lbfgs", "xlogreg numpy GD batch 64 (lr 0.1)",
                           "xlogreg numpy GD full batch (lr 0.1)",
                           "sklearn LogisticRegression lbfgs",
                           "sklearn LogisticRegression newton-cholesky",
                           "sklearn LogisticRegression sag",
                           "sklearn SGDClassifier (default: optimal)",
                           "sklearn SGDClassifier (constant 0.01)"))]
    if gpu:
        rows += [row("dot", "dot n=1000000 float64", "cupy", 20e-6, n=10**6),
                 curve("xlogreg cupy lbfgs", [[0.005, 0.5], [0.01, 0.41]])]
    return load(_result(tmp_path / "f.json", rows, gpu="Test GPU" if gpu else None))[0]


def test_figures_say_when_the_gpu_was_not_measured(tmp_path):
    pytest.importorskip("matplotlib")
    from xlogreg.report import NO_GPU_NOTE, figures

    figs = figures(_figure_rows(tmp_path))
    assert set(figs) == {"headline.png", "step_vs_size.png", "epoch_vs_batch.png",
                         "convergence.png"}
    for name, fig in figs.items():
        assert NO_GPU_NOTE in [t.get_text() for t in fig.texts], name

    # headline: one cluster per subject, bars = speed-up over the loop, from the same medians
    ax = figs["headline.png"].axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert [label.split("\n")[0] for label in labels] == ["dot product", "u = A v",
                                                           "element-wise", "gradient step"]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert round(0.151 / 86.4e-6, 3) in heights and round(0.0129 / 20e-6, 3) in heights
    assert "1,748x" in [t.get_text() for t in ax.texts]

    # convergence: one line per solver, each its own colour and marker, "full batch"
    ax = figs["convergence.png"].axes[0]
    lines = ax.get_lines()
    assert len(lines) == 8
    assert len({line.get_color() for line in lines}) == 8
    assert len({line.get_marker() for line in lines}) == 8
    names = [line.get_label() for line in lines]
    assert "xlogreg numpy GD full batch (lr 0.1)" in names and "xlogreg numpy lbfgs" in names
    assert not any("160000" in name for name in names)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    first = lines[0].get_ydata()
    assert abs(first[0] - 0.1) < 1e-12  # objective minus the optimum

    # the epoch plot names the full batch, and the step plot draws fit's own gradient
    ticks = [t.get_text() for t in figs["epoch_vs_batch.png"].axes[0].get_xticklabels()]
    assert "full batch" in ticks and "160,000" not in ticks
    step_names = [line.get_label() for line in figs["step_vs_size.png"].axes[0].get_lines()]
    assert {"numpy (as fit runs it)", "numpy (two passes)", "python loop"} <= set(step_names)


def test_figures_with_gpu_rows_carry_no_note(tmp_path):
    pytest.importorskip("matplotlib")
    from xlogreg.report import NO_GPU_NOTE, figures

    figs = figures(_figure_rows(tmp_path, gpu=True))
    for name in ("headline.png", "convergence.png"):
        assert NO_GPU_NOTE not in [t.get_text() for t in figs[name].texts]
    lines = figs["convergence.png"].axes[0].get_lines()
    assert [line.get_linestyle() for line in lines if "cupy" in line.get_label()] == ["--"]
    # the figures still without a GPU series say so
    assert NO_GPU_NOTE in [t.get_text() for t in figs["step_vs_size.png"].texts]
