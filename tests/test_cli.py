import re
import subprocess
import sys

import pytest

from xlogreg.cli import main


def test_demo_prints_three_forms_of_gradient_descent(capsys):
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


def test_demo_without_cupy_for_cuda_fails_with_the_install_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    from xlogreg import backends

    backends._make.cache_clear()
    try:
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--backend", "cuda"])
    finally:
        backends._make.cache_clear()
    assert exc.value.code == 2
    assert 'pip install "xlogreg[cuda]"' in capsys.readouterr().err


def test_console_script_entry_point():
    done = subprocess.run([sys.executable, "-m", "xlogreg.cli", "--help"], capture_output=True,
                          text=True, check=True)
    assert "demo" in done.stdout
