"""Summarise a multirun sweep: CSV of every job and generation, seed aggregates (CSV + Markdown), plots.

    python scripts/summarize.py SWEEP_DIR                         # headline metrics of the sweep's study
    python scripts/summarize.py SWEEP_DIR --metrics fid test_nelbo
    python scripts/summarize.py RUN_A RUN_B SWEEP_C --out figs   # several runs / sweeps side by side
    python scripts/summarize.py SWEEP_DIR --heatmap verifier.radius verifier.bias   # one-round gain map (linear)
    python scripts/summarize.py SWEEP_DIR --pair arm=discriminator arm=replace --at 1 10   # paired differences
    python scripts/summarize.py SWEEP_DIR --versus-generation0 --ratio fid recall         # each generation vs gen 0
    python scripts/summarize.py SWEEP_DIR --pair +arm=a +arm=b --pair-change   # each arm's change since its gen 0
    python scripts/summarize.py SWEEP_DIR --name arm=replace "replace" --level0  # legend names, gen 0's level

Writes into SWEEP_DIR/summary (or --out): summary.csv (one row per job and generation, overrides as
columns, the job's summary.json theory levels as summary.theory_* columns), aggregate.csv and aggregate.md
(mean and 95% t-interval across seeds per setting), and
<metric>.png (metric against generation, one line per setting with its band; for linear sweeps the
theory's stationary level and one-round prediction drawn on top). Failed and unfinished jobs are
listed, not fatal.

Paired comparisons (--pair, --versus-generation0) go to paired.md and paired.csv: per metric and generation, the
difference (or, for --ratio metrics, the ratio) on the seeds both sides have, mean and 95% t-interval across
seeds, and a verdict: higher, lower, or "not distinguishable with S seeds" when the interval holds 0 (ratio: 1).
A ratio is summarised on the log scale: the geometric mean of the per-seed ratios and exp of the t-interval of their
logs (never below 0; B / A gives the reciprocals of A / B).
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from collapselab.sweeps import (Job, aggregate, find_jobs, headline_metrics, keep_common_seeds,  # noqa: E402
                                long_rows, paired_difference, seed_index, setting_order)

log = logging.getLogger("summarize")


def write_csv(rows: list[dict], path: Path) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def in_setting_order(agg: dict[str, list[dict]]) -> list[tuple[str, list[dict]]]:
    """The (setting, series) pairs of an aggregate, settings listed by value (sweeps.setting_order)."""
    return sorted(agg.items(), key=lambda kv: setting_order(kv[0]))


def fmt(v: float) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.4g}"


def theory_line(jobs: list[Job], label: str, metric: str) -> dict[int, float]:
    """generation -> the mean of the rows' ``theory_<metric>`` over the setting's jobs (where one applies)."""
    vals: dict[int, list[float]] = {}
    for j in jobs:
        if j.label == label:
            for r in j.rows:
                if r.get(f"theory_{metric}") is not None:
                    vals.setdefault(r["generation"], []).append(r[f"theory_{metric}"])
    return {g: float(np.mean(v)) for g, v in sorted(vals.items())}


def log_axis(ax) -> None:
    """A log-scale y axis whose ticks read as plain numbers (120, 140, ... rather than 10^2 alone): evenly spaced
    round values when the data span less than a decade, 1-2-5 steps per decade otherwise."""
    ax.set_yscale("log")
    lo, hi = ax.dataLim.intervaly
    plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    if lo > 0 and hi / lo < 10:
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_minor_locator(ticker.NullLocator())
    else:
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


# axis labels: the metric, its unit and its direction (a metric not listed is labelled by its name)
AXIS = {"test_nelbo": "test NELBO, binarised test set (nats; lower is better)",
        "test_nelbo_gray": "test NELBO, grayscale test set (nats; lower is better)",
        "fid": "FID, evaluator features (lower is better)", "fid_mean": "FID of the decoder means (lower is better)",
        "precision": "precision (share of samples near real images)", "recall": "recall (share of real images covered)",
        "density": "density (real k-NN balls a sample is in, over k; 1 is like the data)",
        "coverage": "coverage (share of real k-NN balls holding a sample)",
        "label_accuracy": "label accuracy (judge agrees with the label)", "class_entropy": "class entropy (nats; ln 10 = 2.30 is even)",
        "accept_rate": "acceptance rate", "verifier_agreement": "verifier's agreement with the judge",
        "param_error": "||theta_t - theta*||^2", "center_error": "||theta_t - theta_c||^2", "variance": "fitted variance"}


def plot_metric(jobs: list[Job], metric: str, agg: dict[str, list[dict]], path: Path, logy: bool = False,
                per_seed: bool = False, references: list[tuple[float, str]] = (), names: dict[str, str] | None = None,
                level0: bool = False) -> None:
    """One line per setting (its mean and band), named by ``names`` where given; ``level0``: each setting's
    generation-0 mean as a dotted line, for reading where a chain crosses it."""
    names = names or {}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for value, label in references:  # a published value to read the curves against (--reference)
        ax.axhline(value, color="0.4", ls="-.", lw=1, label=label)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, series) in enumerate(in_setting_order(agg)):
        c = colors[i % len(colors)]
        g = [s["generation"] for s in series]
        ax.plot(g, [s["mean"] for s in series], "-o", ms=3, color=c, label=names.get(label, label))
        if level0 and series[0]["generation"] == 0:
            ax.axhline(series[0]["mean"], color=c, ls=":", lw=1)
        ax.fill_between(g, [s["low"] for s in series], [s["high"] for s in series], color=c, alpha=0.2, lw=0)
        if per_seed:  # each seed's own path, thin: what the paired comparisons compare
            for j in (j for j in jobs if j.label == label):
                pts = [(r["generation"], r[metric]) for r in j.rows if r.get(metric) is not None]
                ax.plot([x for x, _ in pts], [y for _, y in pts], "-", color=c, lw=0.7, alpha=0.6)
        th = theory_line(jobs, label, metric)
        if th:
            ax.plot(list(th), list(th.values()), "k:", lw=1.5, zorder=5)
        summ = [j.summary for j in jobs if j.label == label and j.summary]
        stat = [s[f"theory_stationary_{metric}"] for s in summ if s.get(f"theory_stationary_{metric}")]
        one = [s[f"theory_one_round_{metric}"] for s in summ if s.get(f"theory_one_round_{metric}")]
        if stat:  # the linear study's verified level; the Gaussian study's mix / fresh fixed point
            ax.axhline(float(np.mean(stat)), color=c, ls="--", lw=1)
        if one:
            ax.plot([1], [float(np.mean(one))], marker="*", ms=12, color=c, mec="k")
    if any(theory_line(jobs, label, metric) for label in agg):
        ax.plot([], [], "k:", lw=1.5, label="theory (closed form)")
    if any(j.summary.get(f"theory_stationary_{metric}") for j in jobs):
        ax.plot([], [], "k--", lw=1, label="theory: stationary level")
    if any(j.summary.get(f"theory_one_round_{metric}") for j in jobs):
        ax.plot([], [], "k*", ms=10, label="theory: one round")
    if level0:
        ax.plot([], [], ":", color="0.3", lw=1, label="dotted: its generation 0's level")
    ax.set_xlabel("generation")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # generations are whole numbers
    ax.set_ylabel(AXIS.get(metric, metric))
    if logy:
        log_axis(ax)
    ax.set_title(f"{metric}: mean and 95% interval across seeds" + (" (thin: each seed)" if per_seed else ""))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def heatmap(jobs: list[Job], xkey: str, ykey: str, path: Path) -> None:
    """One-round gain 0.5 ln(error_0 / error_1): Monte Carlo (param_error) beside theory (theory_param_error)."""
    cells: dict[tuple[float, float], list[tuple[float, float]]] = {}
    for j in jobs:
        if len(j.rows) < 2 or xkey not in j.overrides or ykey not in j.overrides:
            continue
        r0, r1 = j.rows[0], j.rows[1]
        mc = 0.5 * math.log(r0["param_error"] / r1["param_error"])
        th = (0.5 * math.log(r0["theory_param_error"] / r1["theory_param_error"])
              if r0.get("theory_param_error") and r1.get("theory_param_error") else math.nan)
        cells.setdefault((float(j.overrides[xkey]), float(j.overrides[ykey])), []).append((mc, th))
    xs, ys = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
    mc_grid, th_grid = np.full((len(ys), len(xs)), np.nan), np.full((len(ys), len(xs)), np.nan)
    for (x, y), v in cells.items():
        mc_grid[ys.index(y), xs.index(x)] = np.mean([a for a, _ in v])
        th_grid[ys.index(y), xs.index(x)] = np.mean([b for _, b in v])
    lim = float(np.nanmax(np.abs(np.concatenate([mc_grid.ravel(), th_grid.ravel()]))))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, z, title in ((axes[0], th_grid, "theory"), (axes[1], mc_grid, "Monte Carlo")):
        im = ax.imshow(z, origin="lower", aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim)
        ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], fontsize=7)
        ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys], fontsize=7)
        ax.set_xlabel(xkey)
        ax.set_title(title)
    axes[0].set_ylabel(ykey)
    fig.colorbar(im, ax=axes, label="0.5 ln(error_real / error_one_round)")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def paired_tables(jobs: list[Job], metrics: list[str], pairs: list[tuple[str, str]], versus0: bool,
                  ratios: list[str], at: list[int] | None, predict: bool = False,
                  pair_change: bool = False) -> tuple[list[dict], str]:
    """Rows and Markdown of the paired comparisons: each pair of settings, and each setting against its generation 0.
    Markdown: one table per metric, a row per comparison, a column per generation. ``pair_change``: the pairs compare
    each setting's change since its own generation 0 (for settings whose generation 0 differs)."""
    labels = sorted({j.label for j in jobs}, key=setting_order)
    for a, b in pairs:
        for x in (a, b):
            if x not in labels:
                raise SystemExit(f"--pair: no setting {x!r} in this sweep; its settings are: {', '.join(labels)}")
    last = max((int(r["generation"]) for j in jobs for r in j.rows), default=0)
    gens = [g for g in at if g <= last] if at else sorted({1, last} - {0})
    index = seed_index(jobs)
    out, md = [], []
    for metric in metrics:
        ratio = metric in ratios
        sign = "/" if ratio else "-"
        lines: list[tuple[str, dict[int, dict]]] = []
        for a, b in pairs:
            name = f"({a}: g {sign} 0) {sign} ({b}: g {sign} 0)" if pair_change else f"{a} {sign} {b}"
            lines.append((name, {g: paired_difference(index, metric, a, b, g, ratio=ratio,
                                                      change_from=0 if pair_change else None) for g in gens}))
        if versus0:
            for a in labels:
                lines.append((f"{a}: generation g {sign} generation 0",
                              {g: paired_difference(index, metric, a, "", g, base_generation=0, ratio=ratio)
                               for g in (gens if at else range(1, last + 1))}))
        lines = [(name, cells) for name, cells in lines if any(c["n"] for c in cells.values())]
        if not lines:
            continue
        cols = sorted({g for _, cells in lines for g in cells})
        md.append(f"### {metric}: paired {'ratios' if ratio else 'differences'} on common seeds\n\n"
                  f"| comparison | {' | '.join(f'generation {g}' for g in cols)} | seeds |\n"
                  f"|---|{'---|' * len(cols)}---|")
        for name, cells in lines:
            row = []
            for g in cols:
                c = cells.get(g)
                if c is None or c["n"] == 0:
                    row.append("-")
                    continue
                out.append(c)
                mark = "" if c["verdict"] in ("higher", "lower") else " n.d."
                row.append(f"{fmt(c['mean'])} [{fmt(c['low'])}, {fmt(c['high'])}]{mark}")
            n = max(c["n"] for c in cells.values())
            md.append(f"| {name} | {' | '.join(row)} | {n} |")
            if predict:  # where one more seed is expected: wider than the mean's interval by about sqrt(n + 1)
                pred = [f"[{fmt(c['new_seed_low'])}, {fmt(c['new_seed_high'])}]" if c and c["n"] > 1 else "-"
                        for c in map(cells.get, cols)]
                md.append(f"| {name}, a new seed (95% prediction) | {' | '.join(pred)} | {n} |")
        md.append("")
    if md:
        md.insert(0, "Mean [95% t-interval] across the seeds both sides have (a seed shares generation 0 across "
                     "settings); a ratio: the geometric mean of the seeds' ratios, its interval on the log scale. n.d.: not "
                     "distinguishable with that many seeds (the interval holds 0; for a ratio, 1).\n")
    for r in out:
        r["seeds"] = " ".join(r["seeds"])
    return out, "\n".join(md)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir", type=Path, nargs="+", help="sweep dir(s) or run dir(s), compared as one set of jobs")
    p.add_argument("--metrics", nargs="+", help="metrics to aggregate and plot (default: the study's headline metrics, as its "
                        "end-of-run table shows them, less the closed forms)")
    p.add_argument("--logy", nargs="+", metavar="METRIC", help="metrics to draw on a log scale")
    p.add_argument("--out", type=Path, help="output folder (default: the first SWEEP_DIR/summary)")
    p.add_argument("--heatmap", nargs=2, metavar=("X_KEY", "Y_KEY"), help="draw the one-round gain map (linear)")
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help="settings (as labelled in aggregate.md) compared as A - B on common seeds; repeatable")
    p.add_argument("--pair-change", action="store_true",
                   help="--pair compares the settings' changes since their own generation 0: (A_g - A_0) - (B_g - B_0)")
    p.add_argument("--versus-generation0", action="store_true",
                   help="compare every setting at each generation with its own generation 0, seed by seed")
    p.add_argument("--ratio", nargs="+", default=[], metavar="METRIC",
                   help="metrics compared as ratios (A / B) rather than differences")
    p.add_argument("--at", nargs="+", type=int, metavar="GEN",
                   help="generations of aggregate.md's table (after 0) and of the paired comparisons (default: 1 and the "
                        "last; --versus-generation0: all)")
    p.add_argument("--max-generation", type=int, metavar="G", help="summarise generations 0..G only")
    p.add_argument("--predict", action="store_true",
                   help="paired tables add, per comparison, the 95%% prediction interval of one more seed")
    p.add_argument("--common-seeds", action="store_true",
                   help="at each generation, only the seeds every setting that has reached it has (for an unfinished sweep)")
    p.add_argument("--per-seed", action="store_true", help="draw each job's own line, thin, under its setting's mean")
    p.add_argument("--name", nargs=2, action="append", default=[], metavar=("SETTING", "NAME"),
                   help="the name a plot's legend gives a setting (e.g. --name arm=discriminator_top \"paper's filter\")")
    p.add_argument("--level0", action="store_true",
                   help="draw each setting's generation-0 mean as a dotted line (where does a chain cross it?)")
    p.add_argument("--reference", nargs=3, action="append", default=[], metavar=("METRIC", "VALUE", "LABEL"),
                   help="draw a horizontal line at VALUE on METRIC's plot, labelled (e.g. a published number); repeatable")
    a = p.parse_args()
    for metric, value, _ in a.reference:
        try:
            float(value)
        except ValueError:
            p.error(f"--reference {metric} {value!r}: VALUE must be a number")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    jobs = find_jobs(*a.sweep_dir)
    if a.max_generation is not None:
        for j in jobs:
            j.rows = [r for r in j.rows if int(r["generation"]) <= a.max_generation]
            if j.status == "unfinished" and len(j.rows) == a.max_generation + 1:
                j.status = "finished"
    if a.common_seeds:
        keep_common_seeds(jobs)
    if not jobs:
        log.error("no job directories under %s (looked for .hydra/overrides.yaml and metrics.jsonl)", a.sweep_dir)
        return 2
    out = a.out or a.sweep_dir[0] / "summary"
    out.mkdir(parents=True, exist_ok=True)
    counts = {s: sum(j.status == s for j in jobs) for s in ("finished", "unfinished", "failed")}
    log.info("%d jobs: %d finished, %d unfinished, %d failed", len(jobs), *counts.values())
    for j in jobs:
        if j.status != "finished":
            last = j.error.strip().splitlines()[-1] if j.error.strip() else f"{len(j.rows)} generation(s) done"
            log.info("  %s %s: %s", j.status, j.path.name, last)

    rows = long_rows(jobs)
    write_csv(rows, out / "summary.csv")
    present = {k for r in rows for k, v in r.items() if v is not None}
    metrics = a.metrics or headline_metrics(jobs, present)
    agg_rows, md = [], []
    for metric in metrics:
        agg = aggregate(jobs, metric)
        if not agg:
            log.info("no values of %s in this sweep", metric)
            continue
        for label, series in in_setting_order(agg):
            agg_rows += [{"metric": metric, "setting": label, **s} for s in series]
        cell = lambda s: f"{fmt(s['mean'])} [{fmt(s['low'])}, {fmt(s['high'])}]"  # noqa: E731
        if a.at:  # the generations asked for, after generation 0
            cols = [0, *[g for g in a.at if g != 0]]
            md.append(f"### {metric}\n\n| setting | {' | '.join(f'generation {g}' for g in cols)} | seeds |\n"
                      f"|---|{'---|' * len(cols)}---|")
            for label, series in in_setting_order(agg):
                by_g = {s["generation"]: s for s in series}
                md.append(f"| {label} | {' | '.join(cell(by_g[g]) if g in by_g else '-' for g in cols)} "
                          f"| {max(s['n'] for s in series)} |")
        else:
            md.append(f"### {metric}\n\n| setting | generation 0 | generation 1 | last generation | seeds |\n"
                      "|---|---|---|---|---|")
            for label, series in in_setting_order(agg):
                by_g = {s["generation"]: s for s in series}
                g0 = cell(by_g[0]) if 0 in by_g else "-"
                g1 = cell(by_g[1]) if 1 in by_g else "-"
                md.append(f"| {label} | {g0} | {g1} | {cell(series[-1])} (gen {series[-1]['generation']}) "
                          f"| {series[-1]['n']} |")
        md.append("")
        plot_metric(jobs, metric, agg, out / f"{metric}.png", logy=metric in (a.logy or []), per_seed=a.per_seed,
                    references=[(float(v), lab) for m, v, lab in a.reference if m == metric],
                    names=dict(a.name), level0=a.level0)
    write_csv(agg_rows, out / "aggregate.csv")
    status = "\n".join(f"- {j.status}: `{j.path.name}`" for j in jobs if j.status != "finished")
    (out / "aggregate.md").write_text(
        f"# Sweep {' '.join(map(str, a.sweep_dir))}\n\n{len(jobs)} jobs: {counts['finished']} finished, {counts['unfinished']} "
        f"unfinished, {counts['failed']} failed. Cells: mean [95% interval across seeds].\n\n"
        + (f"Not finished:\n{status}\n\n" if status else "") + "\n".join(md))
    if a.pair or a.versus_generation0:
        prow, pmd = paired_tables(jobs, metrics, [tuple(x) for x in a.pair], a.versus_generation0, a.ratio, a.at,
                                  a.predict, a.pair_change)
        write_csv(prow, out / "paired.csv")
        (out / "paired.md").write_text(f"# Paired comparisons: {' '.join(map(str, a.sweep_dir))}\n\n" + pmd)
        log.info("%s", pmd)
    else:  # none asked for: no earlier call's tables left beside this summary
        for name in ("paired.md", "paired.csv"):
            (out / name).unlink(missing_ok=True)
    if a.heatmap:
        heatmap(jobs, a.heatmap[0], a.heatmap[1], out / "heatmap.png")
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
