"""Turn pytest-benchmark JSON files into a Markdown report with tables and plots.

Rows are placed by the ``extra_info`` the benchmarks record (``subject``, ``impl`` and
parameters); times are pytest-benchmark's medians, ratios are between rows of one
run. Plots need matplotlib (``pip install "xlogreg[plot]"``); without it the report
says so and keeps its tables.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

__all__ = ["compare", "load", "render", "targets"]

SUBJECTS = [
    ("dot", "Dot product of two vectors"),
    ("matvec", "u = A v"),
    ("elementwise", "Element-wise functions"),
    ("transfer", "Host-to-device transfer"),
    ("step", "One logistic-regression gradient step (float32)"),
    ("epoch", "Training: one epoch by batch size (per-epoch time)"),
    ("fit", "Training: full fits to convergence, with peers"),
    ("cpu", "CPU fast path: fused gradient, L-BFGS, compiled epochs, memory"),
    ("dask", "Beyond one machine: a Dask cluster, and data streamed from disk"),
]
BASELINES = ("python loop", "loop over ndarray", "math loop", "loop over list")


def load(path):
    """Rows of one result file, and its machine description."""
    data = json.loads(Path(path).read_text())
    rows = []
    for bench in data["benchmarks"]:
        extra = dict(bench.get("extra_info", {}))
        stats = bench["stats"]
        per = extra.get("epochs") if extra.get("subject") == "epoch" else None
        rows.append({
            "group": bench.get("group") or bench["name"],
            "subject": extra.get("subject", "other"),
            "impl": extra.get("impl", bench["name"]),
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
    return "" if r is None else f"{r:,.1f}x" if r >= 10 else f"{r:.2f}x"


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
        twins = [r["impl"].replace("numpy", "cupy")]
        if r["subject"] == "epoch" and r["impl"] == "numpy":
            twins.append("cupy + transfer")
        for twin in twins:
            if (r["group"], twin) not in present:
                out.append({**r, "impl": twin, "median": None, "min": None, "rounds": 0,
                            "per_epoch": None, "extra": {},
                            "note": "skipped: no GPU" if not has_gpu else "not run"})
                present.add((r["group"], twin))
    return out


def _table(rows):
    numpy_row = next((r for r in rows if r["impl"] == "numpy"), None)
    base = next((r for name in BASELINES for r in rows if r["impl"] == name), None)
    key = "per_epoch" if any(r["per_epoch"] for r in rows) else "median"
    quality = any("loss" in r["extra"] for r in rows)
    memory = any("peak_x" in r["extra"] for r in rows)
    first = rows[0]["extra"].get("versus") if rows else None
    versus = next((_names(r["extra"]["versus"])[0] for r in rows if r["extra"].get("versus")),
                  first)
    versus_row = next((r for r in rows if r["impl"] == versus), None)
    head = ["implementation", "per epoch" if key == "per_epoch" else "median", "min", "rounds"]
    if versus_row:
        head.append(f"time / {versus}")
    if base:
        head.append(f"speed-up vs {base['impl']}")
    if numpy_row:
        head.append("speed-up vs numpy")
    if quality:
        head += ["epochs", "loss reached", "test accuracy"]
    if memory:
        head.append("peak memory beyond X (x size of X)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["median"] is None, -(r["median"] or 0))):
        if r["median"] is None:
            cells = [r["impl"], r.get("note", ""), "", ""]
            cells += [""] * (len(head) - len(cells))
        else:
            scale = r["median"] / r[key] if r[key] else 1.0  # per-epoch rows: min per epoch
            cells = [r["impl"], _fmt_time(r[key] or r["median"]), _fmt_time(r["min"] / scale),
                     str(r["rounds"])]
            if versus_row:
                cells.append(f"{r['median'] / versus_row['median']:.3f}")
            if base:
                cells.append(_fmt_ratio(base["median"] / r["median"]))
            if numpy_row:
                cells.append(_fmt_ratio(numpy_row["median"] / r["median"]))
            if quality:
                e = r["extra"]
                cells += [str(e.get("epochs", "")),
                          f"{e['loss']:.6f}" if "loss" in e else "",
                          f"{e['accuracy']:.4f}" if "accuracy" in e else ""]
            if memory:
                cells.append(f"{r['extra']['peak_x']:.2f}" if "peak_x" in r["extra"] else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(rows):
    """``(group, impl, versus, ratio, target)`` for every row that states a target:
    its median over the median of the row it is measured against, in the same run."""
    medians = {(r["group"], r["impl"]): r["median"] for r in rows if r["median"] is not None}
    out = []
    for r in rows:
        e = r["extra"]
        if "target" not in e or r["median"] is None:
            continue
        # against several peers, the fastest of them
        peers = [(medians[(r["group"], v)], v) for v in _names(e["versus"])
                 if (r["group"], v) in medians]
        if peers:
            other, name = min(peers)
            out.append((r["group"], r["impl"], name, r["median"] / other, e["target"]))
    return out


def _names(versus):
    return [versus] if isinstance(versus, str) else list(versus)


def _target_lines(rows):
    out = []
    for group, impl, versus, ratio, target in targets(rows):
        verdict = "met" if ratio <= target else f"missed by {ratio / target:.2f}x"
        out.append(f"- {group}: {impl} takes **{ratio:.3f}x** the time of {versus} "
                   f"(target at most {target:.3g}x: {verdict})")
    return out


def _headlines(rows):
    """The ratios the course material is about, one line each."""
    by = defaultdict(dict)
    for r in rows:
        if r["median"] is not None:
            by[r["group"]][r["impl"]] = r["median"]
    out = []
    for group, impls in by.items():
        if "numpy" not in impls:
            continue
        for base in BASELINES:
            if base in impls:
                out.append(f"- {group}: {base} {_fmt_time(impls[base])} vs NumPy "
                           f"{_fmt_time(impls['numpy'])}: **{_fmt_ratio(impls[base] / impls['numpy'])}**")
                break
        if "cupy" in impls:
            ratio = impls["numpy"] / impls["cupy"]
            verdict = "GPU faster" if ratio > 1 else "GPU slower"
            out.append(f"- {group}: NumPy {_fmt_time(impls['numpy'])} vs CuPy "
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
        goals = _target_lines(rows)
        if goals:
            lines += ["## Performance targets (median times, same run)", "", *goals, ""]
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
            for group in sorted(groups, key=_natural):
                lines += [f"### {group}", "", *_table(groups[group]), ""]
    lines += _plots(all_rows, out_dir)
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def _natural(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _plots(rows, out_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["_Plots skipped: matplotlib is not installed (`pip install \"xlogreg[plot]\"`)._", ""]
    made = []
    timed = [r for r in rows if r["median"] is not None]

    steps = [r for r in timed if r["subject"] == "step"]
    if steps:
        kinds = sorted({r["extra"]["kind"] for r in steps})
        fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.5), squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            series = defaultdict(list)
            for r in steps:
                if r["extra"]["kind"] == kind:
                    series[r["impl"]].append((r["extra"]["m"], r["median"]))
            for impl, pts in sorted(series.items()):
                pts.sort()
                ax.plot(*zip(*pts), marker="o", label=impl)
            cross = _crossover(series.get("numpy", []), series.get("cupy", []))
            if cross:
                ax.axvline(cross, color="gray", linestyle="--", label=f"GPU faster from m={cross:,}")
            ax.set(xscale="log", yscale="log", xlabel="examples m (100 features)",
                   ylabel="seconds per step", title=f"gradient step, {kind}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        made.append(_save(fig, out_dir / "step_vs_size.png", plt))

    epochs = [r for r in timed if r["subject"] == "epoch" and r["per_epoch"]]
    if epochs:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        series = defaultdict(list)
        for r in epochs:
            series[r["impl"]].append((r["extra"]["batch_size"], r["per_epoch"]))
        for impl, pts in sorted(series.items()):
            pts.sort()
            ax.plot(*zip(*pts), marker="o", linestyle="-" if len(pts) > 1 else "none", label=impl)
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="seconds per epoch",
               title="time per epoch vs batch size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        made.append(_save(fig, out_dir / "epoch_vs_batch.png", plt))

    quality = [r for r in timed if r["subject"] in ("fit", "epoch") and "loss" in r["extra"]]
    if quality:
        # excess over the lowest loss any row reached, so that small gaps show on a log axis
        best = min(r["extra"]["loss"] for r in quality)
        fig, ax = plt.subplots(figsize=(10, 5.5))
        markers = "osD^v<>phX*"
        for i, r in enumerate(sorted(quality, key=lambda r: r["median"])):
            impl = f"xlogreg {r['impl']}" if r["impl"].startswith(("numpy", "cupy")) else r["impl"]
            name = impl if r["subject"] == "fit" else \
                f"{impl} batch {r['extra'].get('batch_size')}, {r['extra'].get('epochs')} ep"
            ax.scatter(r["median"], r["extra"]["loss"] - best + 1e-6, marker=markers[i % 11],
                       s=45, label=f"{name} (acc {r['extra'].get('accuracy', 0):.3f})")
        ax.set(xscale="log", yscale="log", xlabel="seconds (whole run)",
               ylabel=f"loss reached - {best:.6f} (+1e-6)",
               title="quality vs time: full fits and fixed-epoch runs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        made.append(_save(fig, out_dir / "loss_vs_time.png", plt))
    lines = ["## Plots", ""] if made else []
    for name in made:
        lines += [f"![{name}]({name})", ""]
    return lines


def _crossover(cpu, gpu):
    gpu = dict(gpu)
    for m, t in sorted(cpu):
        if m in gpu and gpu[m] < t:
            return m
    return None


def _save(fig, path, plt):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


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
