"""Every option of every config group composes, and runs one generation (or says why it cannot)."""
import functools
from pathlib import Path

import pytest

from collapselab.errors import ConfigError
from collapselab.interfaces import Generator, ImageGenerator
from collapselab.loop import check_config

from .conftest import CONF, _compose_by_parts, compose_cfg, n_train_after_one, options, plain_compose, run_cfg


def test_groups_hold_the_documented_options():
    """Every option docs/configuration.md names exists (a new YAML is covered by the tests below, which read conf/)."""
    assert {"vae", "linear", "gaussian"} <= set(options("generator"))
    assert {"none", "classifier", "oracle", "noisy_oracle", "discriminator"} <= set(options("verifier"))
    assert {"replace", "accumulate", "verify", "verify_accumulate", "mix", "fresh",
            "accumulate_subsample"} <= set(options("policy"))
    assert {"mnist", "linear", "gaussian"} <= set(options("debug"))


@pytest.mark.parametrize("overrides", [
    ["generator=linear", "generations=3", "verifier.reliability=0.5", "samples_every=0"],
    ["generations=3", "generator=gaussian", "verifier=noisy_oracle", "verifier.keep_fraction=null", "seed=7"],
    ["debug=mnist", "verifier=discriminator", "verifier.keep_fraction=1e-9", "policy=mix", "policy.n_synthetic=100"],
    ["experiment=mnist_design_space_cpu", "generator.epochs=2", "data.root=/somewhere", "device=cpu"],
    ["verifier.temperature=2", "verifier.selection=softmax", "generator=linear", "policy=accumulate_subsample"],
])
def test_the_suites_compose_by_parts_is_hydras_compose(overrides):
    """The helper every test composes with (groups once, then value overrides) gives exactly Hydra's config."""
    assert _compose_by_parts(tuple(overrides)) == plain_compose(tuple(overrides))


@functools.lru_cache(maxsize=None)
def fits(generator: str, verifier: str, fake_root=None) -> bool:
    """Whether ``verifier`` builds for ``generator``'s study; the only refusal allowed is a one-line "does not fit"."""
    args = [f"generator={generator}", f"verifier={verifier}", "policy=verify", "progress=false", "device=cpu"]
    if generator == "vae":
        args += ["data.source=fake", f"data.root={fake_root}"]
    try:
        check_config(compose_cfg(args))
        return True
    except ConfigError as e:
        assert f"verifier={verifier} does not fit generator={generator}" in str(e), str(e)
        return False


@pytest.mark.parametrize("verifier", options("verifier"))
def test_every_verifier_fits_some_study(fake_root, verifier):
    assert any(fits(g, verifier, fake_root) for g in options("generator"))


ARMS = {"classifier_top": ("classifier", "verify", 5000), "classifier_mix10": ("classifier", "mix", 5000),
        "classifier_mix50": ("classifier", "mix", 5000), "classifier_fresh": ("classifier", "fresh", 5500),
        "discriminator": ("discriminator", "verify", 5000), "discriminator_top": ("discriminator", "verify", 5000),
        "replace": ("none", "replace", 5000)}


@pytest.mark.parametrize("arm", options("arm"))
def test_every_arm_builds_its_loop_at_the_design_space_size(fake_root, arm):
    """`+arm=X` on the MNIST design-space preset: the verifier and policy it names, 5,000 images a training set
    (mix: real + synthetic together; fresh: 5,000 verified + 500 fresh real)."""
    cfg = compose_cfg(["experiment=mnist_design_space_cpu", f"+arm={arm}", "data.source=fake",
                       f"data.root={fake_root}", "progress=false", "device=cpu"])
    assert cfg["generations"] == 10
    cfg["generations"] = 4  # the fake set has 3,000 images: 10 x 500 fresh ones would be refused
    _, policy, study = check_config(cfg)
    if arm not in ARMS:  # a new arm: it composes and builds; its sizes are its own
        return
    verifier, name, size = ARMS[arm]
    assert (cfg["verifier"]["name"], policy.name) == (verifier, name)
    m = policy.synthetic_size(1, 20000)
    real = {"mix": policy.real_count(m) if name == "mix" else 0, "fresh": 500}.get(name, 0)
    assert m + real == size and (study.verifier is None) == (verifier == "none")


def _builds(fake_root, generator: str, verifier: str | None, policy: str) -> None:
    """Compose and build one (generator, verifier, policy) without running it: building reads the config and trains
    nothing. A verifier of another study must be refused in one line naming both."""
    args = [f"generator={generator}", f"policy={policy}", "progress=false", "device=cpu"]
    args += [f"verifier={verifier}"] if verifier else []
    if generator == "vae":
        args += ["data.source=fake", f"data.root={fake_root}"]
    cfg = compose_cfg(args)
    if "train_size" in cfg["verifier"]:
        cfg["verifier"]["train_size"] = 500
    if verifier and not fits(generator, verifier, fake_root):
        with pytest.raises(ConfigError, match=f"verifier={verifier} does not fit generator={generator}"):
            check_config(cfg)
        return
    _, built_policy, study = check_config(cfg)
    assert built_policy.name == policy and (study.verifier is None) == (cfg["verifier"]["name"] == "none" or (
        generator == "vae" and not built_policy.filters))
    assert isinstance(study.new_generator(0), ImageGenerator if generator == "vae" else Generator)


@pytest.mark.parametrize("generator,verifier", [(g, v) for g in options("generator") for v in options("verifier")])
def test_every_verifier_builds_with_every_generator(fake_root, generator, verifier):
    _builds(fake_root, generator, verifier, "verify")


@pytest.mark.parametrize("generator,policy", [(g, p) for g in options("generator") for p in options("policy")])
def test_every_policy_builds_with_every_generator(fake_root, generator, policy):
    """With the generator's own default verifier (the full generator x verifier x policy product: the slow test)."""
    _builds(fake_root, generator, None, policy)


@pytest.mark.slow
@pytest.mark.parametrize("generator,verifier,policy", [
    (g, v, p) for g in options("generator") for v in options("verifier") for p in options("policy")])
def test_every_option_composes_and_instantiates(fake_root, generator, verifier, policy):
    _builds(fake_root, generator, verifier, policy)


@pytest.mark.parametrize("debug", ["linear", "gaussian"])  # debug=mnist: test_vae_compositions_run_one_generation (slow)
def test_each_debug_config_runs_its_study_at_test_size(tmp_path, debug):
    rows = run_cfg([f"debug={debug}", "generations=1"], tmp_path)
    assert [r["generation"] for r in rows] == [0, 1] and compose_cfg([f"debug={debug}"])["progress"] is False


@pytest.mark.slow
@pytest.mark.parametrize("design", ["singular", "gaussian"])
@pytest.mark.parametrize("policy", options("policy"))
@pytest.mark.parametrize("verifier", options("verifier"))
def test_linear_compositions_run_one_generation(tmp_path: Path, verifier, policy, design):
    args = ["generator=linear", f"verifier={verifier}", f"policy={policy}", f"generator.design={design}",
            "generations=1", "replicates=4", "samples_every=0"]
    if not fits("linear", verifier):
        with pytest.raises(ConfigError, match=f"verifier={verifier} does not fit generator=linear"):
            run_cfg(args, tmp_path)
        return
    rows = run_cfg(args, tmp_path)
    assert [r["generation"] for r in rows] == [0, 1]
    assert rows[1]["param_error"] > 0
    n = 800 if design == "singular" else 100
    assert rows[1]["n_train"] == n_train_after_one(policy, n, 100)


def test_generator_linear_selects_its_data_and_verifier():
    cfg = compose_cfg(["generator=linear"])
    assert cfg["data"]["name"] == "linear" and cfg["data"]["dim"] == 8 and cfg["data"]["n_real"] == 100
    assert cfg["verifier"]["name"] == "noisy_oracle" and cfg["verifier"]["bias"] is None  # null: the code's 0.3
    _, _, study = check_config(cfg)
    assert study.verifier.bias == 0.3 and study.verifier.radius == 0.1 and study.theory_applies
    assert compose_cfg(["generator=linear", "verifier=oracle"])["verifier"]["name"] == "oracle"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_composes(experiment):
    cfg = compose_cfg([f"experiment={experiment}"])
    assert cfg["generator"]["name"] in ("linear", "vae", "gaussian")
