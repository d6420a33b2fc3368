"""Turn pytest-benchmark JSON files into a Markdown report with tables and plots.

Rows are placed by the ``extra_info`` the benchmarks record (``subject``, ``impl`` and
parameters); times are pytest-benchmark's medians. Every ratio is between rows of one
run, and of the quantity its table shows: in the per-epoch tables, per-epoch times.
Plots need matplotlib (``pip install "xlogreg[plot]"``); without it the report says so
and keeps its tables. ``figures`` returns the plots as matplotlib figures.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

__all__ = ["NO_GPU_NOTE", "compare", "figures", "load", "render", "targets"]

SUBJECTS = [
    ("dot", "Dot product of two vectors"),
    ("matvec", "u = A v"),
    ("elementwise", "Element-wise functions"),
    ("transfer", "Host-to-device transfer"),
    ("step", "One logistic-regression gradient step (float32)"),
    ("epoch", "Training: one epoch by batch size (per-epoch time)"),
    ("fit", "Training: full fits to convergence, with peers"),
    ("curve", "Training: convergence curves (each curve's longest fit)"),
    ("cold", "Cold first fit: a fresh process, imports included, empty Numba cache"),
    ("cpu", "CPU fast path: fused gradient, L-BFGS, compiled epochs, memory"),
    ("solvers", "Time to the optimum by solver: xlogreg's best against scikit-learn's best"),
    ("dask", "Beyond one machine: a Dask cluster, and data streamed from disk"),
]
BASELINES = ("python loop", "loop over ndarray", "math loop", "loop over list")
TWO_PASS = "numpy (two passes)"
NO_GPU_NOTE = "GPU not measured on this machine"
FLOOR = 1e-12  # convergence plot: gaps at or below this are drawn on it

NOTES = {
    "step": ("`numpy` is the gradient `fit` computes "
             "(`xlogreg.models.fast_loss_and_gradient`: the fused Numba kernel, one pass "
             "over X, where Numba is installed and X has at least 65,536 elements; the "
             "plain code below that); `numpy (two passes)` is the slides' vectorized step "
             "as written (`X @ W`, then `X.T @ dZ`)."),
    "curve": ("Each curve refits the solver from scratch with a budget of 1, 2, 4, ... "
              "epochs (iterations for lbfgs and newton-cholesky) and no stopping "
              "tolerance; a point is the wall time of that whole `fit` and the penalized "
              "objective its coefficients reach (float64, untimed). The table lists each "
              "curve's longest fit; `convergence.png` shows every point."),
    "cold": ("Each round is a new Python process that imports the library, loads the "
             "standardized data from `.npy` and fits `LogisticRegression()` with its "
             "defaults; the time is the whole process, start to exit, with a new, empty "
             "`NUMBA_CACHE_DIR`. The import and fit columns are the child's own clock "
             "(medians over rounds)."),
}
NOTES["solvers"] = (
    "Each solver runs at the loosest `tol` that ends within 1e-6 (relative) of the "
    "optimum, found first, untimed; the optimum is the lowest objective of xlogreg's "
    "`newton` and scikit-learn's `newton-cholesky` and `lbfgs` at `tol=1e-12` in float64. "
    "The target compares the fastest xlogreg solver that got there with the fastest "
    "scikit-learn solver that got there. A scikit-learn solver whose untimed search was "
    "already too slow to be the fastest is left out (the run's log says why).")
THREADS_NOTE = ("CPU peers (scikit-learn, PyTorch, BLAS) ran at their best thread count on "
                "this machine: each was tried untimed on 1 thread and on every core and "
                "timed on the faster, shown beside its name; xlogreg's own rows ran on "
                "every core.")
LEGACY_STEP_NOTE = ("This result file predates the row of the fused kernel: its only "
                    "NumPy row is the slides' two-pass code, not what `fit` runs.")


def load(path):
    """Rows of one result file, and its machine description."""
    data = json.loads(Path(path).read_text())
    rows = []
    for bench in data["benchmarks"]:
        extra = dict(bench.get("extra_info", {}))
        stats = bench["stats"]
        subject = extra.get("subject", "other")
        impl = extra.get("impl", bench["name"])
        if subject == "step" and impl == "numpy" and "fused" not in extra:
            impl = TWO_PASS  # older files: the step's only NumPy row was the two-pass code
        if extra.get("epochs") == 0:
            del extra["epochs"]  # older files: 0 stood for "the peer does not report it"
        per = extra.get("epochs") if subject == "epoch" else None
        rows.append({
            "group": bench.get("group") or bench["name"],
            "subject": subject,
            "impl": impl,
            "median": stats["median"],
            "min": stats["min"],
            "rounds": stats["rounds"],
            "per_epoch": stats["median"] / per if per else None,
            "extra": extra,
        })
    return rows, data.get("machine_info", {}), data.get("datetime", "")


def _fmt_time(seconds):
    if seconds is None:
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_ratio(r):
    """1,748x, 75.7x, 2.04x, 0.49x; below 0.1 as the inverse, so that a loop 1,748 times
    slower reads 1/1,748x and never 0.00x."""
    if r is None or r <= 0:
        return ""
    if r >= 100:
        return f"{r:,.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    if r >= 0.1:
        return f"{r:.2f}x"
    return "1/" + _fmt_ratio(1 / r)


def machine_line(machine):
    x = machine.get("xlogreg", {})
    cpu = x.get("cpu") or machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    parts = [f"CPU {cpu}, {x.get('cpu_count', '?')} cores"]
    if x.get("blas"):
        parts.append(f"BLAS {x['blas']} ({x.get('blas_threads')} threads)")
    parts.append(f"NumPy {x.get('numpy', '?')}, Python {machine.get('python_version', '?')}")
    gpu = x.get("gpu", {})
    if gpu.get("gpu"):
        parts.append(f"GPU {gpu['gpu']} ({gpu.get('gpu_memory_gib')} GiB), CuPy "
                     f"{gpu.get('cupy')}, CUDA runtime {gpu.get('cuda_runtime')}")
    else:
        parts.append("no GPU")
    return "; ".join(parts)


def _has_gpu(machine):
    return bool(machine.get("xlogreg", {}).get("gpu", {}).get("gpu"))


def _missing_gpu_rows(rows, has_gpu):
    """A 'cupy' row for every 'numpy' row that has none, saying why."""
    present = {(r["group"], r["impl"]) for r in rows}
    out = []
    for r in rows:
        if "numpy" not in r["impl"] or "torch" in r["impl"] or r["subject"] in ("cpu", "dask"):
            continue  # the CPU fast-path and cluster rows have no GPU twin
        # the GPU runs the plain code: the twin of the two-pass row is 'cupy'
        twins = [r["impl"].replace(TWO_PASS, "cupy").replace("numpy", "cupy")]
        if r["subject"] == "epoch" and r["impl"] == "numpy":
            twins.append("cupy + transfer")
        for twin in twins:
            if (r["group"], twin) not in present:
                out.append({**r, "impl": twin, "median": None, "min": None, "rounds": 0,
                            "per_epoch": None, "extra": {},
                            "note": "skipped: no GPU" if not has_gpu else "not run"})
                present.add((r["group"], twin))
    return out


# optional columns: (heading, the cell from a row's extra_info, None where it has none);
# a table shows one only where some row has it, and "n/a" in the rows that do not
COLUMNS = [
    ("epochs", lambda e: str(e["epochs"]) if e.get("epochs") else None),
    ("loss reached", lambda e: f"{e['loss']:.6f}" if "loss" in e else None),
    ("gap to the optimum (relative)", lambda e: f"{e['gap']:.1e}" if "gap" in e else None),
    ("test accuracy", lambda e: f"{e['accuracy']:.4f}" if "accuracy" in e else None),
    ("peak memory beyond X (x size of X)",
     lambda e: f"{e['peak_x']:.2f}" if "peak_x" in e else None),
    ("of which imports", lambda e: _fmt_time(e["import_s"]) if "import_s" in e else None),
    ("of which fit", lambda e: _fmt_time(e["fit_s"]) if "fit_s" in e else None),
    ("solver warning", lambda e: e["warning"].replace("|", "/") if e.get("warning") else None),
]


def _table(rows):
    timed = [r for r in rows if r["median"] is not None]
    key = "per_epoch" if any(r["per_epoch"] for r in timed) else "median"

    def shown(r):  # the time the table prints; every ratio is taken between these
        return r[key] if r[key] is not None else r["median"]

    comparable = len(timed) > 1
    numpy_row = next((r for r in timed if r["impl"] == "numpy"), None) if comparable else None
    base = next((r for name in BASELINES for r in timed if r["impl"] == name), None) \
        if comparable else None
    # against several peers, the fastest of them, as the targets are measured
    peers = next((_names(r["extra"]["versus"]) for r in rows if r["extra"].get("versus")), [])
    versus_row = min((r for r in timed if r["impl"] in peers), key=shown, default=None)
    versus = versus_row["impl"] if versus_row else None
    optional = [(h, cell) for h, cell in COLUMNS
                if any(cell(r["extra"]) is not None for r in timed)]
    head = ["implementation", "per epoch" if key == "per_epoch" else "median", "min", "rounds"]
    if versus_row:
        head.append(f"time / {versus}")
    if base:
        head.append(f"speed-up vs {base['impl']}")
    if numpy_row:
        head.append("speed-up vs numpy")
    head += [h for h, _ in optional]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["median"] is None, -(shown(r) or 0))):
        if r["median"] is None:
            cells = [r["impl"], r.get("note", ""), "", ""]
            cells += [""] * (len(head) - len(cells))
        else:
            scale = r["median"] / shown(r)  # per-epoch rows: the min per epoch too
            cells = [r["impl"] + _threads(r["extra"]), _fmt_time(shown(r)),
                     _fmt_time(r["min"] / scale),
                     str(r["rounds"])]
            if versus_row:
                cells.append(f"{shown(r) / shown(versus_row):.3f}")
            if base:
                cells.append(_fmt_ratio(shown(base) / shown(r)))
            if numpy_row:
                cells.append(_fmt_ratio(shown(numpy_row) / shown(r)))
            cells += [cell(r["extra"]) or "n/a" for _, cell in optional]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _best_of(rows):
    """The one row that speaks for each ``best_of`` family of a group: the fastest that
    reached what its rows aim at (``extra["reached"]`` not False), else the fastest."""
    chosen = {}
    for r in rows:
        family = r["extra"].get("best_of")
        if family is None or "target" not in r["extra"] or r["median"] is None:
            continue
        key = (r["group"], family)
        rank = (r["extra"].get("reached") is False, r["median"])
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, r)
    return {key: r for key, (_, r) in chosen.items()}


def targets(rows):
    """``(group, impl, versus, ratio, target)`` for every row that states a target:
    its median over the median of the row it is measured against, in the same run.
    A row with ``less`` (another row of its group) is measured less that row's
    median: what a whole costs beyond a part timed on its own (a fit beyond its
    epoch's work).

    Rows that share a ``best_of`` value in ``extra_info`` (say, one row per solver of a
    library, all with the same target) are one contender: only the fastest of them
    that reached its goal (``reached`` not False) is measured, so the verdict is the
    best of ours against the best of theirs (``versus`` lists theirs)."""
    medians = {(r["group"], r["impl"]): r["median"] for r in rows if r["median"] is not None}
    speakers = _best_of(rows)
    out = []
    for r in rows:
        e = r["extra"]
        if "target" not in e or r["median"] is None:
            continue
        if "best_of" in e and speakers.get((r["group"], e["best_of"])) is not r:
            continue
        # against several peers, the fastest of them
        peers = [(medians[(r["group"], v)], v) for v in _names(e["versus"])
                 if (r["group"], v) in medians]
        less = medians.get((r["group"], e["less"])) if "less" in e else 0.0
        if peers and less is not None:
            other, name = min(peers)
            out.append((r["group"], r["impl"], name, (r["median"] - less) / other,
                        e["target"]))
    return out


def _names(versus):
    return [versus] if isinstance(versus, str) else list(versus)


def _threads(extra):
    """" (1 thread)", " (2 threads)", or "" for a row that does not record them."""
    n = extra.get("threads")
    return f" ({n} thread{'' if n == 1 else 's'})" if n else ""


def _target_lines(rows):
    extras = {(r["group"], r["impl"]): r["extra"] for r in rows}
    out = []
    for group, impl, versus, ratio, target in targets(rows):
        verdict = "met" if ratio <= target else f"missed by {ratio / target:.2f}x"
        mine, theirs = extras.get((group, impl), {}), extras.get((group, versus), {})
        who = impl + _threads(mine)
        if "less" in mine:
            who += f", less {mine['less']},"
        if "best_of" in mine:
            who += f", the fastest of {mine['best_of']}'s rows"
            if mine.get("reached") is False:
                who += " (none of which reached the goal)"
        out.append(f"- {group}: {who} takes **{ratio:.3f}x** the time of "
                   f"{versus}{_threads(theirs)} (target at most {target:.3g}x: {verdict})")
    return out


def _display(impl, extra):
    if impl == "numpy" and "fused" in extra:  # the step row of fit's own gradient
        return f"NumPy as fit runs it ({'fused kernel' if extra['fused'] else 'plain code'})"
    return {"numpy": "NumPy", TWO_PASS: "NumPy (two passes)", "cupy": "CuPy"}.get(impl, impl)


def _headlines(rows):
    """The ratios the course material is about, one line each."""
    by, names = defaultdict(dict), {}
    for r in rows:
        if r["median"] is not None:
            by[r["group"]][r["impl"]] = r["per_epoch"] or r["median"]
            names[r["group"], r["impl"]] = _display(r["impl"], r["extra"])
    out = []
    for group, impls in by.items():
        vectorized = [name for name in (TWO_PASS, "numpy") if name in impls]
        if not vectorized:
            continue
        base = next((name for name in BASELINES if name in impls), None)
        for name in vectorized if base else ():
            out.append(f"- {group}: {base} {_fmt_time(impls[base])} vs {names[group, name]} "
                       f"{_fmt_time(impls[name])}: **{_fmt_ratio(impls[base] / impls[name])}**")
        if "cupy" in impls:
            cpu = vectorized[-1]  # what fit runs where both are there
            ratio = impls[cpu] / impls["cupy"]
            verdict = "GPU faster" if ratio > 1 else "GPU slower"
            out.append(f"- {group}: {names[group, cpu]} {_fmt_time(impls[cpu])} vs CuPy "
                       f"{_fmt_time(impls['cupy'])}: **{_fmt_ratio(ratio)}** ({verdict})")
    return out


def render(paths, out_dir, title="xlogreg benchmark report"):
    """Write ``report.md`` (and PNG plots) for the result files; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    all_rows = []
    for path in paths:
        rows, machine, when = load(path)
        size = machine.get("xlogreg", {}).get("bench_size", "?")
        lines += [f"Results: `{Path(path).name}` ({when}, size `{size}`)", "",
                  f"Machine: {machine_line(machine)}", ""]
        rows = rows + _missing_gpu_rows(rows, _has_gpu(machine))
        all_rows += rows
        heads = _headlines(rows)
        if heads:
            lines += ["## Headline ratios (median times, same run)", "", *heads, ""]
        threaded = any(r["extra"].get("threads") for r in rows)
        if threaded:
            lines += [THREADS_NOTE, ""]
        goals = _target_lines(rows)
        if goals:
            peers = "; CPU peers at their best thread count" if threaded else ""
            lines += [f"## Performance targets (median times, same run{peers})", "", *goals,
                      ""]
        for subject, heading in SUBJECTS:
            groups = defaultdict(list)
            for r in rows:
                if r["subject"] == subject:
                    groups[r["group"]].append(r)
            if not groups and subject == "transfer" and not _has_gpu(machine):
                lines += [f"## {heading}", "", "skipped: no GPU", ""]
            if not groups:
                continue
            lines += [f"## {heading}", ""]
            if subject in NOTES:
                lines += [NOTES[subject], ""]
            if subject == "step" and not any("fused" in r["extra"] for g in groups.values()
                                             for r in g):
                lines += [LEGACY_STEP_NOTE, ""]
            for group in sorted(groups, key=_natural):
                lines += [f"### {group}", "", *_table(groups[group]), ""]
    lines += _plots(all_rows, out_dir)
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _natural(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


# ---------------------------------------------------------------------------- plots
COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
          "tab:pink", "tab:gray", "tab:olive", "tab:cyan", "black", "gold", "navy", "lime",
          "maroon", "teal"]
MARKERS = ["o", "s", "D", "^", "v", "<", ">", "p", "h", "X", "*", "P", "d", "H", "8", "x"]


def _style(i, impl):
    """Line ``i`` of a plot: its own colour and marker (16 of each), dashed on the GPU."""
    return dict(color=COLORS[i % len(COLORS)], marker=MARKERS[i % len(MARKERS)],
                linestyle="--" if "cupy" in impl else "-")


def _finish(fig, impls):
    """Say on the figure when none of its series ran on the GPU; lay it out."""
    if not any("cupy" in impl for impl in impls):
        fig.text(0.99, 0.01, NO_GPU_NOTE, ha="right", va="bottom", fontsize=10,
                 color="firebrick", style="italic")
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    return fig


def figures(rows):
    """The report's plots, ``{file name: matplotlib Figure}``, from rows as ``load``
    returns them; plots without a GPU series carry ``NO_GPU_NOTE``. Needs matplotlib."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    timed = [r for r in rows if r["median"] is not None]
    made = {}
    for name, build in (("headline.png", _headline_figure), ("step_vs_size.png", _step_figure),
                        ("epoch_vs_batch.png", _epoch_figure),
                        ("convergence.png", _convergence_figure)):
        fig = build(timed, Figure)
        if fig is not None:
            made[name] = fig
    return made


# (subject, title, the group to prefer: the slides' case), in the order drawn
HEADLINE = [("dot", "dot product", "float64"), ("matvec", "u = A v", ""),
            ("elementwise", "element-wise", "exp"), ("step", "gradient step", "binary")]
BARS = [("loop", "Python loop", "0.55"), ("vectorized", "NumPy, vectorized", "tab:blue"),
        ("fit", "NumPy as fit runs it (fused kernel where it applies)", "tab:green"),
        ("gpu", "GPU (CuPy)", "tab:red")]


def _size(extra):
    """Elements the row works on: n for vectors, rows x cols, m x n for a step."""
    size = 1
    for name in ("n", "m", "rows", "cols"):
        size *= extra.get(name, 1)
    return size


def _headline_figure(timed, Figure):
    """Speed-up over the Python loop of each vectorized form, one cluster per subject."""
    groups = defaultdict(dict)
    for r in timed:
        groups[(r["subject"], r["group"])][r["impl"]] = r
    clusters = []
    for subject, title, prefer in HEADLINE:
        found = []
        for (s, group), impls in groups.items():
            base = next((impls[b] for b in BASELINES if b in impls), None)
            cpu = impls.get("numpy") or impls.get(TWO_PASS)
            if s == subject and base and cpu:
                found.append(((prefer in group, _size(cpu["extra"])), group, base, impls))
        if found:
            _, group, base, impls = max(found, key=lambda f: f[0])
            bars = {"loop": base}
            if subject == "step":
                bars.update(vectorized=impls.get(TWO_PASS), fit=impls.get("numpy"))
            else:
                bars["vectorized"] = impls.get("numpy")
            bars["gpu"] = impls.get("cupy")
            clusters.append((title, group, {k: v for k, v in bars.items() if v}))
    if not clusters:
        return None
    fig = Figure(figsize=(10, 5.5))
    ax = fig.subplots()
    width = 0.8 / len(BARS)
    for j, (kind, legend, color) in enumerate(BARS):
        xs, ys = [], []
        for i, (_, _, bars) in enumerate(clusters):
            if kind in bars:
                xs.append(i + (j - (len(BARS) - 1) / 2) * width)
                ys.append(bars["loop"]["median"] / bars[kind]["median"])
        if xs:
            ax.bar(xs, ys, width, color=color, label=legend)
            for x, y in zip(xs, ys):
                ax.text(x, y * 1.15, _fmt_ratio(y), ha="center", va="bottom", fontsize=8)
    for i, (_, _, bars) in enumerate(clusters):  # an empty GPU slot says why it is empty
        if "gpu" not in bars:
            ax.text(i + (len(BARS) - 1) / 2 * width, 1.1, "GPU not measured", rotation=90,
                    ha="center", va="bottom", fontsize=7, color="firebrick")
    ax.set_xticks(range(len(clusters)),
                  [f"{title}\n{group}\nloop: {_fmt_time(bars['loop']['median'])}"
                   for title, group, bars in clusters], fontsize=8)
    ax.set(yscale="log", ylabel="speed-up over the Python loop (x)",
           title="Python loop vs vectorized vs GPU: speed-ups measured in one run")
    ax.set_ylim(0.5, max(b["loop"]["median"] / min(v["median"] for v in b.values())
                         for _, _, b in clusters) * 6)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _finish(fig, [r["impl"] for _, _, bars in clusters for r in bars.values()])


def _step_figure(timed, Figure):
    steps = [r for r in timed if r["subject"] == "step"]
    if not steps:
        return None
    kinds = sorted({r["extra"]["kind"] for r in steps})
    fig = Figure(figsize=(6 * len(kinds), 4.8))
    axes = fig.subplots(1, len(kinds), squeeze=False)
    order = sorted({r["impl"] for r in steps})  # one style per implementation in both panels
    for ax, kind in zip(axes[0], kinds):
        series = defaultdict(list)
        for r in steps:
            if r["extra"]["kind"] == kind:
                series[r["impl"]].append((r["extra"]["m"], r["median"]))
        for impl, pts in sorted(series.items()):
            pts.sort()
            name = "numpy (as fit runs it)" if impl == "numpy" else impl
            ax.plot(*zip(*pts), label=name, **_style(order.index(impl), impl))
        cpu = series.get("numpy") or series.get(TWO_PASS, [])
        cross = _crossover(cpu, series.get("cupy", []))
        if cross:
            ax.axvline(cross, color="gray", linestyle=":", label=f"GPU faster from m={cross:,}")
        ax.set(xscale="log", yscale="log", xlabel="examples m (100 features)",
               ylabel="seconds per step", title=f"gradient step, {kind}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return _finish(fig, [r["impl"] for r in steps])


def _epoch_figure(timed, Figure):
    from matplotlib.ticker import NullLocator

    epochs = [r for r in timed if r["subject"] == "epoch" and r["per_epoch"]]
    if not epochs:
        return None
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.subplots()
    series = defaultdict(list)
    for r in epochs:
        series[r["impl"]].append((r["extra"]["batch_size"], r["per_epoch"]))
    for i, (impl, pts) in enumerate(sorted(series.items())):
        pts.sort()
        style = _style(i, impl)
        if len(pts) == 1:
            style["linestyle"] = "none"
        ax.plot(*zip(*pts), label=impl, **style)
    full = {r["extra"]["m"] for r in epochs if "m" in r["extra"]}
    ticks = sorted({b for pts in series.values() for b, _ in pts})
    low, high = min(r["per_epoch"] for r in epochs), max(r["per_epoch"] for r in epochs)
    ax.set_ylim(low / 1.5, high * 1.5)  # also when there is one point
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 2, ticks[0] * 2)
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="seconds per epoch",
           title="time per epoch vs batch size")
    ax.set_xticks(ticks, ["full batch" if b in full else f"{b:,}" for b in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, list(series))


def _convergence_figure(timed, Figure):
    curves = [r for r in timed if r["subject"] == "curve" and r["extra"].get("curve")]
    if not curves:
        return None
    fig = Figure(figsize=(10.5, 5.8))
    ax = fig.subplots()
    for i, r in enumerate(sorted(curves, key=lambda r: (not r["impl"].startswith("xlogreg"),
                                                        r["impl"]))):
        optimum = r["extra"]["optimum"]
        seconds, values = zip(*r["extra"]["curve"])  # in the order of the budgets
        ax.plot(seconds, [max(v - optimum, FLOOR) for v in values], label=r["impl"],
                markersize=5, **_style(i, r["impl"]))
    groups = sorted({r["group"].removeprefix("convergence ") for r in curves})
    ax.set(xscale="log", yscale="log",
           xlabel="seconds (one whole fit per point, budgets 1, 2, 4, ... epochs)",
           ylabel=f"objective - optimum (below {FLOOR:g}: drawn at {FLOOR:g})",
           title="convergence to the optimum, " + "; ".join(groups))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _finish(fig, [r["impl"] for r in curves])


def _plots(rows, out_dir):
    try:
        made = figures(rows)
    except ImportError:
        return ["_Plots skipped: matplotlib is not installed (`pip install \"xlogreg[plot]\"`)._", ""]
    lines = ["## Plots", ""] if made else []
    for name, fig in made.items():
        fig.savefig(out_dir / name, dpi=110)
        lines += [f"![{name}]({name})", ""]
    return lines


def _crossover(cpu, gpu):
    gpu = dict(gpu)
    for m, t in sorted(cpu):
        if m in gpu and gpu[m] < t:
            return m
    return None


def compare(path_a, path_b, out_path):
    """Side-by-side Markdown of two result files (e.g. a CPU-only and a GPU machine)."""
    rows_a, machine_a, _ = load(path_a)
    rows_b, machine_b, _ = load(path_b)
    index_b = {(r["group"], r["impl"]): r for r in rows_b}
    lines = ["# xlogreg benchmark comparison", "",
             f"- A: `{Path(path_a).name}`: {machine_line(machine_a)}",
             f"- B: `{Path(path_b).name}`: {machine_line(machine_b)}", "",
             "| group | implementation | A median | B median | A / B |", "|---|---|---|---|---|"]
    seen = set()
    for r in sorted(rows_a, key=lambda r: (_natural(r["group"]), r["impl"])):
        key = (r["group"], r["impl"])
        seen.add(key)
        other = index_b.get(key)
        ratio = _fmt_ratio(r["median"] / other["median"]) if other else ""
        lines.append(f"| {r['group']} | {r['impl']} | {_fmt_time(r['median'])} | "
                     f"{_fmt_time(other['median']) if other else 'not in B'} | {ratio} |")
    for r in rows_b:
        if (r["group"], r["impl"]) not in seen:
            lines.append(f"| {r['group']} | {r['impl']} | not in A | {_fmt_time(r['median'])} | |")
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text("\n".join(lines) + "\n")
    return Path(out_path)
