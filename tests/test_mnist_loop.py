"""The MNIST study end to end on tiny fake data (fast), and on real MNIST as CI runs it (slow)."""
import json
from pathlib import Path

import pytest
import torch

from collapselab.errors import ConfigError
from collapselab.loop import check_config

from .conftest import filters, compose_cfg, n_train_after_one, options, read_rows, run_cfg, run_train, strip_wall


def tiny(root: Path) -> list[str]:
    """conf/debug/mnist.yaml (fake MNIST at test size) on a data root that caches its fake networks."""
    return ["debug=mnist", f"data.root={root}"]


def permissive(verifier: str) -> list[str]:
    """Verifier settings that accept enough from a barely trained VAE (this test is about composition)."""
    if verifier in ("classifier", "oracle", "noisy_oracle"):
        extra = ["verifier.threshold=0.0"]
        return extra + (["verifier.train_size=500"] if verifier == "classifier" else [])
    if verifier == "discriminator":
        return ["verifier.train_size=300", "verifier.epochs=1"]
    return []


NEW_POLICIES = ("mix", "fresh", "accumulate_subsample")  # run with a ranking, a threshold and no verifier


@pytest.mark.slow
@pytest.mark.parametrize("verifier,policy", [
    (v, p) for v in options("verifier") for p in options("policy")
    if p not in NEW_POLICIES or v in ("none", "classifier", "oracle")])
def test_vae_compositions_run_one_generation(tmp_path, fake_root, verifier, policy):
    try:
        _check_one_generation(tmp_path, fake_root, verifier, policy)
    except ConfigError as e:  # a verifier of another study (e.g. oracle_ratio): one line naming both
        assert f"verifier={verifier} does not fit generator=vae" in str(e) and "\n" not in str(e), str(e)


def _check_one_generation(tmp_path, fake_root, verifier: str, policy: str) -> None:
    rows = run_cfg(tiny(fake_root) + [f"verifier={verifier}", f"policy={policy}", "generations=1"]
                   + permissive(verifier), tmp_path)
    assert [r["generation"] for r in rows] == [0, 1]
    g1 = rows[1]
    for k in ("fid", "precision", "recall", "label_accuracy", "class_entropy", "test_nelbo", "verifier_agreement"):
        assert g1[k] is not None, k
    assert 0 <= g1["class_entropy"] <= 2.3026
    assert g1["n_train"] == n_train_after_one(policy, 100, 100, sized=True)
    assert (tmp_path / "gen_001" / "samples.png").exists()
    if verifier != "none" and filters(policy):
        assert (tmp_path / "gen_001" / "verdicts.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("override", ["generator.arch=mlp", "generator.conditional=false", "policy.growth=50",
                                      "generator.sampling=threshold"])
def test_vae_options(tmp_path, fake_root, override):
    rows = run_cfg(tiny(fake_root) + ["verifier=oracle", "verifier.threshold=0.0", "generations=2", override],
                   tmp_path)
    assert len(rows) == 3
    if override == "generator.conditional=false":
        assert rows[1]["label_accuracy"] is None
    if override == "policy.growth=50":
        assert [r["n_train"] for r in rows[1:]] == [100, 150]


@pytest.mark.slow
def test_keep_fraction_ranks_and_keeps_exactly_the_quota(tmp_path, fake_root):
    rows = run_cfg(tiny(fake_root) + ["verifier=classifier", "verifier.keep_fraction=0.25",
                                      "verifier.train_size=500", "generations=1"], tmp_path)
    assert rows[1]["accept_rate"] == pytest.approx(0.25, abs=0.01)
    assert rows[1]["n_train"] == 100


@pytest.mark.slow
@pytest.mark.parametrize("verifier", [["verifier=classifier", "verifier.train_size=500"],
                                      ["verifier=discriminator", "verifier.train_size=300", "verifier.epochs=1"]],
                         ids=["classifier", "discriminator"])
def test_soft_selection_keeps_the_quota_and_differs_from_top(tmp_path, fake_root, verifier):
    """selection=softmax (and drs for the discriminator) keeps quota per class from the same pool as top, but
    not the same samples; temperature 0 is top exactly."""
    import torch

    from collapselab.checkpoint import load_torch

    base = tiny(fake_root) + verifier + ["generations=1", "verifier.keep_fraction=0.25", "keep_synthetic=true"]
    kept = {}
    extra = [["verifier.selection=softmax", "verifier.temperature=0"], ["verifier.selection=softmax"]]
    if "verifier=discriminator" in verifier:
        extra.append(["verifier.selection=drs"])
    for i, sel in enumerate([["verifier.selection=top"]] + extra):
        rows = run_cfg(base + sel, tmp_path / str(i))
        assert rows[1]["accept_rate"] == pytest.approx(0.25, abs=0.01) and rows[1]["n_train"] == 100
        kept[i] = load_torch(tmp_path / str(i) / "gen_001" / "synthetic.pt")
        assert torch.bincount(kept[i]["y"].long(), minlength=10).tolist() == [10] * 10  # per-class quotas kept
    assert torch.equal(kept[0]["bits"], kept[1]["bits"])  # temperature 0: top
    for i in range(2, len(kept)):
        assert not torch.equal(kept[0]["bits"], kept[i]["bits"])


@pytest.mark.slow
def test_vae_resume_equals_uninterrupted(tmp_path, fake_root):
    args = tiny(fake_root) + ["verifier=discriminator", "verifier.refit=once", "verifier.train_size=300",
                              "verifier.epochs=1", "policy=verify_accumulate"]
    full = run_cfg(args + ["generations=3"], tmp_path / "full")
    run_cfg(args + ["generations=1"], tmp_path / "part")
    part = run_cfg(args + ["generations=3"], tmp_path / "part")
    assert strip_wall(part) == strip_wall(full)


def test_vae_bad_input(tmp_path, fake_root):
    with pytest.raises(ConfigError, match=r"replicates=3: replicate chains are for generator=linear"):
        run_cfg(tiny(fake_root) + ["replicates=3"], tmp_path)
    with pytest.raises(ConfigError, match=r"verifier\.keep_fraction=0 is invalid"):
        run_cfg(tiny(fake_root) + ["verifier=classifier", "verifier.keep_fraction=0"], tmp_path)
    with pytest.raises(ConfigError, match=r"verifier\.train_size=70000 exceeds"):
        run_cfg(tiny(fake_root) + ["verifier=classifier", "verifier.train_size=70000"], tmp_path)
    with pytest.raises(ConfigError, match=r"verifier\.refit='sometimes' is invalid"):
        run_cfg(tiny(fake_root) + ["verifier=discriminator", "verifier.refit=sometimes"], tmp_path)
    with pytest.raises(ConfigError, match=r"generator\.arch='resnet' is invalid"):
        run_cfg(tiny(fake_root) + ["generator.arch=resnet"], tmp_path)


def test_default_config_is_the_mnist_study():
    cfg = compose_cfg([])
    assert cfg["generator"]["name"] == "vae" and cfg["generator"]["conditional"] is True
    assert cfg["verifier"]["name"] == "discriminator" and cfg["policy"]["name"] == "verify"
    assert cfg["verifier"]["selection"] == "drs" and cfg["verifier"]["conditional"] == "auto"
    assert cfg["data"]["n_real"] == 500 and cfg["replicates"] == 1 and cfg["generations"] == 3


@pytest.mark.slow
def test_real_mnist_path_as_ci_runs_it(tmp_path, real_root):
    """train.py on real MNIST (fetched offline if absent), with the real evaluator/judge/classifier nets."""
    run_dir = tmp_path / "run"
    p = run_train("verifier=classifier", "verifier.keep_fraction=0.25", "generations=1", "policy.n_synthetic=500",
                  "data.eval_samples=2000", "data.pr_samples=1000", "generator.epochs=40",
                  f"hydra.run.dir={run_dir}", f"data.root={real_root}", "progress=false", timeout=3000)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = read_rows(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["evaluator_test_accuracy"] >= 0.99
    assert summary["judge_test_accuracy"] >= 0.99
    assert summary["classifier_test_accuracy"] >= 0.98
    assert 0 < summary["fid_real_floor"] < rows[0]["fid"]
    assert rows[0]["test_nelbo"] < 180  # trained (154 after this 40-epoch cap; untrained is about 540)
    assert rows[1]["accept_rate"] == pytest.approx(0.25, abs=0.01)
    assert rows[1]["n_train"] == 500 and 0.0 <= rows[1]["label_accuracy"] <= 1.0
    assert (run_dir / "gen_001" / "verdicts.png").exists()
    assert (real_root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    out = p.stdout + p.stderr  # the three fixed networks come with the package: none is trained
    assert "training the " not in out and all(f"{r} network: shipped" in out for r in ("evaluator", "judge", "classifier"))


@pytest.mark.slow
@pytest.mark.parametrize("verifier", ["classifier", "discriminator"])
def test_synthetic_sets_are_exactly_regenerable(tmp_path, fake_root, verifier):
    import torch

    from collapselab.checkpoint import load_torch
    from collapselab.loop import regenerate_synthetic

    run_cfg(tiny(fake_root) + [f"verifier={verifier}", "generations=2", "keep_synthetic=true"] + permissive(verifier),
            tmp_path)
    for g in (1, 2):
        stored = load_torch(tmp_path / f"gen_{g:03d}" / "synthetic.pt")
        again = regenerate_synthetic(tmp_path, g)
        assert torch.equal(again.y.to(torch.uint8).cpu(), stored["y"])
        from collapselab.data.mnist import pack_bits

        assert torch.equal(pack_bits(again.x), stored["bits"])


def test_linear_synthetic_sets_are_exactly_regenerable(tmp_path):
    import torch

    from collapselab.checkpoint import load_torch
    from collapselab.loop import regenerate_synthetic

    run_cfg(["generator=linear", "replicates=10", "generations=2", "verifier.reliability=0.5", "keep_synthetic=true"],
            tmp_path)
    stored = load_torch(tmp_path / "gen_002" / "synthetic.pt")
    again = regenerate_synthetic(tmp_path, 2)
    assert torch.equal(again.x.cpu(), stored["x"]) and torch.equal(again.y.cpu(), stored["y"])


def test_images_are_stored_losslessly():
    from collapselab.data.mnist import pack_images, unpack_images

    binary = (torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    gray = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert set(pack_images(binary)) == {"bits"} and torch.equal(unpack_images(pack_images(binary)), binary)
    assert set(pack_images(gray)) == {"x"} and torch.equal(unpack_images(pack_images(gray)), gray)


@pytest.mark.slow
def test_a_float_valued_generator_resumes_exactly(tmp_path, fake_root):
    """Gray images (not bits) survive gen_NNN/synthetic.pt, so an accumulating run that resumes matches."""
    args = tiny(fake_root) + ["generator._target_=tests.gray_generator.GrayVAEGenerator", "policy=accumulate",
                              "verifier=none", "samples_every=0"]
    full = run_cfg(args + ["generations=3"], tmp_path / "full")
    run_cfg(args + ["generations=1"], tmp_path / "part")
    assert strip_wall(run_cfg(args + ["generations=3"], tmp_path / "part")) == strip_wall(full)
    stored = torch.load(tmp_path / "part" / "gen_001" / "synthetic.pt", weights_only=True)
    assert "bits" not in stored and ((stored["x"] > 0) & (stored["x"] < 1)).float().mean() > 0.5


@pytest.mark.parametrize("model_conditional", [True, False])
def test_the_default_discriminator_sees_the_label_when_the_model_has_one(fake_root, model_conditional):
    cfg = compose_cfg(tiny(fake_root) + [f"generator.conditional={str(model_conditional).lower()}"])
    _, _, study = check_config(cfg)
    assert (study.verifier.n_cond > 0) is model_conditional and study.verifier.selection == "drs"


def test_a_threshold_the_ranking_classifier_ignores_is_said(fake_root, caplog):
    check_config(compose_cfg(tiny(fake_root) + ["verifier=classifier", "verifier.threshold=1.0"]))
    assert "verifier.threshold=1 has no effect while verifier.keep_fraction=0.1 ranks the candidates" in caplog.text
