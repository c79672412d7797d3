"""Sweeps on a real SLURM cluster (the one-node cluster of scripts/slurm_local.sh, or any other SLURM_CONF names):
submitit_slurm equals the default launcher, a cold data root trains each network once, preempted and requeued jobs
resume to identical numbers, and a failed or cancelled job ends the sweep in bounded time with the job named.

Run with (as root): bash scripts/slurm_local.sh start && export SLURM_CONF=... && python -m pytest -m slurm
Every launcher call has a timeout; without a reachable cluster these tests skip, saying why."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collapselab.sweeps import find_jobs

from .conftest import ROOT, read_rows, run_train, strip_wall, train_cmd

pytestmark = pytest.mark.slurm

SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=10",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
LINEAR = ["generator=linear", "verifier.bias=0.1,0.3", "seed=0,1", "generations=3", "replicates=50", "progress=false"]
SUMMARIZE = [sys.executable, str(ROOT / "scripts" / "summarize.py")]


def _cluster_reason() -> str | None:
    """Why no SLURM cluster is usable here, or None when one is."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return "no SLURM client commands (sbatch, sinfo): start a cluster with bash scripts/slurm_local.sh start (as root)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld is not answering"
    states = out.stdout.split()
    if out.returncode != 0 or not states:
        return f"sinfo failed ({out.stderr.strip()[:200]}): start one with bash scripts/slurm_local.sh start (as root) " \
               "and export the SLURM_CONF it prints"
    if not any(s.startswith(("idle", "mix", "alloc")) for s in states):
        return f"no usable SLURM node (states: {' '.join(states)})"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = _cluster_reason()
    if reason:
        pytest.skip(reason)


def job_ids(sweep: Path) -> list[str]:
    """SLURM job ids of a submitit sweep (its .submitit/<id> folders), oldest first."""
    sub = sweep / ".submitit"
    return sorted((p.name for p in sub.iterdir() if p.is_dir() and p.name.isdigit()), key=int) if sub.exists() else []


def slurm_state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=20)
    return out.stdout.strip() or "GONE"


def wait_until(cond, timeout: float, what: str, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def rows_of(path: Path) -> int:
    try:
        return len((path / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def test_a_linear_sweep_through_slurm_equals_the_default_launcher(tmp_path, cluster):
    ref, sweep = tmp_path / "ref", tmp_path / "slurm"
    assert run_train("-m", *LINEAR, f"hydra.sweep.dir={ref}", timeout=300).returncode == 0
    p = run_train("-m", *LINEAR, *SLURM, f"hydra.sweep.dir={sweep}", timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert len(job_ids(sweep)) >= 1  # it really went through sbatch
    ours, theirs = {j.path.name: j for j in find_jobs(sweep)}, {j.path.name: j for j in find_jobs(ref)}
    assert set(ours) == set(theirs) and len(ours) == 4
    for name, job in ours.items():
        assert job.status == "finished" and strip_wall(job.rows) == strip_wall(theirs[name].rows), name
    for d in (ref, sweep):
        assert subprocess.run(SUMMARIZE + [str(d)], capture_output=True, text=True, timeout=120).returncode == 0
    assert (sweep / "summary" / "aggregate.csv").read_text() == (ref / "summary" / "aggregate.csv").read_text()


def test_a_cold_data_root_trains_each_network_once_across_slurm_jobs(tmp_path, cluster):
    """Two fake-MNIST jobs at once on an empty data root: one trains each network, the other waits on its lock."""
    root, sweep = tmp_path / "root", tmp_path / "slurm"
    p = run_train("-m", "debug=mnist", "generations=1", "samples_every=0", "verifier=classifier", "seed=0,1",
                  f"data.root={root}", *SLURM, "hydra.launcher.array_parallelism=2", f"hydra.sweep.dir={sweep}",
                  timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    logs = "".join(f.read_text() for f in sweep.rglob("*_log.*"))
    trained = [line.split("training the ")[1].split(" network")[0] for line in logs.splitlines()
               if "training the " in line]
    assert sorted(trained) == ["classifier", "evaluator", "judge"], trained
    from collapselab.checkpoint import load_torch
    for f in (root / "nets").glob("*.pt"):  # every cache file whole
        assert load_torch(f)
    assert all(j.status == "finished" for j in find_jobs(sweep))


@pytest.mark.parametrize("how", ["requeue", "usr2"])
def test_a_preempted_or_timed_out_job_is_requeued_and_resumes_to_identical_numbers(tmp_path, cluster, how):
    """`scontrol requeue` (preemption: SIGTERM, then SLURM requeues) and `scancel --signal=USR2` (what SLURM sends
    signal_delay_s before the time limit: submitit requeues). SLURM holds a requeued job for about two minutes
    (Reason=BeginTime); the test releases it with `scontrol update StartTime=now`."""
    args = ["generator=linear", "generations=30", "replicates=1000", "keep_synthetic=false", "samples_every=0",
            "progress=false"]
    ref, sweep = tmp_path / "ref", tmp_path / "slurm"
    assert run_train(*args, f"hydra.run.dir={ref}", timeout=300).returncode == 0
    rq = [a.replace("submitit_slurm", "slurm_requeue") for a in SLURM]
    proc = subprocess.Popen(train_cmd("-m", *args, *rq, f"hydra.sweep.dir={sweep}"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job_dir = sweep / "generator=linear,replicates=1000"
        (job,) = wait_until(lambda: job_ids(sweep), 120, "the job's submission")
        wait_until(lambda: rows_of(job_dir) >= 4, 180, "4 generations before the signal")
        cmd = ["scontrol", "requeue", job] if how == "requeue" else ["scancel", "--signal=USR2", job]
        subprocess.run(cmd, check=True, timeout=20)
        wait_until(lambda: slurm_state(job) == "PENDING", 60, "the job requeued (PENDING)")
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=20)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run(["scancel", *job_ids(sweep)], timeout=20)
    assert proc.returncode == 0, out[-3000:]
    log = (job_dir / "train.log").read_text()
    assert "resuming" in log and "after generation" in log, log[-2000:]
    assert strip_wall(read_rows(job_dir)) == strip_wall(read_rows(ref))
    ours, theirs = json.loads((job_dir / "summary.json").read_text()), json.loads((ref / "summary.json").read_text())
    for k in ("final_param_error", "theory_stationary_param_error"):
        if k in theirs:
            assert ours[k] == theirs[k], k


def test_a_failed_job_ends_the_sweep_non_zero_with_the_job_named(tmp_path, cluster):
    sweep = tmp_path / "slurm"
    t = time.time()
    p = run_train("-m", "generator=linear", "verifier.radius=-1,0.1", "generations=1", "replicates=10",
                  "progress=false", *SLURM, f"hydra.sweep.dir={sweep}", timeout=300)
    assert p.returncode != 0 and time.time() - t < 300
    jobs = {j.path.name: j for j in find_jobs(sweep)}
    bad, good = "generator=linear,replicates=10,verifier.radius=-1", "generator=linear,replicates=10,verifier.radius=0.1"
    assert jobs[bad].status == "failed" and "verifier.radius=-1 is invalid" in jobs[bad].error
    assert jobs[good].status == "finished" and len(jobs[good].rows) == 2


def test_a_cancelled_job_ends_the_sweep_in_bounded_time(tmp_path, cluster):
    """submitit reads job states from sacct (accounting through slurmdbd): a cancelled job fails the sweep instead
    of leaving it polling forever; the other job's results are intact."""
    sweep = tmp_path / "slurm"
    args = ["-m", "generator=linear", "seed=0,1", "generations=200", "replicates=1000", "keep_synthetic=false",
            "samples_every=0", "progress=false", *SLURM, "hydra.launcher.array_parallelism=1",
            f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(train_cmd(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = sweep / "generator=linear,replicates=1000,seed=0"
        wait_until(lambda: rows_of(first) >= 2, 180, "the first job running")
        subprocess.run(["scancel", *job_ids(sweep)], check=True, timeout=20)
        t = time.time()
        out, _ = proc.communicate(timeout=240)
        waited = time.time() - t
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and waited < 240, out[-3000:]
    assert "CANCELLED" in out or "cancelled" in out.lower(), out[-3000:]
    assert rows_of(first) >= 2  # what it finished before the cancel is still there
