"""Cold first fit: what a user waits for the first time a script fits a model.

Each round starts a fresh Python process that imports NumPy, loads the data (two
``.npy`` files, standardized beforehand, untimed, as a user would scale them), imports
the estimator and fits ``LogisticRegression()`` with its defaults. The timed region is
the whole ``subprocess.run``: interpreter start, imports, the fit, exit. Every round
gets a new, empty ``NUMBA_CACHE_DIR`` (both libraries, though only xlogreg uses Numba),
so nothing an earlier run compiled is reused. The child's own clock splits its time
into imports (``import_s``) and fit (``fit_s``), recorded as medians over the rounds;
ConvergenceWarnings are silenced, as the defaults are the point.

The xlogreg row states its target: at most 1.5 times scikit-learn's cold fit.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from _common import SIZE, label

# smoke: breast cancer only (the digits row compiles Numba kernels: tens of seconds)
DATASETS = ["breast cancer"] if SIZE == "smoke" else ["breast cancer", "digits"]
IMPORTS = {"xlogreg LogisticRegression()": "from xlogreg import LogisticRegression",
           "sklearn LogisticRegression()": "from sklearn.linear_model import LogisticRegression"}
ROUNDS = 1 if SIZE == "smoke" else 3
CHILD = """\
import time
start = time.perf_counter()
import json, warnings
import numpy as np
numpy_imported = time.perf_counter()
X, y = np.load({X!r}), np.load({y!r})
loaded = time.perf_counter()
{import_line}
imported = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = LogisticRegression().fit(X, y)
done = time.perf_counter()
print(json.dumps(dict(import_s=(numpy_imported - start) + (imported - loaded),
                      load_s=loaded - numpy_imported, fit_s=done - imported,
                      train_accuracy=float(model.score(X, y)))))
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each data set standardized and saved as X.npy, y.npy: ``{name: (X, y, shape)}``."""
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.preprocessing import StandardScaler

    out = {}
    loaders = {"breast cancer": load_breast_cancer, "digits": load_digits}
    for name in DATASETS:
        X, y = loaders[name](return_X_y=True)
        X = StandardScaler().fit_transform(X)
        root = tmp_path_factory.mktemp(name.replace(" ", "_"))
        np.save(root / "X.npy", X)
        np.save(root / "y.npy", y)
        out[name] = (str(root / "X.npy"), str(root / "y.npy"), X.shape)
    return out


@pytest.mark.parametrize("impl", list(IMPORTS))
@pytest.mark.parametrize("dataset", DATASETS)
def test_cold_first_fit(benchmark, saved, dataset, impl, tmp_path):
    X_path, y_path, (m, n) = saved[dataset]
    script = CHILD.format(X=X_path, y=y_path, import_line=IMPORTS[impl])
    reports = []

    def fresh_cache():  # pedantic's setup: runs before each round, untimed
        cache = tempfile.mkdtemp(prefix="numba-cache-", dir=tmp_path)
        return (), {"env": {**os.environ, "NUMBA_CACHE_DIR": cache}}

    def run(env):
        # from an empty folder, so that the child imports the installed packages
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))

    benchmark.group = (f"cold first fit: {dataset} {m}x{n}, fresh process, imports "
                       "included, empty Numba cache")
    info = dict(versus="sklearn LogisticRegression()", target=1.5) \
        if impl.startswith("xlogreg") else {}
    label(benchmark, "cold", impl, dataset=dataset, m=m, n=n, **info)
    benchmark.pedantic(run, setup=fresh_cache, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        {key: statistics.median(r[key] for r in reports)
         for key in ("import_s", "fit_s", "load_s", "train_accuracy")})
