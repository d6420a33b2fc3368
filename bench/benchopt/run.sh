#!/usr/bin/env bash
# xlogreg in benchopt's benchmark_logreg_l2, on the simulated datasets.
#
#   bash bench/benchopt/run.sh                    # the full run (see README.md)
#   bash bench/benchopt/run.sh -d "simulated[n_samples=1000,n_features=10]" -r 1 -n 15 --timeout 20
#
# Arguments, when given, replace the default `benchopt run` options below.
# Environment: XLOGREG_BENCHOPT_VENV (default bench/benchopt/.venv), BENCHMARK_DIR
# (default bench/benchopt/benchmark_logreg_l2, cloned if missing), OUT (the
# .parquet result, default bench/benchopt/results/simulated.parquet).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${XLOGREG_BENCHOPT_VENV:-$here/.venv}"
benchmark="${BENCHMARK_DIR:-$here/benchmark_logreg_l2}"
out="${OUT:-$here/results/simulated.parquet}"

if [ ! -x "$venv/bin/benchopt" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install "benchopt==1.10.0" scikit-learn numba matplotlib
    # The benchmark's other solvers that install with pip (snapml, copt);
    # Lightning, glmnet (R) and cuml (conda, GPU) are reported "not installed".
    "$venv/bin/pip" install snapml copt || echo "snapml/copt not installed: skipped in the run"
    "$venv/bin/pip" install -e "$repo[fast]"
fi
if [ ! -d "$benchmark" ]; then
    git clone --depth 1 https://github.com/benchopt/benchmark_logreg_l2 "$benchmark"
fi
# Our solver joins the benchmark's own: a link, so edits here are what runs.
# Not named xlogreg.py: a file of that name would shadow the package wherever
# its folder lands on sys.path.
ln -sf "$here/solvers/xlogreg_solver.py" "$benchmark/solvers/xlogreg_solver.py"

if [ "$#" -eq 0 ]; then
    set -- -d simulated -r 5 -n 100 --timeout 300
fi
mkdir -p "$(dirname "$out")"
rm -f "$out"  # benchopt would write OUT_1.parquet beside an existing OUT
# --no-cache: benchopt keys its cache on the solver file, not on the xlogreg code it
# imports, so a cached point could predate the checkout being measured.
"$venv/bin/python" "$here/benchopt_cli.py" run "$benchmark" "$@" --no-cache --no-plot --output "$out"
"$venv/bin/python" "$here/curves.py" "$out" --png "${out%.parquet}.png"
# benchopt's interactive page plots results from the benchmark's outputs/ only.
mkdir -p "$benchmark/outputs"
cp "$out" "$benchmark/outputs/"
"$venv/bin/benchopt" plot "$benchmark" -f "$benchmark/outputs/$(basename "$out")" --no-display
