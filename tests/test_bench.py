"""The benchmark suite runs end to end at tiny sizes, and its report does the right sums."""

import json

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
    assert {"dot", "matvec", "elementwise", "step", "epoch", "fit", "cpu", "dask"} <= subjects
    report = (tmp_path / "report.md").read_text()
    for heading in ("Dot product", "u = A v", "Element-wise", "gradient step", "per-epoch",
                    "full fits", "sklearn SGDClassifier", "sklearn LogisticRegression",
                    "Performance targets", "time to the optimum", "peak memory beyond X",
                    "Beyond one machine", "xlogreg lbfgs (dask)", "chunks in turn (shipped)",
                    ".npy memory-mapped"):
        assert heading in report
    if "cupy" not in backends.available_backends():
        assert "| cupy | skipped: no GPU |" in report
        assert "no GPU" in report.splitlines()[4]
    for png in ("step_vs_size.png", "epoch_vs_batch.png", "loss_vs_time.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in report


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

    rows = [step("python loop", 1000, 0.5), step("numpy", 1000, 1e-4), step("cupy", 1000, 4e-4),
            step("numpy", 10**6, 0.2), step("cupy", 10**6, 0.01),
            ("epoch 100x10 batch 64", 0.3, {"subject": "epoch", "impl": "numpy", "epochs": 3,
                                            "batch_size": 64, "loss": 0.25, "accuracy": 0.9})]
    gpu = _result(tmp_path / "gpu.json", rows, gpu="Test GPU")
    report = render([gpu], tmp_path / "out").read_text()
    assert "python loop 500 ms vs NumPy 100 us: **5,000.0x**" in report
    assert "NumPy 100 us vs CuPy 400 us: **0.25x** (GPU slower)" in report
    assert "NumPy 200 ms vs CuPy 10 ms: **20.0x** (GPU faster)" in report
    assert "| numpy | 100 ms | 90 ms | 3 |" in report  # per epoch = 0.3 s / 3 epochs
    assert "| 3 | 0.250000 | 0.9000 |" in report
    assert "GPU Test GPU (80 GiB)" in report

    cpu = _result(tmp_path / "cpu.json", [step("numpy", 1000, 2e-4)])
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
                             "target": 1.25})]
    path = _result(tmp_path / "t.json", rows)
    report = render([path], tmp_path / "out").read_text()
    assert ("xlogreg lbfgs (numpy) takes **0.200x** the time of sklearn newton-cholesky "
            "(target at most 0.25x: met)") in report
    assert "fused takes **1.500x** the time of X @ W (target at most 1.25x: missed by 1.20x)" \
        in report
    assert "| xlogreg lbfgs (numpy) | 40 ms | 36 ms | 3 | 0.133 | 0.20 |" in report
    assert "cupy" not in report.split("## CPU fast path")[1]  # no GPU twins for CPU rows
