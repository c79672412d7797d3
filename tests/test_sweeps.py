"""Sweeps: job-directory naming, launchers, resuming a killed sweep, summaries and their arithmetic."""
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from scipy import stats

from collapselab.sweeps import (aggregate, find_jobs, keep_common_seeds, long_rows, mean_ci, paired_difference,
                                setting_order)

from .conftest import ROOT, compose_cfg, read_rows, run_train, strip_wall, train_cmd

SUMMARIZE = ROOT / "scripts" / "summarize.py"


def fake_job(root: Path, name: str, overrides: list[str], values: list[float] | None, generations: int = 2,
             error: str = "", finished: bool = True) -> Path:
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if values is not None:
        rows = [{"generation": g, "param_error": v, "accept_rate": None if g == 0 else 0.5}
                for g, v in enumerate(values)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished and values is not None and len(values) > generations:
        (d / "summary.json").write_text(json.dumps({"config": {"generations": generations},
                                                    "theory_stationary_param_error": 0.11,
                                                    "theory_one_round_param_error": 0.08}))
    if error:
        (d / "error.txt").write_text(error)
    return d


@pytest.fixture
def hand_made_sweep(tmp_path: Path) -> Path:
    s = tmp_path / "sweep"
    fake_job(s, "a0", ["verifier.bias=0.1", "seed=0"], [1.0, 2.0, 3.0])
    fake_job(s, "a1", ["verifier.bias=0.1", "seed=1"], [3.0, 4.0, 5.0])
    fake_job(s, "a2", ["verifier.bias=0.1", "seed=2"], [2.0, 6.0, 4.0])
    fake_job(s, "b0", ["verifier.bias=0.3", "seed=0"], [1.0, 1.0, 1.0])
    fake_job(s, "b1", ["verifier.bias=0.3", "seed=1"], [1.0, 1.5], finished=False)  # killed midway
    fake_job(s, "b2", ["verifier.bias=0.3", "seed=2"], [1.0], error="Traceback...\nRunError: loss became nan")
    return s


def test_find_jobs_statuses_and_settings(hand_made_sweep):
    jobs = {j.path.name: j for j in find_jobs(hand_made_sweep)}
    assert {k: j.status for k, j in jobs.items()} == {"a0": "finished", "a1": "finished", "a2": "finished",
                                                       "b0": "finished", "b1": "unfinished", "b2": "failed"}
    assert jobs["a0"].label == "verifier.bias=0.1" and jobs["a0"].setting == jobs["a2"].setting


def test_aggregate_math(hand_made_sweep):
    agg = aggregate(find_jobs(hand_made_sweep), "param_error")
    a = agg["verifier.bias=0.1"]
    assert [s["mean"] for s in a] == pytest.approx([2.0, 4.0, 4.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # values 1,3,2: sd 1
    assert a[0]["low"] == pytest.approx(2.0 - half) and a[0]["high"] == pytest.approx(2.0 + half)
    assert a[0]["n"] == 3
    b = agg["verifier.bias=0.3"]  # the unfinished and failed jobs' finished generations still count
    assert [s["n"] for s in b] == [3, 2, 1]
    assert b[1]["mean"] == pytest.approx(1.25)
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0, 1)
    assert math.isnan(mean_ci([])[0])


def test_paired_difference_on_common_seeds(hand_made_sweep):
    """A - B per seed, only on seeds both settings have, with a t-interval across seeds; far narrower than
    either setting's own interval when the seeds move both sides together."""
    jobs = find_jobs(hand_made_sweep)
    d = paired_difference(jobs, "param_error", "verifier.bias=0.1", "verifier.bias=0.3", 1)
    assert d["seeds"] == ["0", "1"]  # seed 2 of bias 0.3 failed before generation 1
    assert d["mean"] == pytest.approx(((2 - 1) + (4 - 1.5)) / 2)
    half = stats.t.ppf(0.975, 1) * stats.tstd([1.0, 2.5]) / math.sqrt(2)
    assert (d["low"], d["high"]) == pytest.approx((1.75 - half, 1.75 + half))
    assert d["verdict"] == "not distinguishable with 2 seeds"  # 12.7 x 0.53: the interval holds 0
    wide = stats.t.ppf(0.975, 1) * stats.tstd([1.0, 2.5]) * math.sqrt(1 + 1 / 2)  # one more seed: sqrt(3) x wider
    assert (d["new_seed_low"], d["new_seed_high"]) == pytest.approx((1.75 - wide, 1.75 + wide))
    g0 = paired_difference(jobs, "param_error", "verifier.bias=0.1", "", 2, base_generation=0)
    assert g0["mean"] == pytest.approx(2.0) and g0["verdict"] == "higher" and g0["n"] == 3  # +2, +2, +2
    r = paired_difference(jobs, "param_error", "verifier.bias=0.1", "", 1, base_generation=0, ratio=True)
    # a ratio is summarised on the log scale: the geometric mean and exp of the log ratios' t-interval
    logs = [math.log(2), math.log(4 / 3), math.log(3)]
    half = stats.t.ppf(0.975, 2) * stats.tstd(logs) / math.sqrt(3)
    assert r["mean"] == pytest.approx(2.0) and r["verdict"] == "not distinguishable with 3 seeds"  # (2 x 4/3 x 3)^(1/3)
    assert (r["low"], r["high"]) == pytest.approx((math.exp(sum(logs) / 3 - half), math.exp(sum(logs) / 3 + half)))
    lower = paired_difference(jobs, "param_error", "verifier.bias=0.3", "verifier.bias=0.1", 2)
    assert lower["n"] == 1 and lower["verdict"] == "1 common seed(s): no interval"


def test_default_metrics_are_the_studys_headline(tmp_path):
    """Without --metrics a summary shows the study's headline metrics that the rows hold (a Gaussian sweep gets its
    variance), from the jobs' stored study, else the built-in study whose headline the rows fit best."""
    from collapselab.sweeps import headline_metrics

    gauss = {"param_error", "variance", "theory_param_error", "theory_variance", "accept_rate", "generation"}
    assert headline_metrics([], gauss) == ["param_error", "variance", "accept_rate"]
    assert headline_metrics([], {"param_error", "theory_param_error", "accept_rate"}) == ["param_error", "accept_rate"]
    assert headline_metrics([], {"test_nelbo", "fid", "recall", "wall_s"}) == ["test_nelbo", "fid", "recall"]
    job = fake_job(tmp_path, "g", ["seed=0"], [1.0, 2.0])
    (job / "summary.json").write_text(json.dumps({"config": {"study": "collapselab.studies.gaussian.GaussianStudy"}}))
    assert headline_metrics(find_jobs(job), {"param_error", "center_error"}) == ["param_error"]  # the study's list


def test_a_ratio_interval_is_on_the_log_scale(tmp_path):
    """Ratios whose arithmetic interval would cross 0 (0.1 and 3 across two seeds) get a positive interval, and b / a
    gives the reciprocal of a / b's geometric mean and interval; a ratio at or below 0 has no log-scale interval."""
    for seed, a1 in enumerate([0.1, 3.0]):
        fake_job(tmp_path, f"p{seed}", [f"seed={seed}"], [1.0, a1])
        fake_job(tmp_path / "zero", f"z{seed}", [f"seed={seed}"], [1.0, 0.0])
    jobs = find_jobs(tmp_path / "p0", tmp_path / "p1")
    up = paired_difference(jobs, "param_error", "(defaults)", "", 1, base_generation=0, ratio=True)
    assert up["low"] > 0 and up["mean"] == pytest.approx(math.sqrt(0.3)) and up["verdict"].startswith("not dist")
    assert mean_ci([0.1, 3.0])[1] < 0  # the arithmetic interval it replaces went below 0
    down = paired_difference(jobs, "param_error", "(defaults)", "", 0, base_generation=1, ratio=True)
    assert (down["mean"], down["low"], down["high"]) == pytest.approx((1 / up["mean"], 1 / up["high"], 1 / up["low"]))
    zero = paired_difference(find_jobs(tmp_path / "zero"), "param_error", "(defaults)", "", 1, base_generation=0,
                             ratio=True)
    assert math.isnan(zero["mean"]) and "no log-scale interval" in zero["verdict"]


def test_pairs_on_each_settings_change_since_its_own_generation0(hand_made_sweep):
    """--pair-change: (A_g - A_0) - (B_g - B_0) per seed, for settings whose generation 0 differs; ratio: (A_g / A_0) /
    (B_g / B_0)."""
    jobs = find_jobs(hand_made_sweep)
    d = paired_difference(jobs, "param_error", "verifier.bias=0.1", "verifier.bias=0.3", 1, change_from=0)
    assert d["seeds"] == ["0", "1"] and d["mean"] == pytest.approx(((2 - 1) - 0 + (4 - 3) - 0.5) / 2)
    r = paired_difference(jobs, "param_error", "verifier.bias=0.1", "verifier.bias=0.3", 1, ratio=True, change_from=0)
    assert r["mean"] == pytest.approx(math.sqrt(2.0 / 1.0 * (4 / 3) / 1.5))
    p = subprocess.run([sys.executable, str(SUMMARIZE), str(hand_made_sweep), "--pair", "verifier.bias=0.1",
                        "verifier.bias=0.3", "--pair-change", "--reference", "param_error", "2.5", "a published value"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    md = (hand_made_sweep / "summary" / "paired.md").read_text()
    assert "| (verifier.bias=0.1: g - 0) - (verifier.bias=0.3: g - 0) | 0.75 [" in md
    bad = subprocess.run([sys.executable, str(SUMMARIZE), str(hand_made_sweep), "--reference", "param_error", "x",
                          "y"], capture_output=True, text=True)
    assert bad.returncode == 2 and "VALUE must be a number" in bad.stderr.splitlines()[-1]


def test_common_seeds_compare_an_unfinished_sweep_on_the_same_seeds(hand_made_sweep):
    """bias 0.3's seed 1 stopped after generation 1 and seed 2 failed at generation 0: at generation 1 both settings
    are averaged over seeds 0 and 1, at generation 2 over seed 0 alone, at generation 0 over all three."""
    jobs = find_jobs(hand_made_sweep)
    keep_common_seeds(jobs)
    agg = aggregate(jobs, "param_error")
    assert [s["n"] for s in agg["verifier.bias=0.1"]] == [3, 2, 1] == [s["n"] for s in agg["verifier.bias=0.3"]]
    assert agg["verifier.bias=0.1"][1]["mean"] == pytest.approx((2.0 + 4.0) / 2)
    assert agg["verifier.bias=0.1"][2]["mean"] == pytest.approx(3.0)


def test_common_seeds_let_an_arm_that_ran_ahead_show_its_own_seeds(tmp_path):
    """Where no seed of another setting has arrived yet, a setting is averaged over its own seeds (not dropped)."""
    for seed in (0, 1):
        fake_job(tmp_path, f"ahead{seed}", ["arm=ahead", f"seed={seed}"], [1.0, 2.0 + seed, 3.0 + seed])
        fake_job(tmp_path, f"behind{seed}", ["arm=behind", f"seed={seed}"], [1.0, 5.0 + seed], finished=False)
    fake_job(tmp_path, "slow0", ["arm=slow", "seed=0"], [1.0, 9.0], finished=False)  # seed 1 not started
    jobs = find_jobs(tmp_path)
    keep_common_seeds(jobs)
    agg = aggregate(jobs, "param_error")
    assert [s["n"] for s in agg["arm=ahead"]] == [1, 1, 2]  # generations 0-1: seed 0 only (arm=slow has no seed 1)
    assert agg["arm=ahead"][2]["mean"] == pytest.approx(3.5)


def test_paired_difference_takes_the_seed_from_the_stored_config(tmp_path):
    """Single runs (no seed override) pair by the seed in their .hydra/config.yaml."""
    for name, vals in (("a", [1.0, 3.0]), ("b", [1.0, 2.0])):
        for seed in (0, 1):
            d = fake_job(tmp_path, f"{name}{seed}", [f"verifier={name}"], [v + seed for v in vals], generations=1)
            (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
    d = paired_difference(find_jobs(tmp_path), "param_error", "verifier=a", "verifier=b", 1)
    assert d["seeds"] == ["0", "1"] and d["mean"] == pytest.approx(1.0) and d["low"] == d["high"] == 1.0


def test_rows_csv_stands_for_its_jobs(hand_made_sweep, tmp_path):
    """summarize.py's rows CSV (committed as docs/results/NAME_rows.csv) gives back the same jobs, so paired
    comparisons can be recomputed from the committed rows without the run directories."""
    import csv

    jobs = find_jobs(hand_made_sweep)
    rows = long_rows(jobs)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(tmp_path / "rows.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    again = find_jobs(tmp_path / "rows.csv")
    assert sorted(j.path.name for j in again) == sorted(j.path.name for j in jobs)
    assert {j.path.name: j.status for j in again} == {j.path.name: j.status for j in jobs}
    for args in [("verifier.bias=0.1", "verifier.bias=0.3", 1), ("verifier.bias=0.1", "verifier.bias=0.3", 2)]:
        assert paired_difference(again, "param_error", *args) == paired_difference(jobs, "param_error", *args)
    assert aggregate(again, "param_error") == aggregate(jobs, "param_error")
    # the theory figures a plot draws from summary.json travel in the rows: a redraw from the rows still has them
    theory = {"theory_stationary_param_error": 0.11, "theory_one_round_param_error": 0.08}
    by_name = {j.path.name: j for j in again}
    assert by_name["a0"].summary == theory and by_name["b1"].summary == {}  # b1 was killed: no summary.json
    assert all(not any(k.startswith("summary.") for k in r) for j in again for r in j.rows)


def test_long_rows_have_overrides_as_columns(hand_made_sweep):
    rows = long_rows(find_jobs(hand_made_sweep))
    assert len(rows) == 3 + 3 + 3 + 3 + 2 + 1
    assert {"job", "status", "seed", "verifier.bias", "generation", "param_error"} <= set(rows[0])


def test_settings_sort_by_value():
    """Tables and legends list numeric settings by value, numbers before words, key by key."""
    labels = ["verifier.temperature=10", "verifier.temperature=3", "verifier.temperature=1"]
    assert sorted(labels, key=setting_order) == ["verifier.temperature=1", "verifier.temperature=3",
                                                 "verifier.temperature=10"]
    assert sorted(["t=null", "t=5000", "t=500", "t=-1"], key=setting_order) == ["t=-1", "t=500", "t=5000", "t=null"]
    assert sorted(["a=2,b=10", "a=10,b=1", "a=2,b=9"], key=setting_order) == ["a=2,b=9", "a=2,b=10", "a=10,b=1"]
    assert sorted(["arm=replace", "arm=discriminator", "(defaults)"], key=setting_order) == [
        "(defaults)", "arm=discriminator", "arm=replace"]


@pytest.mark.slow
def test_summarize_script_lists_unfinished_and_failed(hand_made_sweep):
    p = subprocess.run([sys.executable, str(SUMMARIZE), str(hand_made_sweep)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = hand_made_sweep / "summary"
    assert "6 jobs: 4 finished, 1 unfinished, 1 failed" in p.stderr
    assert "RunError: loss became nan" in p.stderr
    md = (out / "aggregate.md").read_text()
    assert "| verifier.bias=0.1 | 2 [" in md and "- failed: `b2`" in md and "- unfinished: `b1`" in md
    assert (out / "summary.csv").read_text().count("\n") == 16
    assert (out / "param_error.png").stat().st_size > 5000


@pytest.mark.slow
def test_several_dirs_are_one_set_of_jobs(tmp_path):
    """Single runs and sweeps compared side by side; the rows' per-stage times become columns."""
    fake_job(tmp_path / "runA", "job", ["verifier=classifier", "generations=20"], [1.0, 2.0, 3.0], generations=2)
    fake_job(tmp_path / "sweepB", "k1", ["verifier.keep_fraction=1.0"], [1.0, 4.0, 5.0], generations=2)
    jobs = find_jobs(tmp_path / "runA", tmp_path / "sweepB")
    assert sorted(j.label for j in jobs) == ["verifier.keep_fraction=1.0", "verifier=classifier"]
    (jobs[0].path / "metrics.jsonl").write_text(json.dumps({"generation": 0, "param_error": 1.0,
                                                            "time": {"fit_s": 2.5}}) + "\n")
    assert long_rows(find_jobs(tmp_path / "runA"))[0]["time.fit_s"] == 2.5
    out = tmp_path / "figs"
    p = subprocess.run([sys.executable, str(SUMMARIZE), str(tmp_path / "runA"), str(tmp_path / "sweepB"),
                        "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "2 jobs" in (out / "aggregate.md").read_text()


def test_sweep_presets_carry_their_sweep():
    for name, key in [("reliability_sweep_linear", "verifier.reliability"), ("paper_linear_longrun", "verifier.bias"),
                      ("paper_mnist_filter_cpu", "verifier.keep_fraction"),
                      ("paper_mnist_verifier_quality_cpu", "verifier.train_size"),
                      ("reliability_sweep_mnist_cpu", "verifier.reliability")]:
        text = (ROOT / "conf" / "experiment" / f"{name}.yaml").read_text()
        assert key in yaml.safe_load(text)["hydra"]["sweeper"]["params"], name
        compose_cfg([f"experiment={name}"])


SWEEP = ["generator=linear", "verifier.bias=0.1,0.3", "seed=0,1", "generations=2", "replicates=20", "progress=false"]
NAMES = {f"generator=linear,replicates=20,seed={s},verifier.bias={b}" for s in (0, 1) for b in (0.1, 0.3)}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_two_by_two_linear_sweep_and_summary(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    extra = [] if launcher == "basic" else [f"hydra/launcher={launcher}"]
    if launcher == "submitit_local":
        extra += ["hydra.launcher.timeout_min=10"]
    p = run_train("-m", *SWEEP, *extra, f"hydra.sweep.dir={sweep}")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    jobs = find_jobs(sweep)
    assert {j.path.name for j in jobs} == NAMES  # named by overrides, without generations/progress
    assert all(j.status == "finished" and len(j.rows) == 3 for j in jobs)
    assert (sweep / "multirun.yaml").exists()
    s = subprocess.run([sys.executable, str(SUMMARIZE), str(sweep)], capture_output=True, text=True)
    assert s.returncode == 0, s.stderr
    for f in ("summary.csv", "aggregate.csv", "aggregate.md", "param_error.png", "center_error.png"):
        assert (sweep / "summary" / f).exists(), f
    # every job's TensorBoard run sits under the sweep dir, with its hyper-parameters
    assert len(list(sweep.glob("*/tb/events.out.tfevents.*"))) >= 4


@pytest.mark.slow
def test_a_joblib_job_gives_the_numbers_of_the_same_run_alone(tmp_path):
    """Fake MNIST, each side on its own empty data root (so the networks, too, are trained inside the workers): a
    2-job joblib sweep's metrics equal the two commands run alone; joblib's workers would otherwise run torch with
    fewer threads (OMP_NUM_THREADS = cores / jobs)."""
    base = ["debug=mnist", "generations=1", "samples_every=0"]
    sweep = tmp_path / "sweep"
    p = run_train("-m", *base, f"data.root={tmp_path / 'root_sweep'}", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                  f"hydra.sweep.dir={sweep}", timeout=1200)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for seed in (0, 1):
        alone = tmp_path / f"alone{seed}"
        assert run_train(*base, f"data.root={tmp_path / 'root_alone'}", f"seed={seed}", f"hydra.run.dir={alone}",
                         timeout=600).returncode == 0
        (job,) = [j for j in find_jobs(sweep) if j.overrides.get("seed") == str(seed)]
        assert strip_wall(job.rows) == strip_wall(read_rows(alone)), seed
        assert json.loads((alone / "summary.json").read_text())["torch_threads"] == job.summary["torch_threads"]


@pytest.mark.slow
def test_failed_job_keeps_its_error_and_the_others_finish(tmp_path):
    sweep = tmp_path / "sweep"
    p = run_train("-m", "generator=linear", "verifier.radius=-1,0.1", "generations=1", "replicates=10",
                  f"hydra.sweep.dir={sweep}")
    assert p.returncode != 0
    jobs = {j.path.name: j for j in find_jobs(sweep)}
    assert jobs["generator=linear,replicates=10,verifier.radius=-1"].status == "failed"
    assert "verifier.radius=-1 is invalid" in jobs["generator=linear,replicates=10,verifier.radius=-1"].error
    assert jobs["generator=linear,replicates=10,verifier.radius=0.1"].status == "finished"


@pytest.mark.slow
def test_killed_sweep_resumes_only_what_was_left(tmp_path):
    args = ["-m", "generator=linear", "verifier.bias=0.1,0.2,0.3", "generations=30", "replicates=100",
            "policy=verify_accumulate", "progress=false", "samples_every=0"]
    ref = tmp_path / "ref"
    assert run_train(*args, f"hydra.sweep.dir={ref}").returncode == 0
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(train_cmd(*args, f"hydra.sweep.dir={sweep}"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = "generator=linear,policy=verify_accumulate,replicates=100,verifier.bias={}".format
    first = sweep / name(0.1)
    second = sweep / name(0.2) / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if (first / "summary.json").exists() and second.exists() and len(second.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    statuses = {j.path.name: j.status for j in find_jobs(sweep)}
    assert statuses[name(0.1)] == "finished"
    assert statuses[name(0.2)] == "unfinished"
    stamp = (first / "metrics.jsonl").stat().st_mtime_ns
    p = run_train(*args, f"hydra.sweep.dir={sweep}")
    assert p.returncode == 0, p.stderr[-2000:]
    assert (first / "metrics.jsonl").stat().st_mtime_ns == stamp  # the finished job was skipped
    assert "already holds generations 0..30: nothing to do" in p.stdout + p.stderr
    for b in (0.1, 0.2, 0.3):
        assert strip_wall(read_rows(sweep / name(b))) == strip_wall(read_rows(ref / name(b)))


@pytest.mark.parametrize("launcher,target", [("joblib", "JoblibLauncher"), ("submitit_local", "LocalLauncher"),
                                             ("submitit_slurm", "SlurmLauncher"), ("slurm", "SlurmLauncher"),
                                             ("slurm_requeue", "SlurmLauncher")])
def test_launchers_compose(launcher, target):
    from hydra import compose, initialize_config_dir

    plugin = "hydra_plugins.hydra_joblib_launcher" if launcher == "joblib" else "hydra_plugins.hydra_submitit_launcher"
    pytest.importorskip(plugin, reason=f"hydra/launcher={launcher} needs the sweep extras: pip install -e '.[sweep]'")

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}", "generator=linear"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    assert cfg.hydra.sweep.subdir == "generator=linear"  # named by the overrides
    assert "generations" in cfg.hydra.job.config.override_dirname.exclude_keys


def test_one_list_of_non_result_keys(tmp_path):
    """Sweep folder names, resume's config check and summaries read collapselab.config.NON_RESULT_KEYS."""
    from hydra import compose, initialize_config_dir

    from collapselab.config import NON_RESULT_KEYS, diff_configs
    from collapselab.sweeps import NOT_A_SETTING

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["generator=linear"], return_hydra_config=True)
    assert list(cfg.hydra.job.config.override_dirname.exclude_keys) == list(NON_RESULT_KEYS)
    assert set(NON_RESULT_KEYS) < set(NOT_A_SETTING)
    a = compose_cfg(["generator=linear"])
    b = compose_cfg(["generator=linear", "samples_every=0", "keep_synthetic=false", "generations=3"])
    assert diff_configs(a, b) == []


@pytest.mark.slow
def test_sweep_rerun_with_another_samples_every_continues_the_same_jobs(tmp_path):
    # the samples_every case: a sweep re-run with another samples_every continues the same job folders
    sweep = tmp_path / "sweep"
    base = ["-m", "generator=linear", "replicates=4", "progress=false", f"hydra.sweep.dir={sweep}",
            "verifier.bias=0.1,0.2"]
    first = run_train(*base, "generations=1", "samples_every=0")
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_train(*base, "generations=2", "samples_every=1", "keep_synthetic=false")
    assert again.returncode == 0, again.stderr[-2000:]
    jobs = find_jobs(sweep)
    assert sorted(j.path.name for j in jobs) == [f"generator=linear,replicates=4,verifier.bias={b}" for b in (0.1, 0.2)]
    assert all(j.status == "finished" and len(j.rows) == 3 for j in jobs)


@pytest.mark.parametrize("lo, hi, expect", [(101.9, 240.0, {"120", "160", "200", "240"}),
                                            (0.031, 1.0, {"0.05", "0.1", "0.2", "0.5", "1"}),
                                            (1e-3, 5.0, {"0.001", "0.01", "0.1", "1", "2"})])
def test_log_axes_read_as_plain_numbers(lo, hi, expect):
    """--logy axes label round values (not 10^2 alone): several ticks within the data, each a plain number."""
    import importlib.util

    import matplotlib.pyplot as plt

    spec = importlib.util.spec_from_file_location("summarize_script", SUMMARIZE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [lo, (lo * hi) ** 0.5, hi])
    mod.log_axis(ax)
    fig.canvas.draw()
    shown = {t.get_text() for t in ax.get_yticklabels() if lo <= t.get_position()[1] <= hi}
    plt.close(fig)
    assert expect <= shown and all(float(t.replace("\u2212", "-")) > 0 for t in shown), shown
