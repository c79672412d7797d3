"""Read a multirun sweep directory: jobs, their status, per-generation rows and seed aggregates."""
from __future__ import annotations

import csv
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from scipy import stats

from .checkpoint import read_metrics
from .config import NON_RESULT_KEYS, flatten

# overrides that do not define a setting (they never change the numbers, or are the seed axis)
NOT_A_SETTING = ("seed", *NON_RESULT_KEYS)


@dataclass
class Job:
    """One job directory of a sweep."""

    path: Path
    overrides: dict[str, str]
    status: str  # finished | failed | unfinished
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    error: str = ""
    constant: frozenset = frozenset()  # override keys with one value across the whole sweep
    seed: str | None = None  # the job's seed (its override, else its stored config): what pairs jobs across settings

    @property
    def setting(self) -> tuple[tuple[str, str], ...]:
        """The job's overrides minus the seed and keys that do not change results."""
        return tuple(sorted((k, v) for k, v in self.overrides.items() if k not in NOT_A_SETTING
                            and not k.startswith("hydra")))

    @property
    def label(self) -> str:
        """The setting, naming only the keys that vary across the sweep."""
        return ",".join(f"{k}={v}" for k, v in self.setting if k not in self.constant) or "(defaults)"


THEORY_SUMMARY = ("theory_stationary_", "theory_one_round_")  # a job's summary.json figures that plots draw
SUMMARY_COLUMN = "summary."  # a rows CSV column that holds one of them (the same on every row of its job)


def _parse_overrides(path: Path) -> dict[str, str]:
    items = yaml.safe_load(path.read_text()) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _job_seed(d: Path, overrides: dict[str, str], summary: dict) -> str | None:
    if "seed" in overrides:
        return str(overrides["seed"])
    if "seed" in summary.get("config", {}):
        return str(summary["config"]["seed"])
    cfg_path = d / ".hydra" / "config.yaml"
    if cfg_path.exists():
        seed = (yaml.safe_load(cfg_path.read_text()) or {}).get("seed")
        return None if seed is None else str(seed)
    return None


def _number(v: str):
    """A CSV cell back to what the row held: None for an empty cell, a float where it reads as one."""
    if v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return v


def setting_order(label: str) -> tuple:
    """Sort key of a setting's label: each ``key=value`` in turn, numbers by value (temperature 1, 3, 10 rather than
    1, 10, 3), numbers before words (train_size 500, 5000, null)."""
    key = []
    for part in label.split(","):
        name, _, value = part.partition("=")
        try:
            key.append((name, 0, float(value), ""))
        except ValueError:
            key.append((name, 1, 0.0, value))
    return tuple(key)


def jobs_from_rows_csv(path: Path) -> list[Job]:
    """The jobs of a rows CSV that summarize.py wrote (summary.csv; docs/results/NAME_rows.csv): columns job, status,
    the override keys, then generation and the metrics. So committed rows can be re-summarised without the runs."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if cols[:2] != ["job", "status"] or "generation" not in cols:
            raise ValueError(f"{path} is not a rows CSV of summarize.py (columns job, status, ..., generation, ...)")
        keys = cols[2:cols.index("generation")]
        jobs: dict[str, Job] = {}
        for r in reader:
            j = jobs.get(r["job"])
            if j is None:
                ov = {k: r[k] for k in keys if r[k] != ""}
                j = jobs[r["job"]] = Job(path.parent / r["job"], ov, r["status"], seed=ov.get("seed"))
            row = {k: _number(r[k]) for k in cols[cols.index("generation"):] if not k.startswith(SUMMARY_COLUMN)}
            row["generation"] = int(row["generation"])
            j.rows.append(row)
            j.summary.update({k[len(SUMMARY_COLUMN):]: _number(r[k]) for k in cols
                              if k.startswith(SUMMARY_COLUMN) and r[k] != ""})
    return list(jobs.values())


def find_jobs(*sweep_dirs: str | Path) -> list[Job]:
    """Every job directory (one holding .hydra/overrides.yaml or metrics.jsonl) under the ``sweep_dirs``
    (several sweeps or single runs are compared as one set of jobs); a rows CSV (summarize.py's summary.csv)
    stands for the jobs it lists."""
    dirs: set[Path] = set()
    jobs = []
    for sweep_dir in map(Path, sweep_dirs):
        if sweep_dir.is_file() and sweep_dir.suffix == ".csv":
            jobs += jobs_from_rows_csv(sweep_dir)
            continue
        dirs |= {p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")}
        dirs |= {p.parent for p in sweep_dir.glob("**/metrics.jsonl")}
    for d in sorted(dirs):
        ov_path = d / ".hydra" / "overrides.yaml"
        overrides = _parse_overrides(ov_path) if ov_path.exists() else {}
        rows = read_metrics(d)
        summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").exists() else {}
        error = (d / "error.txt").read_text() if (d / "error.txt").exists() else ""
        wanted = summary.get("config", {}).get("generations")
        if error:
            status = "failed"
        elif summary and wanted is not None and len(rows) > int(wanted):
            status = "finished"
        else:
            status = "unfinished"
        jobs.append(Job(d, overrides, status, rows, summary, error, seed=_job_seed(d, overrides, summary)))
    keys = {k for j in jobs for k in j.overrides}
    constant = frozenset(k for k in keys if len({j.overrides.get(k) for j in jobs}) == 1) if len(jobs) > 1 else frozenset()
    for j in jobs:
        j.constant = constant
    return jobs


BUILT_IN_STUDIES = ("collapselab.studies.mnist.MNISTStudy", "collapselab.studies.linear.LinearStudy",
                    "collapselab.studies.gaussian.GaussianStudy")


def headline_metrics(jobs: list[Job], present: set[str]) -> list[str]:
    """The metrics a summary shows by default: the study's ``headline`` (its end-of-run table) that the rows hold,
    less the closed forms (drawn as lines beside their metric). The study is the jobs' own (their stored config's
    ``study``); for rows without a config (a rows CSV), the built-in study whose headline the rows fit best."""
    from .components import locate

    named = [p for p in dict.fromkeys(j.summary.get("config", {}).get("study") for j in jobs) if isinstance(p, str)]
    headlines = [tuple(locate(p).headline) for p in named]
    if not headlines:
        fits = [tuple(locate(p).headline) for p in BUILT_IN_STUDIES]
        headlines = [max(fits, key=lambda h: sum(m in present for m in h) - sum(m not in present for m in h))]
    out = dict.fromkeys(m for h in headlines for m in h if m in present and not m.startswith("theory_"))
    return list(out)


def long_rows(jobs: list[Job]) -> list[dict]:
    """One dict per job and generation: job, status, override columns, then the metrics, then the job's theory
    figures from its summary.json (``summary.theory_stationary_*``, ``summary.theory_one_round_*``, on every row of
    the job) so that a plot redrawn from the rows alone still draws them."""
    keys = sorted({k for j in jobs for k in j.overrides})
    out = []
    for j in jobs:
        theory = {f"{SUMMARY_COLUMN}{k}": v for k, v in sorted(j.summary.items())
                  if k.startswith(THEORY_SUMMARY) and isinstance(v, (int, float))}
        for r in j.rows:
            row = {"job": j.path.name, "status": j.status}
            row.update({k: j.overrides.get(k, "") for k in keys})
            row.update(flatten(r))  # row['time'] -> time.fit_s, ... columns
            row.update(theory)
            out.append(row)
    return out


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) with a Student-t interval across seeds; one value gives a zero-width interval."""
    m, sd_t, n = _mean_and_t_spread(values, level)
    if n <= 1:
        return m, m, m, n
    h = sd_t / math.sqrt(n)
    return m, m - h, m + h, n


def _mean_and_t_spread(values: list[float], level: float) -> tuple[float, float, int]:
    """(mean, Student-t quantile x standard deviation, n) of the finite ``values``; nan spread below 2 values."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    m = sum(v) / n
    if n == 1:
        return m, math.nan, 1
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1))
    return m, _t_quantile(0.5 + level / 2, n - 1) * sd, n


@functools.lru_cache(maxsize=None)
def _t_quantile(p: float, df: int) -> float:
    """Student t's ``p`` quantile with ``df`` degrees of freedom (cached: docs checks make thousands of intervals)."""
    return float(stats.t.ppf(p, df))


def prediction_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Where one more seed's value is expected with probability ``level`` (Student t, n - 1 degrees of freedom,
    the spread of one draw plus the mean's uncertainty: mean +- t sd sqrt(1 + 1/n)); nan below 2 values."""
    m, sd_t, n = _mean_and_t_spread(values, level)
    if n < 2:
        return math.nan, math.nan
    h = sd_t * math.sqrt(1 + 1 / n)
    return m - h, m + h


def aggregate(jobs: list[Job], metric: str) -> dict[str, list[dict]]:
    """{setting label: [{generation, mean, low, high, n}, ...]} over the finished and unfinished jobs' rows."""
    by_setting: dict[str, dict[int, list[float]]] = {}
    for j in jobs:
        if j.status == "failed" and not j.rows:
            continue
        gens = by_setting.setdefault(j.label, {})
        for r in j.rows:
            if r.get(metric) is not None:
                gens.setdefault(int(r["generation"]), []).append(r[metric])
    out = {}
    for label, gens in by_setting.items():
        series = []
        for g in sorted(gens):
            m, lo, hi, n = mean_ci(gens[g])
            series.append({"generation": g, "mean": m, "low": lo, "high": hi, "n": n})
        if series:
            out[label] = series
    return out


SeedIndex = dict  # {(setting label, metric, generation): {seed: value}}: every finite value of a set of jobs


def seed_index(jobs: list[Job]) -> SeedIndex:
    """Every finite metric value of ``jobs`` by (setting, metric, generation) and seed (a seed seen twice in one
    setting is an error: pairs need one job a seed). Built once, it serves any number of paired comparisons."""
    out: SeedIndex = {}
    for j in jobs:
        if j.seed is None:
            continue
        label = j.label
        for r in j.rows:
            g = int(r["generation"])
            for metric, v in r.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
                    at = out.setdefault((label, metric, g), {})
                    if j.seed in at:
                        raise ValueError(f"setting {label!r} has two jobs with seed {j.seed}: pairs need one job a "
                                         "seed")
                    at[j.seed] = float(v)
    return out


def _by_seed(index: SeedIndex, label: str, metric: str, generation: int) -> dict[str, float]:
    """{seed: the metric at ``generation``} over the jobs of one setting."""
    return index.get((label, metric, generation), {})


def _change_by_seed(index: SeedIndex, label: str, metric: str, generation: int, base: int,
                    ratio: bool) -> dict[str, float]:
    """{seed: the metric at ``generation`` minus (ratio: over) the same job's value at ``base``}."""
    at, ref = _by_seed(index, label, metric, generation), _by_seed(index, label, metric, base)
    return {s: (at[s] / ref[s] if ratio else at[s] - ref[s]) for s in at if s in ref and not (ratio and ref[s] == 0)}


def paired_difference(jobs: list[Job] | SeedIndex, metric: str, a: str, b: str, generation: int,
                      base_generation: int | None = None, ratio: bool = False, change_from: int | None = None) -> dict:
    """Setting ``a`` minus setting ``b`` at ``generation`` on the seeds both have, with a 95% t-interval across
    seeds (arms that share a seed share generation 0, so the difference is far less noisy than either arm).
    ``base_generation``: compare ``a`` at ``generation`` with ``a`` itself at that generation instead (``b`` is then
    ignored); ``ratio``: a / b per seed instead of a - b, summarised on the log scale (the geometric mean ratio and
    exp of the log ratios' t-interval: never below 0, and b / a gives the reciprocals); ``change_from``: compare the
    two settings' changes since that generation, (a_g - a_0) - (b_g - b_0) per seed (ratio: (a_g / a_0) / (b_g / b_0)),
    for arms whose generation 0 differs (another training rule).
    ``jobs`` may be their ``seed_index`` (built once for many comparisons).
    Returns {metric, a, b, generation, mean, low, high, n, seeds, verdict, new_seed_low, new_seed_high} (the last
    two: the 95% prediction interval of one more seed's difference)."""
    index = jobs if isinstance(jobs, dict) else seed_index(jobs)
    left = _by_seed(index, a, metric, generation)
    if change_from is not None:
        left = _change_by_seed(index, a, metric, generation, change_from, ratio)
        right = _change_by_seed(index, b, metric, generation, change_from, ratio)
    elif base_generation is not None:
        b, right = f"{a} at generation {base_generation}", _by_seed(index, a, metric, base_generation)
    else:
        right = _by_seed(index, b, metric, generation)
    seeds = sorted(set(left) & set(right), key=lambda s: (len(s), s))
    if ratio:  # a zero denominator has no ratio: that seed drops out
        seeds = [s for s in seeds if right[s] != 0]
    vals = [left[s] / right[s] if ratio else left[s] - right[s] for s in seeds]
    nonpositive = ratio and any(v <= 0 for v in vals)
    if ratio and not nonpositive:  # on the log scale: the geometric mean ratio, exp(mean log +- t sd / sqrt n) > 0
        logs = [math.log(v) for v in vals]
        m, lo, hi, n = (*(math.exp(x) for x in mean_ci(logs)[:3]), len(logs))
        p_lo, p_hi = (math.exp(x) for x in prediction_interval(logs))
    else:
        m, lo, hi, n = mean_ci(vals)
        p_lo, p_hi = prediction_interval(vals)
    null = 1.0 if ratio else 0.0
    if nonpositive:
        m = lo = hi = p_lo = p_hi = math.nan
        verdict = "a ratio at or below 0: no log-scale interval (compare this metric as a difference)"
    elif n < 2:
        verdict = f"{n} common seed(s): no interval"
    elif lo > null:
        verdict = "higher"
    elif hi < null:
        verdict = "lower"
    else:
        verdict = f"not distinguishable with {n} seeds"
    return {"metric": metric, "a": a, "b": b, "generation": generation, "ratio": ratio, "mean": m, "low": lo,
            "high": hi, "n": n, "seeds": seeds, "verdict": verdict, "new_seed_low": p_lo, "new_seed_high": p_hi}


def keep_common_seeds(jobs: list[Job]) -> None:
    """Drop each generation's rows of seeds that some setting which has reached that generation lacks, so every
    setting's mean at a generation is over the same seeds (an unfinished sweep otherwise compares means of different
    seeds). A setting no seed of which has reached a generation does not hold the others back there: an arm that ran
    ahead is shown on its own seeds."""
    have: dict[int, dict[str, set]] = {}
    for j in jobs:
        for r in j.rows:
            have.setdefault(int(r["generation"]), {}).setdefault(j.label, set()).add(j.seed)
    common = {g: set.intersection(*by.values()) for g, by in have.items()}
    for j in jobs:
        j.rows = [r for r in j.rows if j.seed in common[int(r["generation"])]]
