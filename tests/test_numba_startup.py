"""The CPU kernels as a user first meets them, each case in a fresh Python process:
small data never waits for Numba, a compile is announced once, and an install where
Numba cannot write its cache still fits."""

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("numba", reason="the fast path needs numba")

ROOT = Path(__file__).resolve().parents[1]
COMPILING = "xlogreg: compiling the CPU kernels"


def _run(parts, env_changes, cwd, pythonpath=ROOT):
    """Runs the script made of ``parts`` (each indented as it likes); returns the JSON
    of its last line of output and its stderr."""
    code = "".join(textwrap.dedent(part) for part in parts)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NUMBA_", "XLOGREG_")) and k != "XDG_CACHE_HOME"}
    env.update(PYTHONPATH=str(pythonpath), PYTHONDONTWRITEBYTECODE="1", **env_changes)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


# data from a known logistic model, large enough for both kernels at their thresholds
LARGE_DATA = """
    import json, sys, warnings
    import numpy as np
    from xlogreg import LogisticRegression
    from xlogreg.backends import _numpy as nb
    n = 100
    m = max(-(-nb.FUSED_MIN_SIZE // n), 64 * nb.EPOCH_MIN_STEPS)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, n), dtype=np.float32)
    y = (X @ rng.standard_normal(n) + rng.standard_normal(m) > 0).astype(np.int64)
    assert -(-m // 64) >= nb.EPOCH_MIN_STEPS
    warnings.simplefilter("ignore")
"""


def test_small_data_never_imports_numba(tmp_path):
    """Breast cancer and digits, full batch and batch 64, float64 and float32: the
    plain NumPy code fits them faster than Numba imports, let alone compiles."""
    code = """
        import json, sys, warnings
        import numpy as np
        from sklearn.datasets import load_breast_cancer, load_digits
        from sklearn.preprocessing import StandardScaler
        from xlogreg import LogisticRegression
        warnings.simplefilter("ignore")
        scores = []
        for load in (load_breast_cancer, load_digits):
            X, y = load(return_X_y=True)
            X = StandardScaler().fit_transform(X)
            for dtype in (np.float64, np.float32):
                for batch_size in (None, 64):
                    clf = LogisticRegression(batch_size=batch_size, random_state=0)
                    scores.append(clf.fit(X.astype(dtype), y).score(X, y))
        print(json.dumps({"numba": "numba" in sys.modules, "scores": scores}))
    """
    got, stderr = _run([code], {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}, tmp_path)
    assert not got["numba"]
    assert min(got["scores"]) > 0.95  # and they did fit
    assert COMPILING not in stderr


def test_compile_is_announced_once_and_cached(tmp_path):
    """An empty cache: one message, however many kernels the fit compiles; a second
    process loads them from the cache, silently."""
    code = """
        from xlogreg.backends import _numba
        LogisticRegression(batch_size=64, max_epochs=1, tol=None, random_state=0).fit(X, y)
        LogisticRegression(max_epochs=2, tol=None).fit(X, y)
        print(json.dumps({"epoch": len(_numba._epoch.signatures),
                          "gradient": len(_numba._gradient.signatures)}))
    """
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    got, stderr = _run([LARGE_DATA, code], env, tmp_path)
    assert got == {"epoch": 1, "gradient": 1}  # both kernels ran
    assert stderr.count(COMPILING) == 1, stderr
    assert "cached afterwards" in stderr
    assert any((tmp_path / "cache").rglob("*.nbi"))
    got, stderr = _run([LARGE_DATA, code], env, tmp_path)
    assert got == {"epoch": 1, "gradient": 1}
    assert COMPILING not in stderr, stderr


def _read_only_checkout(tmp_path):
    """The package's source where Numba can write no cache beside it, even as root
    (which writes through a chmod): each package folder holds a *file* named
    ``__pycache__``, so the folder Numba wants cannot be made."""
    src = tmp_path / "site"
    for name in ("xlogreg", "backends"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        (src / name / "__pycache__").write_text("")
    for path in [src, *src.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return src


def test_fits_where_numba_cannot_cache(tmp_path, request):
    """A read-only install and a HOME under a regular file (no ~/.cache can be made):
    Numba finds no cache directory, raised ``RuntimeError: cannot cache function ...:
    no locator available`` at import, and fit crashed. It must fit, as well as
    scikit-learn does, and say once why every new process compiles again."""
    src = _read_only_checkout(tmp_path)
    request.addfinalizer(lambda: [p.chmod(p.stat().st_mode | stat.S_IWUSR)
                                  for p in [src, *src.rglob("*")]])
    (tmp_path / "not-a-dir").write_text("")
    code = """
        from sklearn.linear_model import LogisticRegression as Sk
        from xlogreg.backends import _numba
        assert _numba.__file__.startswith(SRC), _numba.__file__
        batch = LogisticRegression(batch_size=64, max_epochs=2, tol=None, random_state=0)
        full = LogisticRegression(max_epochs=10, tol=None)
        print(json.dumps({
            "uncached": _numba._uncached,
            "scores": [batch.fit(X, y).score(X, y), full.fit(X, y).score(X, y)],
            "sklearn": Sk().fit(X, y).score(X, y),
            "epoch": len(_numba._epoch.signatures),
            "gradient": len(_numba._gradient.signatures)}))
    """.replace("SRC", repr(str(src)))
    env = {"HOME": str(tmp_path / "not-a-dir" / "home")}
    got, stderr = _run([LARGE_DATA, code], env, tmp_path, pythonpath=src)
    assert "_epoch" in got["uncached"] and "_gradient" in got["uncached"]
    assert got["epoch"] == got["gradient"] == 1  # the fits ran the compiled kernels
    assert min(got["scores"]) > got["sklearn"] - 0.01
    assert stderr.count(COMPILING) == 1, stderr
    assert "NUMBA_CACHE_DIR" in stderr
