import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import xlogreg
from xlogreg import backends, cli
from xlogreg.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _speed_ups(out, row_start):
    row = next(line for line in out.splitlines() if line.startswith(row_start))
    return [float(r.replace(",", "")) for r in re.findall(r"(\d[\d,]*(?:\.\d+)?)x\b", row)]


def test_demo_prints_three_forms_of_gradient_descent_and_the_speed_table(capsys):
    assert main(["demo", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "backend numpy" in out
    for name, batch in (("batch GD", "426"), ("mini-batch GD", "64"), ("stochastic GD", "1")):
        row = next(line for line in out.splitlines() if line.startswith(name))
        cells = row[len(name):].split()
        assert cells[0] == batch
        accuracy = float(cells[4])
        assert accuracy >= 0.95, row  # sklearn's LogisticRegression scores 0.965 here
        assert re.fullmatch(r"\d+\.\d{3}s", cells[5])
    assert "Python loop vs vectorized" in out
    dot = _speed_ups(out, "dot of two 1,000,000-element vectors")
    assert dot[0] > 1, out  # the vectorized dot beats the loop (by ~1000x, not ~1x)
    step = _speed_ups(out, "one gradient step, 426 x 30")
    assert step[0] > 1, out
    assert "the loop ran on the first 100,000 elements; its time is scaled x10" in out
    if "cupy" in backends.available_backends():
        assert len(dot) == 2 and "CuPy (GPU)" in out
    else:
        assert re.search(r"^GPU: not measured \((no CUDA device|CuPy is not installed)", out,
                         re.MULTILINE)


def test_speed_table_loop_and_vectorized_results_agree():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 5))
    y = (X[:, 0] + 0.3 * rng.normal(size=40) > 0).astype(int)
    out = io.StringIO()
    rows = cli.speed_table(X, y, repeats=1, out=out)
    dot, step = rows
    assert dot["loop"] > 0 and dot["numpy"] > 0
    assert_allclose(dot["loop_value"], dot["numpy_value"], rtol=1e-12)
    assert len(step["loop_value"]) == 1 + 5 + 1  # cost, dw, db
    assert_allclose(step["loop_value"], step["numpy_value"], rtol=1e-12, atol=1e-15)
    if "gpu_value" in dot:
        assert_allclose(dot["loop_value"], dot["gpu_value"], rtol=1e-12)
        assert_allclose(step["loop_value"], step["gpu_value"], rtol=1e-12, atol=1e-15)
    assert "one gradient step, 40 x 5" in out.getvalue()


def test_speed_table_gpu_column_code_path(monkeypatch):
    """The GPU branch, run on array-api-strict standing in for CuPy (no NumPy-only
    habits): a CuPy column, its ratio against NumPy, and its results checked."""
    stand_in = backends.get_backend("array_api_strict")
    monkeypatch.setattr(cli, "_gpu_or_note", lambda: (stand_in, None))
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 2, 30)
    out = io.StringIO()
    dot, step = cli.speed_table(X, y, repeats=1, out=out)
    assert_allclose(dot["loop_value"], dot["gpu_value"], rtol=1e-12)
    assert_allclose(step["loop_value"], step["gpu_value"], rtol=1e-12, atol=1e-15)
    text = out.getvalue()
    assert "CuPy (GPU)" in text and "GPU vs NumPy" in text and "GPU: not measured" not in text
    assert len(_speed_ups(text, "dot of two")) == 2
    assert "step CuPy" in text


def test_demo_no_speed_skips_the_timings(capsys, monkeypatch):
    monkeypatch.setattr(cli, "speed_table", lambda *a, **k: pytest.fail("timed"))
    assert main(["demo", "--backend", "numpy", "--no-speed", "--max-epochs", "5"]) == 0
    assert "Python loop" not in capsys.readouterr().out


def _run_cli(args, cwd, prelude="", env=None):
    """``xlogreg ARGS`` in a fresh interpreter, on this checkout's code."""
    code = f"import sys\n{prelude}\nfrom xlogreg.cli import main\nsys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _assert_one_line_error(done, *needles):
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("xlogreg: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0]


NO_CUPY = "sys.modules['cupy'] = None"


@pytest.mark.parametrize("args, prelude, env, needles", [
    (["demo"], "", {"XLOGREG_BACKEND": "bogus"}, ["XLOGREG_BACKEND", "'bogus'", "numpy"]),
    (["demo", "--backend", "cuda"], NO_CUPY, {}, ['pip install "xlogreg[cuda]"']),
    (["bench", "--render", "missing.json"], "", {}, ["missing.json: no such file"]),
    (["bench", "--render", "corrupt.json"], "", {}, ["corrupt.json: not a JSON file"]),
    (["bench", "--compare", "corrupt.json", "missing.json"], "", {}, ["corrupt.json"]),
    (["bench", "--compare", "missing.json", "corrupt.json"], "", {}, ["missing.json"]),
    (["bench", "--render", "other.json"], "", {}, ["not a pytest-benchmark result file"]),
], ids=["bogus-env-backend", "cuda-without-cupy", "render-missing", "render-corrupt",
        "compare-corrupt", "compare-missing", "render-not-a-result"])
def test_user_mistakes_end_with_one_line_and_exit_2(tmp_path, args, prelude, env, needles):
    (tmp_path / "corrupt.json").write_text('{"benchmarks": [')
    (tmp_path / "other.json").write_text('{"benchmarks": [{"name": "x"}]}')
    before = sorted(p.name for p in tmp_path.iterdir())
    _assert_one_line_error(_run_cli(args, tmp_path, prelude, env), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_bench_outside_a_clone_says_so_before_creating_anything(tmp_path):
    done = _run_cli(["bench", "--smoke", "--out", "out"], tmp_path,
                    "import xlogreg.cli as c; c._bench_candidates = lambda: []")
    _assert_one_line_error(done, "no bench/ folder", "clone")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module, pip_name", [("pytest_benchmark", "pytest-benchmark"),
                                              ("pytest", "pytest")])
def test_bench_without_its_extras_says_so_before_creating_anything(tmp_path, module, pip_name):
    done = _run_cli(["bench", "--quick", "--out", "out"], tmp_path,
                    f"sys.modules[{module!r}] = None")
    _assert_one_line_error(done, pip_name, 'pip install "xlogreg[bench]"')
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    """A clone's bench/ folder in tmp_path, and a pytest run that only writes its JSON."""
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "conftest.py").write_text("")
    (folder / "_common.py").write_text("")
    calls = []

    def fake_call(cmd, env):
        calls.append((cmd, env["XLOGREG_BENCH_SIZE"]))
        path = next(a.split("=", 1)[1] for a in cmd if a.startswith("--benchmark-json="))
        Path(path).write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
        return 0

    def fake_render(paths, out_dir):
        report = Path(out_dir) / "report.md"
        report.write_text("report")
        return report

    monkeypatch.setattr(cli, "_bench_candidates", lambda: [folder])
    monkeypatch.setattr(cli, "_machine_tag", lambda: "box")
    monkeypatch.setattr(cli.subprocess, "call", fake_call)
    monkeypatch.setattr("xlogreg.report.render", fake_render)
    monkeypatch.chdir(tmp_path)
    return folder, calls


def test_quick_and_smoke_runs_stay_out_of_the_committed_report_folder(fake_bench, capsys):
    folder, calls = fake_bench
    results = folder / "results"
    assert main(["bench", "--quick", "--", "-k", "cupy"]) == 0
    assert main(["bench", "--smoke"]) == 0
    assert main(["bench"]) == 0
    assert (results / "quick" / "box" / "quick.json").exists()
    assert (results / "smoke" / "box" / "smoke.json").exists()
    assert sorted(p.name for p in (results / "box").iterdir()) == ["full.json", "report.md"]
    assert [size for _, size in calls] == ["quick", "smoke", "full"]
    quick_cmd = calls[0][0]
    assert quick_cmd[quick_cmd.index("pytest") + 1] == str(folder)
    assert quick_cmd[-2:] == ["-k", "cupy"]


def test_bench_names_the_optional_extras_it_lacks(fake_bench, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_installed", lambda module: module != "dask_ml")
    assert main(["bench", "--smoke"]) == 0
    err = capsys.readouterr().err
    assert "skipped: dask-ml" in err and 'pip install "xlogreg[bench]"' in err


def test_quick_and_smoke_results_are_gitignored_and_full_reports_are_not():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored("bench/results/quick/box/quick.json")
    assert ignored("bench/results/smoke/box/report.md")
    assert not ignored("bench/results/box/full.json")


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["bench", "--help"]])
def test_help_is_plain_text(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: xlogreg" in out
    for markup in ("``", ":func:", ":class:", ".. "):
        assert markup not in out


def test_version_and_python_dash_m():
    for module in ("xlogreg", "xlogreg.cli"):
        done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                              text=True, check=True, cwd=ROOT)
        assert done.stdout.strip() == f"xlogreg {xlogreg.__version__}"
    done = subprocess.run([sys.executable, "-m", "xlogreg", "--help"], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    assert "demo" in done.stdout and "bench" in done.stdout
