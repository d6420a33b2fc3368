"""Read a benchopt result of ``benchmark_logreg_l2``: time to each tolerance, and the curves.

    python bench/benchopt/curves.py RESULT.parquet [--png curves.png]

For every (objective, dataset) pair of the run, ``f*`` is the lowest objective
that any solver reached (benchopt's own convention for its suboptimality
curves), and each curve is ``f(w_k) - f*`` against the median time over the
repetitions of the fit that produced ``w_k``. The table gives, for each solver
and each tolerance from 1e-3 to 1e-9, the fastest time at which its curve is at
or below that tolerance (``-`` where it never got there), and marks the fastest
solver of each column; the last line says whether the best xlogreg solver is
the fastest at every tolerance. ``--png`` draws the curves (log-log).

Absolute suboptimality: the benchmark's objective is a sum over the samples, so
its values grow with ``n_samples`` (about 1e4 at 100,000 samples, where float64
resolves about 1e-12).
"""

import argparse
import math

import pandas as pd

TOLS = [10.0 ** -k for k in range(3, 10)]


def load_curves(path):
    """``{(objective, dataset): {solver: DataFrame(time, subopt)}}``."""
    df = pd.read_parquet(path)
    out = {}
    for (obj, data), block in df.groupby(["objective_name", "dataset_name"], sort=False):
        fstar = block["objective_value"].min()
        curves = {}
        for solver, rows in block.groupby("solver_name", sort=False):
            curve = rows.groupby("stop_val").agg(
                time=("time", "median"), value=("objective_value", "median"))
            curve["subopt"] = curve["value"] - fstar
            curves[solver] = curve.sort_index()
        out[(obj, data)] = curves
    return out


def time_to(curve, tol):
    reached = curve[curve["subopt"] <= tol]
    return float(reached["time"].min()) if len(reached) else math.inf


def table(curves):
    solvers = list(curves)
    times = {s: [time_to(curves[s], t) for t in TOLS] for s in solvers}
    width = max(len(s) for s in solvers) + 2
    lines = [" " * width + "".join(f"{t:>10.0e}" for t in TOLS)]
    best = [min(times[s][i] for s in solvers) for i in range(len(TOLS))]
    for s in solvers:
        cells = []
        for i, t in enumerate(times[s]):
            cell = "-" if math.isinf(t) else f"{t:.2g}"
            cells.append(f"{cell + ('*' if t == best[i] and not math.isinf(t) else ''):>10}")
        lines.append(f"{s:<{width}}" + "".join(cells))
    ours = [s for s in solvers if s.startswith("xlogreg")]
    others = [s for s in solvers if not s.startswith("xlogreg")]
    if ours and others:
        wins = []
        for i in range(len(TOLS)):
            o = min(times[s][i] for s in ours)
            b = min(times[s][i] for s in others)
            wins.append(o < b or (math.isinf(b) and not math.isinf(o)))
        lost = [f"{TOLS[i]:.0e}" for i, w in enumerate(wins) if not w]
        lines.append("xlogreg fastest at every tolerance" if not lost
                     else "xlogreg not fastest at: " + ", ".join(lost))
    return "\n".join(lines)


def plot(all_curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(all_curves)
    fig, axes = plt.subplots(len(keys), 1, figsize=(12, 4 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
        for solver, curve in all_curves[key].items():
            c = curve[curve["subopt"] > 0]
            ours = solver.startswith("xlogreg")
            ax.loglog(c["time"], c["subopt"], marker="o" if ours else ".", markersize=3,
                      linewidth=2 if ours else 1, linestyle="-" if ours else "--",
                      label=solver)
        for t in (TOLS[0], TOLS[-1]):
            ax.axhline(t, color="grey", linewidth=0.5)
        ax.set_title(f"{key[1]}  {key[0]}", fontsize=9)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("f(w) - f*")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("result", help="a benchopt .parquet (or .csv) result")
    parser.add_argument("--png", help="write the curves there")
    args = parser.parse_args()
    all_curves = load_curves(args.result)
    for (obj, data), curves in all_curves.items():
        print(f"== {data}  {obj}   (seconds to f - f* <= tol; * fastest)")
        print(table(curves))
        print()
    if args.png:
        plot(all_curves, args.png)
        print(f"curves: {args.png}")


if __name__ == "__main__":
    main()
