"""The plug-in seam: a verifier and a generator that live outside src/ and conf/ run through train.py."""
import json

import pytest

from .conftest import ROOT, read_rows, run_cfg, run_train

EXAMPLES = ROOT / "examples"


def names_in_package(*needles: str) -> list[str]:
    hits = []
    for folder in ("src", "conf"):
        for p in (ROOT / folder).rglob("*"):
            if p.is_file() and p.suffix in (".py", ".yaml") and any(n in p.read_text() for n in needles):
                hits.append(str(p.relative_to(ROOT)))
    return hits


def test_custom_verifier_plugs_in(tmp_path, monkeypatch):
    """In-process, as train.py composes it: the example's folder on sys.path, its conf on the searchpath."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "custom_verifier"))
    args = [f"hydra.searchpath=[file://{EXAMPLES / 'custom_verifier' / 'conf'}]", "generator=linear",
            "verifier=real_fit", "policy=verify", "generations=2", "replicates=100", "samples_every=0"]
    rows = run_cfg(args, tmp_path)
    assert 0.3 < rows[1]["accept_rate"] < 0.95 and rows[0]["center_error"] < 1e-20
    assert rows[2]["param_error"] < 2 * rows[0]["param_error"]


@pytest.mark.slow
def test_custom_verifier_runs_by_its_documented_command(tmp_path):
    """README: PYTHONPATH=examples/custom_verifier python train.py hydra.searchpath=[...] verifier=real_fit ..."""
    assert names_in_package("real_fit", "RealFitVerifier", "realfit_verifier") == []
    run_dir = tmp_path / "run"
    p = run_train("hydra.searchpath=[file://examples/custom_verifier/conf]", "generator=linear", "verifier=real_fit",
                  "policy=verify", "generations=3", "replicates=200", "progress=false", f"hydra.run.dir={run_dir}",
                  env={"PYTHONPATH": str(EXAMPLES / "custom_verifier")})
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_rows(run_dir)
    assert [r["generation"] for r in rows] == [0, 1, 2, 3]
    assert 0.3 < rows[1]["accept_rate"] < 0.95 and rows[0]["center_error"] < 1e-20  # its centre is the real fit
    # verified against the real fit, the error stays near the real-data level instead of growing each round
    assert rows[3]["param_error"] < 2 * rows[0]["param_error"]
    cfg = json.loads((run_dir / "summary.json").read_text())["config"]
    assert cfg["verifier"]["_target_"] == "realfit_verifier.RealFitVerifier"


@pytest.mark.slow
def test_custom_verifier_without_its_pythonpath_is_one_line(tmp_path):
    p = run_train("hydra.searchpath=[file://examples/custom_verifier/conf]", "generator=linear", "verifier=real_fit",
                  f"hydra.run.dir={tmp_path / 'run'}", env={"PYTHONPATH": ""})
    out = p.stdout + p.stderr
    assert p.returncode == 2
    assert "cannot import _target_ 'realfit_verifier.RealFitVerifier'" in out and "Traceback" not in out


@pytest.mark.slow
def test_custom_generator_drops_into_the_mnist_study(tmp_path):
    assert names_in_package("bernoulli_mixture", "BernoulliMixture") == []
    run_dir = tmp_path / "run"
    p = run_train("hydra.searchpath=[file://examples/custom_generator/conf]", "generator=bernoulli_mixture",
                  "data.source=fake", f"data.root={tmp_path / 'data'}", "generations=1", "policy.n_synthetic=200",
                  "verifier.train_size=500", "data.eval_samples=300", "data.pr_samples=100", "progress=false",
                  f"hydra.run.dir={run_dir}", env={"PYTHONPATH": str(EXAMPLES / "custom_generator")})
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_rows(run_dir)
    assert rows[1]["accept_rate"] == pytest.approx(0.1) and rows[1]["fid"] > 0
    assert rows[1]["test_nelbo"] is None and rows[1]["fid_mean"] is None  # no likelihood offered
    assert (run_dir / "gen_001" / "verdicts.png").exists()


def test_custom_policy_plugs_in(tmp_path, monkeypatch):
    """A policy from outside the package (a sliding window of synthetic sets): no closed form claimed, resumable."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "custom_policy"))
    base = [f"hydra.searchpath=[file://{EXAMPLES / 'custom_policy' / 'conf'}]", "generator=linear", "policy=window",
            "generations=4", "replicates=200", "samples_every=0", "verifier=none"]
    rows = run_cfg(base, tmp_path / "a")
    replace = run_cfg(["generator=linear", "policy=replace", "verifier=none", "generations=4", "replicates=200",
                       "samples_every=0", "keep_synthetic=false"], tmp_path / "r")
    assert [r["n_train"] for r in rows] == [100, 800] + [1600] * 3  # 100 per direction, this set and the last
    assert all(r["theory_param_error"] is None for r in rows[1:])  # the study asks the policy, not its flags
    assert rows[4]["param_error"] < 0.85 * replace[4]["param_error"]  # two sets a fit: a slower random walk
    (tmp_path / "a" / "metrics.jsonl").write_text("".join(
        line + "\n" for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[:3]))
    again = run_cfg(base, tmp_path / "a")  # resumes after generation 2 from the stored synthetic sets
    assert [r["param_error"] for r in again] == [r["param_error"] for r in rows]


@pytest.mark.slow
def test_custom_policy_runs_by_its_documented_command(tmp_path):
    """README: PYTHONPATH=examples/custom_policy python train.py hydra.searchpath=[...] policy=window ..."""
    assert names_in_package("window.WindowPolicy", "WindowPolicy") == []
    run_dir = tmp_path / "run"
    p = run_train("hydra.searchpath=[file://examples/custom_policy/conf]", "generator=linear", "policy=window",
                  "policy.window=3", "generations=3", "progress=false", f"hydra.run.dir={run_dir}",
                  env={"PYTHONPATH": str(EXAMPLES / "custom_policy")})
    assert p.returncode == 0, p.stderr[-3000:]
    assert [r["n_train"] for r in read_rows(run_dir)] == [100, 800, 1600, 2400]


def test_no_verifier_module_sees_the_study():
    """Verifiers get parts (data, nets, device) by their signatures; none names or calls back into a study."""
    hits = [p.name for p in (ROOT / "src" / "collapselab" / "verifiers").glob("*.py") if "study" in p.read_text().lower()]
    assert hits == []
