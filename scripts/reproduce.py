"""One command per docs figure: run its sweep (resumable), summarise it, write its figures and table into docs/.

    python scripts/reproduce.py --list                    # one line per figure: seeds, sizes, files, the sweep command
    python scripts/reproduce.py mnist_default             # run (or resume) the sweep, then write docs/figures + docs/results
    python scripts/reproduce.py mnist_longrun --no-run    # summarise what has finished so far, run nothing
    python scripts/reproduce.py all --smoke --out /tmp/s  # every entry's pipeline on fake data, written under /tmp/s
    python scripts/reproduce.py mnist_reliability --from-rows   # redraw from the rows committed in docs/results/

A sweep goes into OUT/NAME (OUT: --out, else $COLLAPSELAB_RUNS, else ~/collapselab-runs, outside the work tree):
re-running the command continues its unfinished jobs and skips its finished ones, so a long figure can be carried
across interruptions. Then scripts/summarize.py writes the aggregate (mean and 95% interval across seeds), the
paired comparisons on common seeds and the plots into OUT/NAME/summary, and the figure files, the table
(docs/results/NAME.md) and every job's rows (docs/results/NAME_rows.csv) are copied into docs/. With --smoke the
same sweep runs at test size (debug=<study>: fake MNIST, 2 seeds, 2-3 generations) and nothing is written
outside --out (figures under OUT/figures, tables under OUT/results).
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("reproduce")

MNIST_METRICS = ["test_nelbo", "fid", "recall", "precision", "density", "coverage", "label_accuracy", "class_entropy"]


# what a figure's legend calls each setting (the names the text uses; summarize.py --name); a setting not here keeps
# its override as its name
NAMES = {"arm=discriminator_top": "paper's filter", "arm=discriminator": "default verifier",
         "arm=replace": "replace (unfiltered)", "arm=classifier_top": "classifier's top 10% alone",
         "arm=classifier_mix10": "classifier + 10% real", "arm=classifier_mix50": "classifier + 50% real",
         "arm=classifier_fresh": "classifier + 500 fresh real", "arm=authors": "authors' pipeline",
         "arm=authors_project_pixels": "authors', binarised real images",
         "arm=authors_project_cvae": "authors', the project's CVAE rule",
         "arm=authors_project_discriminator": "authors', the project's discriminator rule",
         "policy.n_synthetic=2000": "2,000 retained", "policy.n_synthetic=20000": "20,000 retained",
         "verifier.train_size=500": "critic on 500 real", "verifier.train_size=5000": "critic on 5,000 real",
         "verifier.train_size=null": "critic on 60,000 real", "policy=replace": "replace", "policy=accumulate":
         "accumulate", "policy=accumulate_subsample": "accumulate, subsampled",
         **{f"verifier.temperature={t}": f"T = {t}" for t in (1, 3, 10)},
         **{f"verifier.reliability={r}": f"rho = {r}" for r in (0, 0.5, 1)}}
NAME_ARGS = [x for k, v in NAMES.items() for x in ("--name", k, v)]

# each arm paired against its own generation 0 (FID as a ratio: it scales with the evaluator's features)
VERSUS_G0 = ["--versus-generation0", "--ratio", "fid"]


def mnist_summary(*extra_metrics: str) -> list[str]:
    """Every MNIST figure's summary: its metrics, a new seed's 95% prediction interval beside each paired one, and
    the legends' names."""
    return ["--predict", "--metrics", *MNIST_METRICS, *extra_metrics, *NAME_ARGS]


@dataclass(frozen=True)
class Figure:
    """One docs figure: the sweep behind it, how it is summarised, which files it writes into docs/."""

    name: str
    study: str                   # mnist | linear | gaussian (smoke runs use debug=<study>)
    sweep: list[str]             # train.py -m overrides (hydra.sweep.dir is added); its seeds, generations and sizes
                                 # are read from the config they compose to (sweep_facts), not restated here
    figures: dict[str, str]      # summary file -> docs/figures/<file>
    summarize: list[str] = field(default_factory=list)  # scripts/summarize.py options
    smoke: list[str] = field(default_factory=list)      # overrides added at test size (after the defaults below)
    script: list[str] = field(default_factory=list)     # not a sweep: python <script> ... --out OUT/NAME/summary
    smoke_script: list[str] = field(default_factory=list)
    script_facts: tuple[str, int, str] = ("-", 0, "-")  # a script's seeds, generations, sizes as --list prints them
    smoke_labels: dict[str, str] = field(default_factory=dict)  # a --pair setting -> its test-size stand-in

    def command(self, sweep_dir: str) -> list[str]:
        if self.script:
            return ["python", *self.script, "--out", f"{sweep_dir}/summary"]
        return ["python", "train.py", "-m", *self.sweep, f"hydra.sweep.dir={sweep_dir}"]


def _pairs(*pairs: tuple[str, str]) -> list[str]:
    return [x for a, b in pairs for x in ("--pair", a, b)]


FIGURES: list[Figure] = [
    # ---- linear regression
    Figure("linear_longrun", "linear", ["experiment=paper_linear_longrun"],
           {"param_error.png": "linear_longrun_param_error.png"}, ["--metrics", "param_error", "center_error"],
           smoke=["generations=3", "seed=0,1", "verifier.bias=0,0.3"]),
    Figure("linear_reliability", "linear", ["experiment=reliability_sweep_linear"],
           {"param_error.png": "linear_reliability_param_error.png"}, ["--metrics", "param_error"],
           smoke=["generations=3", "seed=0,1", "verifier.reliability=0,1"]),
    Figure("linear_design_space", "linear", ["experiment=linear_design_space"],
           {"param_error.png": "linear_design_space_param_error.png"}, ["--metrics", "param_error", "--logy",
                                                                       "param_error"],
           smoke=["generations=3", "seed=0,1", "replicates=50"]),
    Figure("linear_map", "linear", ["experiment=paper_linear_map"],
           {"heatmap.png": "linear_map_sweep.png"},
           ["--metrics", "param_error", "--heatmap", "verifier.radius", "verifier.bias"],
           smoke=["verifier.bias=0,0.3", "verifier.radius=0.1,0.3"]),
    Figure("linear_theory_map", "linear", [],
           {"theory_map.png": "linear_theory_map.png"}, script=["scripts/linear_theory_map.py"],
           script_facts=("0", 1, "100"),
           smoke_script=["--n-bias", "4", "--n-radius", "4", "--replicates", "10"]),
    # ---- the 1-D Gaussian
    Figure("gaussian_collapse", "gaussian", ["experiment=gaussian_collapse"],
           {"variance.png": "gaussian_variance.png", "param_error.png": "gaussian_param_error.png"},
           ["--metrics", "variance", "param_error", "--logy", "variance", "param_error"],
           smoke=["generations=3", "seed=0,1", "replicates=50"]),
    Figure("gaussian_design_space", "gaussian", ["experiment=gaussian_design_space"],
           {"variance.png": "gaussian_design_space_variance.png",
            "param_error.png": "gaussian_design_space_param_error.png"},
           ["--metrics", "variance", "param_error"], smoke=["generations=3", "seed=0,1", "replicates=50"]),
    Figure("gaussian_curation", "gaussian", ["experiment=gaussian_curation"],
           {"param_error.png": "gaussian_curation_param_error.png"}, ["--metrics", "param_error", "--logy",
                                                                     "param_error"],
           smoke=["generations=3", "seed=0,1", "replicates=50", "verifier.temperature=1"]),
    Figure("gaussian_drs", "gaussian", ["experiment=gaussian_drs"],
           {"variance.png": "gaussian_drs_variance.png", "param_error.png": "gaussian_drs_param_error.png"},
           ["--metrics", "variance", "param_error"],
           smoke=["generations=3", "seed=0,1", "replicates=50", "verifier.keep_fraction=0.1"]),
    # ---- MNIST
    Figure("mnist_default", "mnist", ["seed=0,1,2,3,4"],
           {"test_nelbo.png": "mnist_default_test_nelbo.png", "fid.png": "mnist_default_fid.png",
            "recall.png": "mnist_default_recall.png"},
           [*mnist_summary(), *VERSUS_G0, "recall", "--at", "1", "2", "3", "--per-seed"],
           smoke=["seed=0,1"]),
    Figure("mnist_longrun", "mnist", ["experiment=mnist_longrun_cpu"],
           {f"{m}.png": f"mnist_longrun_{m}.png" for m in ("test_nelbo", "fid", "recall", "label_accuracy")},
           [*mnist_summary(), "--logy", "test_nelbo", "fid", *VERSUS_G0, "recall", "--level0",
            "--at", "1", "2", "3", "5", "10", "15", "20",
            *_pairs(("arm=discriminator", "arm=replace"), ("arm=discriminator_top", "arm=replace"),
                    ("arm=discriminator", "arm=discriminator_top"))],
           smoke=["seed=0,1"]),
    Figure("mnist_design_space", "mnist", ["experiment=mnist_design_space_cpu"],
           {f"{m}.png": f"mnist_design_space_{m}.png" for m in ("test_nelbo", "fid", "recall", "class_entropy")},
           [*mnist_summary(), "--logy", "test_nelbo", "fid", "--at", "1", "3", "5", "10",
            *VERSUS_G0,
            *_pairs(("arm=classifier_mix50", "arm=classifier_top"), ("arm=classifier_mix10", "arm=classifier_top"),
                    ("arm=classifier_fresh", "arm=classifier_top"), ("arm=classifier_mix50", "arm=classifier_mix10"),
                    ("arm=discriminator", "arm=replace"), ("arm=discriminator_top", "arm=replace"),
                    ("arm=discriminator", "arm=discriminator_top"), ("arm=discriminator", "arm=classifier_top"),
                    ("arm=classifier_mix50", "arm=classifier_fresh"), ("arm=classifier_mix50", "arm=discriminator"),
                    ("arm=discriminator_top", "arm=classifier_mix10"))],
           smoke=["seed=0,1", "policy.n_synthetic=100"]),
    Figure("mnist_curation_temperature", "mnist", ["experiment=mnist_curation_temperature_cpu"],
           {f"{m}.png": f"mnist_curation_temperature_{m}.png"
            for m in ("test_nelbo", "fid", "recall", "class_entropy")},
           [*mnist_summary(), "--logy", "test_nelbo", "fid", "--at", "1", "5", "10",
            *VERSUS_G0,
            *_pairs(("verifier.temperature=1", "verifier.temperature=10"),
                    ("verifier.temperature=3", "verifier.temperature=10"),
                    ("verifier.temperature=1", "verifier.temperature=3"))],
           smoke=["seed=0,1"]),
    Figure("mnist_accumulate", "mnist", ["experiment=mnist_accumulate_cpu"],
           {f"{m}.png": f"mnist_accumulate_{m}.png" for m in ("test_nelbo", "fid", "recall", "class_entropy")},
           [*mnist_summary(), "--logy", "test_nelbo", "fid", "--at", "1", "5", "10",
            *VERSUS_G0,
            *_pairs(("policy=accumulate", "policy=replace"), ("policy=accumulate_subsample", "policy=replace"),
                    ("policy=accumulate", "policy=accumulate_subsample"))],
           smoke=["seed=0,1"]),
    Figure("mnist_verifier_quality", "mnist", ["experiment=paper_mnist_verifier_quality_cpu"],
           {"fid.png": "mnist_verifier_quality_fid.png", "test_nelbo.png": "mnist_verifier_quality_test_nelbo.png"},
           [*mnist_summary(), "--at", "1", "5", *VERSUS_G0, "recall",
            *_pairs(("verifier.train_size=null", "verifier.train_size=5000"),
                    ("verifier.train_size=5000", "verifier.train_size=500"),
                    ("verifier.train_size=null", "verifier.train_size=500"))],
           smoke=["seed=0,1", "verifier.train_size=500,1000,null"],
           smoke_labels={"verifier.train_size=5000": "verifier.train_size=1000"}),
    Figure("mnist_retained_size", "mnist", ["experiment=mnist_retained_size_cpu"],
           {"fid.png": "mnist_retained_size_fid.png", "test_nelbo.png": "mnist_retained_size_test_nelbo.png"},
           [*mnist_summary(), "--at", "1", "5", *VERSUS_G0, "recall",
            *_pairs(("policy.n_synthetic=20000", "policy.n_synthetic=2000"))],
           smoke=["seed=0,1", "policy.n_synthetic=50,100"],
           smoke_labels={"policy.n_synthetic=20000": "policy.n_synthetic=100",
                         "policy.n_synthetic=2000": "policy.n_synthetic=50"}),
    # the authors' pipeline (conf/arm/authors.yaml) against the project's recipe, one part switched at a time; the
    # arms' generation 0 differ (their CVAE rule), so the pairs compare each arm's change since its own generation 0
    Figure("mnist_authors", "mnist", ["experiment=mnist_authors_isolation_cpu"],
           {"test_nelbo.png": "mnist_authors_test_nelbo.png", "test_nelbo_gray.png": "mnist_authors_test_nelbo_gray.png",
            "recall.png": "mnist_authors_recall.png"},
           [*mnist_summary("test_nelbo_gray"), "--at", "1", "2", *VERSUS_G0, "--pair-change",
            "--reference", "test_nelbo_gray", "121.04", "the authors' generation 0 (their metric)",
            *_pairs(("arm=discriminator_top", "arm=authors"), ("arm=authors_project_pixels", "arm=authors"),
                    ("arm=authors_project_cvae", "arm=authors"), ("arm=authors_project_discriminator", "arm=authors"),
                    ("arm=discriminator_top", "arm=authors_project_cvae"),
                    ("arm=discriminator_top", "arm=authors_project_discriminator"))],
           smoke=["seed=0,1", "generator.epochs=2", "verifier.epochs=2", "policy.n_synthetic=100"]),
    Figure("mnist_reliability", "mnist", ["experiment=reliability_sweep_mnist_cpu"],
           {"fid.png": "mnist_reliability_fid.png", "recall.png": "mnist_reliability_recall.png",
            "test_nelbo.png": "mnist_reliability_test_nelbo.png"},
           [*mnist_summary("verifier_agreement"), "--at", "1", "3", *VERSUS_G0,
            *_pairs(("verifier.reliability=1", "verifier.reliability=0.5"),
                    ("verifier.reliability=0.5", "verifier.reliability=0"),
                    ("verifier.reliability=1", "verifier.reliability=0"))],
           # the fake judge is sure of one class for a 2-epoch CVAE's samples: at test size it keeps every candidate
           smoke=["seed=0,1", "verifier.threshold=0"]),
]
BY_NAME = {f.name: f for f in FIGURES}
SMOKE = {"mnist": ["debug=mnist", "generations=2"], "linear": ["debug=linear"], "gaussian": ["debug=gaussian"]}


def smoke_overrides(f: Figure) -> list[str]:
    """The test-size overrides of ``f``: its study's debug preset, then its own (which win on a shared key)."""
    own = {o.split("=", 1)[0] for o in f.smoke}
    return [o for o in SMOKE[f.study] if o.split("=", 1)[0] not in own] + f.smoke


def default_out() -> Path:
    return Path(os.environ.get("COLLAPSELAB_RUNS", Path.home() / "collapselab-runs"))


def sweep_facts(f: Figure) -> tuple[str, int, str]:
    """(seeds, generations, synthetic samples a generation) of the entry's sweep, read from the config its overrides
    compose to (the experiment YAML is their one home): the swept values joined by commas; a size left to the study
    is the study's default."""
    return f.script_facts if f.script else _composed_facts(f.name)


@functools.lru_cache(maxsize=None)
def _composed_facts(name: str) -> tuple[str, int, str]:
    import collapselab  # noqa: F401  (registers the resolver conf/config.yaml uses)
    from hydra import compose, initialize_config_dir

    f = BY_NAME[name]
    single = [o for o in f.sweep if "," not in o]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=single, return_hydra_config=True)
        swept = {k: str(v).split(",") for k, v in (cfg.hydra.sweeper.params or {}).items()}
        swept |= {o.split("=")[0]: o.split("=", 1)[1].split(",") for o in f.sweep if "," in o}
        cfg = compose("config", overrides=single + [f"{k}={v[0]}" for k, v in swept.items()])
    swept = {k.lstrip("+"): v for k, v in swept.items()}
    sizes = swept.get("policy.n_synthetic", [str(cfg.policy.n_synthetic)])
    if sizes == ["None"]:  # the study's own default
        from collapselab.studies import linear, mnist
        name = cfg.generator.name
        sizes = [str(mnist.DEFAULT_N_SYNTHETIC if name == "vae" else linear.DEFAULT_N_SYNTHETIC if name == "linear"
                     else cfg.data.n_real)]
    return ",".join(swept.get("seed", [str(cfg.seed)])), int(cfg.generations), ",".join(sizes)


def list_line(f: Figure, out: Path) -> str:
    seeds, generations, sizes = sweep_facts(f)
    figs = ",".join(f"docs/figures/{d}" for d in f.figures.values())
    cmd = shlex.join(f.command(str(out / f.name)))
    return (f"{f.name}  seeds={len(seeds.split(','))}  generations={generations}  n_synthetic={sizes}  figure={figs}"
            f"  command={cmd}")


def run(cmd: list[str], env: dict[str, str]) -> int:
    log.info("$ %s", shlex.join(cmd))
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def reproduce(f: Figure, out: Path, smoke: bool, do_run: bool, from_rows: bool = False) -> int:
    """Run the figure's sweep (unless ``do_run`` is false), summarise it and copy its files; 0 when all went well.
    ``from_rows``: summarise the rows committed in docs/results/NAME_rows.csv instead of the sweep's run dirs."""
    sweep_dir = out / f.name
    rows_csv = ROOT / "docs" / "results" / f"{f.name}_rows.csv"
    if from_rows and (f.script or not rows_csv.exists()):
        log.error("%s: no committed rows (%s) to redraw from: run the sweep", f.name, rows_csv.relative_to(ROOT))
        return 1
    docs_fig = out / "figures" if smoke else ROOT / "docs" / "figures"
    docs_res = out / "results" if smoke else ROOT / "docs" / "results"
    env = dict(os.environ)
    start = time.time()
    if f.script:
        cmd = [sys.executable, *f.script, *(f.smoke_script if smoke else []), "--out", str(sweep_dir / "summary")]
        if do_run and run(cmd, env):
            log.error("%s: %s failed", f.name, f.script[0])
            return 1
    else:
        if do_run:
            extra = smoke_overrides(f) if smoke else []
            if smoke and f.study == "mnist":
                extra.append(f"data.root={out / 'data'}")  # the fake networks are cached under the data root
            cmd = [sys.executable, "train.py", "-m", *f.sweep, *extra, f"hydra.sweep.dir={sweep_dir}"]
            if run(cmd, env):
                log.error("%s: the sweep stopped with an error; its finished jobs are kept in %s: run the same "
                          "command again to continue", f.name, sweep_dir)
                return 1
        if not sweep_dir.is_dir() and not from_rows:
            log.error("%s: no sweep in %s yet: run `python scripts/reproduce.py %s` without --no-run", f.name,
                      sweep_dir, f.name)
            return 1
        source = rows_csv if from_rows else sweep_dir
        options = [f.smoke_labels.get(x, x) for x in f.summarize] if smoke else f.summarize
        options = [*options, "--common-seeds"]  # an unfinished sweep's settings compared on the same seeds
        cmd = [sys.executable, "scripts/summarize.py", str(source), "--out", str(sweep_dir / "summary"), *options]
        if run(cmd, env):
            log.error("%s: summarize.py failed", f.name)
            return 1
    docs_fig.mkdir(parents=True, exist_ok=True)
    docs_res.mkdir(parents=True, exist_ok=True)
    summary = sweep_dir / "summary"
    missing = []
    for src, dst in f.figures.items():
        if (summary / src).exists():
            shutil.copyfile(summary / src, docs_fig / dst)
        else:
            missing.append(str(summary / src))
    if not f.script:
        table = (summary / "aggregate.md").read_text()
        if (summary / "paired.md").exists():
            table += "\n" + (summary / "paired.md").read_text()
        header = (f"<!-- written by `python scripts/reproduce.py {f.name}`{' --smoke' if smoke else ''}; "
                  f"do not edit by hand -->\n")
        table = table.replace(str(sweep_dir), f"<runs>/{f.name}").replace(str(rows_csv), rows_csv.name)
        (docs_res / f"{f.name}.md").write_text(header + table)
        if not from_rows:
            shutil.copyfile(summary / "summary.csv", docs_res / f"{f.name}_rows.csv")
    if missing:
        log.error("%s: these files were not made: %s", f.name, ", ".join(missing))
        return 1
    log.info("%s: figures in %s, table in %s (%.0f s)", f.name, docs_fig, docs_res, time.time() - start)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="figures to reproduce (`all` for every one; --list names them)")
    p.add_argument("--list", action="store_true", help="print one line per figure and exit")
    p.add_argument("--out", type=Path, help="where the sweeps go (default: $COLLAPSELAB_RUNS or ~/collapselab-runs)")
    p.add_argument("--smoke", action="store_true", help="the same pipeline at test size on fake data, all under --out")
    p.add_argument("--no-run", action="store_true", help="summarise what the sweep has finished so far; run nothing")
    p.add_argument("--from-rows", action="store_true",
                   help="redraw figures and tables from docs/results/NAME_rows.csv (the committed rows); run nothing")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = (a.out or default_out()).expanduser().resolve()
    if a.list:
        for f in FIGURES:
            print(list_line(f, out))
        return 0
    names = [f.name for f in FIGURES] if a.names == ["all"] else a.names
    unknown = [n for n in names if n not in BY_NAME]
    if not names or unknown:
        p.error((f"unknown figure(s) {', '.join(unknown)}: " if unknown else "name a figure: ")
                + f"choose from {', '.join(BY_NAME)} or all (python scripts/reproduce.py --list)")
    if a.smoke and a.out is None:
        p.error("--smoke writes only under --out: give --out DIR")
    if not a.smoke and (out == ROOT or ROOT in out.parents):
        p.error(f"--out {out} is inside the work tree: give a folder outside it (the sweeps are large)")
    if a.from_rows and a.smoke:
        p.error("--from-rows redraws the committed figures; it does not go with --smoke")
    failed = [f.name for f in map(BY_NAME.get, names)
              if reproduce(f, out, a.smoke, not (a.no_run or a.from_rows), a.from_rows)]
    if failed:
        log.error("not reproduced: %s", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
