"""Every leaf key of each study's composed config, given wrong values: a one-line error before any training.

Values tried per key: a wrong type, negative, zero, NaN, huge (10**12) and an empty string. A key that
legitimately takes one of these is listed in LEGIT (short, explicit); anything else must raise a
CollapseLabError whose message is one line. check_config builds the study (data + cached networks) but
trains nothing and writes no run directory.
"""
import copy
import os
import subprocess

import pytest

from collapselab.config import flatten
from collapselab.errors import CollapseLabError
from collapselab.loop import check_config

from .conftest import ROOT, compose_cfg, train_cmd

VALUES = {"type": "abc", "negative": -1, "zero": 0, "nan": float("nan"), "huge": 10**12, "empty": ""}

# (key, kind) pairs that are valid settings, not mistakes
LEGIT = {
    **{(k, "type"): "a label" for k in ("generator.name", "verifier.name", "policy.name")},
    ("data.root", "type"): "a folder name",
    **{(k, "zero"): "0 is meaningful" for k in ("generations", "seed", "samples_every", "policy.growth",
                                               "generator.min_steps", "verifier.reliability", "verifier.threshold")},
    ("seed", "huge"): "any 63-bit seed",
    ("verifier.holdout", "zero"): "0 trains the discriminator on every image (the authors' rule)",
    **{(k, kind): "any real number" for k in ("data.mean", "data.theta_star", "verifier.bias")
       for kind in ("negative", "zero", "huge")},
    **{(k, "huge"): "a large scale or bound is a valid setting"
       for k in ("data.noise_std", "data.std", "verifier.radius", "policy.max_candidates_factor", "generator.lr")},
    ("verifier.temperature", "zero"): "softmax at temperature 0 is top",
    ("verifier.temperature", "huge"): "a large temperature is a uniform subsample",
}

STUDIES = {
    "linear": ["generator=linear"],
    "gaussian": ["generator=gaussian", "verifier=noisy_oracle"],
    "mnist-classifier": ["verifier=classifier", "verifier.train_size=500"],
    "mnist-discriminator": ["verifier=discriminator"],
    "mnist-oracle": ["verifier=noisy_oracle"],
    "gaussian-mix": ["generator=gaussian", "policy=mix"],
    "linear-fresh": ["generator=linear", "policy=fresh"],
    "mnist-accumulate_subsample": ["verifier=discriminator", "policy=accumulate_subsample", "policy.filter=true"],
}


def set_key(cfg: dict, key: str, value) -> None:
    node = cfg
    *parents, last = key.split(".")
    for p in parents:
        node = node[p]
    node[last] = value


@pytest.mark.parametrize("every_composition", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["each_pair_once", "every_composition"])
def test_every_leaf_key_refuses_wrong_values(fake_root, capsys, every_composition):
    """Every leaf key of every composition given each kind of wrong value: one-line ConfigError, never a traceback.
    The fast suite tries each (key, kind) pair in the first composition that has the key; the slow one in all."""
    tried, bad, seen = 0, [], set()
    for study, overrides in STUDIES.items():
        if study.startswith("mnist"):
            overrides = overrides + ["data.source=fake", f"data.root={fake_root}"]
        base = compose_cfg(overrides + ["progress=false", "device=cpu"])
        check_config(base)  # the unmodified config is valid
        for key in flatten(base):
            for kind, value in VALUES.items():
                if (key, kind) in LEGIT or (key == "data.root" and kind == "type"):
                    continue
                if not every_composition and (key, kind) in seen:
                    continue
                seen.add((key, kind))
                cfg = copy.deepcopy(base)
                set_key(cfg, key, value)
                tried += 1
                try:
                    check_config(cfg)
                    bad.append(f"{study}: {key}={value!r} was accepted")
                except CollapseLabError as e:
                    if "\n" in str(e) or not str(e):
                        bad.append(f"{study}: {key}={value!r} gave a multi-line message")
                except Exception as e:  # noqa: BLE001 - a traceback for the user: the defect this test finds
                    bad.append(f"{study}: {key}={value!r} raised {type(e).__name__}: {e}")
    with capsys.disabled():
        print(f"\nconfig fuzz: {tried} (key, value) cases over {len(STUDIES)} compositions, {len(LEGIT)} legit pairs")
    assert not bad, "\n".join(bad)
    assert tried > (1000 if every_composition else 300)


INTERPOLATIONS = ["seed=${oops}", "generations=${oc.env:COLLAPSELAB_SURELY_UNSET}",
                  "policy.n_synthetic=${policy.missing_key}"]


@pytest.mark.parametrize("override", INTERPOLATIONS)
def test_an_interpolation_that_cannot_resolve_is_one_config_error(override, monkeypatch):
    """train.py's resolve step, in process: a one-line ConfigError naming the key and the fix."""
    import importlib.util

    from hydra import compose, initialize_config_dir

    from .conftest import CONF

    monkeypatch.delenv("COLLAPSELAB_SURELY_UNSET", raising=False)
    spec = importlib.util.spec_from_file_location("train_entry", ROOT / "train.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["debug=linear", override])
    with pytest.raises(CollapseLabError, match=r"\$\{oc\.env:NAME,default\}") as e:
        train.resolved(cfg)
    assert "\n" not in str(e.value) and override.split("=")[0] in str(e.value)


@pytest.mark.slow  # train.py in a subprocess, as a user runs it
@pytest.mark.parametrize("override", INTERPOLATIONS)
def test_an_interpolation_that_cannot_resolve_is_one_line(tmp_path, override):
    """train.py as a user runs it: exit 2, one line naming the key and the fix, no traceback, no run files."""
    env = {k: v for k, v in os.environ.items() if k != "COLLAPSELAB_SURELY_UNSET"}
    p = subprocess.run(train_cmd("debug=linear", override, f"hydra.run.dir={tmp_path / 'run'}"), cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 2 and "Traceback" not in out, out[-2000:]
    (line,) = [x for x in out.splitlines() if "ERROR" in x]
    assert "Fix the ${...} interpolation" in line and override.split("=")[0] in line
    run_dir = tmp_path / "run"  # Hydra makes the folder; nothing is written into it
    assert not run_dir.exists() or not any(run_dir.iterdir())
