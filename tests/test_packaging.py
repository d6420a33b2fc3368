"""The wheel and sdist, built and installed offline: one top-level name, the files
the sdist must carry, the metadata, and the CI configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import xlogreg

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "xlogreg", "backends",
           "bench", "tests"]
BIN = "Scripts" if os.name == "nt" else "bin"


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLOGREG_BACKEND")}
    return {**env, "PYTHONNOUSERSITE": "1"}


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """The wheel and sdist of a copy of this checkout, built without network or
    isolation by setuptools' PEP 517 hooks (what ``pip wheel --no-build-isolation``
    calls)."""
    pytest.importorskip("setuptools", minversion="77",
                        reason='building needs setuptools>=77: pip install "xlogreg[test]"')
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.nbi", "*.nbc")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp / "dist"
    built = []
    for hook in ("build_wheel", "build_sdist"):  # one process each: setuptools keeps state
        code = f"import sys, setuptools.build_meta as b; print('\\nbuilt:', b.{hook}(sys.argv[1]))"
        done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        built.append(done.stdout.rsplit("\nbuilt:", 1)[1].strip())
    wheel, sdist = built
    return out / wheel, out / sdist


def test_wheel_ships_one_top_level_name(dists):
    wheel, _ = dists
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        top_level = zf.read(f"{dist_info}/top_level.txt").decode().split()
        metadata = Parser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    tops = {n.split("/")[0] for n in names} - {dist_info}
    assert tops == {"xlogreg"}, tops
    assert not any(n.startswith("backends/") for n in names)
    assert top_level == ["xlogreg"]
    for name in ("xlogreg/backends/__init__.py", "xlogreg/backends/_base.py",
                 "xlogreg/py.typed", "xlogreg/__main__.py", f"{dist_info}/licenses/LICENSE"):
        assert name in names
    assert metadata["Version"] == xlogreg.__version__
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata["Author"] == "xlogreg developers"
    assert any(r.replace(" ", "").startswith("scikit-learn<2,>=1.6")
               for r in metadata.get_all("Requires-Dist"))
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL"))
    assert urls["Issues"] == "https://github.com/xlogreg/xlogreg/issues"
    assert "xlogreg = xlogreg.cli:main" in entry_points


def test_sdist_ships_the_benchmark_suite_tests_and_license(dists):
    _, sdist = dists
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for name in ("bench/conftest.py", "bench/_common.py", "bench/test_vector_ops.py",
                 "tests/test_bench.py", "xlogreg/py.typed", "backends/__init__.py",
                 "LICENSE", "README.md", "pyproject.toml"):
        assert name in names, name
    assert not any("__pycache__" in n or n.startswith(("bench/results/quick",
                                                       "bench/results/smoke"))
                   for n in names)


USER_APP = '''
import importlib.metadata, json, sys, warnings
import backends                                  # the user's own package
import numpy as np
import xlogreg
from xlogreg.backends import get_backend

X = np.random.default_rng(0).normal(size=(200, 3))
y = (X[:, 0] - X[:, 1] > 0).astype(int)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = xlogreg.LogisticRegression(max_epochs=200).fit(X, y)
print(json.dumps({
    "user_backends": backends.WHO,
    "user_backends_file": backends.__file__,
    "xlogreg_file": xlogreg.__file__,
    "xlogreg_backends_file": sys.modules["xlogreg.backends"].__file__,
    "numpy_backend": get_backend("numpy").name,
    "score": clf.score(X, y),
    "version": importlib.metadata.version("xlogreg"),
    "xlogreg_version": xlogreg.__version__,
}))
'''


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory):
    """A fresh virtual environment with the wheel installed (no network, no
    dependencies fetched), and a user project beside it with its own ``backends``."""
    wheel, _ = dists
    tmp = tmp_path_factory.mktemp("install")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   env=_env(), timeout=120)
    python = venv / BIN / ("python.exe" if os.name == "nt" else "python")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-deps", "--no-index", "--no-cache-dir", "--quiet", str(wheel)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # the dependencies (NumPy, scikit-learn...) come from this environment, behind the
    # venv's own site-packages; plain path lines, so no .pth in there (an editable
    # install of xlogreg) is run
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True,
                          env=_env()).stdout.strip()
    outer = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "_outer_environment.pth").write_text("\n".join(outer) + "\n")
    project = tmp / "project"
    (project / "backends").mkdir(parents=True)
    (project / "backends" / "__init__.py").write_text('WHO = "the user\'s backends"\n')
    (project / "app.py").write_text(USER_APP)
    return venv, python, project, Path(site)


def test_installed_wheel_beside_a_user_backends_package(installed):
    venv, python, project, site = installed
    done = subprocess.run([str(python), "app.py"], cwd=project, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["user_backends"] == "the user's backends"
    assert Path(got["user_backends_file"]).parent == project / "backends"
    assert Path(got["xlogreg_file"]).parent == site / "xlogreg"
    assert Path(got["xlogreg_backends_file"]).parent == site / "xlogreg" / "backends"
    assert got["numpy_backend"] == "numpy"
    assert got["score"] > 0.9
    assert got["version"] == got["xlogreg_version"] == xlogreg.__version__
    assert not (site / "backends").exists()


def test_installed_command_line(installed):
    venv, python, project, site = installed
    script = venv / BIN / "xlogreg"
    done = subprocess.run([str(script), "--version"], cwd=project, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"xlogreg {xlogreg.__version__}", done.stderr
    # installed, there is no bench/ folder: one line, exit 2, nothing created
    done = subprocess.run([str(python), "-m", "xlogreg", "bench", "--smoke"], cwd=project,
                          env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "no bench/ folder" in done.stderr
    assert sorted(p.name for p in project.iterdir()) == ["app.py", "backends"]


def test_ci_runs_the_readme_test_command_and_gates_the_gpu_job():
    yaml = pytest.importorskip("yaml")  # installed with dask, part of [test]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]

    def runs(job):
        return "\n".join(step.get("run", "") for step in job["steps"])

    cpu = [job for job in jobs.values() if "bash .ci/run" in runs(job)]
    assert len(cpu) == 1
    cpu = cpu[0]
    assert cpu["runs-on"] == "ubuntu-latest" and "if" not in cpu
    versions = cpu["strategy"]["matrix"]["python-version"]
    assert versions == ["3.11", "3.12", "3.13"]
    assert any(step.get("with", {}).get("python-version") == "${{ matrix.python-version }}"
               for step in cpu["steps"])
    # the supported versions say the same everywhere
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={versions[0]}"
    classified = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"]
                  if c.startswith("Programming Language :: Python :: 3.")]
    assert classified == versions

    gpu = [job for job in jobs.values() if job["runs-on"] == ["self-hosted", "gpu"]]
    assert len(gpu) == 1
    gpu = gpu[0]
    assert gpu["if"].replace(" ", "") in ("vars.XLOGREG_GPU_CI=='true'",
                                          "${{vars.XLOGREG_GPU_CI=='true'}}")
    assert "python -m pytest -m gpu" in runs(gpu)
    assert "xlogreg bench --quick -- -k cupy" in runs(gpu)
    # .ci/run is the single source of the test command
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/run" in (ROOT / "README.md").read_text()


def test_readme_documents_the_license():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n\nCopyright (c) ")
    assert "xlogreg developers" in text.splitlines()[2]
    assert "## License" in (ROOT / "README.md").read_text()


def test_backends_interface_is_fully_annotated():
    """PEP 561 (``py.typed``): the ``xlogreg.backends`` interface carries hints for every
    argument and return value."""
    import inspect

    from xlogreg import backends

    functions = [getattr(backends, name) for name in backends.__all__
                 if inspect.isfunction(getattr(backends, name))]
    methods = [f for name, f in vars(backends.Backend).items()
               if inspect.isfunction(f) and not name.startswith("_")]
    assert len(functions) >= 6 and len(methods) >= 9
    for func in functions + methods:
        sig = inspect.signature(func)
        assert sig.return_annotation is not inspect.Signature.empty, func.__qualname__
        for param in list(sig.parameters.values())[1 if func in methods else 0:]:
            assert param.annotation is not inspect.Parameter.empty, (func.__qualname__,
                                                                      param.name)
    assert "xp" in backends.Backend.__annotations__
