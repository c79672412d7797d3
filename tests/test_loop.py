"""The generation loop: run-dir layout, TensorBoard, resume and bad input."""
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from collapselab.config import diff_configs
from collapselab.device import resolve_device
from collapselab.errors import ConfigError, RunError
from collapselab.loop import run

from .conftest import compose_cfg, read_rows, run_cfg, run_train, strip_wall, train_cmd, ROOT

FAST = ["debug=linear"]  # conf/debug/linear.yaml: 20 chains, no pictures (they have their own tests)


def test_run_dir_layout(tmp_run):
    rows = run_cfg(FAST + ["generations=2", "samples_every=1"], tmp_run)
    assert [r["generation"] for r in rows] == [0, 1, 2]
    assert rows[0]["accept_rate"] is None and 0 < rows[1]["accept_rate"] <= 1
    for r in rows:
        assert {"generation", "n_train", "accept_rate", "wall_s", "param_error", "center_error"} <= set(r)
        # where the row was computed (seeded figures agree within a CPU class): kept beside the numbers
        assert set(r["machine"]) == {"cpu", "cpu_family", "isa", "device", "torch"} and r["machine"]["device"] == "cpu"
    for g in range(3):
        d = tmp_run / f"gen_{g:03d}"
        assert (d / "checkpoint.pt").exists() and (d / "samples.png").stat().st_size > 1000
    assert not (tmp_run / "gen_001" / "synthetic.pt").exists()  # keep_synthetic=auto: re-drawable, not stored
    ck = torch.load(tmp_run / "gen_002" / "checkpoint.pt", weights_only=True)
    assert ck["generation"] == 2 and ck["generator"]["theta"].shape == (20, 8)
    assert ck["config"]["generations"] == 2
    summary = json.loads((tmp_run / "summary.json").read_text())
    assert summary["final"]["generation"] == 2
    assert summary["theory_stationary_param_error"] == pytest.approx(0.1105, abs=1e-3)
    assert not list(tmp_run.glob("**/*.tmp"))


def test_tensorboard_scalars_and_hparams(tmp_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_cfg(FAST + ["generations=3", "samples_every=1"], tmp_run)
    ea = EventAccumulator(str(tmp_run / "tb"))
    ea.Reload()
    steps = [e.step for e in ea.Scalars("param_error")]
    assert steps == [0, 1, 2, 3]
    rows = read_rows(tmp_run)
    assert [e.value for e in ea.Scalars("param_error")] == pytest.approx([r["param_error"] for r in rows], rel=1e-6)
    assert "samples" in ea.Tags()["images"]
    assert "_hparams_/experiment" in ea.PluginTagToContent("hparams")


def test_resume_and_extend_equal_an_uninterrupted_run(tmp_path):
    full = run_cfg(FAST + ["generations=6", "policy=verify_accumulate"], tmp_path / "full")
    part = tmp_path / "part"
    run_cfg(FAST + ["generations=2", "policy=verify_accumulate"], part)  # then raise generations: extends
    rows = run_cfg(FAST + ["generations=6", "policy=verify_accumulate"], part)
    assert strip_wall(rows) == strip_wall(full)


def test_resume_recovers_from_a_torn_tail(tmp_path):
    full = run_cfg(FAST + ["generations=4", "policy=accumulate"], tmp_path / "full")
    part = tmp_path / "part"
    run_cfg(FAST + ["generations=4", "policy=accumulate"], part)
    # simulate a kill: generation 3's checkpoint written, its row torn; generation 4 never finished
    lines = (part / "metrics.jsonl").read_text().splitlines()
    (part / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:17])
    (part / "gen_004" / "checkpoint.pt").unlink()
    rows = run_cfg(FAST + ["generations=4", "policy=accumulate"], part)
    assert strip_wall(rows) == strip_wall(full)


def test_changed_config_is_refused_with_the_keys_named(tmp_run):
    run_cfg(FAST + ["generations=1"], tmp_run)
    with pytest.raises(RunError, match=r"verifier\.bias: stored None, now 0\.5"):
        run_cfg(FAST + ["generations=1", "verifier.bias=0.5"], tmp_run)
    with pytest.raises(RunError, match="resume=false"):
        run_cfg(FAST + ["generations=1", "resume=false"], tmp_run)
    # nothing finished was lost
    assert len(read_rows(tmp_run)) == 2


def test_diff_configs_ignores_resume_safe_keys():
    a = {"generations": 3, "device": "cpu", "verifier": {"radius": 0.1}, "seed": 0}
    b = {"generations": 9, "device": "auto", "verifier": {"radius": 0.2}, "seed": 0, "new": 1}
    assert diff_configs(a, b) == ["new", "verifier.radius"]


@pytest.mark.parametrize("override,message", [
    ("generations=-1", r"generations=-1 is invalid: it must be an integer >= 0"),
    ("generations=1.5", r"generations=1\.5 is invalid: it must be an integer"),
    ("generations=abc", r"generations='abc' is invalid"),
    ("verifier.reliability=1.5", r"verifier\.reliability=1\.5 is invalid: it must be a number in \[0\.0, 1\.0\]"),
    ("verifier.reliability=-0.1", r"verifier\.reliability=-0\.1 is invalid"),
    ("verifier.radius=0", r"verifier\.radius=0 is invalid: it must be a number in \(0\.0, inf\]"),
    ("verifier.radius=-1", r"verifier\.radius=-1 is invalid"),
    ("policy.n_synthetic=0", r"policy\.n_synthetic=0 is invalid: it must be an integer >= 1"),
    ("replicates=0", r"replicates=0 is invalid"),
    ("keep_synthetic=maybe", r"keep_synthetic='maybe' is invalid: use auto \(stored only where the policy accumulates"),
    ("device=tpu", r"device='tpu' is not understood"),
])
def test_bad_values_give_clear_errors(tmp_run, override, message):
    with pytest.raises(ConfigError, match=message):
        run_cfg(FAST + ["generations=1", override], tmp_run)
    assert not (tmp_run / "gen_000").exists()


def test_n_synthetic_too_small_for_the_fit(tmp_run):
    with pytest.raises(ConfigError, match=r"policy\.n_synthetic=5 is too small.*data\.dim=8"):
        run_cfg(FAST + ["generator.design=gaussian", "policy.n_synthetic=5"], tmp_run)


@pytest.mark.parametrize("verifier", ["classifier", "discriminator"])
def test_verifier_that_does_not_fit_the_generator_names_both(tmp_run, verifier):
    cfg = compose_cfg(FAST + [f"verifier={verifier}"])
    with pytest.raises(ConfigError, match=rf"verifier={verifier} does not fit generator=linear"):
        run(cfg, tmp_run)
    assert not (tmp_run / "metrics.jsonl").exists()  # refused before anything was written


@pytest.mark.parametrize("node,message", [
    ({"_target_": "no_such_module.Verifier"}, r"cannot import _target_ 'no_such_module\.Verifier'.*PYTHONPATH"),
    ({"_target_": "collapselab.verifiers.linear.oracle", "radius": 0.1, "colour": "red"}, r"does not take these keys.*colour"),
    ({"_target_": "collapselab.verifiers.linear.oracle", "radius": -1.0}, r"verifier\.radius=-1\.0 is invalid"),
    ({}, r"has no _target_"),
])
def test_bad_target_is_one_line(tmp_run, node, message):
    cfg = compose_cfg(FAST)
    cfg["verifier"] = {"name": "mine", **node}
    with pytest.raises(ConfigError, match=message) as err:
        run(cfg, tmp_run)
    assert "\n" not in str(err.value)


def test_verifier_that_accepts_nothing_keeps_finished_work(tmp_run):
    # bias 50 puts the centre far from every candidate: the collector gives up with the rate and a hint
    with pytest.raises(RunError, match=r"acceptance rate 0\.\d+ \(\d+ of \d+\).*larger verifier\.radius"):
        run_cfg(FAST + ["generations=2", "verifier.bias=50", "policy.max_candidates_factor=5"], tmp_run)
    assert [r["generation"] for r in read_rows(tmp_run)] == [0]
    assert (tmp_run / "gen_000" / "checkpoint.pt").exists()


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.slow
def test_train_py_reports_errors_without_a_traceback(tmp_path):
    p = run_train("generator=linear", "verifier.reliability=2", f"hydra.run.dir={tmp_path / 'r'}")
    out = p.stdout + p.stderr
    assert p.returncode == 2
    assert "verifier.reliability=2 is invalid" in out
    assert "Traceback" not in out


LIN_KILL, GAUSS_KILL = ["generator=linear", "replicates=300"], ["generator=gaussian", "replicates=2000"]
MNIST_KILL = ["debug=mnist", "data.root={root}", "verifier=discriminator", "verifier.train_size=300", "verifier.epochs=1",
              "generations=8"]


@pytest.mark.slow
@pytest.mark.parametrize("study,policy", [
    (LIN_KILL, "verify_accumulate"), (LIN_KILL, "fresh"), (LIN_KILL, "accumulate_subsample"),
    (GAUSS_KILL, "verify_accumulate"), (GAUSS_KILL, "fresh"), (GAUSS_KILL, "accumulate_subsample"),
    (MNIST_KILL, "fresh"), (MNIST_KILL + ["policy.filter=true"], "accumulate_subsample")],
    ids=["linear", "linear-fresh", "linear-accumulate_subsample", "gaussian", "gaussian-fresh",
         "gaussian-accumulate_subsample", "mnist-fresh", "mnist-verified-accumulate_subsample"])
def test_sigkill_then_resume_gives_identical_metrics(tmp_path, study, policy):
    study = [a.format(root=tmp_path / "data") for a in study]
    args = ["generations=12", f"policy={policy}", "progress=false", "samples_every=0"] + study
    ref = tmp_path / "ref"
    assert run_train(*args, f"hydra.run.dir={ref}").returncode == 0
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(*args, f"hydra.run.dir={run_dir}"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 4:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(read_rows(run_dir)) if metrics.exists() else 0
    assert done < len(read_rows(ref)), "the run finished before it could be killed"
    p = run_train(*args, f"hydra.run.dir={run_dir}")
    assert p.returncode == 0, p.stdout + p.stderr
    assert strip_wall(read_rows(run_dir)) == strip_wall(read_rows(ref))
    assert Path(run_dir / "summary.json").exists()


@pytest.mark.parametrize("policy,keep,stored", [("verify", "auto", False), ("verify", "true", True),
                                                ("accumulate", "auto", True), ("accumulate", "false", True),
                                                ("replace", "false", False)])
def test_synthetic_sets_are_stored_where_asked_or_needed(tmp_run, policy, keep, stored):
    """auto (the default) stores a generation's synthetic set only where the policy reads it back (it
    accumulates); true stores every one; an accumulating policy stores them whatever the key says."""
    run_cfg(FAST + ["generations=2", "samples_every=0", f"policy={policy}", f"keep_synthetic={keep}"], tmp_run)
    assert [(tmp_run / f"gen_{g:03d}" / "synthetic.pt").exists() for g in (1, 2)] == [stored, stored]
    assert not (tmp_run / "gen_000" / "synthetic.pt").exists()


def test_a_run_resumes_on_its_own_device_type_unless_told_otherwise(tmp_path):
    """Rows record the device type; resuming where another type's generations were made is one ConfigError naming
    both and the override, before any work; allow_device_change=true continues. summary.json names the device."""
    run_cfg(FAST + ["generations=1"], tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["machine"]["device"] == "cpu" and "torch" in summary["machine"]
    rows = read_rows(tmp_path)
    for r in rows:  # as if generations 0-1 had been made on a GPU
        r["machine"]["device"] = "cuda"
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=r"were made on cuda.*device=cuda.*allow_device_change=true") as e:
        run_cfg(FAST + ["generations=2", "device=cpu"], tmp_path)
    assert "\n" not in str(e.value) and len(read_rows(tmp_path)) == 2
    rows = run_cfg(FAST + ["generations=2", "device=cpu", "allow_device_change=true"], tmp_path)
    assert [r["machine"]["device"] for r in rows] == ["cuda", "cuda", "cpu"]
