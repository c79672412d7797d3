"""Run integrity: one writer per run dir, unreadable checkpoints, SIGTERM, full disks and unwritable folders
(shared roots, caches and file modes: test_shared_roots.py)."""
import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from collapselab.errors import RunError
from collapselab.runguard import RunDirBusy, RunInterrupted, critical, run_lock, stop_signals

from .conftest import ROOT, read_rows, run_cfg, run_train, strip_wall, train_cmd

LIN = ["debug=linear"]  # conf/debug/linear.yaml


def tmp_files(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


# ----- run dirs refused before anything is written -------------------------------------------------------------
@pytest.mark.parametrize("where", ["file", "under_a_file", "proc", "unwritable"])
def test_a_run_dir_that_cannot_hold_a_run_is_refused_in_one_line(tmp_path, where, monkeypatch):
    from collapselab.errors import ConfigError
    from collapselab.runguard import check_run_dir

    target = {"file": tmp_path / "f", "under_a_file": tmp_path / "f" / "run", "proc": Path("/proc/collapselab-run"),
              "unwritable": tmp_path / "ro" / "run"}[where]
    (tmp_path / "f").write_text("x")
    (tmp_path / "ro").mkdir()
    if where == "unwritable":  # as root every folder is writable: say it is not, the way a non-root user sees it
        monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != tmp_path / "ro")
    with pytest.raises(ConfigError, match={"file": "is a file", "under_a_file": "lies under", "proc": "pseudo file system",
                                           "unwritable": "not writable"}[where]) as e:
        check_run_dir(target)
    assert "\n" not in str(e.value) and not (tmp_path / "ro" / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("override", ["hydra.run.dir=/etc/hostname", "hydra.run.dir=/proc/collapselab-run",
                                      "verifier.keep_fraction=1e-9"])
def test_train_py_refuses_a_bad_run_dir_or_pool_in_one_line_writing_nothing(tmp_path, override):
    """As a user runs it: one line, exit status 2, and no run dir left behind (Hydra makes one before the task)."""
    run_dir = tmp_path / "run"
    args = [override] if override.startswith("hydra") else [override, f"hydra.run.dir={run_dir}"]
    p = run_train(*args, "data.source=fake", f"data.root={tmp_path / 'data'}", timeout=120)
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in lines[0], p.stdout + p.stderr
    assert not run_dir.exists() and not (tmp_path / "data").exists()


# ----- one writer per run directory -------------------------------------------------------------------------
def test_a_held_run_dir_is_refused_with_the_holder_named(tmp_run):
    with run_lock(tmp_run):
        with pytest.raises(RunDirBusy, match=rf"{tmp_run} is in use by another run \(pid {os.getpid()} on "):
            run_cfg(LIN + ["generations=1"], tmp_run)
    assert not (tmp_run / "metrics.jsonl").exists()
    assert len(run_cfg(LIN + ["generations=1"], tmp_run)) == 2  # released: the kernel drops it with the holder


@pytest.mark.slow
def test_two_processes_on_one_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    args = train_cmd("generator=linear", "generations=30", "replicates=2000", "progress=false",
                     f"hydra.run.dir={run_dir}")
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    assert "is in use by another run (pid" in loser and "Traceback" not in loser
    assert [r["generation"] for r in read_rows(run_dir)] == list(range(31))


def tree_bytes(run_dir: Path) -> dict[str, bytes]:
    """Every file under a run dir, by relative path, with its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.mark.slow  # train.py in subprocesses, as a user runs it
def test_same_second_runs_get_their_own_dirs(tmp_path):
    """Three runs started at once with the same timestamp part of the default run dir: three folders, each recording
    its own seed. The timestamp is pinned (not left to the clock), so the three always collide on it."""
    same_second = "hydra.run.dir=outputs/2026-01-01/00-00-00-${collapselab.run_id:}"
    procs = [subprocess.Popen(train_cmd(*LIN, "generations=1", f"seed={s}", same_second), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for s in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0], [p.stdout.read() for p in procs]
    runs = sorted((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 3
    seeds = sorted((json.loads((d / "summary.json").read_text())["config"]["seed"],
                    (d / ".hydra" / "overrides.yaml").read_text()) for d in runs)
    assert [s for s, _ in seeds] == [0, 1, 2] and all(f"seed={s}" in ov for s, ov in seeds)


@pytest.mark.slow  # train.py in subprocesses, as a user runs it
@pytest.mark.parametrize("refusal", ["busy", "other_config"])
def test_a_refused_process_changes_no_byte_of_the_run_dir(tmp_path, refusal):
    """On a run dir held by another process, or holding a finished run of another config, train.py says so in one
    line and leaves every file as it was (Hydra's record and the log included); the run still reads as finished."""
    from collapselab.sweeps import find_jobs

    run_dir = tmp_path / "run"
    assert run_train(*LIN, "generations=1", f"hydra.run.dir={run_dir}").returncode == 0
    again = [*LIN, "generations=1", f"hydra.run.dir={run_dir}"] + (["seed=1"] if refusal == "other_config" else [])
    if refusal == "busy":
        with run_lock(run_dir):
            before = tree_bytes(run_dir)
            p = run_train(*again)
    else:
        before = tree_bytes(run_dir)
        p = run_train(*again)
    out = p.stdout + p.stderr
    assert p.returncode == 2 and "Traceback" not in out, out[-2000:]
    assert ("is in use by another run" if refusal == "busy" else "holds a run with a different config") in out
    assert tree_bytes(run_dir) == before
    (job,) = find_jobs(run_dir)
    assert job.status == "finished" and "seed" not in job.overrides and not job.error


@pytest.mark.slow  # train.py in subprocesses, as a user runs it
def test_a_folder_of_other_files_is_refused_unless_adopted(tmp_path):
    """hydra.run.dir = a folder of the user's own (with a file named like ours): one line, the folder unchanged;
    adopt_dir=true runs there."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("read the paper")
    (notes / "summary.json").write_text('{"mine": true}')
    before = tree_bytes(notes)
    p = run_train(*LIN, "generations=1", f"hydra.run.dir={notes}")
    out = p.stdout + p.stderr
    assert p.returncode == 2 and "Traceback" not in out, out[-2000:]
    assert "holds files that are not a collapselab run's (todo.txt): " in out and "adopt_dir=true" in out
    assert tree_bytes(notes) == before and sorted(q.name for q in notes.iterdir()) == ["summary.json", "todo.txt"]
    assert run_train(*LIN, "generations=1", f"hydra.run.dir={notes}", "adopt_dir=true").returncode == 0
    assert len(read_rows(notes)) == 2 and (notes / "todo.txt").read_text() == "read the paper"


@pytest.mark.slow
def test_a_sweep_rerun_skips_the_jobs_in_progress(tmp_path):
    sweep = tmp_path / "sweep"
    base = ["-m", "generator=linear", "replicates=4", "generations=2", "progress=false", f"hydra.sweep.dir={sweep}",
            "verifier.bias=0.1,0.2"]
    busy = sweep / "generator=linear,replicates=4,verifier.bias=0.2"
    with run_lock(busy):  # as if another sweep were running this job now
        p = run_train(*base)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "skipped:" in p.stdout + p.stderr and "is in use by another run" in p.stdout + p.stderr
    assert len(read_rows(sweep / "generator=linear,replicates=4,verifier.bias=0.1")) == 3
    assert not (busy / "metrics.jsonl").exists() and not (busy / "error.txt").exists()


# ----- unreadable checkpoints ------------------------------------------------------------------------------
def test_truncated_checkpoint_is_moved_aside_and_redone(tmp_path, caplog):
    ref = run_cfg(LIN + ["generations=5"], tmp_path / "ref")
    run_dir = tmp_path / "run"
    run_cfg(LIN + ["generations=4"], run_dir)
    ckpt = run_dir / "gen_003" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    rows = run_cfg(LIN + ["generations=5"], run_dir)
    assert strip_wall(rows) == strip_wall(ref)
    assert f"{ckpt} is unreadable" in caplog.text and "checkpoint.pt.unreadable" in caplog.text
    assert (run_dir / "gen_003" / "checkpoint.pt.unreadable").exists() and ckpt.exists()


def test_unreadable_synthetic_set_of_an_accumulating_run(tmp_path, caplog):
    args = LIN + ["policy=verify_accumulate"]
    ref = run_cfg(args + ["generations=4"], tmp_path / "ref")
    run_dir = tmp_path / "run"
    run_cfg(args + ["generations=4"], run_dir)
    (run_dir / "gen_002" / "synthetic.pt").write_bytes(b"not a checkpoint")
    (run_dir / "summary.json").unlink()
    assert strip_wall(run_cfg(args + ["generations=4"], run_dir)) == strip_wall(ref)
    assert "synthetic.pt is unreadable" in caplog.text


WRONG = {  # checkpoints that load but are not what the study saved
    "theta_shape": lambda c: {**c, "generator": {"theta": torch.zeros(3, 2)}},
    "no_generator": lambda c: {k: v for k, v in c.items() if k != "generator"},
    "a_list": lambda c: [c["generator"], c["metrics"]],
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_a_checkpoint_that_loads_but_does_not_fit_is_redone(tmp_path, caplog, wrong):
    """A wrong file in a later generation: moved aside like an unreadable one and redone to the same numbers."""
    ref = run_cfg(LIN + ["generations=5"], tmp_path / "ref")
    run_dir = tmp_path / "run"
    run_cfg(LIN + ["generations=4"], run_dir)
    ckpt = run_dir / "gen_004" / "checkpoint.pt"
    torch.save(WRONG[wrong](torch.load(ckpt, weights_only=True)), ckpt)
    assert strip_wall(run_cfg(LIN + ["generations=5"], run_dir)) == strip_wall(ref)
    assert f"{ckpt} is unreadable" in caplog.text and (run_dir / "gen_004" / "checkpoint.pt.unreadable").exists()


@pytest.mark.parametrize("wrong", list(WRONG))
def test_a_generation_0_checkpoint_that_does_not_fit_is_one_line(tmp_run, wrong):
    run_cfg(LIN + ["generations=0"], tmp_run)  # generation 0 is the one a resume loads
    ckpt = tmp_run / "gen_000" / "checkpoint.pt"
    torch.save(WRONG[wrong](torch.load(ckpt, weights_only=True)), ckpt)
    with pytest.raises(RunError, match=r"gen_000/checkpoint\.pt is unreadable .*new hydra\.run\.dir") as err:
        run_cfg(LIN + ["generations=2"], tmp_run)
    assert "\n" not in str(err.value)


def test_unreadable_generation_zero_is_one_line(tmp_run):
    run_cfg(LIN + ["generations=1"], tmp_run)
    (tmp_run / "gen_000" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(RunError, match=r"gen_000/checkpoint\.pt is unreadable .*new hydra\.run\.dir") as err:
        run_cfg(LIN + ["generations=2"], tmp_run)
    assert "\n" not in str(err.value)


# ----- stop signals ----------------------------------------------------------------------------------------
def test_a_stop_signal_waits_for_the_critical_section():
    done = []
    with stop_signals():
        with pytest.raises(RunInterrupted, match="SIGTERM"):
            with critical():
                signal.raise_signal(signal.SIGTERM)
                done.append("finished the writes")
    assert done == ["finished the writes"]
    with stop_signals(), pytest.raises(RunInterrupted, match="SIGINT"):
        signal.raise_signal(signal.SIGINT)  # delivered before this call returns


def test_the_first_stop_signal_decides_how_the_run_ended():
    """SIGINT, then SIGTERM while the stop unwinds: the run ends by SIGINT (message and exit status agree)."""
    with stop_signals():
        with pytest.raises(RunInterrupted, match="SIGINT") as err:
            try:
                signal.raise_signal(signal.SIGINT)  # delivered before this call returns
            finally:
                signal.raise_signal(signal.SIGTERM)  # arrives during the clean-up: ignored
    assert err.value.signum == signal.SIGINT
    with stop_signals(), pytest.raises(RunInterrupted, match="SIGTERM"):  # a new block listens again
        signal.raise_signal(signal.SIGTERM)  # delivered before this call returns


def test_a_stop_before_generation_0_finished_says_so(tmp_run, monkeypatch, caplog):
    import collapselab.loop as loop

    def stopped(*a, **k):
        signal.raise_signal(signal.SIGTERM)  # delivered before this call returns

    monkeypatch.setattr(loop, "_generation", stopped)
    with pytest.raises(RunInterrupted):
        run_cfg(LIN + ["generations=1"], tmp_run)
    assert "stopped by SIGTERM before generation 0 finished: nothing was saved" in caplog.text
    assert "generation -1" not in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("study", [["generator=linear", "replicates=300"], ["generator=gaussian", "replicates=2000"]],
                         ids=["linear", "gaussian"])
def test_sigterm_stops_cleanly_and_resumes_exactly(tmp_path, study):
    args = study + ["generations=12", "policy=verify_accumulate", "progress=false", "samples_every=0"]
    assert run_train(*args, f"hydra.run.dir={tmp_path / 'ref'}").returncode == 0
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(*args, f"hydra.run.dir={run_dir}"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    out = proc.communicate(timeout=60)[0]
    assert time.time() - t0 < 10
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopped by SIGTERM after generation" in out and "run the same command again" in out
    assert tmp_files(run_dir) == [] and "Traceback" not in out
    assert len(read_rows(run_dir)) < 13, "the run finished before it could be stopped"
    assert run_train(*args, f"hydra.run.dir={run_dir}").returncode == 0
    assert strip_wall(read_rows(run_dir)) == strip_wall(read_rows(tmp_path / "ref"))


# ----- full disks and unwritable folders -------------------------------------------------------------------
@pytest.mark.parametrize("failure", [errno.ENOSPC, errno.EROFS])
def test_a_failed_write_is_one_line_and_loses_nothing(tmp_path, monkeypatch, failure):
    import collapselab.checkpoint as C

    ref = run_cfg(LIN + ["generations=3"], tmp_path / "ref")
    real_mkstemp, calls = C.tempfile.mkstemp, []

    def mkstemp(*a, **k):
        calls.append(k.get("prefix"))
        if k.get("prefix", "").startswith(".checkpoint.pt") and len([c for c in calls if "checkpoint" in c]) == 3:
            raise OSError(failure, os.strerror(failure), str(k["dir"]))
        return real_mkstemp(*a, **k)

    monkeypatch.setattr(C.tempfile, "mkstemp", mkstemp)
    run_dir = tmp_path / "run"
    with pytest.raises(RunError, match=rf"could not write {run_dir}/gen_002/checkpoint\.pt: {os.strerror(failure)}"):
        run_cfg(LIN + ["generations=3"], run_dir)
    assert [r["generation"] for r in read_rows(run_dir)] == [0, 1] and tmp_files(run_dir) == []
    monkeypatch.setattr(C.tempfile, "mkstemp", real_mkstemp)
    assert strip_wall(run_cfg(LIN + ["generations=3"], run_dir)) == strip_wall(ref)


def test_a_failed_metrics_append_leaves_no_torn_row(tmp_path, monkeypatch):
    import collapselab.checkpoint as C

    run_dir = tmp_path / "run"
    run_cfg(LIN + ["generations=1"], run_dir)

    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up exactly when the metrics row is flushed
        if os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(C.os, "fsync", fsync)
    with pytest.raises(RunError, match=rf"could not write {run_dir}/metrics\.jsonl: No space left on device"):
        run_cfg(LIN + ["generations=2"], run_dir)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and [r["generation"] for r in read_rows(run_dir)] == [0, 1]  # no torn third row


@pytest.mark.slow
def test_sigterm_to_a_submitit_job_then_rerun_the_sweep(tmp_path):
    """A preempted job (SIGTERM) under submitit's launcher: the sweep reports it, a re-run resumes it exactly."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import json

    base = ["-m", "hydra/launcher=submitit_local", "generator=linear", "replicates=300", "generations=25",
            "policy=verify_accumulate", "progress=false", "samples_every=0", "seed=0,1"]
    ref = tmp_path / "ref"
    assert run_train(*base, f"hydra.sweep.dir={ref}").returncode == 0
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(train_cmd(*base, f"hydra.sweep.dir={sweep}"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    job = sweep / "generator=linear,policy=verify_accumulate,replicates=300,seed=0"
    deadline = time.time() + 300
    while time.time() < deadline and not ((job / "metrics.jsonl").exists()
                                          and len((job / "metrics.jsonl").read_text().splitlines()) >= 3):
        time.sleep(0.05)
    holder = json.loads((job / ".lock").read_text())  # the lock file names the job's process
    os.kill(holder["pid"], signal.SIGTERM)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode != 0 and len(read_rows(job)) < 26 and tmp_files(sweep) == []
    again = run_train(*base, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    for seed in (0, 1):
        name = f"generator=linear,policy=verify_accumulate,replicates=300,seed={seed}"
        assert strip_wall(read_rows(sweep / name)) == strip_wall(read_rows(ref / name)), out[-2000:]
