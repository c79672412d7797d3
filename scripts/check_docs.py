"""Check the numbers README.md and docs/*.md quote against the committed rows (docs/results/*_rows.csv).

    python scripts/check_docs.py            # list every quoted interval the rows do not give, and every claim that fails
    python scripts/check_docs.py --explain  # also say which comparison each quoted interval is

Two checks, both read from the rows alone (no sweep is run):
1. **Intervals.** Every ``M [L, H]`` (a mean and its 95% interval) and every bare ``[L, H]`` (a prediction interval)
   on a checked page must be some comparison of some committed sweep, printed by the rounding rule: each printed
   number is the full-precision value rounded to the decimals it is printed with (``-15.946`` is ``-15.9``, never
   ``-16.0`` by way of the table's ``-15.95``). The comparisons are every one summarize.py can make from the rows:
   each setting's mean at a generation, its change since its generation 0 (a difference, or a ratio on the log
   scale), every pair of settings at a generation (difference, ratio, and the change since each side's generation
   0), with their 95% prediction intervals. A quoted interval may be written the other way round (B - A for A - B,
   B / A for A / B). A table's single numbers must each be a mean or a summary figure of those rows (columns headed
   theory, closed form or kappa aside): a weaker check, since a short number can equal another mean by chance. Lines that quote another source (the authors' published values, a
   GPU run's file) end with ``<!-- not from rows: SOURCE -->``; numbers derived otherwise from the rows, with
   ``<!-- unchecked: REASON -->``.
2. **Claims.** Statements that are not an interval (a verdict, a single number, "not distinguishable ... at any
   generation") are written in docs/claims.yaml: the sentence's words as they stand on the page, the sweep, the
   comparison, the generations, and what the rows must say there. Each claim is recomputed from the rows and its
   words must still be on the page.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "scripts")]
from collapselab.sweeps import aggregate, find_jobs, headline_metrics, paired_difference, seed_index  # noqa: E402
from reproduce import FIGURES  # noqa: E402

PAGES = ["README.md", "docs/results.md"]
CLAIMS = ROOT / "docs" / "claims.yaml"
NOT_FROM_ROWS = re.compile(r"<!-- not from rows[^>]*-->")  # a line quoting another source (named after a colon)
NUM = r"[+\-\u2212]?\d+(?:\.\d+)?"
TRIPLE = re.compile(rf"(?<![\w.])({NUM})x?\s*\[({NUM}),\s*({NUM})\]")
PAIR = re.compile(rf"(?<![\w.\]\d])\s\[({NUM}),\s*({NUM})\]")
def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


def _value(s: str) -> float:
    return float(s.replace("\u2212", "-").lstrip("+"))


def printed_as(x: float, s: str) -> bool:
    """Whether ``x`` rounded to the decimals of ``s`` prints as ``s`` (the docs' rounding rule)."""
    if x is None or not math.isfinite(x):
        return False
    d = _decimals(s)
    want = _value(s)
    got = f"{x:.{d}f}"
    return float(got) == want or (want == 0 and float(got) == 0)


def _options(summarize: list[str]) -> argparse.Namespace:
    """The options of summarize.py that say which comparisons an entry's table makes."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--metrics", nargs="+")
    p.add_argument("--ratio", nargs="+", default=[])
    p.add_argument("--pair", nargs=2, action="append", default=[])
    p.add_argument("--pair-change", action="store_true")
    p.add_argument("--versus-generation0", action="store_true")
    return p.parse_known_args(summarize)[0]


def comparisons(rows_csv: Path, summarize: list[str]) -> list[tuple[str, tuple[float, float, float],
                                                                     tuple[float, float]]]:
    """Every comparison the entry's table makes from its rows, at every generation: (what, (mean, low, high),
    (new-seed low, high)). ``summarize``: the entry's summarize.py options (its metrics, which of them are ratios, its
    pairs, whether pairs compare changes since generation 0, whether each setting is compared with its generation 0)."""
    jobs = find_jobs(rows_csv)
    o = _options(summarize)
    name = rows_csv.name.removesuffix("_rows.csv")
    labels = sorted({j.label for j in jobs})
    gens = sorted({int(r["generation"]) for j in jobs for r in j.rows})
    index = seed_index(jobs)
    out = []
    nan2 = (math.nan, math.nan)
    present = {k for j in jobs for r in j.rows for k, v in r.items() if v is not None}
    for metric in o.metrics or headline_metrics(jobs, present):
        for label, series in aggregate(jobs, metric).items():
            for s in series:
                out.append((f"{name}: {metric} of {label} at generation {s['generation']}",
                            (s["mean"], s["low"], s["high"]), nan2))
        ratio = metric in o.ratio
        kind = "/" if ratio else "-"
        for label in labels if o.versus_generation0 else []:
            for g in gens[1:]:
                c = paired_difference(index, metric, label, "", g, base_generation=0, ratio=ratio)
                out.append((f"{name}: {metric} of {label}, generation {g} {kind} generation 0",
                            (c["mean"], c["low"], c["high"]), (c["new_seed_low"], c["new_seed_high"])))
        for a, b in o.pair:
            for g in gens[1:]:
                c = paired_difference(index, metric, a, b, g, ratio=ratio, change_from=0 if o.pair_change else None)
                what = f"({a}) {kind} ({b})" + (" on the change since generation 0" if o.pair_change else "")
                out.append((f"{name}: {metric}, {what} at generation {g}",
                            (c["mean"], c["low"], c["high"]), (c["new_seed_low"], c["new_seed_high"])))
    return out


def _variants(m: float, lo: float, hi: float, ratio_like: bool):
    yield m, lo, hi
    yield -m, -hi, -lo  # B - A quoted for A - B
    if ratio_like and m > 0 and lo > 0 and hi > 0:
        yield 1 / m, 1 / hi, 1 / lo  # B / A quoted for A / B


class Index:
    """Every comparison of one committed rows CSV, looked up by how a page prints it."""

    def __init__(self, rows_csv: Path, summarize: list[str]):
        self.name = rows_csv.name.removesuffix("_rows.csv")
        triples, pairs = [], []
        for what, (m, lo, hi), (plo, phi) in comparisons(rows_csv, summarize):
            ratio_like = " / " in what
            triples += [(v, what) for v in _variants(m, lo, hi, ratio_like) if all(map(math.isfinite, v))]
            for v in [(lo, hi), (plo, phi)]:
                pairs += [(w[1:], what) for w in _variants(1.0, *v, ratio_like) if all(map(math.isfinite, w))]
        triples.sort(key=lambda t: t[0][0])
        pairs.sort(key=lambda t: t[0][0])
        self.triples, self.pairs = triples, pairs
        # a table's single number: a metric's mean over seeds at a generation, or a job's summary figure (a closed
        # form's level)
        jobs = find_jobs(rows_csv)
        metrics = {k for j in jobs for r in j.rows for k, v in r.items() if isinstance(v, (int, float))
                   and k != "generation" and not k.startswith(("time.", "machine.", "wall_s"))}
        singles = [abs(x["mean"]) for m in metrics for series in aggregate(jobs, m).values() for x in series]
        singles += [abs(float(v)) for j in jobs for v in j.summary.values() if isinstance(v, (int, float))]
        self.singles = np.sort(np.array([v for v in singles if math.isfinite(v)]))
        self.triple_keys = np.array([t[0][0] for t in triples])
        self.pair_keys = np.array([t[0][0] for t in pairs])

    @staticmethod
    def _near(keys: np.ndarray, s: str) -> range:
        """Positions of the sorted ``keys`` that can print as ``s`` (within half its last digit, a little wider)."""
        half = 0.5 * 10 ** -_decimals(s) * (1 + 1e-9)
        v = _value(s)
        return range(int(np.searchsorted(keys, v - half, "left")), int(np.searchsorted(keys, v + half, "right")))

    def find(self, nums: tuple[str, ...]) -> list[tuple[str, tuple[float, ...]]]:
        """(what, its full-precision numbers) of every comparison that prints as ``m [lo, hi]`` (three numbers) or
        whose interval or prediction interval prints as ``[lo, hi]`` (two)."""
        pool, keys = (self.triples, self.triple_keys) if len(nums) == 3 else (self.pairs, self.pair_keys)
        return [(what, v) for what, v in (pool[i][::-1] for i in self._near(keys, nums[0]))
                if all(printed_as(x, s) for x, s in zip(v, nums))]


    def has_single(self, s: str) -> bool:
        """Whether some mean or summary figure of the rows prints as ``s`` (sign aside)."""
        return len(self._near(self.singles, s.lstrip("+-\u2212"))) > 0 and any(
            printed_as(self.singles[i], s.lstrip("+-\u2212")) for i in self._near(self.singles, s.lstrip("+-\u2212")))


def indexes() -> dict[str, Index]:
    """An Index of every reproduce.py entry's committed rows, by entry name."""
    out = {}
    for f in FIGURES:
        rows = ROOT / "docs" / "results" / f"{f.name}_rows.csv"
        if rows.exists():
            out[f.name] = Index(rows, f.summarize)
    return out


def nearest(found: list[Index], nums: tuple[str, ...]) -> tuple[str, tuple[float, ...]] | None:
    """The comparison closest to a quoted interval that the rows do not give (for --suggest): the smallest summed
    relative distance over its two or three numbers."""
    want = [_value(x) for x in nums]
    lo, hi = sorted((want[0] * 0.8, want[0] * 1.25))
    best = None
    for index in found:
        pool, keys = (index.triples, index.triple_keys) if len(nums) == 3 else (index.pairs, index.pair_keys)
        for i in range(int(np.searchsorted(keys, lo - 0.05)), int(np.searchsorted(keys, hi + 0.05))):
            v, what = pool[i]
            d = sum(abs(a - b) / max(abs(b), 1e-3) for a, b in zip(v, want))
            if best is None or d < best[0]:
                best = (d, what, v)
    return None if best is None else (best[1], best[2])


def printed_like(x: float, s: str) -> str:
    """``x`` printed with the decimals and sign style of ``s``."""
    out = f"{x:.{_decimals(s)}f}"
    return ("+" + out) if s.startswith("+") and x >= 0 else out


@dataclass
class Quote:
    """An interval a page quotes."""

    line: int                 # 1-based
    scope: list[str]          # the entries it may come from
    nums: tuple[str, ...]     # (mean, low, high) or (low, high), as printed
    marked: bool = False      # followed by n.d.
    in_table: bool = False    # a cell of a Markdown table
    generation: int | None = None  # the table column's generation, where its header names one

    @property
    def text(self) -> str:
        n = self.nums
        return n[0] if len(n) == 1 else f"{n[0]} [{n[1]}, {n[2]}]" if len(n) == 3 else f"[{n[0]}, {n[1]}]"


GENERATION = re.compile(r"\b(?:generation|gen)\s+(\d+)\b")
SINGLE = re.compile(r"(?<![\w.^])[+\-\u2212]?\d+\.\d+(?![\w.^])")  # a number with decimals (not an exponent)
UNCHECKED = re.compile(r"<!-- unchecked: [^>]+ -->")  # a line of numbers derived otherwise, its reason stated
NOT_FROM_ROWS_COLUMNS = ("theory", "closed form", "kappa")  # table columns of closed forms, not of the rows


def quoted(page: Path, entries: list[str]) -> list[Quote]:
    """Every interval the page quotes, outside lines marked not from rows. Its scope: the entries its ``### ``
    subsection names (as `NAME`, or in `reproduce.py NAME`), else its ``## `` section, else every entry; and the
    entries its paragraph names. A table cell's generation is its column header's."""
    lines = page.read_text().splitlines()

    def named(a: int, b: int) -> list[str]:
        text = "\n".join(lines[a:b])
        return [e for e in entries
                if re.search(rf"`(?:python\s+scripts/reproduce\.py\s+)?{e}`|reproduce\.py\s+{e}\b", text)]

    scope: dict[int, list[str]] = {i: entries for i in range(len(lines))}
    blank = [i for i, line in enumerate(lines) if not line.strip()]
    for starts in ([i for i, line in enumerate(lines) if line.startswith("## ")],
                   [i for i, line in enumerate(lines) if line.startswith(("## ", "### "))]):
        for a, b in zip([0, *starts], [*starts, len(lines)]):  # a subsection that names entries narrows its section
            if inside := named(a, b):
                scope.update({i: inside for i in range(a, b)})
    for a, b in zip([0, *blank], [*blank, len(lines)]):  # a paragraph may cite another section's entry by name
        if inside := named(a, b):
            scope.update({i: [*inside, *(e for e in scope[i] if e not in inside and scope[i] is not entries)]
                          for i in range(a, b)})
    out, header, heads = [], [], []
    for i, line in enumerate(lines):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            heads = [c.strip().lower() for c in line.strip().strip("|").split("|")]
            header = [GENERATION.search(c) for c in heads]
            continue
        if NOT_FROM_ROWS.search(line) or UNCHECKED.search(line):
            continue
        if line.startswith("|") and not set(line) <= set("|-: "):  # a table's single numbers (not in an interval)
            cells = re.sub(r"\[[^\]]*\]", " ", TRIPLE.sub(" ", line)).strip().strip("|").split("|")
            for col, cell in enumerate(cells[1:], 1):
                if col < len(heads) and any(w in heads[col] for w in NOT_FROM_ROWS_COLUMNS):
                    continue
                for mt in SINGLE.finditer(cell):
                    out.append(Quote(i + 1, scope[i], (mt.group(0),), in_table=True))
        spans = []
        for mt in TRIPLE.finditer(line):
            q = Quote(i + 1, scope[i], mt.groups(), line[mt.end():].lstrip(" *").startswith("n.d."), line.startswith("|"))
            if q.in_table:
                col = line[:mt.start()].count("|") - 1
                q.generation = int(header[col].group(1)) if col < len(header) and header[col] else None
            out.append(q)
            spans.append(mt.span())
        for mt in PAIR.finditer(line):
            if not any(a <= mt.start(1) < b for a, b in spans):
                out.append(Quote(i + 1, scope[i], mt.groups()))
    return out


def _generation(what: str) -> int | None:
    m = GENERATION.search(what.split(": ", 1)[1])
    return int(m.group(1)) if m else None


def check_intervals(found: dict[str, Index], pages: list[str] = PAGES, explain: bool = False,
                    suggest: bool = False) -> list[str]:
    """One line per quoted interval that no comparison of the entries in its scope gives (a table cell: at its
    column's generation), and per n.d. mark that its comparison's verdict contradicts (``explain``: print the
    comparison behind every one that matches; ``suggest``: the nearest comparison beside each mismatch)."""
    bad = []
    for rel in pages:
        for q in quoted(ROOT / rel, list(found)):
            nums = q.nums
            if len(nums) == 1:  # a table cell's single number
                if not any(found[e].has_single(nums[0]) for e in q.scope):
                    bad.append(f"{rel}:{q.line}: table cell {nums[0]} is no mean or summary figure of "
                               f"{', '.join(q.scope) if len(q.scope) < 4 else 'any entry'} in the committed rows")
                continue
            matches = [m for e in q.scope for m in found[e].find(nums)
                       if (q.generation is None or _generation(m[0]) == q.generation)
                       and not (nums[0].startswith("+") and " - " not in m[0])]  # "+x" is a difference, not a mean
            where = f"{rel}:{q.line}: {q.text}"
            if not matches:
                scope = ", ".join(q.scope) if len(q.scope) < 4 else "any entry"
                col = f" at generation {q.generation}" if q.generation is not None else ""
                bad.append(f"{where} is no comparison of {scope}{col} in the committed rows (rounded to its decimals)")
                if suggest and (near := nearest([found[e] for e in q.scope], nums)):
                    fix = [printed_like(x, s) for x, s in zip(near[1], nums)]
                    fix_text = f"{fix[0]} [{fix[1]}, {fix[2]}]" if len(nums) == 3 else f"[{fix[0]}, {fix[1]}]"
                    bad[-1] += f"\n    nearest: {fix_text} = {near[0]}"
                continue
            if explain:
                print(f"{where} = {matches[0][0]}")
            compared = [(w, v) for w, v in matches if len(nums) == 3 and (" - " in w or " / " in w)]
            if compared:  # a comparison's verdict mark: n.d. exactly where its interval holds 0 (a ratio: 1)
                verdicts = {(v[1] <= (null := 1.0 if " / " in w else 0.0) <= v[2], null) for w, v in compared}
                if q.marked and not any(holds for holds, _ in verdicts):
                    bad.append(f"{where} is marked n.d. but its interval excludes {min(verdicts)[1]:g}")
                elif q.in_table and not q.marked and all(holds for holds, _ in verdicts):
                    bad.append(f"{where} holds {min(verdicts)[1]:g}: mark it n.d. (not distinguishable)")
    return bad


VERDICTS = {"higher": "higher", "lower": "lower", "n.d.": "not distinguishable"}


def _generations(spec) -> list[int]:
    if isinstance(spec, str) and "-" in spec:
        lo, hi = map(int, spec.split("-"))
        return list(range(lo, hi + 1))
    return [int(g) for g in (spec if isinstance(spec, list) else [spec])]


def check_claims(path: Path = CLAIMS) -> list[str]:
    """One line per claim of docs/claims.yaml whose words are not on its page, or whose comparison the rows do not
    give the stated verdict at one of its generations, or (a claim with a ``value``) whose mean does not print as the
    number the sentence shows (``b: mean``: the setting's own mean over seeds)."""
    bad = []
    pages: dict[str, str] = {}
    jobs: dict[str, list] = {}
    for n, c in enumerate(yaml.safe_load(path.read_text()) or [], 1):
        where = f"{path.name} claim {n} ({c.get('entry')}, {c.get('metric')}: {c.get('text', '')[:50]!r})"
        missing = {"page", "text", "entry", "metric", "a", "b", "generations"} - set(c)
        if "value" not in c and "verdict" not in c:
            missing.add("verdict or value")
        if missing or c.get("verdict", "n.d.") not in VERDICTS:
            bad.append(f"{where}: needs {sorted(missing) or 'verdict: higher, lower or n.d.'}")
            continue
        if c["page"] not in pages:
            pages[c["page"]] = " ".join((ROOT / c["page"]).read_text().split())
        if " ".join(c["text"].split()) not in pages[c["page"]]:
            bad.append(f"{where}: its words are not on {c['page']}")
        rows = ROOT / "docs" / "results" / f"{c['entry']}_rows.csv"
        if c["entry"] not in jobs:
            jobs[c["entry"]] = seed_index(find_jobs(rows))
        if "value" in c:  # a number the sentence prints: the comparison's mean (b: mean, the setting's own mean)
            value = str(c["value"])
            if value not in c["text"]:
                bad.append(f"{where}: its value {value} is not in its words")
            for g in _generations(c["generations"]):
                if c["b"] == "mean":
                    at = jobs[c["entry"]].get((c["a"], c["metric"], g), {})
                    mean = sum(at.values()) / len(at) if at else math.nan
                else:
                    mean = paired_difference(jobs[c["entry"]], c["metric"], c["a"],
                                             "" if c["b"] == "generation 0" else c["b"], g,
                                             base_generation=0 if c["b"] == "generation 0" else None,
                                             ratio=bool(c.get("ratio")))["mean"]
                if not (printed_as(mean, value) or printed_as(-mean, value)):
                    bad.append(f"{where}: at generation {g} the rows give {mean:.6g}, which does not print as {value}")
            continue
        versus0 = c["b"] == "generation 0"
        for g in _generations(c["generations"]):
            r = paired_difference(jobs[c["entry"]], c["metric"], c["a"], "" if versus0 else c["b"], g,
                                  base_generation=0 if versus0 else None, ratio=bool(c.get("ratio")))
            if r["n"] < 2 or not r["verdict"].startswith(VERDICTS[c["verdict"]]):
                sign = "/" if c.get("ratio") else "-"
                bad.append(f"{where}: at generation {g} {c['a']} {sign} {c['b']} is {r['mean']:.4g} "
                           f"[{r['low']:.4g}, {r['high']:.4g}] ({r['verdict']}), not {c['verdict']}")
    return bad


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--explain", action="store_true", help="print the comparison behind every quoted interval")
    p.add_argument("--suggest", action="store_true", help="beside each mismatch, the nearest comparison the rows give")
    a = p.parse_args()
    bad = check_intervals(indexes(), explain=a.explain, suggest=a.suggest) + check_claims()
    for line in bad:
        print(line)
    print(f"{len(bad)} mismatch(es)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
