"""Shared machines: files readable by the group, unusable folders and cache files named and recovered."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from collapselab.errors import RunError

from .conftest import ROOT, run_cfg, train_cmd

LIN = ["debug=linear"]  # conf/debug/linear.yaml


# ----- files shared with labmates ----------------------------------------------------------------------------
@pytest.mark.slow  # train.py in a subprocess under each umask
@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)],
                         ids=["umask022", "umask027"])
def test_written_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    """Checkpoints, metrics and the summary are written atomically (a temp file, then a rename), yet they end
    with the modes the user's umask gives, like every other file of the run (not mkstemp's private 0600)."""
    run_dir = tmp_path / "run"
    p = subprocess.run(train_cmd(*LIN, "generations=1", f"hydra.run.dir={run_dir}"), cwd=ROOT, capture_output=True,
                       text=True, timeout=300, preexec_fn=lambda: os.umask(umask))
    assert p.returncode == 0, p.stderr[-2000:]
    files = [q for q in run_dir.rglob("*") if q.is_file() and q.name != ".lock"]
    assert {"checkpoint.pt", "metrics.jsonl", "summary.json"} <= {q.name for q in files}
    assert {oct(q.stat().st_mode & 0o777) for q in files} == {oct(file_mode)}, [
        (str(q), oct(q.stat().st_mode & 0o777)) for q in files]
    dirs = [q for q in run_dir.rglob("*") if q.is_dir()]
    assert {oct(q.stat().st_mode & 0o777) for q in dirs} == {oct(dir_mode)}


# ----- folders that cannot be used ---------------------------------------------------------------------------
def test_a_lock_that_is_a_folder_is_one_line(tmp_run):
    (tmp_run / ".lock").mkdir(parents=True)
    with pytest.raises(RunError, match=r"cannot open the run dir's lock file .*\.lock: Is a directory; .*must be a file"):
        run_cfg(LIN + ["generations=1"], tmp_run)


@pytest.mark.parametrize("source", ["pypi", "fake"])
def test_a_data_root_that_is_a_file_is_one_line(tmp_path, source):
    """data.root pointing at a regular file: one line naming it, before any fetch or training."""
    root = tmp_path / "root.txt"
    root.write_text("my notes")
    with pytest.raises(RunError, match=rf"cannot write .* under {root}/.*: {root} is a file, not a folder"):
        run_cfg(["debug=mnist", f"data.root={root}", f"data.source={source}", "generations=0"], tmp_path / "run")
    assert root.read_text() == "my notes" and not (tmp_path / "run" / "gen_000").exists()


def test_an_unwritable_network_cache_is_refused_before_training(tmp_path, monkeypatch):
    """A root this user cannot write (faked: the tests run as root, whom permissions do not stop): one line
    naming the folder and the fix, raised before the first network trains; no claim about earlier generations."""
    import collapselab.checkpoint as ckpt
    import collapselab.nets as nets

    root = tmp_path / "root"
    (root / "nets").mkdir(parents=True)
    monkeypatch.setattr(ckpt.os, "access", lambda p, mode: Path(p) != root / "nets")
    trained = []
    monkeypatch.setattr(nets, "train_net", lambda *a, **k: trained.append(a) or pytest.fail("trained"))
    with nets.fresh_memo():
        with pytest.raises(RunError, match=rf"cannot write the evaluator network under {root / 'nets'}: .* not writable") as e:
            run_cfg(["debug=mnist", f"data.root={root}", "generations=0"], tmp_path / "run")
        assert not trained and "Earlier generations" not in str(e.value)


@pytest.mark.slow  # two fake-MNIST runs that rebuild the evaluator's test statistics
@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shapes"])
def test_unusable_test_statistics_are_moved_aside_and_rebuilt(tmp_path, caplog, damage):
    """The evaluator's cached test statistics: a garbage, truncated or foreign file is one warning naming it,
    kept as .unreadable, and computed again to the same numbers (FID at generation 0 unchanged)."""
    from collapselab.checkpoint import save_torch

    root = tmp_path / "root"  # its own root: the session's fake networks are memoised, the statistics are not
    first = run_cfg(["debug=mnist", f"data.root={root}", "generations=0"], tmp_path / "a")
    (path,) = (root / "nets").glob("*test-stats*.pt")
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x80not a pickle at all")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        save_torch({"mu": torch.zeros(3), "cov": torch.eye(3)}, path)
    bad = path.read_bytes()
    again = run_cfg(["debug=mnist", f"data.root={root}", "generations=0"], tmp_path / "b")
    assert again[0]["fid"] == first[0]["fid"] and path.read_bytes() == good
    assert (path.parent / (path.name + ".unreadable")).read_bytes() == bad
    assert f"cached {path} is unreadable" in caplog.text and "computing the test statistics again" in caplog.text


@pytest.mark.slow
def test_three_first_runs_on_an_empty_root_train_each_network_once(tmp_path):
    """Three runs started together on an empty data root (fake MNIST): every network is trained by one of them
    (the others wait on its cache lock and load it), all three finish with the same generation 0, and every cache
    file left there loads."""
    root = tmp_path / "root"
    procs = [subprocess.Popen(train_cmd("debug=mnist", "generations=0", f"data.root={root}",
                                        f"hydra.run.dir={tmp_path / f'run{i}'}"), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(3)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    trained = [line.split("training the ")[1].split(" network")[0] for out in outs for line in out.splitlines()
               if "training the " in line]
    assert sorted(trained) == sorted(set(trained)) and {"evaluator", "judge"} <= set(trained)  # each once
    rows = [json.loads((tmp_path / f"run{i}" / "metrics.jsonl").read_text().splitlines()[0]) for i in range(3)]
    assert len({(r["test_nelbo"], r["fid"]) for r in rows}) == 1
    for f in (root / "nets").glob("*.pt"):
        torch.load(f, weights_only=True)
